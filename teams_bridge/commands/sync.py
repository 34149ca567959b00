"""Chats: bringing the chat list up to date by hand, and searching messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.bridge.commands import HelpSection, command_handler
from mautrix.types import EventID

from ..search import MIN_QUERY
from ..search import search as find_messages
from ..teams import TeamsError

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


@command_handler(
    needs_auth=True,
    help_section=SECTION_CHATS,
    help_text="Find messages with these words: in this chat (in a bridged room) or in your "
    "recent chats (in the management room).",
    help_args="<_words_>",
)
async def search(evt: CommandEvent) -> EventID | None:
    user: User = evt.sender  # type: ignore[assignment]
    query = " ".join(evt.args).strip()
    if len(query) < MIN_QUERY:
        return await evt.reply(f"**Usage:** `search <words>` ({MIN_QUERY} characters or more)")
    if user.client is None:
        return await evt.reply("You are logged in, but the bridge is not connected to Teams yet.")
    portal = evt.portal if evt.portal is not None and not evt.is_management else None
    try:
        found = await find_messages(user, query, only=portal)  # type: ignore[arg-type]
    except TeamsError as e:
        return await evt.reply(f"Teams did not answer the search: {e}")
    where = "this chat" if portal else f"your {found.chats} most recent chats"
    note = f" ({found.unreadable} could not be read)" if found.unreadable else ""
    if not found.hits:
        return await evt.reply(f"Nothing found for `{query}` in {where}{note}.")
    lines = [f"Found in {where}{note}, newest first:"]
    for hit in found.hits:
        link = (
            f" [→](https://matrix.to/#/{hit.room}/{hit.event_id})"
            if hit.room and hit.event_id
            else ""
        )
        lines.append(f"* **{hit.chat_name}** — {hit.sender}, {hit.when}: {hit.excerpt}{link}")
    return await evt.reply("\n".join(lines))
