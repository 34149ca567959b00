"""Your own Teams availability and status note: `status`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.bridge.commands import HelpSection, command_handler
from mautrix.types import EventID

from ..teams import TeamsError
from ..teams.presence import MAX_NOTE

if TYPE_CHECKING:
    from mautrix.bridge.commands import CommandEvent

    from ..user import User

SECTION_PRESENCE = HelpSection("Presence", 30, "")

# What the command takes -> what Teams calls it.
CHOICES: dict[str, str] = {
    "available": "Available",
    "busy": "Busy",
    "dnd": "DoNotDisturb",
    "brb": "BeRightBack",
    "away": "Away",
    "offline": "Offline",
}
# How Teams' availabilities read (the ones a person can have, not just the settable ones).
NAMES: dict[str, str] = {
    "Available": "Available",
    "AvailableIdle": "Available (idle)",
    "Busy": "Busy",
    "BusyIdle": "Busy (idle)",
    "DoNotDisturb": "Do not disturb",
    "BeRightBack": "Be right back",
    "Away": "Away",
    "Offline": "Offline (appear offline)",
    "PresenceUnknown": "Unknown",
}
CLEAR_NOTE = "clear-note"
USAGE = (
    "**Usage:** `status` shows your Teams availability and note; "
    "`status <available|busy|dnd|brb|away|offline> [note]` sets them; "
    f"`status {CLEAR_NOTE}` removes the note."
)


def _name(availability: str) -> str:
    return NAMES.get(availability, availability)


async def _show(evt: CommandEvent, user: User) -> EventID | None:
    assert user.client is not None and user.mri is not None
    try:
        found = await user.client.get_presence([user.mri])
    except TeamsError as e:
        return await evt.reply(f"Teams did not tell your status: {e}")
    if not found:
        return await evt.reply("Teams did not tell your status.")
    mine = found[0]
    text = f"Your Teams status: **{_name(mine.availability)}**"
    if mine.activity and mine.activity not in (mine.availability, "OffWork"):
        text += f" ({mine.activity})"
    text += f". Note: {mine.note}" if mine.note else ". No note."
    return await evt.reply(text)


@command_handler(
    needs_auth=True,
    help_section=SECTION_PRESENCE,
    help_text="Show or set your Teams availability and status note.",
    help_args="[_available|busy|dnd|brb|away|offline_] [_note_] | clear-note",
)
async def status(evt: CommandEvent) -> EventID | None:
    user: User = evt.sender  # type: ignore[assignment]
    if user.client is None:
        return await evt.reply("You are logged in, but the bridge is not connected to Teams yet.")
    if not evt.args:
        return await _show(evt, user)
    word = evt.args[0].lower()
    note = " ".join(evt.args[1:]).strip()
    if word == CLEAR_NOTE and not note:
        try:
            await user.client.set_status_note("")
        except TeamsError as e:
            return await evt.reply(f"Teams refused to clear your note: {e}")
        return await evt.reply("Your Teams status note is cleared.")
    availability = CHOICES.get(word)
    if availability is None:
        return await evt.reply(f"`{evt.args[0][:40]}` is not a status. {USAGE}")
    if len(note) > MAX_NOTE:
        return await evt.reply(f"A note is at most {MAX_NOTE} characters. {USAGE}")
    try:
        await user.client.set_availability(availability)
        if note:
            await user.client.set_status_note(note)
    except TeamsError as e:
        return await evt.reply(f"Teams refused to set your status: {e}")
    text = f"Your Teams status is now **{_name(availability)}**"
    return await evt.reply(text + (f", with the note: {note}" if note else "."))
