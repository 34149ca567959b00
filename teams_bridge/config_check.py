"""Checks of the config's values, so a wrong one stops the bridge at once with a line that
names the key, instead of a traceback from deep inside once something uses it.

The config has been upgraded against the example config before this runs, so every key
exists unless it was set to null (or its section replaced by something else).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .teams import Endpoints

# A check returns None when the value is fine, else what the value must be.
Check = Callable[[Any], str | None]

PERMISSION_LEVELS = ("relay", "user", "admin")
SOFTWARE = ("standard", "asmux", "hungry")
# Keys whose values are never repeated in a message (tokens, passwords in URLs).
SECRET_KEYS = {"appservice.as_token", "appservice.hs_token", "appservice.database"}


class ConfigProblem(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def integer(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if _is_int(value) and value >= low and (high is None or value <= high):
            return None
        if high is None:
            return f"must be a whole number of at least {low}"
        return f"must be a whole number from {low} to {high}"

    return check


def number(low: float, *, above: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if _is_number(value) and (value > low if above else value >= low):
            return None
        return f"must be a number {'above' if above else 'of at least'} {low:g}"

    return check


def text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def http_url(value: Any) -> str | None:
    problem = "must be an http:// or https:// URL with a host"
    if not isinstance(value, str):
        return problem
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return problem
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return problem
    return None


def optional(check: Check) -> Check:
    def wrapped(value: Any) -> str | None:
        return None if value is None else check(value)

    return wrapped


def server_name(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", value):
        return None
    return "must be the homeserver's server name (e.g. example.com), without scheme or path"


def localpart(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[a-z0-9._=/+\-]+", value):
        return None
    return "must be a user ID localpart (lower-case letters, digits and ._=/+-)"


def database_url(value: Any) -> str | None:
    if isinstance(value, str) and (
        value.startswith(("postgres://", "postgresql://", "cockroach://"))
        or (value.startswith("sqlite:") and len(value) > len("sqlite:"))
    ):
        return None
    return "must be postgres://user:password@host/database or sqlite:/path/to/file.db"


def mapping(value: Any) -> str | None:
    return None if isinstance(value, Mapping) else "must be a mapping of keys to values"


def template(placeholder: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and placeholder in value:
            return None
        return f"must be a string containing {placeholder}"

    return check


def endpoints(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a mapping of endpoint names to URLs"
    try:
        Endpoints.from_dict(dict(value))
    except ValueError as e:
        return f"is invalid: {e}"
    return None


def permissions(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "must map user IDs, domains or * to relay, user or admin"
    for who, level in value.items():
        if level not in PERMISSION_LEVELS:
            return f"gives {who!r} the level {level!r}; levels are relay, user and admin"
    return None


def directory(value: Any) -> str | None:
    if isinstance(value, str) and os.path.isdir(value):
        return None
    return "must be an existing directory (or null for the system's temporary directory)"


CHECKS: list[tuple[str, Check]] = [
    ("homeserver.address", http_url),
    ("homeserver.domain", server_name),
    ("homeserver.verify_ssl", boolean),
    ("homeserver.http_retry_count", integer(0)),
    ("homeserver.connection_limit", integer(1)),
    ("homeserver.software", one_of(*SOFTWARE)),
    ("homeserver.status_endpoint", optional(http_url)),
    ("homeserver.message_send_checkpoint_endpoint", optional(http_url)),
    ("appservice.address", http_url),
    ("appservice.hostname", text),
    ("appservice.port", integer(1, 65535)),
    ("appservice.max_body_size", number(0, above=True)),
    ("appservice.database", database_url),
    ("appservice.database_opts", optional(mapping)),
    ("appservice.id", text),
    ("appservice.bot_username", localpart),
    ("appservice.as_token", text),
    ("appservice.hs_token", text),
    ("appservice.ephemeral_events", boolean),
    ("teams.endpoints", endpoints),
    ("teams.default_tenant", text),
    ("teams.trouter.ping_interval", number(0, above=True)),
    ("teams.trouter.pong_timeout", number(0, above=True)),
    ("teams.trouter.backoff_max", number(0, above=True)),
    ("bridge.username_template", template("{userid}")),
    ("bridge.displayname_template", template("{displayname}")),
    ("bridge.avatar_refresh_hours", number(0)),
    ("bridge.initial_chat_sync", integer(0)),
    ("bridge.backfill.initial_messages", integer(0)),
    ("bridge.backfill.parallel_chats", integer(1, 16)),
    ("bridge.portal_queue_size", integer(1)),
    ("bridge.cache.portals", integer(0)),
    ("bridge.cache.puppets", integer(0)),
    ("bridge.cache.users", integer(0)),
    ("bridge.matrix_order_hold_seconds", number(0)),
    ("bridge.homeserver_watch_seconds", number(0)),
    ("bridge.private_chat_portal_meta", boolean),
    ("bridge.spaces", boolean),
    ("bridge.leave_teams_chat_on_leave", boolean),
    ("bridge.sync_presence", boolean),
    ("bridge.presence_refresh_seconds", number(0)),
    ("bridge.sync_direct_chat_list", boolean),
    ("bridge.double_puppet_allow_discovery", boolean),
    ("bridge.message_status_events", boolean),
    ("bridge.uvloop", boolean),
    ("bridge.cluster.enabled", boolean),
    ("bridge.cluster.lease_seconds", number(0, above=True)),
    ("bridge.cluster.renew_seconds", number(0, above=True)),
    ("bridge.sync_direct_chat_list", boolean),
    ("bridge.command_prefix", text),
    ("bridge.max_file_size", integer(1)),
    ("bridge.media_temp_dir", optional(directory)),
    ("bridge.permissions", permissions),
    ("metrics.enabled", boolean),
    ("metrics.listen_port", integer(1, 65535)),
    ("metrics.hostname", text),
]


def _value(config: Any, key: str) -> Any:
    try:
        return config[key]
    except (AttributeError, KeyError, TypeError):
        return None  # a parent is not a mapping: reported as the key missing


def check_values(config: Any) -> None:
    """Raise ConfigProblem for the first value that is missing or wrong."""
    for key, check in CHECKS:
        value = _value(config, key)
        problem = check(value)
        if problem is None:
            continue
        if value is None:
            raise ConfigProblem(key, f"is missing; {problem} (see example-config.yaml)")
        if key in SECRET_KEYS or isinstance(value, Mapping):
            raise ConfigProblem(key, problem)
        raise ConfigProblem(key, f"{problem}, not {_show(value)}")
    if _value(config, "metrics.enabled") and _value(config, "metrics.listen_port") == _value(
        config, "appservice.port"
    ):
        raise ConfigProblem(
            "metrics.listen_port", "must differ from appservice.port (both are the same port)"
        )
    _check_cluster(config)


def _check_cluster(config: Any) -> None:
    if not _value(config, "bridge.cluster.enabled"):
        return
    if not str(_value(config, "appservice.database")).startswith(("postgres://", "postgresql://")):
        raise ConfigProblem(
            "bridge.cluster.enabled",
            "needs a PostgreSQL database (appservice.database); with SQLite only one process "
            "can use it",
        )
    if _value(config, "bridge.cluster.renew_seconds") * 2 > _value(
        config, "bridge.cluster.lease_seconds"
    ):
        raise ConfigProblem(
            "bridge.cluster.renew_seconds",
            "must be at most half of bridge.cluster.lease_seconds (a lease must survive a "
            "failed renewal)",
        )


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
