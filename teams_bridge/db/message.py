from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from asyncpg import Record
from mautrix.types import EventID, RoomID
from mautrix.util.async_db import Database


@dataclass
class Message:
    """A bridged (Teams message part) <-> (Matrix event) pair."""

    db: ClassVar[Database]

    thread_id: str
    receiver: str
    message_id: str
    part: int
    mxid: EventID
    mx_room: RoomID
    sender_mri: str | None
    timestamp: int
    version: str | None

    _columns = (
        "thread_id, receiver, message_id, part, mxid, mx_room, sender_mri, timestamp, version"
    )

    @classmethod
    def _from_row(cls, row: Record | None) -> Message | None:
        return cls(**row) if row else None

    @classmethod
    async def get(
        cls, thread_id: str, receiver: str, message_id: str, part: int = 0
    ) -> Message | None:
        q = (
            f"SELECT {cls._columns} FROM message "
            "WHERE thread_id=$1 AND receiver=$2 AND message_id=$3 AND part=$4"
        )
        return cls._from_row(await cls.db.fetchrow(q, thread_id, receiver, message_id, part))

    @classmethod
    async def get_by_mxid(cls, mxid: EventID, mx_room: RoomID) -> Message | None:
        q = f"SELECT {cls._columns} FROM message WHERE mxid=$1 AND mx_room=$2"
        return cls._from_row(await cls.db.fetchrow(q, mxid, mx_room))

    @classmethod
    async def get_all_parts(cls, thread_id: str, receiver: str, message_id: str) -> list[Message]:
        """Every Matrix event a Teams message became, in part order."""
        q = (
            f"SELECT {cls._columns} FROM message "
            "WHERE thread_id=$1 AND receiver=$2 AND message_id=$3 ORDER BY part"
        )
        return [cls(**row) for row in await cls.db.fetch(q, thread_id, receiver, message_id)]

    @classmethod
    async def get_newest_until(
        cls, thread_id: str, receiver: str, timestamp: int
    ) -> Message | None:
        """The last part of the newest message bridged at or before ``timestamp`` (ms)."""
        q = (
            f"SELECT {cls._columns} FROM message "
            "WHERE thread_id=$1 AND receiver=$2 AND timestamp<=$3 "
            "ORDER BY timestamp DESC, part DESC LIMIT 1"
        )
        return cls._from_row(await cls.db.fetchrow(q, thread_id, receiver, timestamp))

    @classmethod
    async def count_in_thread(cls, thread_id: str, receiver: str = "") -> int:
        q = "SELECT COUNT(*) FROM message WHERE thread_id=$1 AND receiver=$2"
        return await cls.db.fetchval(q, thread_id, receiver)

    async def insert(self) -> bool:
        """Insert unless the Teams part is already mapped; return whether it was new."""
        q = (
            f"INSERT INTO message ({self._columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (thread_id, receiver, message_id, part) DO NOTHING"
        )
        status = await self.db.execute(
            q,
            self.thread_id,
            self.receiver,
            self.message_id,
            self.part,
            self.mxid,
            self.mx_room,
            self.sender_mri,
            self.timestamp,
            None if self.version is None else str(self.version),
        )
        return _rows_affected(status) > 0


def _rows_affected(status: object) -> int:
    """asyncpg returns 'INSERT 0 n'; the SQLite wrapper returns a cursor with rowcount."""
    if isinstance(status, str):
        try:
            return int(status.rsplit(" ", 1)[-1])
        except ValueError:
            return 0
    return getattr(status, "rowcount", 0) or 0
