"""Pending device-code logins and their approval by a simulated person."""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from typing import Literal

from .model import User, UserKind
from .world import SimError

Status = Literal["pending", "approved", "declined", "redeemed"]
_ALPHABET = string.ascii_uppercase + string.digits


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    kind: UserKind
    client_id: str
    tenant: str
    scope: str
    interval: int
    expires_at: float
    status: Status = "pending"
    mri: str | None = None
    last_poll: float | None = None

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def public(self) -> dict[str, object]:
        return {
            "user_code": self.user_code,
            "kind": self.kind,
            "client_id": self.client_id,
            "tenant": self.tenant,
            "scope": self.scope,
            "status": self.status,
            "expires_in": max(0, int(self.expires_at - time.time())),
        }


class DeviceCodes:
    def __init__(self) -> None:
        self.by_device: dict[str, DeviceCode] = {}
        self.by_user: dict[str, DeviceCode] = {}

    def add(self, code: DeviceCode) -> None:
        self.by_device[code.device_code] = code
        self.by_user[code.user_code] = code

    @staticmethod
    def new_user_code() -> str:
        return "".join(secrets.choice(_ALPHABET) for _ in range(9))

    def pending(self) -> list[DeviceCode]:
        return [c for c in self.by_user.values() if c.status == "pending" and not c.expired]

    def _pending_code(self, user_code: str) -> DeviceCode:
        code = self.by_user.get(user_code.strip().upper())
        if code is None:
            raise SimError(404, "NotFound", "unknown user code")
        if code.expired:
            raise SimError(400, "Expired", "this code has expired")
        if code.status != "pending":
            raise SimError(409, "Conflict", f"this code is already {code.status}")
        return code

    def approve(self, user_code: str, user: User) -> DeviceCode:
        code = self._pending_code(user_code)
        if user.kind != code.kind:
            raise SimError(
                400, "WrongAccountKind", f"this code needs a {code.kind} account, not {user.kind}"
            )
        code.status = "approved"
        code.mri = user.mri
        return code

    def decline(self, user_code: str) -> DeviceCode:
        code = self._pending_code(user_code)
        code.status = "declined"
        return code
