"""mautrix's database-backed Matrix state store with the hot lookups answered from memory.

Every message a ghost sends makes mautrix check the ghost's membership (once explicitly,
once in the send wrapper) and its power level, which reads the room's power levels and
create event and parses both from JSON: six queries per message. This process is the only
writer of these tables, and every write goes through the methods below, so a copy kept in
memory stays equal to the database: reads are served from it, writes go to the database
first and then to the copy.

The copy holds at most ``room_limit`` rooms (`bridge.cache.portals`; 0: no bound), the
least recently used going first: it is only a copy, so a room dropped is read again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from mautrix.bridge.state_store.asyncpg import PgBridgeStateStore
from mautrix.types import (
    EventType,
    Member,
    Membership,
    MemberStateEventContent,
    PowerLevelStateEventContent,
    RoomID,
    Serializable,
    StateEvent,
    UserID,
)

# A room whose state the database does not have.
_ABSENT: tuple[PowerLevelStateEventContent | None, StateEvent | None] = (None, None)


class CachedStateStore(PgBridgeStateStore):
    room_limit: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # room -> user -> member row (None: no row).
        self._members: OrderedDict[RoomID, dict[UserID, Member | None]] = OrderedDict()
        # room -> (power levels, create event) as stored (None: not stored).
        self._rooms: OrderedDict[
            RoomID, tuple[PowerLevelStateEventContent | None, StateEvent | None]
        ] = OrderedDict()
        # Bumped by every write: a read that went to the database while a write happened may
        # have seen the older value, so it is not kept.
        self._writes = 0

    def _trim(self, cache: OrderedDict) -> None:
        while self.room_limit and len(cache) > self.room_limit:
            cache.popitem(last=False)

    def _member_room(self, room_id: RoomID) -> dict[UserID, Member | None]:
        """The room's members as copied, made (and the oldest room dropped) if need be."""
        room = self._members.get(room_id)
        if room is None:
            room = self._members[room_id] = {}
            self._trim(self._members)
        return room

    # -- members -------------------------------------------------------------------------

    async def get_member(self, room_id: RoomID, user_id: UserID) -> Member | None:
        room = self._members.get(room_id)
        if room is not None and user_id in room:
            self._members.move_to_end(room_id)
            return room[user_id]
        writes = self._writes
        member = await super().get_member(room_id, user_id)
        if writes == self._writes:
            self._member_room(room_id)[user_id] = member
        return member

    async def set_member(
        self, room_id: RoomID, user_id: UserID, member: Member | MemberStateEventContent
    ) -> None:
        await super().set_member(room_id, user_id, member)
        self._writes += 1
        self._member_room(room_id)[user_id] = Member(
            membership=member.membership,
            displayname=member.displayname,
            avatar_url=member.avatar_url,
        )

    async def set_membership(
        self, room_id: RoomID, user_id: UserID, membership: Membership
    ) -> None:
        await super().set_membership(room_id, user_id, membership)
        self._writes += 1
        room = self._members.get(room_id)
        if room is None or user_id not in room:
            return
        old = room[user_id]
        # The row keeps its name and avatar; a new row has none.
        room[user_id] = Member(
            membership=membership,
            displayname=old.displayname if old else None,  # type: ignore[arg-type]
            avatar_url=old.avatar_url if old else None,  # type: ignore[arg-type]
        )

    async def set_members(
        self,
        room_id: RoomID,
        members: dict[UserID, Member | MemberStateEventContent],
        only_membership: Membership | None = None,
    ) -> None:
        self._writes += 1
        self._members.pop(room_id, None)
        try:
            await super().set_members(room_id, members, only_membership)
        finally:
            self._writes += 1
            self._members.pop(room_id, None)

    # -- power levels and the create event ------------------------------------------------

    async def _room(
        self, room_id: RoomID
    ) -> tuple[PowerLevelStateEventContent | None, StateEvent | None]:
        state = self._rooms.get(room_id)
        if state is not None:
            self._rooms.move_to_end(room_id)
            return state
        writes = self._writes
        row = await self.db.fetchrow(
            "SELECT power_levels, create_event FROM mx_room_state WHERE room_id=$1", room_id
        )
        state = _ABSENT
        if row is not None:
            levels, create = row["power_levels"], row["create_event"]
            state = (
                PowerLevelStateEventContent.parse_json(levels) if levels is not None else None,
                StateEvent.parse_json(create) if create is not None else None,
            )
        if writes == self._writes and room_id not in self._rooms:
            self._rooms[room_id] = state
            self._trim(self._rooms)
        return state

    async def has_power_levels_cached(self, room_id: RoomID) -> bool:
        return (await self._room(room_id))[0] is not None

    async def get_power_levels(self, room_id: RoomID) -> PowerLevelStateEventContent | None:
        levels = (await self._room(room_id))[0]
        # A copy: callers change what they get before sending it back.
        return PowerLevelStateEventContent.deserialize(levels.serialize()) if levels else None

    async def set_power_levels(
        self, room_id: RoomID, content: PowerLevelStateEventContent | dict[str, Any]
    ) -> None:
        await super().set_power_levels(room_id, content)
        self._writes += 1
        cached = self._rooms.get(room_id)
        if cached is not None:
            # Parsed from what was stored, so a caller changing `content` later changes
            # nothing here.
            data = content.serialize() if isinstance(content, Serializable) else content
            levels = PowerLevelStateEventContent.parse_json(json.dumps(data))
            self._rooms[room_id] = (levels, cached[1])

    async def has_create_cached(self, room_id: RoomID) -> bool:
        return (await self._room(room_id))[1] is not None

    async def get_create(self, room_id: RoomID) -> StateEvent | None:
        return (await self._room(room_id))[1]

    async def set_create(self, event: StateEvent) -> None:
        await super().set_create(event)
        self._writes += 1
        self._rooms.pop(event.room_id, None)  # read again, with the power levels

    async def has_power_level(
        self, room_id: RoomID, user_id: UserID, event_type: EventType
    ) -> bool | None:
        levels, create = await self._room(room_id)
        if not levels:
            return None
        return levels.get_user_level(user_id, create) >= levels.get_event_level(event_type)
