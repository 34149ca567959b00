from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from asyncpg import Record
from mautrix.types import EventID, RoomID, UserID
from mautrix.util.async_db import Database, Scheme

from .batch import array_params, execute, fetch, rows_affected
from .sent_message import SentMessage

PENDING = "pending"
DONE = "done"
FAILED = "failed"

_last_seq = 0


def txn_order(txn_seq: int, index: int) -> int:
    """Order by transaction number, then position in the transaction."""
    return txn_seq * 100_000 + index


def next_seq() -> int:
    """Strictly increasing across the process and, via the clock, across restarts."""
    global _last_seq
    candidate = time.time_ns() // 1000
    _last_seq = max(candidate, _last_seq + 1)
    return _last_seq


@dataclass
class KeyValue:
    """Small pieces of bridge-wide state."""

    db: ClassVar[Database]

    @classmethod
    async def get(cls, key: str) -> str | None:
        return await cls.db.fetchval("SELECT value FROM bridge_state_kv WHERE key=$1", key)

    @classmethod
    async def set(cls, key: str, value: str) -> None:
        q = (
            "INSERT INTO bridge_state_kv (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value"
        )
        await cls.db.execute(q, key, value)


@dataclass
class MatrixEvent:
    """A Matrix event accepted for delivery to Teams."""

    db: ClassVar[Database]

    event_id: EventID
    room_id: RoomID
    sender: UserID
    seq: int
    event_type: str
    content: str
    status: str
    attempts: int
    client_message_id: str | None
    error: str | None
    # The appservice transaction's number when the homeserver numbers them (Synapse does):
    # events of a later transaction are held until every earlier one has arrived.
    txn_seq: int | None = None
    received_at: int = 0

    _columns = (
        "event_id, room_id, sender, seq, event_type, content, status, attempts, "
        "client_message_id, error, txn_seq, received_at"
    )

    @classmethod
    def _from_row(cls, row: Record | None) -> MatrixEvent | None:
        return cls(**row) if row else None

    @classmethod
    async def insert_many(
        cls, events: list[MatrixEvent], claims: Mapping[str, SentMessage] | None = None
    ) -> list[MatrixEvent]:
        """Store a transaction's events at once; ones seen before are left alone. The events
        that were new, in the order given. ``claims``: by event id, the send record stored
        with an event (its first attempt), only if the event is new."""
        if not events:
            return []
        claims = claims or {}
        rows = [
            (
                evt.event_id,
                evt.room_id,
                evt.sender,
                evt.seq,
                evt.event_type,
                evt.content,
                evt.status,
                evt.attempts,
                evt.client_message_id,
                evt.error,
                evt.txn_seq,
                evt.received_at,
            )
            for evt in events
        ]
        if len(rows) > 1 and cls.db.scheme == Scheme.POSTGRES:
            # One statement for the whole transaction, whatever its size (arrays).
            columns = [list(column) for column in zip(*rows, strict=True)]
            claimed = [claim.insert_query()[1] for claim in claims.values()]
            claim_columns = (
                [list(column) for column in zip(*claimed, strict=True)]
                if claimed
                else [[] for _ in _CLAIM_TYPES]
            )
            new = {
                r["event_id"] for r in await fetch(cls.db, _INSERT_MANY, *columns, *claim_columns)
            }
            return [evt for evt in events if evt.event_id in new]
        claim = claims.get(events[0].event_id) if len(rows) == 1 else None
        if len(rows) == 1 and (claim is None or cls.db.scheme == Scheme.POSTGRES):
            # One statement is atomic by itself: no transaction around it (two round trips).
            if claim is None:
                status = await execute(cls.db, _INSERT, *rows[0])
            else:
                _, claim_args = claim.insert_query()
                status = await execute(cls.db, _INSERT_CLAIMED, *rows[0], *claim_args)
            return events if rows_affected(status) else []
        stored: list[MatrixEvent] = []
        async with cls.db.acquire() as conn, conn.transaction():
            for evt, row in zip(events, rows, strict=True):
                if rows_affected(await conn.execute(_INSERT, *row)):
                    stored.append(evt)
                    claim = claims.get(evt.event_id)
                    if claim is not None:
                        claim_q, claim_args = claim.insert_query()
                        await conn.execute(claim_q, *claim_args)
        return stored

    @classmethod
    async def get(cls, event_id: EventID) -> MatrixEvent | None:
        q = f"SELECT {cls._columns} FROM matrix_event WHERE event_id=$1"
        return cls._from_row(await cls.db.fetchrow(q, event_id))

    @classmethod
    async def pending(cls, room_id: RoomID, limit: int) -> list[MatrixEvent]:
        """The room's oldest undelivered events, held or not, oldest first."""
        q = (
            f"SELECT {cls._columns} FROM matrix_event WHERE status=$1 AND room_id=$2 "
            "ORDER BY seq LIMIT $3"
        )
        return [cls(**row) for row in await cls.db.fetch(q, PENDING, room_id, limit)]

    @classmethod
    async def known_ids(cls, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        found: set[str] = set()
        for event_id in event_ids:
            if await cls.db.fetchval("SELECT 1 FROM matrix_event WHERE event_id=$1", event_id):
                found.add(event_id)
        return found

    @classmethod
    async def prune(cls, before_ms: int) -> int:
        """Forget finished events (done or failed) received before ``before_ms``; how many.
        Pending ones stay whatever their age."""
        q = "DELETE FROM matrix_event WHERE status IN ($1, $2) AND received_at < $3"
        return rows_affected(await cls.db.execute(q, DONE, FAILED, before_ms))

    @classmethod
    async def prune_sent(cls, before_ms: int) -> int:
        """Forget the send records (clientmessageids of posts) made before ``before_ms``,
        but none whose event still waits for delivery: after a restart, that record is how
        the post is looked for before it is sent again. How many went."""
        q = (
            "DELETE FROM sent_message WHERE created_at < $1 AND NOT EXISTS "
            "(SELECT 1 FROM matrix_event e WHERE e.event_id = sent_message.mxid AND e.status = $2)"
        )
        return rows_affected(await cls.db.execute(q, before_ms, PENDING))

    @classmethod
    async def rooms_with_pending(cls) -> list[RoomID]:
        q = "SELECT DISTINCT room_id FROM matrix_event WHERE status=$1"
        return [row["room_id"] for row in await cls.db.fetch(q, PENDING)]

    @classmethod
    async def count_pending(cls) -> int:
        """Events of every room still waiting for delivery."""
        q = "SELECT COUNT(*) FROM matrix_event WHERE status=$1"
        return int(await cls.db.fetchval(q, PENDING) or 0)

    @classmethod
    async def count_by_status(cls, room_id: RoomID) -> dict[str, int]:
        q = "SELECT status, COUNT(*) AS n FROM matrix_event WHERE room_id=$1 GROUP BY status"
        return {row["status"]: row["n"] for row in await cls.db.fetch(q, room_id)}

    def set_client_message_id_query(self, client_message_id: str) -> tuple[str, tuple[Any, ...]]:
        """Store the id of an attempt and count it; the caller calls `attempt_stored` after."""
        q = "UPDATE matrix_event SET client_message_id=$2, attempts=$3 WHERE event_id=$1"
        return q, (self.event_id, client_message_id, self.attempts + 1)

    def attempt_stored(self, client_message_id: str) -> None:
        self.client_message_id = client_message_id
        self.attempts += 1

    async def set_client_message_id(self, client_message_id: str) -> None:
        q, args = self.set_client_message_id_query(client_message_id)
        await self.db.execute(q, *args)
        self.attempt_stored(client_message_id)

    async def count_attempt(self) -> None:
        """Count an attempt that did not get as far as storing a send."""
        q = "UPDATE matrix_event SET attempts=attempts+1 WHERE event_id=$1"
        await self.db.execute(q, self.event_id)
        self.attempts += 1

    def finish_query(self, status: str, error: str | None = None) -> tuple[str, tuple[Any, ...]]:
        q = "UPDATE matrix_event SET status=$2, error=$3 WHERE event_id=$1"
        return q, (self.event_id, status, error)

    @staticmethod
    def done_query(event_id: str) -> tuple[str, tuple[Any, ...]]:
        """Mark the event delivered."""
        return "UPDATE matrix_event SET status=$2, error=NULL WHERE event_id=$1", (event_id, DONE)

    async def finish(self, status: str, error: str | None = None) -> None:
        q, args = self.finish_query(status, error)
        await self.db.execute(q, *args)
        self.status, self.error = status, error


_INSERT = (
    f"INSERT INTO matrix_event ({MatrixEvent._columns}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
    "ON CONFLICT (event_id) DO NOTHING"
)
# The columns' types, in the order of `MatrixEvent._columns` and `SentMessage._columns`.
_EVENT_TYPES = (
    "text", "text", "text", "bigint", "text", "text", "text", "integer", "text", "text",
    "bigint", "bigint",
)  # fmt: skip
_CLAIM_TYPES = ("text", "text", "text", "text", "text", "text", "bigint")


# PostgreSQL: a transaction's events, and the send records of those that are new, in one
# statement; the ids of the new events.
_INSERT_MANY = (
    f"WITH e AS (INSERT INTO matrix_event ({MatrixEvent._columns}) "
    f"SELECT * FROM unnest({array_params(_EVENT_TYPES, 1)}) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id), "
    f"c AS (INSERT INTO sent_message ({SentMessage._columns}) "
    f"SELECT * FROM unnest({array_params(_CLAIM_TYPES, len(_EVENT_TYPES) + 1)}) "
    f"AS s({SentMessage._columns}) WHERE s.mxid IN (SELECT event_id FROM e)) "
    "SELECT event_id FROM e"
)
# PostgreSQL: the event and, only if it is new, its first attempt's send record.
_INSERT_CLAIMED = (
    f"WITH e AS ({_INSERT} RETURNING 1) "
    f"INSERT INTO sent_message ({SentMessage._columns}) "
    "SELECT $13::text, $14::text, $15::text, $16::text, $17::text, $18::text, $19::bigint "
    "WHERE EXISTS (SELECT 1 FROM e)"
)
