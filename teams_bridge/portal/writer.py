"""The one way a portal writes to its Matrix room.

Every event the bridge puts into a portal room goes through a `RoomWriter`: messages,
notices, reactions, redactions, typing, read markers and message statuses. It is the place
that chooses who sends (a Teams user's ghost, the room's own voice, or the bridge bot),
encrypts for encrypted rooms, and derives a transaction id from what is being sent, so a
resend after a crash is the same request to the homeserver.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import (
    EventContent,
    EventID,
    EventType,
    MessageType,
    RoomID,
    TextMessageEventContent,
)

if TYPE_CHECKING:
    from mautrix.bridge.e2ee import EncryptionManager


class Voice(enum.Enum):
    """Who speaks when no Teams user does."""

    # The room's own voice: the other person's ghost in a 1:1 room, the bot elsewhere (it
    # created the room and holds its power).
    ROOM = "room"
    # The bridge bot itself: notices and message statuses.
    BOT = "bot"


# A sender is a Teams user (their MRI) or one of the voices above.
Sender = str | Voice

# How a Matrix event's delivery to Teams went (MSC2544-style statuses clients show).
SEND_STATUS = EventType("com.beeper.message_send_status", EventType.Class.MESSAGE)


def txn_id(kind: str, seed: str) -> str:
    """The transaction id of an event derived from ``seed`` (what identifies it on the
    Teams side): the same seed always gives the same id, so the homeserver treats a
    resend as the same event. ``kind`` keeps the kinds of events apart."""
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32]
    return f"teams-{kind}-{digest}" if kind else f"teams-{digest}"


class RoomWriter:
    """Writes to one portal room. The portal gives it the room and the intents; the
    writer never reads the portal's other state."""

    def __init__(
        self,
        *,
        room_id: Callable[[], RoomID | None],
        bot: IntentAPI,
        room_voice: Callable[[], IntentAPI],
        ghost: Callable[[str], Awaitable[IntentAPI]],
        encrypted: Callable[[], bool],
        e2ee: Callable[[], EncryptionManager | None],
    ) -> None:
        self._room_id = room_id
        self._bot = bot
        self._room_voice = room_voice
        self._ghost = ghost
        self._encrypted = encrypted
        self._e2ee = e2ee

    @property
    def room_id(self) -> RoomID:
        room = self._room_id()
        assert room, "the portal has no room yet"
        return room

    async def intent_for(self, sender: Sender, *, join: bool = True) -> IntentAPI:
        """The intent that speaks for ``sender`` in this room (joined first, for ghosts)."""
        if sender is Voice.BOT:
            return self._bot
        if sender is Voice.ROOM:
            return self._room_voice()
        intent = await self._ghost(sender)
        if join:
            await intent.ensure_joined(self.room_id)
        return intent

    async def send(
        self,
        sender: Sender,
        content: EventContent | dict[str, Any],
        *,
        event_type: EventType = EventType.ROOM_MESSAGE,
        txn: str | None = None,
        timestamp: int | None = None,
    ) -> EventID:
        """Send one event; ``txn`` (from `txn_id`) makes a resend idempotent."""
        intent = await self.intent_for(sender)
        room = self.room_id
        e2ee = self._e2ee()
        if self._encrypted() and e2ee is not None:
            event_type, content = await e2ee.encrypt(room, event_type, content)
        return await intent.send_message_event(
            room, event_type, content, txn_id=txn, timestamp=timestamp
        )

    async def notice(self, text: str) -> EventID:
        """A notice from the bridge bot."""
        content = TextMessageEventContent(msgtype=MessageType.NOTICE, body=text)
        return await self.send(Voice.BOT, content)

    async def status(self, content: dict[str, Any]) -> EventID:
        """A message send status, from the bridge bot."""
        return await self.send(Voice.BOT, content, event_type=SEND_STATUS)

    async def redact(self, sender: Sender, event_id: EventID, *, fallback: bool = True) -> None:
        """Redact as ``sender``; when the homeserver refuses that (the ghost lacks the
        power, e.g. for someone else's event) and ``fallback`` holds, as the room's voice."""
        intent = await self.intent_for(sender, join=False)
        try:
            await intent.redact(self.room_id, event_id)
        except MatrixRequestError as e:
            voice = self._room_voice()
            if not fallback or intent is voice or e.http_status != 403:
                raise
            await voice.redact(self.room_id, event_id)

    async def typing(self, sender: Sender, timeout_ms: int) -> None:
        """Show ``sender`` typing for ``timeout_ms`` (0: stopped)."""
        intent = await self.intent_for(sender, join=False)
        await intent.set_typing(self.room_id, timeout=timeout_ms)

    async def read(self, sender: Sender, event_id: EventID) -> None:
        """Move ``sender``'s read marker to ``event_id``."""
        intent = await self.intent_for(sender)
        await intent.mark_read(self.room_id, event_id)
