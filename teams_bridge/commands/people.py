"""Finding Teams people and starting chats with them, from the management room.

A person is named by an email address (or user principal name), a Teams user ID (MRI), a
ghost's Matrix ID or its pill; anything else is searched for by name, and used only when
it matches exactly one person.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from mautrix.bridge.commands import HelpSection, command_handler
from mautrix.types import EventID

from .. import start_chat as chats
from ..teams import TeamsError
from ..teams.profiles import looks_like_email

if TYPE_CHECKING:
    from mautrix.bridge.commands import CommandEvent

    from ..user import User

SECTION_PEOPLE = HelpSection("People and new chats", 25, "")
MAX_RESULTS = 10
# A Matrix ID in a pill: `https://matrix.to/#/@user:server` (as text or in a link).
_PILL = re.compile(r"https://matrix\.to/#/(@[^\s\"'<>)?]+)")


def _person_words(evt: CommandEvent) -> list[str]:
    """The command's arguments, with pills (in the HTML of the message or as links in its
    text) read as the Matrix IDs they point at."""
    formatted = evt.content.get("formatted_body") if evt.content else None
    text = formatted if isinstance(formatted, str) and "matrix.to" in formatted else None
    if text is not None:
        pills = [_unquote(m) for m in _PILL.findall(html.unescape(text))]
        if pills:
            return pills
    return [_PILL.sub(lambda m: _unquote(m.group(1)), word) for word in evt.args]


def _unquote(mxid: str) -> str:
    return mxid.replace("%40", "@").replace("%3A", ":").replace("%3a", ":")


def _refusal(what: str, people: list[chats.Contact], error: TeamsError) -> str:
    """Why Teams said no, in words: a 403 with someone of another organisation is almost
    always that organisation's (or your own) external access policy."""
    external = [p.name or p.mri for p in people if p.external]
    if error.status == 403 and external:
        return (
            f"Teams refused to {what}: {', '.join(external)} "
            f"{'is' if len(external) == 1 else 'are'} in another organisation, and Teams "
            f"does not allow chats with it from your account ({error})."
        )
    return f"Teams refused to {what}: {error}"


def _line(contact: chats.Contact) -> str:
    name = contact.name or contact.mri
    detail = f" ({contact.email})" if contact.email else ""
    return f"* [{name}](https://matrix.to/#/{contact.mxid}){detail} — `{contact.mri}`"


async def _ready(evt: CommandEvent) -> User | None:
    user: User = evt.sender  # type: ignore[assignment]
    if user.client is None:
        await evt.reply("You are logged in, but the bridge is not connected to Teams yet.")
        return None
    return user


async def _find(evt: CommandEvent, user: User, wanted: str) -> chats.Contact | None:
    """The one person ``wanted`` names, or None after telling the user why not."""
    try:
        contact = await chats.resolve(user, wanted)
    except chats.BadInput:
        contact = None
        found = await chats.search(user, wanted)
        if len(found) == 1:
            return found[0]
        if found:
            listed = "\n".join(_line(c) for c in found[:MAX_RESULTS])
            await evt.reply(f"Several people match `{wanted}`; name one of them:\n\n{listed}")
            return None
        await evt.reply(
            f"Nobody matches `{wanted}`. Give an email address, a Teams user ID or the "
            "Matrix ID of a Teams user's ghost, or try `search-users`."
        )
        return None
    if contact is None:
        await evt.reply(f"Teams knows nobody as `{wanted}` (or they are in another tenant).")
    return contact


@command_handler(
    needs_auth=True,
    management_only=True,
    help_section=SECTION_PEOPLE,
    help_text="Find Teams people by name or email address.",
    help_args="<_name or email_>",
)
async def search_users(evt: CommandEvent) -> EventID | None:
    query = " ".join(evt.args).strip()
    if len(query) < 2:
        return await evt.reply("**Usage:** `search-users <name or email>` (2 characters or more)")
    user = await _ready(evt)
    if user is None:
        return None
    assert user.client is not None
    if user.client.personal and not looks_like_email(query):
        return await evt.reply(
            "A personal Teams account finds people by their email address only: "
            "`search-users name@example.com`."
        )
    try:
        found = await chats.search(user, query)
    except TeamsError as e:
        return await evt.reply(f"Teams did not answer the search: {e}")
    if not found:
        return await evt.reply(f"Nobody found for `{query}`.")
    shown = found[:MAX_RESULTS]
    more = (
        f"\n\n…and {len(found) - len(shown)} more: narrow the search."
        if len(found) > len(shown)
        else ""
    )
    return await evt.reply("\n".join(_line(c) for c in shown) + more)


@command_handler(
    needs_auth=True,
    management_only=True,
    help_section=SECTION_PEOPLE,
    help_text="List the people you have 1:1 chats with in Teams.",
)
async def contacts(evt: CommandEvent) -> EventID | None:
    user = await _ready(evt)
    if user is None:
        return None
    try:
        found = await chats.contacts(user)
    except TeamsError as e:
        return await evt.reply(f"Teams did not answer: {e}")
    if not found:
        return await evt.reply("You have no 1:1 chats in Teams yet.")
    return await evt.reply("\n".join(_line(c) for c in found))


@command_handler(
    needs_auth=True,
    management_only=True,
    help_section=SECTION_PEOPLE,
    help_text="Open a 1:1 chat with a Teams user (starting it in Teams if there is none).",
    help_args="<_email, Teams user ID or ghost_>",
    aliases=["pm"],
)
async def start_chat(evt: CommandEvent) -> EventID | None:
    words = _person_words(evt)
    if len(words) != 1:
        return await evt.reply("**Usage:** `start-chat <email, Teams user ID or ghost>`")
    user = await _ready(evt)
    if user is None:
        return None
    contact: chats.Contact | None = None
    try:
        contact = await _find(evt, user, words[0])
        if contact is None:
            return None
        if contact.mri == user.mri:
            return await evt.reply("That is you.")
        created = await chats.open_dm(user, contact)
    except TeamsError as e:
        people = [contact] if contact is not None else []
        return await evt.reply(_refusal("start the chat", people, e))
    link = f"https://matrix.to/#/{contact.dm_room}"
    what = "Started a chat" if created else "You already have a chat"
    return await evt.reply(f"{what} with {contact.name or contact.mri}: {link}")


@command_handler(
    needs_auth=True,
    management_only=True,
    help_section=SECTION_PEOPLE,
    help_text="Create a Teams group chat with these people (and a room for it).",
    help_args="<_person_> <_person_>… [--name <_topic_>]",
)
async def create_group(evt: CommandEvent) -> EventID | None:
    words = _person_words(evt)
    name = None
    if "--name" in evt.args:
        at = evt.args.index("--name")
        name = " ".join(evt.args[at + 1 :]).strip() or None
        words = [w for w in _person_words(evt) if w not in evt.args[at:]]
    if len(words) < 1:
        return await evt.reply("**Usage:** `create-group <person> <person>… [--name <topic>]`")
    user = await _ready(evt)
    if user is None:
        return None
    members: list[str] = []
    found: list[chats.Contact] = []
    try:
        for wanted in words:
            contact = await _find(evt, user, wanted)
            if contact is None:
                return None
            if contact.mri != user.mri and contact.mri not in members:
                members.append(contact.mri)
                found.append(contact)
        if not members:
            return await evt.reply("Name at least one other person.")
        portal = await chats.create_group(user, chats.GroupParams(tuple(members), name))
    except chats.BadInput as e:
        return await evt.reply(str(e))
    except TeamsError as e:
        return await evt.reply(_refusal("create the group chat", found, e))
    return await evt.reply(
        f"Created the group chat {portal.name or ''}: https://matrix.to/#/{portal.mxid}"
    )


@command_handler(
    needs_auth=True,
    help_section=SECTION_PEOPLE,
    help_text="Leave this Teams chat (in a bridged group room); you leave the room with it.",
)
async def leave(evt: CommandEvent) -> EventID | None:
    user: User = evt.sender  # type: ignore[assignment]
    portal = evt.portal
    if portal is None or evt.is_management:
        return await evt.reply("Send `leave` in the bridged room of the chat you want to leave.")
    refusal = await portal.roster.leave_teams_chat(user)  # type: ignore[attr-defined]
    if refusal is not None:
        return await evt.reply(f"You cannot leave this chat here: {refusal}.")
    return await evt.reply("You left the Teams chat.")
