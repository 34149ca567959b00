"""The bridge's `teams.endpoints` config section for a simulator at a given URL."""

from __future__ import annotations


def endpoints_for(base: str) -> dict[str, str]:
    """Full URLs, except `login`, which is a base the client appends `/{tenant}/oauth2/…` to."""
    return {
        "login": base,
        "authz_enterprise": f"{base}/api/authsvc/v1.0/authz",
        "authz_consumer": f"{base}/api/auth/v1.0/authz/consumer",
        "trouter_enterprise": f"{base}/v4/a",
        "trouter_consumer": f"{base}/v4/a",
        "registrar_enterprise": f"{base}/registrar/prod/V2/registrations",
        "registrar_consumer": f"{base}/registrar/prod/v2/registrations",
    }
