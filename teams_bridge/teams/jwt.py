"""Reading claims out of JWTs we were handed by the identity provider.

No signature check: the tokens came to us over TLS from the issuer and are only
read for routing facts (tenant, object id, skypeid), never for authorisation.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def unverified_claims(token: str | None) -> dict[str, Any]:
    """The payload of a JWT, or ``{}`` if ``token`` is not a decodable JWT."""
    if not isinstance(token, str):
        return {}
    parts = token.split(".")
    if len(parts) < 2 or not parts[1]:
        return {}
    payload = parts[1]
    payload += "=" * (-len(payload) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return {}
    return data if isinstance(data, dict) else {}
