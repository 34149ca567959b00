"""Every credential the simulator hands out, so it can check them and list them."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from .ids import MSA_TENANT_ID, skype_id
from .model import User
from .options import SimOptions
from .util import random_b64, unsigned_jwt

TokenKind = Literal["access", "refresh", "id", "skype", "device_code"]

SPACES_RESOURCE = "https://api.spaces.skype.com"
IC3_RESOURCE = "https://ic3.teams.office.com"
CONSUMER_SPACES_SCOPE = "service::api.fl.spaces.skype.com::MBI_SSL"


@dataclass
class IssuedToken:
    value: str
    kind: TokenKind
    mri: str
    expires_at: float
    client_id: str | None = None
    audience: str | None = None
    tenant: str | None = None
    revoked: bool = False

    @property
    def valid(self) -> bool:
        return not self.revoked and time.time() < self.expires_at


class TokenStore:
    """Issues unsigned tokens and remembers them; nothing here is ever logged."""

    def __init__(self, options: SimOptions) -> None:
        self._opts = options
        self._tokens: dict[str, IssuedToken] = {}
        self._by_kind: dict[str, list[str]] = defaultdict(list)
        self.rotations: list[dict[str, object]] = []

    def _keep(self, token: IssuedToken) -> IssuedToken:
        self._tokens[token.value] = token
        self._by_kind[token.kind].append(token.value)
        return token

    def find(self, value: str | None, kind: TokenKind) -> IssuedToken | None:
        """The token if it exists and is of `kind`, valid or not."""
        if not value:
            return None
        token = self._tokens.get(value)
        return token if token is not None and token.kind == kind else None

    def valid(self, value: str | None, kind: TokenKind) -> IssuedToken | None:
        token = self.find(value, kind)
        return token if token is not None and token.valid else None

    def issue_access(self, user: User, client_id: str, audience: str, scp: str) -> IssuedToken:
        now = int(time.time())
        exp = now + self._opts.access_token_lifetime
        if user.kind == "personal":
            # MSA access tokens are opaque, not JWTs.
            value = "EwA" + random_b64(240)
        else:
            value = unsigned_jwt(
                {
                    "aud": audience,
                    "iss": f"https://sts.windows.net/{user.tenant_id}/",
                    "iat": now,
                    "nbf": now,
                    "exp": exp,
                    "appid": client_id,
                    "name": user.display_name,
                    "oid": user.object_id,
                    "tid": user.tenant_id,
                    "scp": scp,
                    "upn": user.email,
                    "unique_name": user.email,
                    "ver": "1.0",
                }
            )
        return self._keep(
            IssuedToken(value, "access", user.mri, exp, client_id, audience, user.tenant_id)
        )

    def issue_refresh(self, user: User, client_id: str) -> IssuedToken:
        prefix = "M.C5" if user.kind == "personal" else "0.A"
        value = prefix + random_b64(180)
        exp = time.time() + self._opts.refresh_token_lifetime
        return self._keep(IssuedToken(value, "refresh", user.mri, exp, client_id))

    def issue_id(self, user: User, client_id: str) -> IssuedToken:
        now = int(time.time())
        claims = {
            "aud": client_id,
            "iss": f"https://login.microsoftonline.com/{user.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.display_name,
            "oid": user.object_id,
            "preferred_username": user.email,
            "sub": random_b64(24),
            "tid": user.tenant_id,
            "ver": "2.0",
        }
        return self._keep(IssuedToken(unsigned_jwt(claims), "id", user.mri, now + 3600, client_id))

    def issue_skype(self, user: User) -> IssuedToken:
        now = int(time.time())
        exp = now + self._opts.skype_token_lifetime
        claims = {
            "iat": now,
            "exp": exp,
            "skypeid": skype_id(user.mri),
            "scp": 780 if user.kind == "work" else 958,
            "csi": str(now),
            "rgn": "emea",
        }
        if user.tenant_id != MSA_TENANT_ID:
            claims["tid"] = user.tenant_id
        return self._keep(IssuedToken(unsigned_jwt(claims), "skype", user.mri, exp))

    def issue_device_code(self, lifetime: int) -> IssuedToken:
        value = "DAQABAAEAAA" + random_b64(120)
        return self._keep(IssuedToken(value, "device_code", "", time.time() + lifetime))

    def rotate(self, old: IssuedToken) -> None:
        """Strict rotation: the old refresh token is dead once it has been used."""
        old.revoked = True
        self.rotations.append({"mri": old.mri, "at": time.time()})

    def revoke_user(self, mri: str, kind: TokenKind) -> int:
        count = 0
        for token in self._tokens.values():
            if token.mri == mri and token.kind == kind and not token.revoked:
                token.revoked = True
                count += 1
        return count

    def expire_user(self, mri: str, kind: TokenKind) -> int:
        count = 0
        now = time.time()
        for token in self._tokens.values():
            if token.mri == mri and token.kind == kind and token.expires_at > now:
                token.expires_at = now - 1
                count += 1
        return count

    def all_values(self) -> dict[str, list[str]]:
        kinds = ("access", "refresh", "id", "skype", "device_code")
        return {kind: list(self._by_kind.get(kind, [])) for kind in kinds}
