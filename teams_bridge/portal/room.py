"""Room lifecycle and metadata: creating the Matrix room, names, members, invites."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mautrix.appservice import IntentAPI
from mautrix.types import ContentURI, EventType, RoomID

from ..media_util import (
    SNIFF_BYTES,
    choose_mimetype,
    default_filename,
    is_inline_image,
    sniff_mimetype,
)
from ..names import clean_topic
from ..puppet import Puppet
from ..teams import Conversation, ConversationKind, Profile, Thread, is_one_to_one_id
from .rules import Member, room_name

if TYPE_CHECKING:
    from ..user import User
    from .portal import Portal

# How many ghosts join (or register) at once while a room is built.
ROOM_SETUP_CONCURRENCY = 8

# A chat picture larger than this is not made the room's avatar.
ROOM_AVATAR_MAX_BYTES = 4 * 1024 * 1024

# Event power levels of group portals: the homeserver's defaults, except that anyone may
# rename the room, as anyone in a Teams group chat may change its name (the rename is
# bridged). The topic is not bridged, so it stays at 50. Given whole: a create_room
# override replaces the homeserver's `events` map rather than merging into it.
GROUP_EVENT_LEVELS: dict[str, int] = {
    "m.room.name": 0,
    "m.room.topic": 50,
    "m.room.avatar": 50,
    "m.room.canonical_alias": 50,
    "m.room.power_levels": 100,
    "m.room.history_visibility": 100,
    "m.room.tombstone": 100,
    "m.room.server_acl": 100,
    "m.room.encryption": 100,
}

KIND_NAMES = {
    ConversationKind.ONE_TO_ONE: "one_to_one",
    ConversationKind.GROUP: "group",
    ConversationKind.MEETING: "meeting",
    ConversationKind.CHANNEL: "channel",
}


class RoomMixin:
    async def sync_with_teams(self: Portal, source: User, conversation: Conversation) -> None:
        """Make sure the room exists, is up to date and the user is in it."""
        async with self._room_lock:
            before = (self.kind, self.topic, self.team_id, self.team_name)
            self.kind = KIND_NAMES.get(conversation.kind, "group")
            if conversation.topic:
                self.topic = clean_topic(conversation.topic)
            if conversation.kind is ConversationKind.CHANNEL:
                self.remember_team(conversation.team_id, conversation.team_name)
            if not self.mxid:
                if conversation.last_message and self.last_message_id is None:
                    # History before the room existed is not replayed (no backfill yet);
                    # catch-up starts from here.
                    self.last_message_id = conversation.last_message.id
                await self._create_room(source, conversation.members)
            else:
                if (self.kind, self.topic, self.team_id, self.team_name) != before:
                    await self.save()
                await self._ensure_user_invited(source)
                await self._refresh_room(source)
        await self.add_user(source.mxid)

    async def ensure_room(self: Portal, source: User) -> RoomID | None:
        """Used when the first event of a chat arrives: create the room from Teams' data."""
        if self.mxid:
            if source.mxid not in self._known_users:
                await self._ensure_user_invited(source)
                await self.add_user(source.mxid)
            return self.mxid
        async with self._room_lock:
            if self.mxid:
                return self.mxid
            if is_one_to_one_id(self.thread_id):
                self.kind = "one_to_one"
            elif self.is_channel:
                self.kind = "channel"
            await self._create_room(source, [])
        await self.add_user(source.mxid)
        return self.mxid

    async def _fetch_members(
        self: Portal, source: User, hint: list[str]
    ) -> tuple[list[str], Thread | None]:
        assert source.client is not None
        thread: Thread | None = None
        try:
            thread = await source.client.get_thread(self.thread_id)
        except Exception:
            self.log.warning("Could not fetch thread details; using the member list we have")
        members = [m.mri for m in thread.members] if thread and thread.members else list(hint)
        if source.mri and source.mri not in members:
            members.append(source.mri)
        return members, thread

    async def _update_puppets(
        self: Portal, source: User, members: list[str], thread: Thread | None
    ) -> list[Puppet]:
        assert source.client is not None
        profiles: dict[str, Profile] = {}
        try:
            profiles = await source.client.fetch_profiles(members)
        except Exception:
            self.log.warning("Profile lookup failed; falling back to names seen in the chat")
        friendly = {m.mri: m.friendly_name for m in (thread.members if thread else [])}
        puppets = []
        for mri in members:
            puppet = await Puppet.get_by_mri(mri)
            profile = profiles.get(mri)
            if profile and profile.display_name:
                await puppet.update_name(profile.display_name, "profile")
            elif friendly.get(mri):
                await puppet.update_name(friendly[mri], "roster")
            # Before the ghost joins, so that its join already shows the picture.
            await puppet.sync_avatar(source.client)
            puppets.append(puppet)
        return puppets

    async def _refresh_room(self: Portal, source: User) -> None:
        """At the login's chat sync, catch up on what may have changed while the bridge
        was away: members' pictures (those that are due), the chat picture, and the power
        levels of rooms created before renaming was opened to everyone."""
        try:
            members, thread = await self._fetch_members(source, [])
            for mri in members:
                await (await Puppet.get_by_mri(mri)).sync_avatar(source.client)
            if thread is not None:
                await self.update_room_avatar(source, thread)
            await self._update_power_levels()
        except Exception:
            self.log.warning("Could not refresh the room from Teams", exc_info=True)

    async def _update_power_levels(self: Portal) -> None:
        assert self.mxid
        if self.is_direct:
            return
        intent = self.main_intent
        levels = await intent.get_power_levels(self.mxid)
        wanted = GROUP_EVENT_LEVELS[str(EventType.ROOM_NAME)]
        if levels.get_event_level(EventType.ROOM_NAME) != wanted:
            self.log.info("Letting room members rename the room, as in Teams")
            levels.events[EventType.ROOM_NAME] = wanted
            await intent.set_power_levels(self.mxid, levels)

    def _room_name(self: Portal, puppets: list[Puppet], own_mri: str | None) -> str | None:
        return room_name(
            kind=self.kind,
            topic=self.topic,
            team=self.team_name,
            members=[Member(p.mri, p.name) for p in puppets],
            own_mri=own_mri,
            private_chat_meta=bool(self.config["bridge.private_chat_portal_meta"]),
        )

    async def _create_room(self: Portal, source: User, hint: list[str]) -> None:
        members, thread = await self._fetch_members(source, hint)
        if thread and thread.topic:
            self.topic = clean_topic(thread.topic)
        if thread and thread.kind is ConversationKind.CHANNEL:
            self.kind = "channel"
            self.remember_team(thread.team_id, thread.team_name)
        elif thread and thread.kind is ConversationKind.ONE_TO_ONE:
            self.kind = "one_to_one"
        if self.is_direct and not self.receiver and source.mri:
            await self.make_private(source.mri)
        puppets = await self._update_puppets(source, members, thread)
        avatar: ContentURI | None = None
        if thread and thread.picture and not self.is_direct:
            avatar = await self._upload_chat_picture(source, thread.picture)
        if self.is_direct:
            others = [p for p in puppets if p.mri != source.mri]
            if others:
                self.other_user_mri = others[0].mri
            else:
                self.kind = "group"
        self.name = self._room_name(puppets, source.mri)

        intent = self.main_intent
        ghosts = [p.default_mxid_intent for p in puppets if p.mri != source.mri]
        # Members the room is built with, before the user sees it: the ghosts (the creator
        # joins by creating) and, in a DM created by the other person's ghost, the bot.
        joiners = [g for g in ghosts if g.mxid != intent.mxid]
        if intent is not self.az.intent:
            joiners.append(self.az.intent)
        await self._bounded([intent.ensure_registered()] + [g.ensure_registered() for g in joiners])
        initial_state = [
            {
                "type": str(EventType("m.bridge", EventType.Class.STATE)),
                "state_key": self.bridge_info_state_key,
                "content": self.bridge_info,
            },
            {
                "type": str(EventType("uk.half-shot.bridge", EventType.Class.STATE)),
                "state_key": self.bridge_info_state_key,
                "content": self.bridge_info,
            },
        ]
        if avatar:
            initial_state.append(
                {"type": str(EventType.ROOM_AVATAR), "state_key": "", "content": {"url": avatar}}
            )
        # The creator's power is implicit (and may not be listed in room v12+).
        power_users = {self.az.bot_mxid: 100} if intent is not self.az.intent else {}
        power: dict[str, Any] = {"users": power_users} if power_users else {}
        if not self.is_direct:
            power["events"] = dict(GROUP_EVENT_LEVELS)
        self.log.info("Creating Matrix room (%s, %d members)", self.kind, len(members))
        room_id = await intent.create_room(
            name=self.name,
            invitees=[j.mxid for j in joiners],
            initial_state=initial_state,
            power_level_override=power or None,
        )
        self.mxid = room_id
        self.name_set = bool(self.name)
        if avatar:
            self.avatar_url, self.avatar_source = avatar, thread.picture if thread else None
        await self.save()
        self.directory.portal_stored(self)
        await self._bounded([self._join(j, room_id) for j in joiners])
        # Only a complete room is shown to the user: members, name, avatar, power levels
        # and bridge state are all in place before the invite.
        await intent.invite_user(
            room_id, source.mxid, extra_content={"is_direct": True} if self.is_direct else None
        )
        self._known_users.add(source.mxid)

    async def update_bridge_info(self: Portal) -> None:
        """Send the room's bridge state again, after what it names changed."""
        if not self.mxid:
            return
        for event_type in ("m.bridge", "uk.half-shot.bridge"):
            try:
                await self.main_intent.send_state_event(
                    self.mxid,
                    EventType(event_type, EventType.Class.STATE),
                    self.bridge_info,
                    state_key=self.bridge_info_state_key,
                )
            except Exception:
                self.log.warning("Could not update the %s state", event_type, exc_info=True)

    async def _join(self: Portal, member: IntentAPI, room_id: RoomID) -> None:
        try:
            await member.ensure_joined(room_id)
        except Exception:
            self.log.warning("%s could not join the room", member.mxid, exc_info=True)

    @staticmethod
    async def _bounded(calls: list[Awaitable[Any]]) -> None:
        """Run the calls concurrently, at most ROOM_SETUP_CONCURRENCY at a time (a big
        group's joins in parallel without flooding the homeserver)."""
        limit = asyncio.Semaphore(ROOM_SETUP_CONCURRENCY)

        async def one(call: Awaitable[Any]) -> None:
            async with limit:
                await call

        await asyncio.gather(*(one(c) for c in calls))

    # -- chat picture ------------------------------------------------------------------------

    async def update_room_avatar(self: Portal, source: User, thread: Thread) -> None:
        """Make the chat's picture the room's avatar when it changed (none: no avatar)."""
        if not self.mxid or self.is_direct or thread.picture == self.avatar_source:
            return
        avatar = await self._upload_chat_picture(source, thread.picture) if thread.picture else None
        if thread.picture and avatar is None:
            return  # not readable now; the next change or sync tries again
        await self.main_intent.set_room_avatar(self.mxid, avatar)
        self.avatar_url, self.avatar_source = avatar, thread.picture
        await self.save()

    async def _upload_chat_picture(self: Portal, source: User, url: str) -> ContentURI | None:
        """The chat picture (an AMS `avatar_fullsize` view) in the Matrix media repository."""
        if source.client is None:
            return None
        try:
            async with source.client.download(url, max_size=ROOM_AVATAR_MAX_BYTES) as download:
                data = b"".join([chunk async for chunk in download])
                declared = download.content_type
        except Exception as e:
            self.log.warning("Could not download the chat picture: %s", e)
            return None
        mimetype = choose_mimetype(sniff_mimetype(data[:SNIFF_BYTES]), declared)
        if not is_inline_image(mimetype):
            self.log.warning("The chat picture is not a usable image (%s)", mimetype)
            return None
        return await self.az.intent.upload_media(
            data, mime_type=mimetype, filename=default_filename("chat", mimetype)
        )

    async def _ensure_user_invited(self: Portal, source: User) -> None:
        assert self.mxid
        try:
            await self.main_intent.invite_user(
                self.mxid,
                source.mxid,
                check_cache=True,
                extra_content={"is_direct": True} if self.is_direct else None,
            )
        except Exception:
            self.log.debug("Invite of %s not needed or failed", source.mxid, exc_info=True)
        self._known_users.add(source.mxid)
