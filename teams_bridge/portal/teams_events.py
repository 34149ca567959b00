"""Teams -> Matrix for everything that is not a new chat message: edits, deletes and
reactions (MessageUpdate, see UpdatesMixin), typing (Control/*), membership, topics and read
positions (ThreadActivity/*, see RosterMixin), calls, and conversation/thread updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.types import (
    EventID,
    MessageEventContent,
    MessageType,
    TextMessageEventContent,
)

from .. import db as dbm
from ..db.message import FROM_TEAMS
from ..puppet import Puppet
from ..teams import is_call_log_id, is_participant_mri, parse_call_event
from .calls import CALL_LOG_PREFIX, call_notice, is_call_outcome
from .inbound import message_timestamp_ms
from .replies import quoted_events
from .roster import RosterMixin
from .updates import UpdatesMixin
from .writer import Sender, Voice, txn_id

if TYPE_CHECKING:
    from ..teams import CallEvent, Conversation, Message, Thread
    from ..user import User
    from .portal import Portal


class TeamsEventsMixin(UpdatesMixin, RosterMixin):
    # Quoted Teams message id -> Matrix event, for the message being converted.
    reply_events: dict[str, EventID]

    async def handle_teams_message(self: Portal, source: User, message: Message) -> None:
        call = parse_call_event(message)
        if call is not None and is_call_outcome(message, call):
            await self._bridge_call_outcome(source, message, call)
            return
        if is_call_log_id(message.conversation_id):
            return  # an unreadable call-log entry
        if is_participant_mri(message.sender_mri) and message.sender_mri != source.mri:
            puppet = await Puppet.get_by_mri(message.sender_mri or "")
            await puppet.sync_name_from_message(message.sender_name, source.client)
            puppet.schedule_avatar_sync(source.client)
        # What the (synchronous) text conversion needs from the database, loaded first:
        # the events of quoted messages, and the mentioned users' puppets.
        self.reply_events = await quoted_events(self, message)
        for mention in message.mentions:
            if not mention.is_conversation:
                await Puppet.get_by_mri(mention.mri)
        try:
            # Stores the version bridged too (see UpdatesMixin.bridged_version_queries).
            await super().handle_teams_message(source, message)  # type: ignore[misc]
        finally:
            self.reply_events = {}

    async def convert_teams_message(
        self: Portal, source: User, message: Message
    ) -> list[MessageEventContent]:
        call = parse_call_event(message)
        if call is not None:
            return [TextMessageEventContent(msgtype=MessageType.NOTICE, body=call_notice(call))]
        return await super().convert_teams_message(source, message)  # type: ignore[misc]

    async def handle_teams_control(self: Portal, source: User, message: Message) -> None:
        """Control/Typing and friends: never stored, never advance the cursor."""
        if message.message_type.lower() in ("control/typing", "control/cleartyping"):
            await self.bridge_teams_typing(message)

    async def handle_thread_activity(self: Portal, source: User, message: Message) -> None:
        await self.bridge_thread_activity(source, message)

    async def handle_conversation_update(
        self: Portal, source: User, conversation: Conversation
    ) -> None:
        pass

    async def handle_thread_update(self: Portal, source: User, thread: Thread) -> None:
        await self.update_room_avatar(source, thread)

    # -- calls -----------------------------------------------------------------------------

    async def _bridge_call_outcome(
        self: Portal, source: User, message: Message, call: CallEvent
    ) -> None:
        """How a call ended becomes a notice once per call, however many call-log entries
        and ``Event/Call`` messages tell of it."""
        from_log = is_call_log_id(message.conversation_id)
        if from_log and call.conversation_id != self.thread_id:
            return
        if not from_log and await dbm.Message.get(self.thread_id, self.receiver, message.id):
            return  # told under its own message id (before calls were told once)
        key = f"{CALL_LOG_PREFIX}{call.call_id or message.id}"
        if not await dbm.Message.get(self.thread_id, self.receiver, key):
            if not await self.ensure_room(source):
                return
            assert self.mxid
            content = TextMessageEventContent(msgtype=MessageType.NOTICE, body=call_notice(call))
            when = call.end_time or call.start_time
            timestamp = int(when.timestamp() * 1000) if when else message_timestamp_ms(message)
            event_id = await self.writer.send(
                self._call_sender(call),
                content,
                txn=txn_id("", f"{self.thread_id}|{key}"),
                timestamp=timestamp,
            )
            await dbm.Message(
                thread_id=self.thread_id,
                receiver=self.receiver,
                message_id=key,
                part=0,
                mxid=event_id,
                mx_room=self.mxid,
                sender_mri=call.originator,
                timestamp=timestamp,
                version=None,
                origin=FROM_TEAMS,
            ).insert()
        if not from_log:
            await self._advance_cursor(message.id)

    def _call_sender(self: Portal, call: CallEvent) -> Sender:
        """The caller, as for the messages they write in Teams."""
        mri = call.originator
        return mri if mri and is_participant_mri(mri) else Voice.ROOM
