"""Bringing the chat list up to date by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.bridge.commands import HelpSection, command_handler
from mautrix.types import EventID

if TYPE_CHECKING:
    from mautrix.bridge.commands import CommandEvent

    from ..user import User

SECTION_CHATS = HelpSection("Chats", 20, "")


@command_handler(
    needs_auth=True,
    management_only=True,
    help_section=SECTION_CHATS,
    help_text="Read your Teams chat list again and make the rooms that are missing "
    "(with their recent history).",
)
async def sync(evt: CommandEvent) -> EventID | None:
    user: User = evt.sender  # type: ignore[assignment]
    if user.client is None:
        return await evt.reply("You are logged in, but the bridge is not connected to Teams yet.")
    if not user.start_chat_sync():
        return await evt.reply("Your chats are being synced already.")
    return await evt.reply("Reading your Teams chat list again.")
