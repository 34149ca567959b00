"""Room lifecycle and metadata: creating the Matrix room, names, members, invites."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.types import EventType, RoomID

from ..puppet import Puppet
from ..teams import Conversation, ConversationKind, Profile, Thread

if TYPE_CHECKING:
    from ..user import User
    from .portal import Portal

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
            before = (self.kind, self.topic)
            self.kind = KIND_NAMES.get(conversation.kind, "group")
            if conversation.topic:
                self.topic = conversation.topic
            if not self.mxid:
                if conversation.last_message and self.last_message_id is None:
                    # History before the room existed is not replayed (no backfill yet);
                    # catch-up starts from here.
                    self.last_message_id = conversation.last_message.id
                await self._create_room(source, conversation.members)
            else:
                if (self.kind, self.topic) != before:
                    await self.save()
                await self._ensure_user_invited(source)
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
            if self.thread_id.endswith("@unq.gbl.spaces") or "uni01_" in self.thread_id:
                self.kind = "one_to_one"
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
            puppets.append(puppet)
        return puppets

    def _room_name(self: Portal, puppets: list[Puppet], own_mri: str | None) -> str | None:
        if self.topic:
            return self.topic
        others = [p for p in puppets if p.mri != own_mri]
        if self.is_direct:
            if not self.config["bridge.private_chat_portal_meta"]:
                return None
            return others[0].name if others and others[0].name else None
        names = sorted(p.name or p.mri for p in others)
        if not names:
            return None
        if len(names) > 5:
            return ", ".join(names[:5]) + f" and {len(names) - 5} others"
        return ", ".join(names)

    async def _create_room(self: Portal, source: User, hint: list[str]) -> None:
        members, thread = await self._fetch_members(source, hint)
        if thread and thread.topic:
            self.topic = thread.topic
        puppets = await self._update_puppets(source, members, thread)
        if self.is_direct:
            others = [p for p in puppets if p.mri != source.mri]
            if others:
                self.other_user_mri = others[0].mri
            else:
                self.kind = "group"
        self.name = self._room_name(puppets, source.mri)

        intent = self.main_intent
        if intent is not self.az.intent:
            await intent.ensure_registered()
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
        # The creator's power is implicit (and may not be listed in room v12+).
        power_users = {self.az.bot_mxid: 100} if intent is not self.az.intent else {}
        invitees = [source.mxid]
        if intent is not self.az.intent:
            invitees.append(self.az.bot_mxid)
        self.log.info("Creating Matrix room (%s, %d members)", self.kind, len(members))
        room_id = await intent.create_room(
            name=self.name,
            is_direct=self.is_direct,
            invitees=invitees,
            initial_state=initial_state,
            power_level_override={"users": power_users} if power_users else None,
        )
        self.mxid = room_id
        self.name_set = bool(self.name)
        await self.save()
        self._add_to_cache()
        self._known_users.add(source.mxid)
        if intent is not self.az.intent:
            try:
                await self.az.intent.ensure_joined(room_id)
            except Exception:
                self.log.warning("Bridge bot could not join the DM room", exc_info=True)
        for puppet in puppets:
            if puppet.mri == source.mri:
                continue
            try:
                await puppet.default_mxid_intent.ensure_joined(room_id)
            except Exception:
                self.log.warning("Failed to add %s to the room", puppet.mri, exc_info=True)

    async def _ensure_user_invited(self: Portal, source: User) -> None:
        assert self.mxid
        try:
            await self.main_intent.invite_user(self.mxid, source.mxid, check_cache=True)
        except Exception:
            self.log.debug("Invite of %s not needed or failed", source.mxid, exc_info=True)
        self._known_users.add(source.mxid)
