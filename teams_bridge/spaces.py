"""A user's Matrix spaces, laid out like Teams: one personal space holding their chat rooms
(1:1, group, meeting), and inside it one space per Teams team holding its channel rooms.

Spaces are made when the first room that belongs in them is; a room is added when it is
made or next synced, and taken out when the user leaves the chat in Teams. Each user has
their own spaces (a shared group room is a child of the space of each of its users).
With ``bridge.spaces: false`` nothing here happens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, RoomID

from . import db as dbm
from .db.space import PERSONAL
from .names import ROOM_NAME_MAX_BYTES, clean_name

if TYPE_CHECKING:
    from mautrix.appservice import IntentAPI

    from .portal import Portal
    from .user import User

log = logging.getLogger("mau.spaces")

SPACE_CHILD = EventType("m.space.child", EventType.Class.STATE)
PERSONAL_SPACE_NAME = "Microsoft Teams"


class Spaces:
    """One user's spaces. Remembers which rooms each space holds (read from the space's
    state once), so syncing a room that is already in place sends nothing."""

    def __init__(self, user: User) -> None:
        self.user = user
        self._lock = asyncio.Lock()
        self._children: dict[RoomID, set[RoomID]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.user.config["bridge.spaces"])

    @property
    def _bot(self) -> IntentAPI:
        return self.user.az.intent

    async def add(self, portal: Portal) -> None:
        """Put the portal's room in its place: a channel in its team's space (itself in the
        personal space), any other chat in the personal space. Never raises."""
        if not self.enabled or not portal.mxid:
            return
        try:
            async with self._lock:
                personal = await self._space(PERSONAL, PERSONAL_SPACE_NAME, portal)
                if portal.is_channel and portal.team_id:
                    team = await self._space(portal.team_id, portal.team_name, portal)
                    await self._add_child(personal.mxid, team.mxid)
                    await self._add_child(team.mxid, portal.mxid)
                else:
                    await self._add_child(personal.mxid, portal.mxid)
        except Exception:
            log.warning(
                "Could not add %s to %s's spaces", portal.mxid, self.user.mxid, exc_info=True
            )

    async def remove(self, portal: Portal) -> None:
        """Take the portal's room out of the user's spaces (they left the chat). Never raises."""
        if not portal.mxid:
            return
        try:
            async with self._lock:
                for space in await dbm.Space.all_for(self.user.mxid):
                    if portal.mxid in await self._known_children(space.mxid):
                        await self._bot.send_state_event(
                            space.mxid, SPACE_CHILD, {}, state_key=portal.mxid
                        )
                        self._children[space.mxid].discard(portal.mxid)
        except Exception:
            log.warning(
                "Could not take %s out of %s's spaces", portal.mxid, self.user.mxid, exc_info=True
            )

    async def _space(self, team_id: str, name: str | None, portal: Portal) -> dbm.Space:
        """The user's space for ``team_id`` ('' for the personal one), made if missing;
        a team's space follows the team's name."""
        name = clean_name(name, ROOM_NAME_MAX_BYTES) or None
        space = await dbm.Space.get(self.user.mxid, team_id)
        if space is not None:
            if team_id != PERSONAL and name and name != space.name:
                await self._bot.set_room_name(space.mxid, name)
                await space.set_name(name)
            return space
        avatar = await self._avatar(team_id, portal)
        initial_state: list[dict[str, Any]] = []
        if avatar:
            initial_state.append(
                {"type": str(EventType.ROOM_AVATAR), "state_key": "", "content": {"url": avatar}}
            )
        room_id = await self._bot.create_room(
            name=name,
            invitees=[self.user.mxid],
            initial_state=initial_state,
            creation_content={"type": "m.space"},
            # Only the bridge changes what a space holds. (The creator's power is implicit
            # and may not be listed in room v12+.)
            power_level_override={"events_default": 100},
        )
        space = dbm.Space(self.user.mxid, team_id, room_id, name)
        await space.insert()
        self._children[room_id] = set()
        log.info("Made %s's space %s (%s)", self.user.mxid, room_id, team_id or "personal")
        return space

    async def _avatar(self, team_id: str, portal: Portal) -> str | None:
        """The bridge's avatar for the personal space; the team's picture (the picture of
        its General channel, whose id is the team's) for a team's space."""
        if team_id == PERSONAL:
            return self.user.config["appservice.bot_avatar"] or None
        client = self.user.client
        if client is None:
            return None
        try:
            thread = await client.get_thread(team_id)
        except Exception as e:
            log.debug("No picture for team %s: %s", team_id, e)
            return None
        if not thread.picture:
            return None
        return await portal.room.upload_chat_picture(self.user, thread.picture)

    async def _known_children(self, space: RoomID) -> set[RoomID]:
        known = self._children.get(space)
        if known is None:
            known = set()
            try:
                for event in await self._bot.get_state(space):
                    if event.type == SPACE_CHILD and event.content.serialize().get("via"):
                        known.add(RoomID(event.state_key))
            except MatrixRequestError as e:
                log.debug("Could not read the state of space %s: %s", space, e)
            self._children[space] = known
        return known

    async def _add_child(self, space: RoomID, child: RoomID) -> None:
        known = await self._known_children(space)
        if child in known:
            return
        via = [self.user.config["homeserver.domain"]]
        await self._bot.send_state_event(space, SPACE_CHILD, {"via": via}, state_key=child)
        known.add(child)
