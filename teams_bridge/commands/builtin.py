"""mautrix's built-in commands, cut down to what this bridge supports, each with a guard.

mautrix registers a set of generic portal and admin commands on import; some of them come
without any permission check (``unbridge`` lets anyone in a portal room drop it). Only the
commands named in ``KEPT`` survive here, each with the check given there; any other
built-in (including one a future mautrix adds) is removed. The README lists the outcome.

Removed, and why:

* ``open-manhole``, ``close-manhole``: a Python shell inside the process that holds every
  user's Teams login is too much to open from a chat message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.bridge.commands.handler import (
    CommandHandler,
    HelpCacheKey,
    command_aliases,
    command_handlers,
)
from mautrix.types import EventType

if TYPE_CHECKING:
    from mautrix.bridge.commands import CommandEvent

# Who may run a kept built-in: "anyone" (with the bridge's `user` permission), "admin"
# (bridge administrators) or "portal-admin" (bridge administrators, or administrators of
# the room who are logged in to Teams and in the bridged chat).
KEPT: dict[str, str] = {
    "help": "anyone",
    "version": "anyone",
    "unknown-command": "anyone",
    "unbridge": "portal-admin",
    "delete-portal": "admin",
    "set-pl": "admin",
    "set-avatar": "admin",
    "remove-avatar": "admin",
    "set-displayname": "admin",
    "remove-displayname": "admin",
    "clean-rooms": "admin",
    "login-matrix": "anyone",
    "logout-matrix": "anyone",
    "ping-matrix": "anyone",
    "set-relay": "anyone",
    "unset-relay": "anyone",
    "discard-megolm-session": "admin",
}

PORTAL_ADMIN_REFUSAL = (
    "`{command}` is limited to bridge administrators and to administrators of this room "
    "who are logged in to Teams and in this chat."
)


def is_builtin(handler: CommandHandler) -> bool:
    return getattr(handler._handler, "__module__", "").startswith("mautrix.")


async def is_portal_admin(evt: CommandEvent) -> bool:
    """Whether the sender may manage the portal this command was sent in."""
    sender = evt.sender
    if sender.is_admin:
        return True
    portal = evt.portal
    if portal is None or not await sender.is_logged_in():
        return False
    if not await portal.has_user(sender.mxid):  # type: ignore[attr-defined]
        return False
    try:
        levels = await evt.az.intent.get_power_levels(evt.room_id, ignore_cache=True)
    except Exception as e:
        evt.log.warning("Could not read the power levels of %s: %s", evt.room_id, e)
        return False
    needed = levels.get_event_level(EventType.ROOM_POWER_LEVELS)
    return levels.get_user_level(sender.mxid) >= needed


class PortalAdminCommand(CommandHandler):
    """A command for bridge admins and for the room's admins who are in the Teams chat."""

    async def get_permission_error(self, evt: CommandEvent) -> str | None:
        error = await super().get_permission_error(evt)
        if error is not None:
            return error
        if evt.portal is None or await is_portal_admin(evt):
            # Outside a portal the command itself answers that there is nothing to do.
            return None
        return PORTAL_ADMIN_REFUSAL.format(command=evt.command)

    def has_permission(self, key: HelpCacheKey) -> bool:
        return super().has_permission(key) and (
            key.is_admin or (key.is_logged_in and key.is_portal)
        )


def _guarded(handler: CommandHandler, rule: str) -> CommandHandler:
    if rule == "admin":
        handler.needs_admin = True
        return handler
    if rule == "portal-admin":
        return PortalAdminCommand(
            handler._handler,
            management_only=handler.management_only,
            name=handler.name,
            help_text=handler._help_text,
            help_args=handler._help_args,
            help_section=handler.help_section,
            needs_auth=handler.needs_auth,
            needs_admin=handler.needs_admin,
            is_enabled_for=handler.is_enabled_for,
        )
    return handler


def restrict_builtin_commands() -> None:
    """Drop the built-ins not in ``KEPT`` and put each kept one behind its check."""
    for name, handler in list(command_handlers.items()):
        if not is_builtin(handler):
            continue
        rule = KEPT.get(name)
        if rule is None:
            del command_handlers[name]
        else:
            command_handlers[name] = _guarded(handler, rule)
    for alias, handler in list(command_aliases.items()):
        if is_builtin(handler):
            target = command_handlers.get(handler.name)
            if target is None:
                del command_aliases[alias]
            else:
                command_aliases[alias] = target


restrict_builtin_commands()
