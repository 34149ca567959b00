from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from asyncpg import Record
from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database


@dataclass
class User:
    db: ClassVar[Database]

    mxid: UserID
    mri: str | None
    credentials: str | None
    endpoint_id: str | None
    management_room: RoomID | None

    _columns = "mxid, mri, credentials, endpoint_id, management_room"

    @classmethod
    def _from_row(cls, row: Record | None) -> User | None:
        return cls(**row) if row else None

    @classmethod
    async def get_by_mxid(cls, mxid: UserID) -> User | None:
        q = f'SELECT {cls._columns} FROM "user" WHERE mxid=$1'
        return cls._from_row(await cls.db.fetchrow(q, mxid))

    @classmethod
    async def get_by_mri(cls, mri: str) -> User | None:
        q = f'SELECT {cls._columns} FROM "user" WHERE mri=$1'
        return cls._from_row(await cls.db.fetchrow(q, mri))

    @classmethod
    async def all_logged_in(cls) -> list[User]:
        q = f'SELECT {cls._columns} FROM "user" WHERE credentials IS NOT NULL'
        return [cls(**row) for row in await cls.db.fetch(q)]

    @property
    def _values(self) -> tuple:
        return (self.mxid, self.mri, self.credentials, self.endpoint_id, self.management_room)

    async def insert(self) -> None:
        q = f'INSERT INTO "user" ({self._columns}) VALUES ($1, $2, $3, $4, $5)'
        await self.db.execute(q, *self._values)

    async def update(self) -> None:
        q = (
            'UPDATE "user" SET mri=$2, credentials=$3, endpoint_id=$4, management_room=$5 '
            "WHERE mxid=$1"
        )
        await self.db.execute(q, *self._values)
