"""Files and media both ways: Teams attachments become Matrix media events (one part each),
Matrix media is uploaded to AMS and posted in the format the Teams client renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mautrix.types import MessageEventContent

if TYPE_CHECKING:
    from .. import db as dbm
    from ..teams import Message
    from ..user import User
    from .portal import Portal


class MediaMixin:
    async def convert_teams_message(
        self: Portal, source: User, message: Message
    ) -> list[MessageEventContent]:
        return await super().convert_teams_message(source, message)  # type: ignore[misc]

    async def deliver_media(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> None:
        await super().deliver_media(sender, row, raw)  # type: ignore[misc]
