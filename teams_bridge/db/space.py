from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from asyncpg import Record
from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

PERSONAL = ""


@dataclass
class Space:
    """A user's Matrix space: the personal one (``team_id`` ''), or one per Teams team."""

    db: ClassVar[Database]

    user_mxid: UserID
    team_id: str
    mxid: RoomID
    name: str | None

    _columns = "user_mxid, team_id, mxid, name"

    @classmethod
    def _from_row(cls, row: Record | None) -> Space | None:
        return cls(**row) if row else None

    @classmethod
    async def get(cls, user_mxid: UserID, team_id: str) -> Space | None:
        q = f"SELECT {cls._columns} FROM space WHERE user_mxid=$1 AND team_id=$2"
        return cls._from_row(await cls.db.fetchrow(q, user_mxid, team_id))

    @classmethod
    async def all_for(cls, user_mxid: UserID) -> list[Space]:
        q = f"SELECT {cls._columns} FROM space WHERE user_mxid=$1"
        return [cls(**row) for row in await cls.db.fetch(q, user_mxid)]

    async def insert(self) -> None:
        q = f"INSERT INTO space ({self._columns}) VALUES ($1, $2, $3, $4)"
        await self.db.execute(q, self.user_mxid, self.team_id, self.mxid, self.name)

    async def set_name(self, name: str | None) -> None:
        q = "UPDATE space SET name=$3 WHERE user_mxid=$1 AND team_id=$2"
        await self.db.execute(q, self.user_mxid, self.team_id, name)
        self.name = name

    async def delete(self) -> None:
        q = "DELETE FROM space WHERE user_mxid=$1 AND team_id=$2"
        await self.db.execute(q, self.user_mxid, self.team_id)
