"""Which Teams service a URL belongs to, as a short fixed name (for metrics and logs).

Decided from the path, which is the same on every host a service is reached at (regional
hosts, the AFD paths under teams.microsoft.com, a local implementation of the protocol),
and from the host only where the path says nothing (presence, trouter).
"""

from __future__ import annotations

from yarl import URL

# Every name service_of() can return.
SERVICES = (
    "aad",
    "authz",
    "chatsvc",
    "csa",
    "mt",
    "ams",
    "presence",
    "trouter",
    "registrar",
    "other",
)


def service_of(url: str | URL) -> str:
    """The service ``url`` is a request to; "other" when it is none of the known ones."""
    try:
        parsed = url if isinstance(url, URL) else URL(str(url), encoded=True)
        path = parsed.path.lower()
        host = (parsed.host or "").lower()
    except (ValueError, TypeError):
        return "other"
    if "/oauth2/" in path:
        return "aad"
    if "/authz" in path:
        return "authz"
    if "/registrar/" in path or path.endswith("/registrations") or "/registrations/" in path:
        return "registrar"
    if path.startswith("/socket.io/") or path.startswith("/v4/") or "trouter" in host:
        return "trouter"
    if "/api/mt/" in path:
        return "mt"
    if "/api/csa/" in path or host.startswith("chatsvcagg."):
        return "csa"
    if "/ups/" in path or "presence" in host or "/presence/" in path:
        return "presence"
    if path.startswith("/v1/objects") or "/v1/objects/" in path:
        return "ams"
    if "/api/chatsvc/" in path or "/v1/users/" in path or "/v1/threads" in path:
        return "chatsvc"
    return "other"
