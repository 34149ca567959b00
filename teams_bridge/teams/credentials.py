"""Login results: the persisted credentials and the device-code flow state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .kinds import AccountKind


@dataclass(frozen=True)
class Credentials:
    """What the core persists for a login; only the refresh token is secret.

    Access and Skype tokens are deliberately absent: they are re-minted on start.
    """

    kind: AccountKind
    tenant: str
    client_id: str
    refresh_token: str = field(repr=False)
    tenant_id: str | None = None
    user_object_id: str | None = None
    display_name: str | None = None
    username: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "tenant": self.tenant,
            "client_id": self.client_id,
            "refresh_token": self.refresh_token,
            "tenant_id": self.tenant_id,
            "user_object_id": self.user_object_id,
            "display_name": self.display_name,
            "username": self.username,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Credentials:
        def opt(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        try:
            kind = AccountKind(data["kind"])
            tenant = str(data["tenant"])
            client_id = str(data["client_id"])
            refresh_token = data["refresh_token"]
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError("credentials are incomplete") from exc
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ValueError("credentials have no refresh token")
        return cls(
            kind=kind,
            tenant=tenant,
            client_id=client_id,
            refresh_token=refresh_token,
            tenant_id=opt("tenant_id"),
            user_object_id=opt("user_object_id"),
            display_name=opt("display_name"),
            username=opt("username"),
        )


@dataclass(frozen=True)
class DeviceCodeFlow:
    """A started device-code login; show ``message`` (or the code and URI) to the user."""

    user_code: str
    verification_uri: str
    expires_in: int
    interval: int
    message: str
    device_code: str = field(repr=False)
    client_id: str
    tenant: str
    kind: AccountKind
