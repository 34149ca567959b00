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
        """Example values that must have been replaced, each with how to fix it."""
        address = (
            "Set it to the address where the bridge reaches your homeserver, "
            "e.g. http://localhost:8008."
        )
        registration = (
            "It is written when you generate the registration: "
            "python -m teams_bridge -c config.yaml -g -r registration.yaml"
        )
        defaults = [
            ForbiddenDefault("homeserver.address", "https://example.com", address),
            ForbiddenDefault("homeserver.address", "https://matrix.example.com", address),
            ForbiddenDefault(
                "homeserver.domain",
                "example.com",
                "Set it to your homeserver's server name (what follows ':' in user IDs).",
            ),
        ]
        if self._check_tokens:
            placeholder = "This value is generated when generating the registration"
            defaults += [
                ForbiddenDefault("appservice.as_token", placeholder, registration),
                ForbiddenDefault("appservice.hs_token", placeholder, registration),
            ]
        defaults.append(
            ForbiddenDefault(
                "bridge.permissions",
                ForbiddenKey("example.com"),
                "Replace the example entries with your own users or homeserver domain.",
            )
        )
        return defaults

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
        copy("bridge.cache.portals")
        copy("bridge.cache.puppets")
        copy("bridge.matrix_order_hold_seconds")
        copy("bridge.homeserver_watch_seconds")
        copy("bridge.matrix_event_retention_hours")
        copy("bridge.private_chat_portal_meta")
        copy("bridge.sync_direct_chat_list")
        copy("bridge.command_prefix")
        copy("bridge.max_file_size")
        copy("bridge.media_temp_dir")
        copy_dict("bridge.permissions")

        copy("metrics.enabled")
        copy("metrics.listen_port")
        copy("metrics.hostname")

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
