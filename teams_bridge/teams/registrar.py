"""Registering the Trouter push path with the registrar.

Without a live registration the chat service stops pushing while the socket
stays up, so it is renewed well before its TTL runs out.
"""

from __future__ import annotations

import logging
from typing import Any

from .http import Auth, TeamsHttp
from .kinds import AccountKind

log = logging.getLogger("teams.registrar")

APP_ID = "TeamsCDLWebWorker"
PLATFORM_UI_VERSION = "49/25113001312"


def registration_body(kind: AccountKind, endpoint_id: str, surl: str, ttl: int) -> dict[str, Any]:
    """The TeamsCDLWebWorker registration; ``registrationId`` must be the endpoint id."""
    description: dict[str, Any] = {
        "appId": APP_ID,
        "aesKey": "",
        "languageId": "en-US",
        "platform": "edge",
        "templateKey": f"{APP_ID}_2.6" if kind is AccountKind.PERSONAL else f"{APP_ID}_2.1",
        "platformUIVersion": PLATFORM_UI_VERSION,
    }
    if kind is AccountKind.PERSONAL:
        description["productContext"] = "TFL"
    return {
        "clientDescription": description,
        "registrationId": endpoint_id,
        "nodeId": "",
        "transports": {"TROUTER": [{"context": "", "path": surl, "ttl": ttl}]},
    }


async def register(
    http: TeamsHttp, registrar_url: str, kind: AccountKind, endpoint_id: str, surl: str, ttl: int
) -> None:
    """POST the registration; raises ``TeamsError`` on failure."""
    await http.request(
        "POST",
        registrar_url,
        auth=Auth.SKYPE_BEARER,
        json_body=registration_body(kind, endpoint_id, surl, ttl),
        headers={"X-MS-Migration": "True"},
    )
    log.info("Registered the Trouter endpoint (ttl %ds)", ttl)
