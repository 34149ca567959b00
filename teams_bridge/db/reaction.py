from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from asyncpg import Record
from mautrix.types import EventID, RoomID
from mautrix.util.async_db import Database

from .batch import rows_affected


@dataclass
class Reaction:
    """One user's reaction on a Teams message <-> the Matrix reaction event that shows it.

    Written before a Matrix reaction is sent to Teams and after a Teams reaction reaches
    Matrix, so the echo of either is recognised and a restart repeats nothing.
    """

    db: ClassVar[Database]

    thread_id: str
    receiver: str
    message_id: str
    sender_mri: str
    emotion_key: str
    mxid: EventID
    mx_room: RoomID
    # When it was sent from Matrix (ms), 0 for a reaction that came from Teams: a Teams
    # update made just before a reaction from Matrix arrived there must not undo it.
    sent_at: int

    _columns = "thread_id, receiver, message_id, sender_mri, emotion_key, mxid, mx_room, sent_at"

    @classmethod
    def new(
        cls,
        thread_id: str,
        receiver: str,
        message_id: str,
        sender_mri: str,
        emotion_key: str,
        mxid: EventID,
        mx_room: RoomID,
        *,
        from_matrix: bool,
    ) -> Reaction:
        sent_at = int(time.time() * 1000) if from_matrix else 0
        return cls(thread_id, receiver, message_id, sender_mri, emotion_key, mxid, mx_room, sent_at)

    @property
    def from_matrix(self) -> bool:
        """Sent from Matrix (by a real user), rather than bridged from Teams."""
        return self.sent_at != 0

    @classmethod
    def _from_row(cls, row: Record | None) -> Reaction | None:
        return cls(**row) if row else None

    @classmethod
    async def get_for_message(
        cls, thread_id: str, receiver: str, message_id: str
    ) -> list[Reaction]:
        q = (
            f"SELECT {cls._columns} FROM reaction "
            "WHERE thread_id=$1 AND receiver=$2 AND message_id=$3"
        )
        rows = await cls.db.fetch(q, thread_id, receiver, message_id)
        return [cls(**row) for row in rows]

    @classmethod
    async def get_by_mxid(cls, mxid: EventID, mx_room: RoomID) -> Reaction | None:
        q = f"SELECT {cls._columns} FROM reaction WHERE mxid=$1 AND mx_room=$2"
        return cls._from_row(await cls.db.fetchrow(q, mxid, mx_room))

    async def insert(self) -> bool:
        """Insert unless this user's reaction with this key is already mapped."""
        q = (
            f"INSERT INTO reaction ({self._columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (thread_id, receiver, message_id, sender_mri, emotion_key) DO NOTHING"
        )
        status = await self.db.execute(
            q,
            self.thread_id,
            self.receiver,
            self.message_id,
            self.sender_mri,
            self.emotion_key,
            self.mxid,
            self.mx_room,
            self.sent_at,
        )
        return rows_affected(status) > 0

    async def delete(self) -> None:
        q = (
            "DELETE FROM reaction WHERE thread_id=$1 AND receiver=$2 AND message_id=$3 "
            "AND sender_mri=$4 AND emotion_key=$5"
        )
        await self.db.execute(
            q, self.thread_id, self.receiver, self.message_id, self.sender_mri, self.emotion_key
        )
