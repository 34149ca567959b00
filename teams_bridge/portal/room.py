"""The Matrix room of a portal: creating it complete, keeping its name, avatar, power
levels and bridge state current, and inviting the bridge users who belong in it.

`Room` is the only writer of the portal's room fields (`mxid`, `kind`, `name`, `topic`,
the avatar, the team and, in a 1:1, the other person): renames from either side go
through it, so the echo of a rename is recognised in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import (
    ContentURI,
    EncryptionAlgorithm,
    EventType,
    RoomEncryptionStateEventContent,
    RoomID,
    UserID,
)

from ..media_util import (
    SNIFF_BYTES,
    choose_mimetype,
    default_filename,
    is_inline_image,
    sniff_mimetype,
)
from ..names import ROOM_NAME_MAX_BYTES, clean_name, clean_topic
from ..puppet import Puppet
from ..teams import (
    Conversation,
    ConversationKind,
    Profile,
    Thread,
    is_one_to_one_id,
    is_participant_mri,
)
from .rules import Member, channel_room_name, room_name

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

# The power level of the bridge users in a group room: above the ghosts (0), so a user can
# remove a Teams person from the chat by kicking their ghost (`kick` is at this level), and
# not above another user or the bridge.
MEMBER_LEVEL = 1

KIND_NAMES = {
    ConversationKind.ONE_TO_ONE: "one_to_one",
    ConversationKind.GROUP: "group",
    ConversationKind.MEETING: "meeting",
    ConversationKind.CHANNEL: "channel",
}


class Room:
    """A portal's Matrix room. Owns the room lock and the bridge users known to be in it."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.log = portal.log
        self._lock = asyncio.Lock()
        self._known_users: set[UserID] = set()
        # Users not invited yet because the room's history is being put in.
        self._held: set[UserID] = set()

    def is_idle(self) -> bool:
        return not self._lock.locked()

    # -- creating and keeping the room -----------------------------------------------------

    async def sync_with_teams(self, source: User, conversation: Conversation) -> None:
        """Make sure the room exists, is up to date and the user is in it. A new room gets
        the chat's recent history (`bridge.backfill.initial_messages`) before the user is
        invited; so does a room whose making was cut short (its user never invited)."""
        portal = self.portal
        history = int(portal.config["bridge.backfill.initial_messages"])
        backfill = False
        async with self._lock:
            before = (portal.kind, portal.topic, portal.team_id, portal.team_name)
            portal.kind = KIND_NAMES.get(conversation.kind, "group")
            if conversation.topic:
                portal.topic = clean_topic(conversation.topic)
            if conversation.kind is ConversationKind.CHANNEL:
                self._remember_team(conversation.team_id, conversation.team_name)
            if not portal.mxid:
                if history <= 0 and conversation.last_message and portal.last_message_id is None:
                    # No history wanted: catch-up starts from the chat's newest message.
                    portal.inbound.start_cursor_at(conversation.last_message.id)
                await self._create(source, conversation.members, invite=history <= 0)
                backfill = history > 0
            else:
                if (portal.kind, portal.topic, portal.team_id, portal.team_name) != before:
                    await portal.save()
                if history > 0 and not await portal.has_user(source.mxid):
                    # Made, but the bridge stopped before its history was in: go on from
                    # the last message bridged, then invite.
                    self._held.add(source.mxid)
                    backfill = True
                else:
                    await self._ensure_user_invited(source)
                await self._refresh(source)
                if not backfill:
                    await source.spaces.add(portal)
        if backfill:
            try:
                count = await portal.backfill(source, history)
                self.log.info("Backfilled %d messages", count)
            finally:
                await self._invite(source)
        await portal.add_user(source.mxid)

    async def ensure(self, source: User, upto: str | None = None) -> RoomID | None:
        """Used when the first event of a chat arrives: create the room from Teams' data,
        with the chat's history before ``upto`` (the message that arrived) in it before the
        user is invited."""
        portal = self.portal
        if portal.mxid:
            if source.mxid not in self._known_users and source.mxid not in self._held:
                await self._ensure_user_invited(source)
                await portal.add_user(source.mxid)
            return portal.mxid
        async with self._lock:
            if portal.mxid:
                return portal.mxid
            if is_one_to_one_id(portal.thread_id):
                portal.kind = "one_to_one"
            elif portal.is_channel:
                portal.kind = "channel"
            history = int(portal.config["bridge.backfill.initial_messages"])
            await self._create(source, [], invite=history <= 0)
        if history > 0:
            try:
                await portal.inbound.put_history(source, history, before=upto)
            finally:
                await self._invite(source)
        await portal.add_user(source.mxid)
        return portal.mxid

    async def fetch_members(self, source: User, hint: list[str]) -> tuple[list[str], Thread | None]:
        assert source.client is not None
        thread: Thread | None = None
        try:
            thread = await source.client.get_thread(self.portal.thread_id)
        except Exception:
            self.log.warning("Could not fetch thread details; using the member list we have")
        members = [m.mri for m in thread.members] if thread and thread.members else list(hint)
        if source.mri and source.mri not in members:
            members.append(source.mri)
        return members, thread

    async def update_puppets(
        self, source: User, members: list[str], thread: Thread | None
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

    async def _refresh(self, source: User) -> None:
        """At the login's chat sync, catch up on what may have changed while the bridge
        was away: members' pictures (those that are due), the chat picture, and the power
        levels of rooms created before renaming was opened to everyone."""
        portal = self.portal
        try:
            members, thread = await self.fetch_members(source, [])
            for mri in members:
                await (await Puppet.get_by_mri(mri)).sync_avatar(source.client)
            if thread is not None:
                await self.update_avatar(source, thread)
            if portal.is_direct and portal.other_user_mri:
                # Rooms made before 1:1 rooms took the other person's picture get it now.
                await self.peer_changed(await Puppet.get_by_mri(portal.other_user_mri))
            await self._update_power_levels(source.mxid)
        except Exception:
            self.log.warning("Could not refresh the room from Teams", exc_info=True)

    async def _update_power_levels(self, member: UserID | None = None) -> None:
        """Group rooms made by older versions: members may rename the room and remove
        people, as in Teams; ``member`` (a bridge user in the chat) gets the level that
        lets them remove a ghost (not another user, nor the bridge)."""
        portal = self.portal
        assert portal.mxid
        if portal.is_direct:
            return
        intent = portal.main_intent
        levels = await intent.get_power_levels(portal.mxid)
        changed = False
        wanted = GROUP_EVENT_LEVELS[str(EventType.ROOM_NAME)]
        if levels.get_event_level(EventType.ROOM_NAME) != wanted:
            self.log.info("Letting room members rename the room, as in Teams")
            levels.events[EventType.ROOM_NAME] = wanted
            changed = True
        if levels.kick != MEMBER_LEVEL:
            levels.kick = MEMBER_LEVEL
            changed = True
        if member is not None and levels.get_user_level(member) < MEMBER_LEVEL:
            levels.users[member] = MEMBER_LEVEL
            changed = True
        if changed:
            await intent.set_power_levels(portal.mxid, levels)

    @property
    def _private_meta(self) -> bool:
        return bool(self.portal.config["bridge.private_chat_portal_meta"])

    @property
    def _encrypt_new_rooms(self) -> bool:
        portal = self.portal
        return bool(portal.matrix.e2ee) and bool(portal.config["bridge.encryption.default"])

    def _name_for(self, puppets: list[Puppet], own_mri: str | None) -> str | None:
        portal = self.portal
        return room_name(
            kind=portal.kind,
            topic=portal.topic,
            team=portal.team_name,
            members=[Member(p.mri, p.name) for p in puppets],
            own_mri=own_mri,
            private_chat_meta=self._private_meta,
        )

    async def peer_changed(self, peer: Puppet) -> None:
        """The other person of a 1:1 room changed their name or picture: with
        ``private_chat_portal_meta`` the room follows (set by their ghost)."""
        portal = self.portal
        if not portal.mxid or not portal.is_direct or not self._private_meta:
            return
        if peer.mri != portal.other_user_mri:
            return
        changed = False
        name = self._name_for([peer], portal.receiver or None)
        if name and name != portal.name:
            await portal.main_intent.set_room_name(portal.mxid, name)
            portal.name, portal.name_set, changed = name, True, True
        avatar = ContentURI(peer.avatar_url) if peer.avatar_url else None
        if avatar != (portal.avatar_url or None):
            await portal.main_intent.set_room_avatar(portal.mxid, avatar)
            portal.avatar_url, changed = avatar, True
        if changed:
            await portal.save()

    def _remember_team(self, team_id: str | None, team_name: str | None) -> None:
        """Note the channel's team as Teams names it (stored with the portal's next save)."""
        portal = self.portal
        portal.team_id = team_id or portal.team_id
        portal.team_name = team_name or portal.team_name

    async def _create(self, source: User, hint: list[str], *, invite: bool = True) -> None:
        portal = self.portal
        members, thread = await self.fetch_members(source, hint)
        if thread and thread.topic:
            portal.topic = clean_topic(thread.topic)
        if thread and thread.kind is ConversationKind.CHANNEL:
            portal.kind = "channel"
            self._remember_team(thread.team_id, thread.team_name)
        elif thread and thread.kind is ConversationKind.ONE_TO_ONE:
            portal.kind = "one_to_one"
        if portal.is_direct and not portal.receiver and source.mri:
            await portal.make_private(source.mri)
        puppets = await self.update_puppets(source, members, thread)
        avatar: ContentURI | None = None
        if thread and thread.picture and not portal.is_direct:
            avatar = await self.upload_chat_picture(source, thread.picture)
        if portal.is_direct:
            others = [p for p in puppets if p.mri != source.mri]
            if others:
                portal.other_user_mri = others[0].mri
                if self._private_meta and others[0].avatar_url:
                    # The room looks like the other person: their name and picture.
                    avatar = ContentURI(others[0].avatar_url)
            else:
                portal.kind = "group"
        portal.name = self._name_for(puppets, source.mri)

        az = portal.az
        intent = portal.main_intent
        ghosts = [p.default_mxid_intent for p in puppets if p.mri != source.mri]
        # Members the room is built with, before the user sees it: the ghosts (the creator
        # joins by creating) and, in a DM created by the other person's ghost, the bot.
        joiners = [g for g in ghosts if g.mxid != intent.mxid]
        if intent is not az.intent:
            joiners.append(az.intent)
        await _bounded([intent.ensure_registered()] + [g.ensure_registered() for g in joiners])
        initial_state = [
            {
                "type": str(EventType("m.bridge", EventType.Class.STATE)),
                "state_key": portal.bridge_info_state_key,
                "content": portal.bridge_info,
            },
            {
                "type": str(EventType("uk.half-shot.bridge", EventType.Class.STATE)),
                "state_key": portal.bridge_info_state_key,
                "content": portal.bridge_info,
            },
        ]
        if avatar:
            initial_state.append(
                {"type": str(EventType.ROOM_AVATAR), "state_key": "", "content": {"url": avatar}}
            )
        encrypted = self._encrypt_new_rooms
        if encrypted:
            initial_state.append(
                {
                    "type": str(EventType.ROOM_ENCRYPTION),
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
            # The user gets the room keys of what is sent only as a member (invited or
            # joined) at the time: in an encrypted room they are invited before the history.
            invite = True
        # The creator's power is implicit (and may not be listed in room v12+).
        power_users = {az.bot_mxid: 100} if intent is not az.intent else {}
        if not portal.is_direct:
            power_users[source.mxid] = MEMBER_LEVEL
        power: dict[str, Any] = {"users": power_users} if power_users else {}
        if not portal.is_direct:
            power["events"] = dict(GROUP_EVENT_LEVELS)
            power["kick"] = MEMBER_LEVEL
        if portal.matrix.e2ee is not None:
            # With encryption allowed, the user may turn it on in the room themselves.
            events = power.setdefault("events", {**GROUP_EVENT_LEVELS, "m.room.name": 50})
            events[str(EventType.ROOM_ENCRYPTION)] = 0 if portal.is_direct else MEMBER_LEVEL
        self.log.info("Creating Matrix room (%s, %d members)", portal.kind, len(members))
        room_id = await intent.create_room(
            name=portal.name,
            invitees=[j.mxid for j in joiners],
            initial_state=initial_state,
            power_level_override=power or None,
        )
        portal.mxid = room_id
        portal.encrypted = encrypted
        if encrypted:
            await az.state_store.set_encryption_info(
                room_id, RoomEncryptionStateEventContent(EncryptionAlgorithm.MEGOLM_V1)
            )
        portal.name_set = bool(portal.name)
        if avatar:
            portal.avatar_url = avatar
            portal.avatar_source = thread.picture if thread and not portal.is_direct else None
        await portal.save()
        portal.directory.portal_stored(portal)
        await _bounded([self._join(j, room_id) for j in joiners])
        # Only a complete room is shown to the user: members, name, avatar, power levels
        # and bridge state (and, when wanted, the history) are all in place before the
        # invite.
        if invite:
            await self._invite(source)
        else:
            self._held.add(source.mxid)

    async def _invite(self, source: User) -> None:
        portal = self.portal
        assert portal.mxid
        self._held.discard(source.mxid)
        try:
            await portal.main_intent.invite_user(
                portal.mxid,
                source.mxid,
                extra_content={"is_direct": True} if portal.is_direct else None,
            )
        except MatrixRequestError as e:
            # Already invited or joined (a backfill cut short after its invite).
            self.log.debug("Invite of %s not needed or failed: %s", source.mxid, e)
        self._known_users.add(source.mxid)
        await self._accept_as_double_puppet(source)
        await source.spaces.add(portal)

    async def update_bridge_info(self) -> None:
        """Send the room's bridge state again, after what it names changed."""
        portal = self.portal
        if not portal.mxid:
            return
        for event_type in ("m.bridge", "uk.half-shot.bridge"):
            try:
                await portal.main_intent.send_state_event(
                    portal.mxid,
                    EventType(event_type, EventType.Class.STATE),
                    portal.bridge_info,
                    state_key=portal.bridge_info_state_key,
                )
            except Exception:
                self.log.warning("Could not update the %s state", event_type, exc_info=True)

    async def _join(self, member: IntentAPI, room_id: RoomID) -> None:
        try:
            await member.ensure_joined(room_id)
        except Exception:
            self.log.warning("%s could not join the room", member.mxid, exc_info=True)

    # -- the chat's name ---------------------------------------------------------------------

    async def teams_topic_changed(
        self, source: User, topic: str | None, by: str | None = None
    ) -> None:
        """A rename made in Teams (a ``TopicUpdate``): the room takes the new name, set by
        the ghost of the person who renamed it (``by``) where that ghost can."""
        portal = self.portal
        assert portal.mxid
        topic = clean_topic(topic)
        if topic == portal.topic:
            return  # unchanged, or the echo of a rename made in Matrix
        portal.topic = topic
        # A channel's room is named after its team as well.
        name = (
            clean_name(channel_room_name(topic, portal.team_name), ROOM_NAME_MAX_BYTES)
            if portal.is_channel
            else topic
        )
        if not name and source.client is not None:
            members, thread = await self.fetch_members(source, [])
            name = self._name_for(await self.update_puppets(source, members, thread), source.mri)
        renamed = False
        if name and name != portal.name:
            await self._set_name_as(by, name)
            portal.name, portal.name_set, renamed = name, True, True
        await portal.save()
        if renamed and portal.is_channel:
            # It names the channel and its team, for a space to gather the room by.
            await self.update_bridge_info()

    async def _set_name_as(self, mri: str | None, name: str) -> None:
        portal = self.portal
        assert portal.mxid
        if mri and is_participant_mri(mri) and portal.user_in_room(mri) is None:
            ghost = (await Puppet.get_by_mri(mri)).default_mxid_intent
            try:
                await ghost.set_room_name(portal.mxid, name)
                return
            except MatrixRequestError as e:
                # Not in the room, or no power to rename it (a room from before renaming
                # was opened to members): the room's own voice renames it.
                self.log.debug("%s could not rename the room: %s", mri, e)
        await portal.main_intent.set_room_name(portal.mxid, name)

    async def matrix_renamed(self, user: User, name: str) -> None:
        """A room rename by a bridge user renames the Teams chat (its topic)."""
        portal = self.portal
        name = name.strip()
        if user.client is None or portal.is_direct or not name or name == portal.name:
            return
        if portal.is_channel:
            return  # a channel's name is the team's business, not this room's
        old_topic = portal.topic
        # Saved first, so the TopicUpdate echo is recognised as this change.
        portal.topic, portal.name, portal.name_set = name, name, True
        await portal.save()
        try:
            await user.client.set_topic(portal.thread_id, name)
        except Exception as e:
            self.log.warning("Could not rename the Teams chat: %s", e)
            portal.topic = old_topic
            await portal.save()
            await portal.notice(f"The Teams chat could not be renamed: {e}")

    # -- chat picture ------------------------------------------------------------------------

    async def update_avatar(self, source: User, thread: Thread) -> None:
        """Make the chat's picture the room's avatar when it changed (none: no avatar)."""
        portal = self.portal
        if not portal.mxid or portal.is_direct or thread.picture == portal.avatar_source:
            return
        avatar = await self.upload_chat_picture(source, thread.picture) if thread.picture else None
        if thread.picture and avatar is None:
            return  # not readable now; the next change or sync tries again
        await portal.main_intent.set_room_avatar(portal.mxid, avatar)
        portal.avatar_url, portal.avatar_source = avatar, thread.picture
        await portal.save()

    async def upload_chat_picture(self, source: User, url: str) -> ContentURI | None:
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
        return await self.portal.az.intent.upload_media(
            data, mime_type=mimetype, filename=default_filename("chat", mimetype)
        )

    # -- bridge users in the room ------------------------------------------------------------

    async def _ensure_user_invited(self, source: User) -> None:
        portal = self.portal
        assert portal.mxid
        try:
            await portal.main_intent.invite_user(
                portal.mxid,
                source.mxid,
                check_cache=True,
                extra_content={"is_direct": True} if portal.is_direct else None,
            )
        except Exception:
            self.log.debug("Invite of %s not needed or failed", source.mxid, exc_info=True)
        self._known_users.add(source.mxid)

    async def _accept_as_double_puppet(self, user: User) -> None:
        """With double puppeting the user's own account joins at once (as mautrix bridges
        do), and a 1:1 room goes into their ``m.direct``."""
        portal = self.portal
        assert portal.mxid
        puppet = await user.double_puppet()
        if puppet is None:
            return
        try:
            await puppet.intent.ensure_joined(portal.mxid)
            if portal.is_direct and portal.other_user_mri:
                ghost = Puppet.get_mxid_from_mri(portal.other_user_mri)
                await user.update_direct_chats({ghost: [portal.mxid]})
        except Exception as e:
            self.log.warning("Double puppet of %s could not join: %s", user.mxid, e)

    async def bridge_user_added(self, user: User) -> None:
        """Someone who uses this bridge was added in Teams: invite their own Matrix account."""
        portal = self.portal
        assert portal.mxid
        if user.mxid not in self._known_users:
            try:
                await portal.main_intent.invite_user(portal.mxid, user.mxid, check_cache=True)
            except MatrixRequestError as e:
                self.log.debug("Invite of %s failed: %s", user.mxid, e)
            self._known_users.add(user.mxid)
            try:
                await self._update_power_levels(user.mxid)
            except MatrixRequestError as e:
                self.log.debug("Could not give %s a member's level: %s", user.mxid, e)
        await portal.add_user(user.mxid)

    async def bridge_user_removed(self, user: User, *, left: bool) -> None:
        """A bridge user left the Teams chat or was removed from it: they leave the room
        too (told why, there and in their management room), and the chat is no longer
        theirs to catch up on."""
        portal = self.portal
        assert portal.mxid
        reason = "Left the Teams chat" if left else "Removed from the Teams chat"
        try:
            await portal.main_intent.kick_user(portal.mxid, user.mxid, reason)
        except MatrixRequestError as e:
            self.log.debug("Could not remove %s from the room: %s", user.mxid, e)
        self._known_users.discard(user.mxid)
        await portal.remove_user(user.mxid)
        await user.spaces.remove(portal)
        what = "You left" if left else "You were removed from"
        await user.send_management_notice(
            f"{what} the Teams chat {portal.name or portal.topic or 'without a name'}, "
            "so you were taken out of its room."
        )


async def _bounded(calls: list[Awaitable[Any]]) -> None:
    """Run the calls concurrently, at most ROOM_SETUP_CONCURRENCY at a time (a big group's
    joins in parallel without flooding the homeserver)."""
    limit = asyncio.Semaphore(ROOM_SETUP_CONCURRENCY)

    async def one(call: Awaitable[Any]) -> None:
        async with limit:
            await call

    await asyncio.gather(*(one(c) for c in calls))
