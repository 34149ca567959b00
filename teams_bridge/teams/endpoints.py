"""Bootstrap URLs (configured) and service URLs (discovered from the authz answer).

Only the bootstrap URLs live in the config; everything else comes from
``regionGtms`` so tenants pinned to other regions keep working, and a local
double can stand in over plain ``http://``/``ws://``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import quote, urlsplit

from .kinds import AccountKind

log = logging.getLogger("teams.endpoints")

_ALLOWED_SCHEMES = ("http", "https", "ws", "wss")


def _check_url(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"endpoint {name!r} must be a non-empty string")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"endpoint {name!r} is not a valid URL") from exc
    if parts.scheme.lower() not in _ALLOWED_SCHEMES or not parts.netloc:
        raise ValueError(f"endpoint {name!r} must be an absolute http(s)/ws(s) URL")
    return value


@dataclass(frozen=True)
class Endpoints:
    """The bootstrap URLs (the ``teams.endpoints`` config section)."""

    login: str = "https://login.microsoftonline.com"
    authz_enterprise: str = "https://teams.microsoft.com/api/authsvc/v1.0/authz"
    authz_consumer: str = "https://teams.live.com/api/auth/v1.0/authz/consumer"
    trouter_enterprise: str = "https://go.trouter.teams.microsoft.com/v4/a"
    trouter_consumer: str = "https://go.trouter.skype.com/v4/a"
    registrar_enterprise: str = "https://teams.microsoft.com/registrar/prod/V2/registrations"
    registrar_consumer: str = "https://edge.skype.com/registrar/prod/v2/registrations"

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_url(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Endpoints:
        """Build from a config mapping; missing or null keys keep Microsoft's defaults."""
        known = {f.name for f in fields(cls)}
        values: dict[str, str] = {}
        for key, value in (data or {}).items():
            if key not in known:
                log.warning("Ignoring unknown endpoint key %r", key)
                continue
            if value is not None:
                values[key] = _check_url(key, value)
        return cls(**values)

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def login_url(self, tenant: str, action: str) -> str:
        """``…/{tenant}/oauth2/v2.0/{action}``; a ``{tenant}`` placeholder is filled in."""
        escaped = quote(tenant, safe="")
        if "{tenant}" in self.login:
            base = self.login.replace("{tenant}", escaped).rstrip("/")
            if base.endswith("/oauth2/v2.0"):
                return f"{base}/{action}"
            if base.endswith("/oauth2"):
                return f"{base}/v2.0/{action}"
            return f"{base}/oauth2/v2.0/{action}"
        return f"{self.login.rstrip('/')}/{escaped}/oauth2/v2.0/{action}"

    def authz(self, kind: AccountKind) -> str:
        return self.authz_consumer if kind is AccountKind.PERSONAL else self.authz_enterprise

    def trouter(self, kind: AccountKind) -> str:
        return self.trouter_consumer if kind is AccountKind.PERSONAL else self.trouter_enterprise

    def registrar(self, kind: AccountKind) -> str:
        return (
            self.registrar_consumer if kind is AccountKind.PERSONAL else self.registrar_enterprise
        )


def _service_url(gtms: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = gtms.get(key)
        if isinstance(value, str) and value:
            try:
                parts = urlsplit(value)
            except ValueError:
                continue
            if parts.scheme.lower() in ("http", "https") and parts.netloc:
                return value.rstrip("/")
            log.warning("Ignoring regionGtms %s: not an http(s) URL", key)
    return None


@dataclass(frozen=True)
class ServiceUrls:
    """Service bases discovered from ``regionGtms``."""

    chat: str  # chat service base including /v1
    middle_tier: str | None = None
    ams: str | None = None
    presence: str | None = None
    chat_aggregator: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_region_gtms(cls, gtms: Mapping[str, Any]) -> ServiceUrls:
        """Parse ``regionGtms``; the chat service is required, the rest optional."""
        if not isinstance(gtms, Mapping):
            raise ValueError("regionGtms is missing or not an object")
        chat = _service_url(gtms, "chatService", "chatServiceAfd")
        if chat is None:
            raise ValueError("regionGtms has no usable chatService")
        if not chat.endswith("/v1"):
            chat = f"{chat}/v1"
        raw = {k: v for k, v in gtms.items() if isinstance(k, str) and isinstance(v, str)}
        return cls(
            chat=chat,
            middle_tier=_service_url(gtms, "middleTier"),
            ams=_service_url(gtms, "ams", "amsV2", "mediaStream"),
            presence=_service_url(gtms, "unifiedPresence"),
            chat_aggregator=_service_url(gtms, "chatSvcAggAfd", "chatServiceAggregator"),
            raw=raw,
        )
