"""Matrix -> Teams for everything that is not a new message: edits, redactions, reactions
(all stored durably like messages), and the ephemeral typing and read receipts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mautrix.types import EventID

if TYPE_CHECKING:
    from .. import db as dbm
    from ..user import User
    from .portal import Portal


class NotSupported(Exception):
    """Raised by a handler for an event kind that is not bridged; the user is told."""


class MatrixEventsMixin:
    async def deliver_edit(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> None:
        raise NotSupported("editing messages in Teams is not supported yet")

    async def deliver_reaction(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> None:
        raise NotSupported("reactions are not bridged to Teams yet")

    async def deliver_redaction(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> None:
        raise NotSupported("deleting messages in Teams is not supported yet")

    async def handle_matrix_typing(self: Portal, user: User, typing: bool) -> None:
        pass

    async def handle_matrix_read(self: Portal, user: User, event_id: EventID) -> None:
        pass
