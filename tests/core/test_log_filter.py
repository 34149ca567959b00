"""The log filter hides tokens in every shape the Teams requests carry them."""

from __future__ import annotations

from teams_bridge.log_filter import redact


def test_header_and_cookie_tokens_are_redacted():
    opaque = "0.AXoAabcdefghijklmnop"
    for text in (
        f"Authorization: Bearer {opaque}",
        f"Cookie: authtoken=Bearer={opaque}&Origin=https://teams.microsoft.com",
        f"Authentication: skypetoken={opaque}",
    ):
        cleaned = redact(text)
        assert opaque not in cleaned and "<redacted>" in cleaned
    assert redact("Origin=https://teams.microsoft.com").endswith("teams.microsoft.com")
