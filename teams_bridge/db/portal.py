from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from asyncpg import Record
from mautrix.types import ContentURI, RoomID, UserID
from mautrix.util.async_db import Database


@dataclass
class Portal:
    db: ClassVar[Database]

    thread_id: str
    receiver: str
    mxid: RoomID | None
    kind: str
    name: str | None
    name_set: bool
    topic: str | None
    avatar_url: ContentURI | None
    encrypted: bool
    other_user_mri: str | None
    last_message_id: str | None
    relay_user_id: UserID | None
    # The Teams picture (thread property `picture`) behind avatar_url.
    avatar_source: str | None = None
    # A channel's team: its id (the id of its General channel) and name.
    team_id: str | None = None
    team_name: str | None = None

    def __post_init__(self) -> None:
        # SQLite hands booleans back as integers.
        self.name_set = bool(self.name_set)
        self.encrypted = bool(self.encrypted)

    _columns = (
        "thread_id, receiver, mxid, kind, name, name_set, topic, avatar_url, encrypted, "
        "other_user_mri, last_message_id, relay_user_id, avatar_source, team_id, team_name"
    )

    @classmethod
    def _from_row(cls, row: Record | None) -> Portal | None:
        return cls(**row) if row else None

    @classmethod
    async def get_by_thread(cls, thread_id: str, receiver: str = "") -> Portal | None:
        q = f"SELECT {cls._columns} FROM portal WHERE thread_id=$1 AND receiver=$2"
        return cls._from_row(await cls.db.fetchrow(q, thread_id, receiver))

    @classmethod
    async def get_by_mxid(cls, mxid: RoomID) -> Portal | None:
        q = f"SELECT {cls._columns} FROM portal WHERE mxid=$1"
        return cls._from_row(await cls.db.fetchrow(q, mxid))

    @classmethod
    async def all_with_room(cls) -> list[Portal]:
        q = f"SELECT {cls._columns} FROM portal WHERE mxid IS NOT NULL"
        return [cls(**row) for row in await cls.db.fetch(q)]

    @classmethod
    async def private_chats_with(cls, mri: str) -> list[Portal]:
        """The 1:1 portals with a room whose other person is ``mri``."""
        q = (
            f"SELECT {cls._columns} FROM portal "
            "WHERE other_user_mri=$1 AND kind='one_to_one' AND mxid IS NOT NULL"
        )
        return [cls(**row) for row in await cls.db.fetch(q, mri)]

    @classmethod
    async def for_user(cls, user_mxid: UserID) -> list[Portal]:
        q = (
            f"SELECT {', '.join('p.' + c.strip() for c in cls._columns.split(','))} "
            "FROM portal p JOIN user_portal up "
            "ON p.thread_id=up.thread_id AND p.receiver=up.receiver WHERE up.user_mxid=$1"
        )
        return [cls(**row) for row in await cls.db.fetch(q, user_mxid)]

    @classmethod
    async def joined_members(cls, user_mxid: UserID) -> list[UserID]:
        """Everyone joined to any of the user's portal rooms (as the state store knows)."""
        q = (
            "SELECT DISTINCT m.user_id FROM mx_user_profile m "
            "JOIN portal p ON p.mxid = m.room_id "
            "JOIN user_portal up ON p.thread_id = up.thread_id AND p.receiver = up.receiver "
            "WHERE up.user_mxid = $1 AND m.membership = 'join'"
        )
        return [UserID(row["user_id"]) for row in await cls.db.fetch(q, user_mxid)]

    @property
    def _values(self) -> tuple:
        return (
            self.thread_id,
            self.receiver,
            self.mxid,
            self.kind,
            self.name,
            self.name_set,
            self.topic,
            self.avatar_url,
            self.encrypted,
            self.other_user_mri,
            self.last_message_id,
            self.relay_user_id,
            self.avatar_source,
            self.team_id,
            self.team_name,
        )

    async def insert(self) -> None:
        q = (
            f"INSERT INTO portal ({self._columns}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        )
        await self.db.execute(q, *self._values)

    async def update(self) -> None:
        q = (
            "UPDATE portal SET mxid=$3, kind=$4, name=$5, name_set=$6, topic=$7, avatar_url=$8, "
            "encrypted=$9, other_user_mri=$10, last_message_id=$11, relay_user_id=$12, "
            "avatar_source=$13, team_id=$14, team_name=$15 "
            "WHERE thread_id=$1 AND receiver=$2"
        )
        await self.db.execute(q, *self._values)

    async def set_receiver(self, receiver: str) -> None:
        """Move the portal to another receiver (rows that refer to it follow)."""
        q = "UPDATE portal SET receiver=$3 WHERE thread_id=$1 AND receiver=$2"
        await self.db.execute(q, self.thread_id, self.receiver, receiver)
        self.receiver = receiver

    def cursor_query(self, message_id: str) -> tuple[str, tuple[Any, ...]]:
        """Move the catch-up cursor (the caller sets ``last_message_id`` once it is stored)."""
        return cursor_query(self.thread_id, self.receiver, message_id)

    async def add_user(self, user_mxid: UserID) -> None:
        q = (
            "INSERT INTO user_portal (user_mxid, thread_id, receiver) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_mxid, thread_id, receiver) DO NOTHING"
        )
        await self.db.execute(q, user_mxid, self.thread_id, self.receiver)

    async def remove_user(self, user_mxid: UserID) -> None:
        q = "DELETE FROM user_portal WHERE user_mxid=$1 AND thread_id=$2 AND receiver=$3"
        await self.db.execute(q, user_mxid, self.thread_id, self.receiver)

    async def has_user(self, user_mxid: UserID) -> bool:
        """Whether this Matrix user's Teams account is in the chat (as far as the bridge saw)."""
        q = "SELECT 1 FROM user_portal WHERE user_mxid=$1 AND thread_id=$2 AND receiver=$3"
        return await self.db.fetchval(q, user_mxid, self.thread_id, self.receiver) is not None

    async def delete(self) -> None:
        q = "DELETE FROM portal WHERE thread_id=$1 AND receiver=$2"
        await self.db.execute(q, self.thread_id, self.receiver)


def cursor_query(thread_id: str, receiver: str, message_id: str) -> tuple[str, tuple[Any, ...]]:
    """Move a portal's catch-up cursor to ``message_id``."""
    q = "UPDATE portal SET last_message_id=$3 WHERE thread_id=$1 AND receiver=$2"
    return q, (thread_id, receiver, message_id)
