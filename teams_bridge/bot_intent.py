"""The bridge bot's sends in encrypted rooms that are not portals.

A portal's writer encrypts everything sent in an encrypted portal. The bot also talks in
rooms that have no writer: management rooms and the rooms of commands. When such a room
is encrypted (made so by the user, before or after the bot joined), what the bot sends
there is encrypted with the bridge's encryption too, so no notice ever goes out in the
clear in an encrypted room.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MForbidden, MNotFound
from mautrix.types import EventID, EventType, RoomID

if TYPE_CHECKING:
    from mautrix.bridge.e2ee import EncryptionManager


class EncryptingBotIntent(IntentAPI):
    """The bot's intent, encrypting its message events in encrypted rooms."""

    _e2ee: Callable[[], EncryptionManager | None]
    # room -> whether it is encrypted (learnt once per room, then kept current by
    # `room_encrypted` as m.room.encryption events arrive).
    _encrypted_rooms: dict[RoomID, bool]

    @classmethod
    def install(cls, intent: IntentAPI, e2ee: Callable[[], EncryptionManager | None]) -> None:
        """Make the bot's intent this class (it only adds behaviour)."""
        intent.__class__ = cls
        assert isinstance(intent, EncryptingBotIntent)
        intent._e2ee = e2ee
        intent._encrypted_rooms = {}
        # mautrix wraps some methods per instance (joining the room first), so the class's
        # method is not what is called: encryption goes in front of that wrapper.
        joined_send = intent.send_message_event

        async def send_message_event(
            room_id: RoomID, event_type: EventType, content: Any, **kwargs: Any
        ) -> EventID:
            event_type, content = await intent._encrypt_if_needed(room_id, event_type, content)
            return await joined_send(room_id, event_type, content, **kwargs)

        intent.send_message_event = send_message_event  # type: ignore[method-assign]

    def room_encrypted(self, room_id: RoomID) -> None:
        self._encrypted_rooms[room_id] = True

    async def _encrypt_if_needed(
        self, room_id: RoomID, event_type: EventType, content: Any
    ) -> tuple[EventType, Any]:
        e2ee = self._e2ee()
        if (
            e2ee is not None
            and event_type != EventType.ROOM_ENCRYPTED
            and await self._is_encrypted(room_id)
        ):
            return await e2ee.encrypt(room_id, event_type, content)
        return event_type, content

    async def _is_encrypted(self, room_id: RoomID) -> bool:
        known = self._encrypted_rooms.get(room_id)
        if known is not None:
            return known
        try:
            content = await self.get_state_event(room_id, EventType.ROOM_ENCRYPTION)
        except (MNotFound, MForbidden):
            encrypted = False
        else:
            encrypted = bool(content)
            if encrypted:
                await self.state_store.set_encryption_info(room_id, content)
                # Whom the room keys go to: the bot may have joined after the others, so
                # the state store may not know them yet (this call stores them).
                await self.get_joined_members(room_id)
        self._encrypted_rooms[room_id] = encrypted
        return encrypted
