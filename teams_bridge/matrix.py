"""The thin Matrix event router."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.bridge import BaseMatrixHandler

from . import commands  # noqa: F401  (registers the command handlers)

if TYPE_CHECKING:
    from .__main__ import TeamsBridge


class MatrixHandler(BaseMatrixHandler):
    def __init__(self, bridge: TeamsBridge) -> None:
        prefix, suffix = bridge.config["bridge.username_template"].format(userid=":").split(":")
        homeserver = bridge.config["homeserver.domain"]
        self.user_id_prefix = f"@{prefix}"
        self.user_id_suffix = f"{suffix}:{homeserver}"
        super().__init__(bridge=bridge)
