"""Skype token exchange (authz) and service discovery.

Enterprise and consumer authz answer in two different shapes and sources
disagree about which endpoint uses which, so both shapes are accepted on both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .endpoints import Endpoints, ServiceUrls
from .errors import AuthError
from .http import Response, RetryPolicy, error_from_response, send
from .jwt import unverified_claims
from .kinds import AccountKind

log = logging.getLogger("teams.authz")

DEFAULT_SKYPE_LIFETIME = 86400.0


@dataclass(frozen=True)
class SkypeToken:
    """A Skype token plus what the authz answer told us about the services."""

    token: str = field(repr=False)
    expires_in: float
    obtained_at: float
    skype_id: str | None
    services: ServiceUrls
    region: str | None = None

    def refresh_at(self) -> float:
        """When to re-mint: at 80 % of the lifetime or 60 s before expiry, whichever is first."""
        lead = min(self.expires_in * 0.8, max(self.expires_in - 60.0, 0.0))
        return self.obtained_at + lead


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def parse_authz(data: Any, *, now: float | None = None) -> SkypeToken:
    """Parse either authz answer shape (``tokens{…}`` or ``skypeToken{…}``)."""
    if not isinstance(data, Mapping):
        raise AuthError("authz answer is not an object")
    token: Any = None
    expires: Any = None
    skype_id: Any = None
    tokens = data.get("tokens")
    nested = data.get("skypeToken")
    if isinstance(tokens, Mapping):
        token = tokens.get("skypeToken") or tokens.get("skypetoken")
        expires = tokens.get("expiresIn")
        skype_id = tokens.get("skypeid")
    if not token and isinstance(nested, Mapping):
        token = nested.get("skypetoken") or nested.get("skypeToken")
        expires = nested.get("expiresIn", expires)
        skype_id = nested.get("skypeid") or skype_id
    if not token and isinstance(nested, str):
        token = nested
        expires = data.get("expiresIn", expires)
    if not isinstance(token, str) or not token:
        raise AuthError("authz answer carries no Skype token")
    claims = unverified_claims(token)
    if not isinstance(skype_id, str) or not skype_id:
        claimed = claims.get("skypeid")
        skype_id = claimed if isinstance(claimed, str) and claimed else None
    lifetime = _number(expires)
    if lifetime is None:
        exp = _number(claims.get("exp"))
        lifetime = max(exp - time.time(), 0.0) if exp else DEFAULT_SKYPE_LIFETIME
    gtms = data.get("regionGtms")
    if not isinstance(gtms, Mapping):
        raise AuthError("authz answer has no regionGtms")
    try:
        services = ServiceUrls.from_region_gtms(gtms)
    except ValueError as exc:
        raise AuthError(f"authz answer has unusable service URLs: {exc}") from exc
    region = data.get("region")
    return SkypeToken(
        token=token,
        expires_in=lifetime,
        obtained_at=now if now is not None else time.monotonic(),
        skype_id=skype_id,
        services=services,
        region=region if isinstance(region, str) else None,
    )


def _authz_error(resp: Response) -> AuthError:
    err = error_from_response(resp)
    return AuthError(
        f"Skype token exchange failed: {err.message}",
        status=resp.status,
        error_code=err.error_code,
    )


async def fetch_skype_token(
    session: aiohttp.ClientSession,
    endpoints: Endpoints,
    kind: AccountKind,
    access_token: str,
    *,
    policy: RetryPolicy | None = None,
) -> SkypeToken:
    """Exchange a spaces access token for a Skype token at the kind's authz endpoint."""
    headers = {
        "Authorization": f"Bearer {access_token}",
        "Accept": "application/json",
        "ms-teams-authz-type": "TokenRefresh",
    }
    resp = await send(
        session, "POST", endpoints.authz(kind), headers=headers, body=b"", policy=policy
    )
    if not resp.ok:
        raise _authz_error(resp)
    try:
        data = resp.json()
    except Exception as exc:
        raise AuthError("authz answer is not JSON", status=resp.status) from exc
    token = parse_authz(data)
    log.info("Minted a Skype token (lifetime %ds)", int(token.expires_in))
    return token
