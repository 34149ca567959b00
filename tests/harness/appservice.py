"""Appservice registration files for test bridge instances.

Synapse reads registrations only when it starts, so they are written (with a port reserved
for each bridge's appservice listener) before the homeserver is launched.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import free_port


@dataclass(frozen=True)
class AppserviceRegistration:
    """One registration, as written to `path` (JSON is valid YAML)."""

    name: str
    id: str
    prefix: str
    server_name: str
    as_token: str
    hs_token: str
    sender_localpart: str
    port: int
    path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bot_localpart(self) -> str:
        return f"{self.prefix}bot"

    @property
    def bot_mxid(self) -> str:
        return f"@{self.bot_localpart}:{self.server_name}"

    @property
    def user_prefix(self) -> str:
        """Localpart prefix of the puppets, e.g. `teamspg_`."""
        return f"{self.prefix}_"

    def puppet_mxid(self, suffix: str) -> str:
        return f"@{self.prefix}_{suffix}:{self.server_name}"

    def as_dict(self) -> dict[str, Any]:
        """The registration exactly as Synapse reads it."""
        server = re.escape(self.server_name)
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "namespaces": {
                "users": [
                    {"exclusive": True, "regex": f"@{self.prefix}_.*:{server}"},
                    {"exclusive": True, "regex": f"@{self.prefix}bot:{server}"},
                ],
                "aliases": [],
                "rooms": [],
            },
            "rate_limited": False,
            "de.sorunome.msc2409.push_ephemeral": True,
            "receive_ephemeral": True,
            "org.matrix.msc3202": True,
            "io.element.msc4190": True,
        }

    def __repr__(self) -> str:  # keep tokens out of test output
        return f"AppserviceRegistration(id={self.id!r}, url={self.url!r}, path={str(self.path)!r})"


def write_registration(
    directory: str | Path,
    name: str,
    prefix: str | None = None,
    server_name: str = "localhost",
    port: int | None = None,
) -> AppserviceRegistration:
    """Write `<directory>/<name>-registration.yaml` with fresh tokens and a reserved port."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    reg = AppserviceRegistration(
        name=name,
        id=f"teams-{name}",
        prefix=prefix or f"teams{name}",
        server_name=server_name,
        as_token=secrets.token_urlsafe(32),
        hs_token=secrets.token_urlsafe(32),
        sender_localpart=secrets.token_hex(8),
        port=port or free_port(),
        path=directory / f"{name}-registration.yaml",
    )
    reg.path.write_text(json.dumps(reg.as_dict(), indent=2) + "\n")
    reg.path.chmod(0o600)
    return reg


@dataclass
class DoublePuppetRegistration:
    """A registration that only lets the bridge act as real users of the homeserver (its
    users namespace covers them all, not exclusively; no URL, so it gets no events): the
    ``as_token:`` method of double puppeting."""

    path: Path
    as_token: str

    def __repr__(self) -> str:
        return f"DoublePuppetRegistration(path={str(self.path)!r})"


def write_double_puppet_registration(
    directory: str | Path, server_name: str = "localhost"
) -> DoublePuppetRegistration:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    as_token = secrets.token_urlsafe(32)
    data = {
        "id": "doublepuppet",
        "url": None,
        "as_token": as_token,
        "hs_token": secrets.token_urlsafe(32),
        "sender_localpart": secrets.token_hex(8),
        "namespaces": {"users": [{"exclusive": False, "regex": f"@.*:{server_name}"}]},
        "rate_limited": False,
    }
    path = directory / "doublepuppet-registration.yaml"
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)
    return DoublePuppetRegistration(path, as_token)
