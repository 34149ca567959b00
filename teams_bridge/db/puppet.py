from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from asyncpg import Record
from mautrix.types import ContentURI, SyncToken, UserID
from mautrix.util.async_db import Database
from yarl import URL


@dataclass
class Puppet:
    db: ClassVar[Database]

    mri: str
    name: str | None
    name_source: str | None
    name_set: bool
    avatar_url: ContentURI | None
    avatar_set: bool
    is_registered: bool
    custom_mxid: UserID | None
    access_token: str | None
    next_batch: SyncToken | None
    base_url: URL | None
    # sha256 of the picture behind avatar_url; when the picture was last fetched (epoch ms).
    avatar_hash: str | None = None
    avatar_checked_at: int = 0

    def __post_init__(self) -> None:
        # SQLite hands booleans back as integers.
        self.name_set = bool(self.name_set)
        self.avatar_set = bool(self.avatar_set)
        self.is_registered = bool(self.is_registered)

    _columns = (
        "mri, name, name_source, name_set, avatar_url, avatar_set, is_registered, "
        "custom_mxid, access_token, next_batch, base_url, avatar_hash, avatar_checked_at"
    )

    @classmethod
    def _from_row(cls, row: Record | None) -> Puppet | None:
        if not row:
            return None
        data = {**row}
        base_url = data.pop("base_url", None)
        return cls(**data, base_url=URL(base_url) if base_url else None)

    @classmethod
    async def get_by_mri(cls, mri: str) -> Puppet | None:
        q = f"SELECT {cls._columns} FROM puppet WHERE mri=$1"
        return cls._from_row(await cls.db.fetchrow(q, mri))

    @classmethod
    async def get_by_custom_mxid(cls, mxid: UserID) -> Puppet | None:
        q = f"SELECT {cls._columns} FROM puppet WHERE custom_mxid=$1"
        return cls._from_row(await cls.db.fetchrow(q, mxid))

    @classmethod
    async def all_with_custom_mxid(cls) -> list[Puppet]:
        q = f"SELECT {cls._columns} FROM puppet WHERE custom_mxid<>''"
        return [cls._from_row(row) for row in await cls.db.fetch(q)]

    @property
    def _values(self) -> tuple:
        return (
            self.mri,
            self.name,
            self.name_source,
            self.name_set,
            self.avatar_url,
            self.avatar_set,
            self.is_registered,
            self.custom_mxid,
            self.access_token,
            self.next_batch,
            str(self.base_url) if self.base_url else None,
            self.avatar_hash,
            self.avatar_checked_at,
        )

    async def insert(self) -> None:
        q = (
            f"INSERT INTO puppet ({self._columns}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
        await self.db.execute(q, *self._values)

    async def update(self) -> None:
        q = (
            "UPDATE puppet SET name=$2, name_source=$3, name_set=$4, avatar_url=$5, "
            "avatar_set=$6, is_registered=$7, custom_mxid=$8, access_token=$9, "
            "next_batch=$10, base_url=$11, avatar_hash=$12, avatar_checked_at=$13 WHERE mri=$1"
        )
        await self.db.execute(q, *self._values)
