from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from asyncpg import Record
from mautrix.types import EventID, RoomID
from mautrix.util.async_db import Database

from .batch import rows_affected
from .sent_message import SentMessage

# Where a bridged message came from.
FROM_MATRIX = "matrix"
FROM_TEAMS = "teams"
# Ids per query of `known_ids` (SQLite allows 999 parameters in older builds).
KNOWN_IDS_CHUNK = 400


class Incoming(NamedTuple):
    """What the database knows of a Teams message that has just arrived."""

    bridged: bool  # its first part is mapped to a Matrix event
    has_state: bool  # its bridged version is recorded (see MessageState)
    sent: SentMessage | None  # the bridge posted it (found by its clientmessageid)


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
    # FROM_MATRIX: sent from Matrix to Teams (its Matrix event is a real user's);
    # FROM_TEAMS: bridged from Teams.
    origin: str

    _columns = (
        "thread_id, receiver, message_id, part, mxid, mx_room, sender_mri, timestamp, version, "
        "origin"
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
    async def lookup_incoming(
        cls, thread_id: str, receiver: str, message_id: str, client_message_id: str | None
    ) -> Incoming:
        """One query for the checks every arriving message goes through."""
        sent_columns = ", ".join(f"s.{c.strip()}" for c in SentMessage._columns.split(","))
        q = (
            "SELECT m.mxid AS bridged_mxid, st.message_id AS state_message_id, "
            f"{sent_columns} FROM (SELECT 1 AS one) AS one "
            "LEFT JOIN message m ON m.thread_id=$1 AND m.receiver=$2 AND m.message_id=$3 "
            "AND m.part=0 "
            "LEFT JOIN message_state st ON st.thread_id=$1 AND st.receiver=$2 "
            "AND st.message_id=$3 "
            "LEFT JOIN sent_message s ON s.client_message_id=$4"
        )
        row = await cls.db.fetchrow(q, thread_id, receiver, message_id, client_message_id)
        assert row is not None
        sent = None
        if row["client_message_id"] is not None:
            sent = SentMessage(**{k: row[k] for k in SentMessage.column_names()})
        return Incoming(
            bridged=row["bridged_mxid"] is not None,
            has_state=row["state_message_id"] is not None,
            sent=sent,
        )

    @classmethod
    async def known_ids(cls, thread_id: str, receiver: str, message_ids: list[str]) -> set[str]:
        """Which of ``message_ids`` the database knows (mapped, or with a stored state): one
        query per KNOWN_IDS_CHUNK ids instead of a `lookup_incoming` each."""
        known: set[str] = set()
        for start in range(0, len(message_ids), KNOWN_IDS_CHUNK):
            chunk = message_ids[start : start + KNOWN_IDS_CHUNK]
            marks = ", ".join(f"${n}" for n in range(3, len(chunk) + 3))
            q = (
                f"SELECT message_id FROM message WHERE thread_id=$1 AND receiver=$2 "
                f"AND message_id IN ({marks}) "
                f"UNION SELECT message_id FROM message_state WHERE thread_id=$1 AND receiver=$2 "
                f"AND message_id IN ({marks})"
            )
            rows = await cls.db.fetch(q, thread_id, receiver, *chunk)
            known.update(row["message_id"] for row in rows)
        return known

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

    @property
    def from_matrix(self) -> bool:
        return self.origin == FROM_MATRIX

    def insert_query(self) -> tuple[str, tuple[Any, ...]]:
        """Insert unless the Teams part is already mapped."""
        q = (
            f"INSERT INTO message ({self._columns}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            "ON CONFLICT (thread_id, receiver, message_id, part) DO NOTHING"
        )
        return q, (
            self.thread_id,
            self.receiver,
            self.message_id,
            self.part,
            self.mxid,
            self.mx_room,
            self.sender_mri,
            self.timestamp,
            None if self.version is None else str(self.version),
            self.origin,
        )

    async def insert(self) -> bool:
        """Insert unless the Teams part is already mapped; return whether it was new."""
        q, args = self.insert_query()
        status = await self.db.execute(q, *args)
        return rows_affected(status) > 0
