"""HTTP endpoints the bridge serves besides the appservice API (provisioning)."""
