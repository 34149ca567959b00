"""Teams -> Matrix for the room around the messages: members joining and leaving, the
chat's topic (the room name), other members' read positions and typing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.errors import MatrixRequestError
from mautrix.types import EventID

from .. import db as dbm
from ..names import ROOM_NAME_MAX_BYTES, clean_name, clean_topic
from ..puppet import Puppet
from ..teams import ThreadActivityKind, is_participant_mri, parse_thread_activity

if TYPE_CHECKING:
    from ..teams import ActivityMember, ConsumptionHorizon, Message, ThreadActivity
    from ..user import User
    from .portal import Portal

# Teams sends no "stopped typing"; clients expire a typing notice after about 15 s.
TYPING_TIMEOUT_MS = 15_000


class RosterMixin:
    async def bridge_thread_activity(self: Portal, source: User, message: Message) -> None:
        activity = parse_thread_activity(message)
        if activity is None:
            self.log.debug("Unreadable or unknown %s %s", message.message_type, message.id)
            return
        if not self.mxid:
            return  # the room, when it is created, reads the roster and topic itself
        kind = activity.kind
        if kind in (ThreadActivityKind.ADD_MEMBER, ThreadActivityKind.MEMBER_JOINED):
            for member in activity.targets:
                await self._teams_member_added(source, member)
        elif kind in (ThreadActivityKind.DELETE_MEMBER, ThreadActivityKind.MEMBER_LEFT):
            for member in activity.targets:
                await self._teams_member_removed(member, activity)
        elif kind is ThreadActivityKind.TOPIC_UPDATE:
            await self._teams_topic_changed(source, activity.topic)
        elif kind is ThreadActivityKind.HORIZON_UPDATE:
            if activity.horizon is not None:
                await self._teams_read(activity.horizon)
        else:
            self.log.debug("Not bridging %s %s", message.message_type, message.id)

    # -- membership ------------------------------------------------------------------------

    async def _teams_member_added(self: Portal, source: User, member: ActivityMember) -> None:
        assert self.mxid
        user = self.user_in_room(member.mri)
        if user is not None:
            # Someone who uses this bridge: invite their own Matrix account.
            if user.mxid not in self._known_users:
                try:
                    await self.main_intent.invite_user(self.mxid, user.mxid, check_cache=True)
                except MatrixRequestError as e:
                    self.log.debug("Invite of %s failed: %s", user.mxid, e)
                self._known_users.add(user.mxid)
            await self.add_user(user.mxid)
            return
        puppet = await Puppet.get_by_mri(member.mri)
        if member.name:
            await puppet.update_name(member.name, "roster")
        await puppet.sync_avatar(source.client)
        await puppet.default_mxid_intent.ensure_joined(self.mxid)

    async def _teams_member_removed(
        self: Portal, member: ActivityMember, activity: ThreadActivity
    ) -> None:
        assert self.mxid
        user = self.user_in_room(member.mri)
        left = activity.initiator in (None, member.mri)
        if user is not None:
            reason = "Left the Teams chat" if left else "Removed from the Teams chat"
            try:
                await self.main_intent.kick_user(self.mxid, user.mxid, reason)
            except MatrixRequestError as e:
                self.log.debug("Could not remove %s from the room: %s", user.mxid, e)
            self._known_users.discard(user.mxid)
            return
        puppet = await Puppet.get_by_mri(member.mri)
        try:
            await puppet.default_mxid_intent.leave_room(self.mxid)
        except MatrixRequestError as e:
            self.log.debug("%s could not leave the room: %s", member.mri, e)

    # -- topic -----------------------------------------------------------------------------

    async def _teams_topic_changed(self: Portal, source: User, topic: str | None) -> None:
        assert self.mxid
        topic = clean_topic(topic)
        if topic == self.topic:
            return  # unchanged, or the echo of a rename made in Matrix
        self.topic = topic
        # A channel's room is named after its team as well.
        name = (
            clean_name(self.channel_room_name(), ROOM_NAME_MAX_BYTES) if self.is_channel else topic
        )
        if not name and source.client is not None:
            members, thread = await self._fetch_members(source, [])
            name = self._room_name(await self._update_puppets(source, members, thread), source.mri)
        renamed = False
        if name and name != self.name:
            await self.main_intent.set_room_name(self.mxid, name)
            self.name, self.name_set, renamed = name, True, True
        await self.save()
        if renamed and self.is_channel:
            # It names the channel and its team, for a space to gather the room by.
            await self.update_bridge_info()

    # -- read positions --------------------------------------------------------------------

    async def _teams_read(self: Portal, horizon: ConsumptionHorizon) -> None:
        assert self.mxid
        if not horizon.mri or not horizon.message_id or not is_participant_mri(horizon.mri):
            return
        if self.user_in_room(horizon.mri) is not None:
            return  # a bridge user's Matrix client sends its own receipts
        event_id = await self._event_read_up_to(horizon.message_id)
        if event_id is None:
            return
        await self.writer.read(horizon.mri, event_id)

    async def _event_read_up_to(self: Portal, message_id: str) -> EventID | None:
        """The last Matrix event of the newest bridged message not after ``message_id``."""
        parts = await dbm.Message.get_all_parts(self.thread_id, self.receiver, message_id)
        if parts:
            return parts[-1].mxid
        try:
            until = int(message_id)
        except ValueError:
            return None
        row = await dbm.Message.get_newest_until(self.thread_id, self.receiver, until)
        return row.mxid if row else None

    # -- typing ----------------------------------------------------------------------------

    async def bridge_teams_typing(self: Portal, message: Message) -> None:
        sender = message.sender_mri
        if not self.mxid or not is_participant_mri(sender):
            return
        assert sender is not None
        if self.user_in_room(sender) is not None:
            return  # our own typing coming back, or that of a bridge user in the room
        typing = message.message_type.lower() == "control/typing"
        try:
            await self.writer.typing(sender, TYPING_TIMEOUT_MS if typing else 0)
        except MatrixRequestError as e:
            self.log.debug("Typing of %s not shown: %s", sender, e)
