from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

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
    def _from_row(cls, row: Record | None) -> SentMessage | None:
        return cls(**row) if row else None

    @classmethod
    async def get(cls, client_message_id: str) -> SentMessage | None:
        q = f"SELECT {cls._columns} FROM sent_message WHERE client_message_id=$1"
        return cls._from_row(await cls.db.fetchrow(q, client_message_id))

    @classmethod
    def new(
        cls, client_message_id: str, thread_id: str, receiver: str, mxid: EventID, mx_room: RoomID
    ) -> SentMessage:
        return cls(
            client_message_id, thread_id, receiver, mxid, mx_room, None, int(time.time() * 1000)
        )

    async def insert(self) -> None:
        q = f"INSERT INTO sent_message ({self._columns}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        await self.db.execute(
            q,
            self.client_message_id,
            self.thread_id,
            self.receiver,
            self.mxid,
            self.mx_room,
            self.message_id,
            self.created_at,
        )

    async def set_message_id(self, message_id: str) -> None:
        self.message_id = message_id
        q = "UPDATE sent_message SET message_id=$2 WHERE client_message_id=$1"
        await self.db.execute(q, self.client_message_id, message_id)
