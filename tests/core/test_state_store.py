"""The cached Matrix state store answers as the database does, without asking it again."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.bridge.state_store.asyncpg import PgBridgeStateStore
from mautrix.types import (
    EventType,
    Member,
    Membership,
    PowerLevelStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)
from mautrix.util.async_db import Database

from teams_bridge.state_store import CachedStateStore

ROOM = RoomID("!room:localhost")
GHOST = UserID("@teams_ghost:localhost")
BOT = UserID("@teamsbot:localhost")


async def _no_puppet(*_: Any) -> None:
    return None


@pytest.fixture
async def stores(database: Database):
    await PgBridgeStateStore.upgrade_table.upgrade(database)
    cached = CachedStateStore(database, _no_puppet, _no_puppet)
    plain = PgBridgeStateStore(database, _no_puppet, _no_puppet)
    return cached, plain, database


class QueryCounter:
    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("fetchrow", "fetchval", "fetch", "execute"):
            original = getattr(db, name)

            async def counted(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return await __original(*args, **kwargs)

            monkeypatch.setattr(db, name, counted)


def _create_event() -> StateEvent:
    return StateEvent.deserialize(
        {
            "type": "m.room.create",
            "room_id": ROOM,
            "event_id": "$create",
            "sender": BOT,
            "state_key": "",
            "origin_server_ts": 1,
            "content": {"room_version": "10", "creator": BOT},
        }
    )


async def test_membership_follows_writes(stores):
    cached, plain, _ = stores
    assert await cached.get_member(ROOM, GHOST) is None
    await cached.joined(ROOM, GHOST)
    assert await cached.is_joined(ROOM, GHOST)
    assert await plain.is_joined(ROOM, GHOST)
    await cached.set_member(ROOM, GHOST, Member(membership=Membership.JOIN, displayname="Ghost"))
    await cached.left(ROOM, GHOST)
    for store in (cached, plain):
        member = await store.get_member(ROOM, GHOST)
        assert member.membership == Membership.LEAVE and member.displayname == "Ghost"
    await cached.set_members(ROOM, {BOT: Member(membership=Membership.JOIN)})
    assert await cached.get_member(ROOM, GHOST) is None
    assert (await cached.get_member(ROOM, BOT)).membership == Membership.JOIN


async def test_power_levels_follow_writes(stores):
    cached, plain, _ = stores
    assert not await cached.has_power_levels_cached(ROOM)
    assert not await cached.has_create_cached(ROOM)
    levels = PowerLevelStateEventContent(users={BOT: 100}, events_default=50)
    await cached.set_power_levels(ROOM, levels)
    await cached.set_create(_create_event())
    assert await cached.has_power_levels_cached(ROOM) and await cached.has_create_cached(ROOM)
    assert not await cached.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)
    assert await cached.has_power_level(ROOM, BOT, EventType.ROOM_MESSAGE)
    # What a caller gets is its own copy.
    copy = await cached.get_power_levels(ROOM)
    copy.events_default = 0
    assert not await cached.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)
    await cached.set_power_levels(ROOM, {"users": {BOT: 100}, "events_default": 0})
    for store in (cached, plain):
        assert await store.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)


async def test_repeated_checks_stay_in_memory(stores, monkeypatch: pytest.MonkeyPatch):
    cached, _, db = stores
    await cached.set_power_levels(ROOM, PowerLevelStateEventContent(users={BOT: 100}))
    await cached.set_create(_create_event())
    # As mautrix's ensure_joined does it: look, join, note the join.
    assert not await cached.is_joined(ROOM, GHOST)
    await cached.joined(ROOM, GHOST)
    counter = QueryCounter(db, monkeypatch)
    # What mautrix asks before each message a ghost sends.
    for _ in range(2):
        assert await cached.is_joined(ROOM, GHOST)
        assert await cached.has_power_levels_cached(ROOM)
        assert await cached.has_create_cached(ROOM)
        assert await cached.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)
    assert counter.count == 1  # the room's power levels and create event, read once


async def test_a_read_racing_a_write_is_not_kept(stores):
    cached, _, db = stores
    original = db.fetchrow

    async def slow_fetchrow(*args: Any, **kwargs: Any) -> Any:
        row = await original(*args, **kwargs)
        await cached.joined(ROOM, GHOST)  # lands while the read is in flight
        return row

    db.fetchrow = slow_fetchrow  # type: ignore[method-assign]
    try:
        assert await cached.get_member(ROOM, GHOST) is None
    finally:
        db.fetchrow = original  # type: ignore[method-assign]
    assert await cached.is_joined(ROOM, GHOST)


async def test_the_copy_holds_a_bounded_number_of_rooms_and_reads_dropped_ones_again(stores):
    cached, _, _ = stores
    cached.room_limit = 2
    rooms = [f"!r{n}:localhost" for n in range(4)]
    for room in rooms:
        await cached.joined(room, GHOST)
        assert await cached.is_joined(room, GHOST)  # (read, so copied)
        await cached.set_power_levels(room, PowerLevelStateEventContent(users={GHOST: 50}))
        assert await cached.has_power_levels_cached(room)
    assert list(cached._members) == rooms[2:] and list(cached._rooms) == rooms[2:]
    # A dropped room is read again from the database, the same.
    assert await cached.is_joined(rooms[0], GHOST)
    assert (await cached.get_power_levels(rooms[0])).users == {GHOST: 50}
    assert list(cached._members) == [rooms[3], rooms[0]]
