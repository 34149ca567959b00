"""The people of a chat, both ways. Teams -> Matrix: members joining and leaving, the chat's
topic (the room name, kept by `Room`), other members' read positions and typing. Matrix ->
Teams: a ghost invited into or kicked from a group room adds or removes that person in the
Teams chat; a user leaves the Teams chat only when they say so (`leave`, or
`bridge.leave_teams_chat_on_leave`). Refusals are told in the room and undone in Matrix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mautrix.bridge import RejectMatrixInvite
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID

from .. import db as dbm
from ..puppet import Puppet
from ..teams import TeamsError, ThreadActivityKind, is_participant_mri, parse_thread_activity

if TYPE_CHECKING:
    from ..teams import ActivityMember, ConsumptionHorizon, Message, TeamsClient, ThreadActivity
    from ..user import User
    from .portal import Portal

# Teams sends no "stopped typing"; clients expire a typing notice after about 15 s.
TYPING_TIMEOUT_MS = 15_000


class Roster:
    """The people in a portal's room as Teams sees them: who is in the chat, how far they
    have read, who is typing."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.log = portal.log

    async def thread_activity(self, source: User, message: Message) -> None:
        activity = parse_thread_activity(message)
        if activity is None:
            self.log.debug("Unreadable or unknown %s %s", message.message_type, message.id)
            return
        if not self.portal.mxid:
            return  # the room, when it is created, reads the roster and topic itself
        kind = activity.kind
        if kind in (ThreadActivityKind.ADD_MEMBER, ThreadActivityKind.MEMBER_JOINED):
            for member in activity.targets:
                await self._teams_member_added(source, member)
        elif kind in (ThreadActivityKind.DELETE_MEMBER, ThreadActivityKind.MEMBER_LEFT):
            for member in activity.targets:
                await self._teams_member_removed(member, activity)
        elif kind is ThreadActivityKind.TOPIC_UPDATE:
            await self.portal.room.teams_topic_changed(source, activity.topic, activity.initiator)
        elif kind is ThreadActivityKind.HORIZON_UPDATE:
            if activity.horizon is not None:
                await self._teams_read(activity.horizon)
        else:
            self.log.debug("Not bridging %s %s", message.message_type, message.id)

    # -- membership ------------------------------------------------------------------------

    async def _teams_member_added(self, source: User, member: ActivityMember) -> None:
        assert self.portal.mxid
        user = self.portal.user_in_room(member.mri)
        if user is not None:
            await self.portal.room.bridge_user_added(user)
            return
        puppet = await Puppet.get_by_mri(member.mri)
        if member.name:
            await puppet.update_name(member.name, "roster")
        await puppet.sync_avatar(source.client)
        await puppet.default_mxid_intent.ensure_joined(self.portal.mxid)

    async def _teams_member_removed(self, member: ActivityMember, activity: ThreadActivity) -> None:
        assert self.portal.mxid
        user = self.portal.user_in_room(member.mri)
        left = activity.initiator in (None, member.mri)
        if user is not None:
            await self.portal.room.bridge_user_removed(user, left=left)
            return
        puppet = await Puppet.get_by_mri(member.mri)
        try:
            await puppet.default_mxid_intent.leave_room(self.portal.mxid)
        except MatrixRequestError as e:
            self.log.debug("%s could not leave the room: %s", member.mri, e)

    # -- Matrix -> Teams: membership ------------------------------------------------------

    def _roster_is_fixed(self) -> str | None:
        """Why this chat's members cannot be changed from here, or None."""
        portal = self.portal
        if portal.is_direct:
            return "a 1:1 chat has exactly two people"
        if portal.is_channel:
            return "a channel's members are its team's: change them in Teams"
        return None

    async def matrix_invite(self, invited_by: User, puppet: Puppet) -> None:
        """A ghost invited into the room: the person is added to the Teams chat. Raises
        ``RejectMatrixInvite`` (the ghost declines the invite) when that cannot be."""
        portal = self.portal
        if not puppet.name and invited_by.client is not None:
            # A Teams user the bridge has not met: their ghost gets their name first.
            try:
                profiles = await invited_by.client.fetch_profiles([puppet.mri])
                found = profiles.get(puppet.mri)
                if found is not None and found.display_name:
                    await puppet.update_name(found.display_name, "profile")
            except TeamsError as e:
                self.log.debug("No profile for %s: %s", puppet.mri, e)
        refusal = await self._roster_change(
            invited_by, lambda client: client.add_member(portal.thread_id, puppet.mri)
        )
        if refusal is None:
            return
        name = puppet.name or puppet.mri
        await portal.notice(f"{name} was not added to the Teams chat: {refusal}.")
        raise RejectMatrixInvite(refusal)

    async def matrix_kick(self, kicked_by: User, puppet: Puppet) -> None:
        """A ghost kicked from the room: the person is removed from the Teams chat; when
        Teams refuses, they are put back in the room."""
        portal = self.portal
        assert portal.mxid
        refusal = await self._roster_change(
            kicked_by, lambda client: client.remove_member(portal.thread_id, puppet.mri)
        )
        if refusal is None:
            return
        name = puppet.name or puppet.mri
        await portal.notice(f"{name} was not removed from the Teams chat: {refusal}.")
        try:
            await portal.main_intent.invite_user(portal.mxid, puppet.default_mxid)
            await puppet.default_mxid_intent.ensure_joined(portal.mxid)
        except MatrixRequestError as e:
            self.log.warning("Could not put %s back in the room: %s", puppet.mri, e)

    async def leave_teams_chat(self, user: User) -> str | None:
        """The user leaves the Teams chat (and so, through its echo, the room); why not,
        when they cannot."""
        thread_id = self.portal.thread_id
        return await self._roster_change(
            user, lambda client: client.remove_member(thread_id, user.mri or "")
        )

    async def _roster_change(
        self, user: User, change: Callable[[TeamsClient], Awaitable[None]]
    ) -> str | None:
        """Change the Teams chat's members as ``user``; why that cannot be, or None."""
        refusal = self._roster_is_fixed()
        if refusal is not None:
            return refusal
        if user.client is None or not user.mri:
            return "you are not connected to Teams"
        try:
            await change(user.client)
        except TeamsError as e:
            return f"Teams refused ({e})"
        return None

    # -- read positions --------------------------------------------------------------------

    async def _teams_read(self, horizon: ConsumptionHorizon) -> None:
        assert self.portal.mxid
        if not horizon.mri or not horizon.message_id or not is_participant_mri(horizon.mri):
            return
        user = self.portal.user_in_room(horizon.mri)
        if user is not None and await user.double_puppet() is None:
            return  # a bridge user's Matrix client sends its own receipts
        event_id = await self._event_read_up_to(horizon.message_id)
        if event_id is None:
            return
        await self.portal.writer.read(horizon.mri, event_id)

    async def own_read(self, source: User, horizon: ConsumptionHorizon) -> None:
        """The user read the chat in a Teams app: with double puppeting, their own Matrix
        read marker follows."""
        if self.portal.mxid and source.mri:
            await self._teams_read(dataclasses.replace(horizon, mri=source.mri))

    async def _event_read_up_to(self, message_id: str) -> EventID | None:
        """The last Matrix event of the newest bridged message not after ``message_id``."""
        parts = await dbm.Message.get_all_parts(
            self.portal.thread_id, self.portal.receiver, message_id
        )
        if parts:
            return parts[-1].mxid
        try:
            until = int(message_id)
        except ValueError:
            return None
        row = await dbm.Message.get_newest_until(self.portal.thread_id, self.portal.receiver, until)
        return row.mxid if row else None

    # -- typing ----------------------------------------------------------------------------

    async def typing(self, message: Message) -> None:
        sender = message.sender_mri
        if not self.portal.mxid or not is_participant_mri(sender):
            return
        assert sender is not None
        if self.portal.user_in_room(sender) is not None:
            return  # our own typing coming back, or that of a bridge user in the room
        typing = message.message_type.lower() == "control/typing"
        try:
            await self.portal.writer.typing(sender, TYPING_TIMEOUT_MS if typing else 0)
        except MatrixRequestError as e:
            self.log.debug("Typing of %s not shown: %s", sender, e)
