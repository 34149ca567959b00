"""The thin Matrix event router.

Messages, edits, reactions and redactions reach Teams through the durable appservice
endpoint (see ``appservice.py``); this routes what needs no durability: typing, read
receipts and room renames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.bridge import BaseMatrixHandler, BasePortal, BaseUser
from mautrix.types import (
    EventID,
    EventType,
    PresenceEvent,
    ReceiptEvent,
    RoomNameStateEventContent,
    SingleReceiptEventContent,
    StateEvent,
    TypingEvent,
    UserID,
)

from . import commands  # noqa: F401  (registers the command handlers)
from .portal import Portal
from .user import User

if TYPE_CHECKING:
    from .__main__ import TeamsBridge


class MatrixHandler(BaseMatrixHandler):
    def __init__(self, bridge: TeamsBridge) -> None:
        prefix, suffix = bridge.config["bridge.username_template"].format(userid=":").split(":")
        homeserver = bridge.config["homeserver.domain"]
        self.user_id_prefix = f"@{prefix}"
        self.user_id_suffix = f"{suffix}:{homeserver}"
        super().__init__(bridge=bridge)

    async def handle_ephemeral_event(self, evt: ReceiptEvent | PresenceEvent | TypingEvent) -> None:
        if evt.type == EventType.TYPING:
            await self.handle_typing(evt)  # type: ignore[arg-type]
        else:
            await super().handle_ephemeral_event(evt)

    async def handle_typing(self, evt: TypingEvent) -> None:
        portal = await Portal.get_by_mxid(evt.room_id)
        if portal is None:
            return
        for user_id in evt.content.user_ids:
            user = await self._logged_in_user(user_id)
            if user is not None:
                await portal.handle_matrix_typing(user, True)

    async def handle_read_receipt(
        self,
        user: BaseUser,
        portal: BasePortal,
        event_id: EventID,
        data: SingleReceiptEventContent,
    ) -> None:
        if isinstance(user, User) and isinstance(portal, Portal):
            await portal.handle_matrix_read(user, event_id)

    async def handle_state_event(self, evt: StateEvent) -> None:
        if evt.type != EventType.ROOM_NAME or not isinstance(
            evt.content, RoomNameStateEventContent
        ):
            return
        portal = await Portal.get_by_mxid(evt.room_id)
        user = await self._logged_in_user(evt.sender)
        if portal is not None and user is not None:
            await portal.handle_matrix_name(user, evt.content.name or "")

    @staticmethod
    async def _logged_in_user(user_id: UserID) -> User | None:
        user = await User.get_by_mxid(user_id, create=False)
        if user is None or not user.is_whitelisted or not await user.is_logged_in():
            return None
        return user
