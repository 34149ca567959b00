from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from asyncpg import Record
from mautrix.util.async_db import Database


@dataclass
class MessageState:
    """The version of a Teams message last bridged (either way), to tell a real edit or
    delete from a reaction-only update, a redelivery or the echo of our own change."""

    db: ClassVar[Database]

    thread_id: str
    receiver: str
    message_id: str
    # ``edittime`` of the last bridged edit in ms (None: not edited, or edited from Matrix).
    edit_time: int | None
    # A digest of the last bridged content.
    content_hash: str | None
    deleted: bool

    def __post_init__(self) -> None:
        self.deleted = bool(self.deleted)  # SQLite hands booleans back as integers

    _columns = "thread_id, receiver, message_id, edit_time, content_hash, deleted"

    @classmethod
    def _from_row(cls, row: Record | None) -> MessageState | None:
        return cls(**row) if row else None

    @classmethod
    async def get(cls, thread_id: str, receiver: str, message_id: str) -> MessageState | None:
        q = (
            f"SELECT {cls._columns} FROM message_state "
            "WHERE thread_id=$1 AND receiver=$2 AND message_id=$3"
        )
        return cls._from_row(await cls.db.fetchrow(q, thread_id, receiver, message_id))

    def insert_if_absent_query(self) -> tuple[str, tuple[Any, ...]]:
        """Remember the first bridged version; a later redelivery must not roll it back."""
        q = (
            f"INSERT INTO message_state ({self._columns}) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (thread_id, receiver, message_id) DO NOTHING"
        )
        return q, self._values

    async def insert_if_absent(self) -> None:
        q, args = self.insert_if_absent_query()
        await self.db.execute(q, *args)

    async def upsert(self) -> None:
        q = (
            f"INSERT INTO message_state ({self._columns}) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (thread_id, receiver, message_id) DO UPDATE SET "
            "edit_time=excluded.edit_time, content_hash=excluded.content_hash, "
            "deleted=excluded.deleted"
        )
        await self.db.execute(q, *self._values)

    @property
    def _values(self) -> tuple:
        return (
            self.thread_id,
            self.receiver,
            self.message_id,
            self.edit_time,
            self.content_hash,
            self.deleted,
        )
