from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from asyncpg import Record
from mautrix.types import EventID, RoomID
from mautrix.util.async_db import Database


@dataclass
class SentMessage:
    """A message the bridge posted to Teams, found again by its clientmessageid."""

    db: ClassVar[Database]

    client_message_id: str
    thread_id: str
    receiver: str
    mxid: EventID
    mx_room: RoomID
    message_id: str | None
    created_at: int

    _columns = "client_message_id, thread_id, receiver, mxid, mx_room, message_id, created_at"

    @classmethod
    def column_names(cls) -> list[str]:
        return [c.strip() for c in cls._columns.split(",")]

    @classmethod
    def _from_row(cls, row: Record | None) -> SentMessage | None:
        return cls(**row) if row else None

    @classmethod
    async def get(cls, client_message_id: str) -> SentMessage | None:
        q = f"SELECT {cls._columns} FROM sent_message WHERE client_message_id=$1"
        return cls._from_row(await cls.db.fetchrow(q, client_message_id))

    @classmethod
    def new(
        cls,
        client_message_id: str,
        thread_id: str,
        receiver: str,
        mxid: EventID,
        mx_room: RoomID,
        created_at: int | None = None,
    ) -> SentMessage:
        """A send not posted yet; ``created_at`` (epoch ms) defaults to now."""
        if created_at is None:
            created_at = int(time.time() * 1000)
        return cls(client_message_id, thread_id, receiver, mxid, mx_room, None, created_at)

    def insert_query(self) -> tuple[str, tuple[Any, ...]]:
        q = f"INSERT INTO sent_message ({self._columns}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        return q, (
            self.client_message_id,
            self.thread_id,
            self.receiver,
            self.mxid,
            self.mx_room,
            self.message_id,
            self.created_at,
        )

    async def insert(self) -> None:
        q, args = self.insert_query()
        await self.db.execute(q, *args)

    @staticmethod
    def message_id_query(client_message_id: str, message_id: str) -> tuple[str, tuple[Any, ...]]:
        """Store the Teams message id a send got."""
        q = "UPDATE sent_message SET message_id=$2 WHERE client_message_id=$1"
        return q, (client_message_id, message_id)

    def set_message_id_query(self, message_id: str) -> tuple[str, tuple[Any, ...]]:
        """Store the Teams message id (the caller sets ``message_id`` once it is stored)."""
        return self.message_id_query(self.client_message_id, message_id)

    async def set_message_id(self, message_id: str) -> None:
        q, args = self.set_message_id_query(message_id)
        await self.db.execute(q, *args)
        self.message_id = message_id
