"""Bridge configuration: the example config is the source of truth, upgraded on start."""

from __future__ import annotations

from typing import NamedTuple

from mautrix.bridge.config import BaseBridgeConfig
from mautrix.client import Client
from mautrix.types import UserID
from mautrix.util.config import ConfigUpdateHelper, ForbiddenDefault, ForbiddenKey


class Permissions(NamedTuple):
    relay: bool
    user: bool
    admin: bool
    level: str


class Config(BaseBridgeConfig):
    @property
    def forbidden_defaults(self) -> list[ForbiddenDefault]:
        return [
            *super().forbidden_defaults,
            ForbiddenDefault("bridge.permissions", ForbiddenKey("example.com")),
        ]

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        super().do_update(helper)
        copy, copy_dict = helper.copy, helper.copy_dict

        for key in (
            "login",
            "authz_enterprise",
            "authz_consumer",
            "trouter_enterprise",
            "trouter_consumer",
            "registrar_enterprise",
            "registrar_consumer",
        ):
            copy(f"teams.endpoints.{key}")
        copy("teams.default_tenant")
        copy("teams.trouter.ping_interval")
        copy("teams.trouter.pong_timeout")
        copy("teams.trouter.backoff_max")

        copy("bridge.username_template")
        copy("bridge.displayname_template")
        copy("bridge.avatar_refresh_hours")
        copy("bridge.initial_chat_sync")
        copy("bridge.portal_queue_size")
        copy("bridge.matrix_order_hold_seconds")
        copy("bridge.homeserver_watch_seconds")
        copy("bridge.private_chat_portal_meta")
        copy("bridge.sync_direct_chat_list")
        copy("bridge.command_prefix")
        copy("bridge.max_file_size")
        copy("bridge.media_temp_dir")
        copy_dict("bridge.permissions")

        copy("bridge.provisioning.enabled")
        copy("bridge.provisioning.prefix")
        secret = self["bridge.provisioning.shared_secret"]
        if not secret or secret == "generate":
            helper.base["bridge.provisioning.shared_secret"] = self._new_token()
        else:
            copy("bridge.provisioning.shared_secret")

    def _get_permissions(self, key: str) -> Permissions:
        level = self["bridge.permissions"].get(key, "")
        admin = level == "admin"
        user = level == "user" or admin
        relay = level == "relay" or user
        return Permissions(relay, user, admin, level)

    def get_permissions(self, mxid: UserID) -> Permissions:
        permissions = self["bridge.permissions"] or {}
        if mxid in permissions:
            return self._get_permissions(mxid)
        _, homeserver = Client.parse_user_id(mxid)
        if homeserver in permissions:
            return self._get_permissions(homeserver)
        return self._get_permissions("*")
