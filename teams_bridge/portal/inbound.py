"""Teams -> Matrix: the events of a portal's queue become Matrix events, each exactly once.

`Inbound.handle` is the one dispatch table: a new message (``handle_message``), an edit,
delete or reaction (`Updates`), typing, membership, renames and read positions (`Roster`,
`Room`), a chat's new picture (`Room`). A new message goes through one pipeline:

1. ``incoming_action`` (rules.py): already bridged, an echo of our own send, or new;
2. the room is made if it does not exist yet (`Room.ensure`);
3. ``convert``: the Matrix events it becomes (a call's outcome, files with their caption,
   or text with mentions and its reply), placed in its channel thread (`Threads.place`);
4. each part is sent through the portal's writer with a transaction id derived from the
   message key, and recorded (the mapping; with the last part the cursor and the version
   bridged, in one write). A message of one part is recorded behind the portal's next
   send (``_record_later``); whatever reads the records waits for them (``settled``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

from mautrix.types import (
    EventID,
    Format,
    MessageEventContent,
    MessageType,
    RoomID,
    TextMessageEventContent,
)

from .. import db as dbm
from .. import metrics
from ..db.batch import Query, execute_batch
from ..db.message import FROM_MATRIX, FROM_TEAMS
from ..formatter import teams_to_matrix
from ..puppet import Puppet
from ..teams import is_call_log_id, is_participant_mri, parse_call_event
from .calls import CALL_LOG_PREFIX, call_notice, is_call_outcome
from .replies import quoted_events, quoted_message_ids
from .rules import Incoming, TeamsEvent, incoming_action, teams_event_kind
from .writer import Sender, Voice, txn_id

if TYPE_CHECKING:
    from ..teams import CallEvent, EventMessage, Message
    from ..user import User
    from .portal import Portal

TEXT_TYPES = {"Text", "RichText", "RichText/Html"}
# Messages posted from this portal whose mapping is stored and whose echo has not come yet,
# remembered at most (the oldest is forgotten first; its echo is then looked up).
EXPECTED_ECHOES = 32
# Records of sent messages being written at once behind the portal's sends, at most; a send
# after that waits for them (the database is slow or away).
RECORDS_AHEAD = 8

Handler = Callable[["User", "EventMessage"], Awaitable[None]]


class _Post:
    """A post from Matrix on its way to Teams: who posts it, and its echo once it came."""

    __slots__ = ("sender_mri", "echo")

    def __init__(self, sender_mri: str) -> None:
        self.sender_mri = sender_mri
        self.echo: tuple[User, Message] | None = None


class Inbound:
    """Teams -> Matrix for one portal. Owns the portal's cursor (``last_message_id``)."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.log = portal.log
        # Teams message id -> clientmessageid of posts from Matrix, mapped, echo not seen.
        self._expected_echoes: dict[str, str] = {}
        # clientmessageid -> a post from Matrix on its way, not yet mapped (made when needed).
        self._posts: dict[str, _Post] | None = None
        # The newest record of `_record_later` until it is stored, the ids of the messages
        # whose records are not stored yet, and the newest cursor among them.
        self._recording: asyncio.Future[None] | None = None
        self._unrecorded: set[str] = set()
        self._cursor_queued: str | None = None
        # While history is put in: the ids of its messages the database does not know.
        self._fresh: set[str] | None = None

    # The handler of each kind of event (one table for every portal: a portal loaded and
    # idle should cost little).
    _HANDLERS: ClassVar[dict[TeamsEvent, str]] = {
        TeamsEvent.MESSAGE: "_message",
        TeamsEvent.TYPING: "_typing",
        TeamsEvent.ACTIVITY: "_thread_activity",
        TeamsEvent.UPDATE: "_update",
        TeamsEvent.THREAD: "_thread",
        TeamsEvent.OWN_READ: "_own_read",
    }

    # -- the one dispatch table --------------------------------------------------------------

    async def handle(self, source: User, evt: EventMessage) -> None:
        """Hand one queued event to the handler for its kind."""
        kind = teams_event_kind(
            evt.resource_type,
            evt.message.message_type if evt.message else None,
            has_message=evt.message is not None,
            has_thread=evt.thread is not None,
            has_own_horizon=bool(evt.conversation and evt.conversation.consumption_horizon),
        )
        name = self._HANDLERS.get(kind) if kind else None
        if name is None:
            self.log.debug("Ignoring %s event %s", evt.resource_type, evt.id)
            return
        handler: Handler = getattr(self, name)
        if kind is not TeamsEvent.MESSAGE:
            await self.settled()  # whatever it changes or reads, it comes after the records
        await handler(source, evt)

    async def _message(self, source: User, evt: EventMessage) -> None:
        assert evt.message is not None
        await self.handle_message(source, evt.message)

    async def _typing(self, source: User, evt: EventMessage) -> None:
        assert evt.message is not None
        await self.portal.roster.typing(evt.message)

    async def _update(self, source: User, evt: EventMessage) -> None:
        assert evt.message is not None
        await self.portal.updates.handle(source, evt.message)

    async def _thread(self, source: User, evt: EventMessage) -> None:
        assert evt.thread is not None
        await self.portal.room.update_avatar(source, evt.thread)

    async def _own_read(self, source: User, evt: EventMessage) -> None:
        assert evt.conversation is not None and evt.conversation.consumption_horizon
        await self.portal.roster.own_read(source, evt.conversation.consumption_horizon)

    async def _thread_activity(self, source: User, evt: EventMessage) -> None:
        portal = self.portal
        message = evt.message
        assert message is not None
        if not await dbm.Message.get(portal.thread_id, portal.receiver, message.id):
            await portal.roster.thread_activity(source, message)
        await self.advance_cursor(message.id)

    # -- new messages ------------------------------------------------------------------------

    async def handle_message(self, source: User, message: Message) -> None:
        portal = self.portal
        call = parse_call_event(message)
        if self._recording is not None and (call is not None or not self._stands_alone(message)):
            self.log.debug("Message %s waits for %d records", message.id, len(self._unrecorded))
            await self.settled()
        if call is not None and is_call_outcome(message, call):
            await self._call_outcome(source, message, call)
            return
        if is_call_log_id(message.conversation_id):
            return  # an unreadable call-log entry
        if is_participant_mri(message.sender_mri) and message.sender_mri != source.mri:
            puppet = await Puppet.get_by_mri(message.sender_mri or "")
            await puppet.sync_name_from_message(message.sender_name, source.client)
            puppet.schedule_avatar_sync(source.client)
        if self._hold_echo(source, message):
            return  # the delivery worker stores what it changes, with the post's mapping
        if self._is_expected_echo(message):
            # The echo of a post from this portal, mapped already: nothing to bridge, and
            # its version is not stored (a statement per message for nothing an update
            # needs: with no version known, an update of it is an edit only if Teams marks
            # it edited, and a Matrix edit or delete stores its own before it is sent).
            return
        surely_new = self._surely_new(message)
        if surely_new:
            if self._fresh:
                # Bridged now: a second copy of it is looked up.
                self._fresh.discard(message.id)
            seen = dbm.Incoming(bridged=False, has_state=False, sent=None)
        else:
            seen = await dbm.Message.lookup_incoming(
                portal.thread_id, portal.receiver, message.id, message.client_message_id or None
            )
        sent_from = (seen.sent.thread_id, seen.sent.receiver) if seen.sent else None
        action = incoming_action(
            bridged=seen.bridged,
            has_state=seen.has_state,
            sent_from=sent_from,
            portal_key=portal.key,
        )
        if action is Incoming.SEEN:
            return
        if action is Incoming.NOTE_STATE:
            # E.g. the echo of a message sent from Matrix, mapped when it was sent.
            await execute_batch(portal.db, portal.updates.version_queries(message))
            return
        if action is Incoming.CLAIM_ECHO:
            assert seen.sent is not None
            await self._claim_echo(message, seen.sent)
            return
        if not message.sender_mri:
            self.log.warning("Message %s has no sender; skipping", message.id)
            return
        if not await portal.room.ensure(source, upto=message.id):
            return
        puppet = await Puppet.get_by_mri(message.sender_mri)
        if not puppet.name:
            await puppet.update_name(message.sender_name, "message")
        parts = await self.convert(source, message)
        for part, content in enumerate(parts):
            # (Part 0 was looked up above, unless the message was surely new: a message of
            # several parts may have been cut short by a crash after its first.)
            if (part or (surely_new and len(parts) > 1)) and await dbm.Message.get(
                portal.thread_id, portal.receiver, message.id, part
            ):
                continue  # sent before a crash: the rest of the parts still go out
            event_id = await portal.writer.send(
                puppet.mri,
                content,
                txn=txn_id("", f"{portal.thread_id}|{portal.receiver}|{message.id}|{part}"),
                timestamp=message_timestamp_ms(message),
            )
            if len(parts) == 1:
                self._record_later(message, event_id)
            else:
                await self.settled()
                await self._record(message, part, event_id, last=part == len(parts) - 1)

    async def put_history(self, source: User, limit: int, *, before: str | None) -> int:
        """A new room made for a message that just arrived gets the chat's history first:
        the newest ``limit`` messages older than ``before``, oldest first, each handled as
        a live one (and its reactions as an update); how many."""
        if source.client is None or limit <= 0:
            return 0
        portal = self.portal
        page = await source.client.list_messages(portal.thread_id, limit=limit)
        history = [m for m in page if is_history(m) and (before is None or _newer(before, m.id))]
        # One look-up for the whole page (a room made again for a chat may have mapped some
        # of it before); the rest are surely new, and go out without a look-up each.
        await self.settled()
        known = await dbm.Message.known_ids(
            portal.thread_id, portal.receiver, [m.id for m in history]
        )
        self._fresh = {m.id for m in history} - known
        try:
            for message in history:
                await self.handle_message(source, message)
                if message.emotions:
                    await self.settled()  # its reactions need its mapping
                    await portal.updates.handle(source, message)
        finally:
            self._fresh = None
        return len(history)

    async def convert(self, source: User, message: Message) -> list[MessageEventContent]:
        """The Matrix events one Teams message becomes, in these steps:

        1. a call's start or end is one notice, and nothing more;
        2. what the conversion needs from the database is loaded first: the events of
           quoted messages, the mentioned users' puppets;
        3. a message with files: its caption, then one part per file (`Media.convert`);
           otherwise its text, with mentions and the quoted message as a reply
           (``convert_text``), or a notice for a type that cannot be shown;
        4. in a channel, a reply goes into its Matrix thread (`Threads.place`).
        """
        portal = self.portal
        call = parse_call_event(message)
        if call is not None:
            return [TextMessageEventContent(msgtype=MessageType.NOTICE, body=call_notice(call))]
        replies = await quoted_events(portal, message)
        for mention in message.mentions:
            if not mention.is_conversation:
                await Puppet.get_by_mri(mention.mri)
        parts = await portal.media.convert(source, message, replies)
        if parts is None:
            content = self.convert_text(message, replies)
            if content is None:
                content = TextMessageEventContent(
                    msgtype=MessageType.NOTICE,
                    body=f"Unsupported Teams message type: {message.message_type}",
                )
            parts = [content]
        return await portal.threads.place(message, parts)

    def convert_text(
        self, message: Message, replies: dict[str, EventID] | None = None
    ) -> TextMessageEventContent | None:
        """A text message's Matrix content; ``replies``: the events of the messages it may
        quote (see ``quoted_events``). None for a message type that is not text."""
        if message.message_type not in TEXT_TYPES:
            return None
        converted = teams_to_matrix(
            message.content or "",
            message_type=message.message_type,
            mentions_property=(message.properties or {}).get("mentions"),
            resolve_mention=self._resolve_mention,
            is_room_mention=self.portal.threads.is_room_mention,
        )
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=converted.body)
        if converted.formatted_body is not None:
            content.format = Format.HTML
            content.formatted_body = converted.formatted_body
        content["m.mentions"] = {"user_ids": list(converted.mentioned_user_ids)}
        if converted.mentions_room:
            content["m.mentions"]["room"] = True
        reply_to = (replies or {}).get(converted.reply_to_message_id or "")
        if reply_to:
            content.set_reply(reply_to)
        return content

    def _resolve_mention(self, mri: str) -> tuple[str, str] | None:
        portal = self.portal
        user = portal.user_in_room(mri)
        puppet = portal.directory.cached_puppet(mri)
        name = (puppet.name if puppet else None) or (user.display_name if user else None)
        if user:
            return user.mxid, name or user.mxid
        if puppet is None:
            return None
        return Puppet.get_mxid_from_mri(mri), name or mri

    def _surely_new(self, message: Message) -> bool:
        """Whether the database can know nothing of ``message``, so that looking it up
        can be skipped: it comes after the cursor (everything bridged from Teams so far,
        in order; a copy of one bridged already is not after it) or is history the
        database did not know when `put_history` looked its page up (and not bridged
        since), and it is not from a bridge user (only their messages can be the bridge's
        own posts, which are mapped when sent and have a send record; a message's state is
        only ever stored with its mapping)."""
        portal = self.portal
        if message.id in self._unrecorded:
            return False  # sent, and its record (which moves the cursor past it) not stored
        sender = message.sender_mri
        if not sender or portal.directory.user_by_mri(sender) is not None:
            return False
        if self._fresh is not None and message.id in self._fresh:
            return True  # history the database did not know (`put_history`)
        # Records on their way count: every message up to their cursor has been sent.
        cursor = self._cursor_queued or portal.last_message_id
        if cursor is None or not (message.id.isdigit() and cursor.isdigit()):
            return False
        return int(message.id) > int(cursor)

    def expect_echo(self, message_id: str, client_message_id: str) -> None:
        """A post from Matrix was mapped to Teams message ``message_id``: its echo, when it
        comes, needs no lookup."""
        echoes = self._expected_echoes
        echoes[message_id] = client_message_id
        while len(echoes) > EXPECTED_ECHOES:
            del echoes[next(iter(echoes))]

    # -- posts from Matrix whose echo may come before they are mapped ---------------------

    def expect_post(self, client_message_id: str, sender_mri: str) -> None:
        """A post from Matrix with ``client_message_id`` is about to go out as ``sender_mri``.
        Its echo often comes before the post is mapped; it is then held (`_hold_echo`) and
        the worker stores its version with the mapping (`held_echo_queries`), one write."""
        posts = self._posts
        if posts is None:
            posts = self._posts = {}
        posts.setdefault(client_message_id, _Post(sender_mri))
        while len(posts) > EXPECTED_ECHOES:
            self._release(posts.pop(next(iter(posts))))

    def held_echo_queries(self, client_message_id: str, message_id: str) -> list[Query] | None:
        """What the post's held echo adds to the write that maps the post to Teams message
        ``message_id`` (its version), or ``None`` when no echo of it came (it is then
        expected later: `expect_echo`)."""
        post = self._posts.get(client_message_id) if self._posts else None
        if post is None or post.echo is None or post.echo[1].id != message_id:
            return None
        return self.portal.updates.version_queries(post.echo[1])

    def end_post(self, client_message_id: str, *, stored: bool) -> None:
        """The post is mapped (``stored``: with what its held echo changes) or given up; an
        echo held for it and not stored is handled as any message."""
        post = self._posts.pop(client_message_id, None) if self._posts else None
        if post is not None and not stored:
            self._release(post)

    def _hold_echo(self, source: User, message: Message) -> bool:
        """Whether ``message`` is the first echo of a post not mapped yet, now held."""
        posts = self._posts
        client_message_id = message.client_message_id
        if not posts or not client_message_id:
            return False
        post = posts.get(client_message_id)
        if post is None or post.echo is not None or post.sender_mri != message.sender_mri:
            return False
        post.echo = (source, message)
        return True

    def _release(self, post: _Post) -> None:
        """A held echo goes back into the portal's queue, to be handled as any message."""
        if post.echo is not None:
            source, echo = post.echo
            self.portal.requeue_message(source, echo)

    def _is_expected_echo(self, message: Message) -> bool:
        """Whether ``message`` is the first echo of a post `expect_echo` was told of (the
        id and the clientmessageid both match); it is expected only once."""
        expected = self._expected_echoes.pop(message.id, None)
        return expected is not None and expected == message.client_message_id

    async def _claim_echo(self, message: Message, sent: dbm.SentMessage) -> None:
        """An echo of something this bridge posted from this portal maps onto the existing
        Matrix event (which portal may claim it: `rules.incoming_action`)."""
        queries: list[Query] = []
        if sent.message_id is None:
            queries.append(sent.set_message_id_query(message.id))
        queries.append(
            self._mapping(message, 0, sent.mxid, FROM_MATRIX, room=sent.mx_room).insert_query()
        )
        await self._store_with_cursor(message, queries)
        sent.message_id = message.id

    # -- calls -------------------------------------------------------------------------------

    async def _call_outcome(self, source: User, message: Message, call: CallEvent) -> None:
        """How a call ended becomes a notice once per call, however many call-log entries
        and ``Event/Call`` messages tell of it."""
        portal = self.portal
        from_log = is_call_log_id(message.conversation_id)
        if from_log and call.conversation_id != portal.thread_id:
            return
        if not from_log and await dbm.Message.get(portal.thread_id, portal.receiver, message.id):
            return  # told under its own message id (before calls were told once)
        key = f"{CALL_LOG_PREFIX}{call.call_id or message.id}"
        if not await dbm.Message.get(portal.thread_id, portal.receiver, key):
            if not await portal.room.ensure(source):
                return
            assert portal.mxid
            content = TextMessageEventContent(msgtype=MessageType.NOTICE, body=call_notice(call))
            when = call.end_time or call.start_time
            timestamp = int(when.timestamp() * 1000) if when else message_timestamp_ms(message)
            event_id = await portal.writer.send(
                _call_sender(call),
                content,
                txn=txn_id("", f"{portal.thread_id}|{key}"),
                timestamp=timestamp,
            )
            mapping = self._mapping(message, 0, event_id, FROM_TEAMS)
            mapping.message_id, mapping.sender_mri = key, call.originator
            mapping.timestamp, mapping.version = timestamp, None
            await mapping.insert()
        if not from_log:
            await self.advance_cursor(message.id)

    # -- recording and the cursor ------------------------------------------------------------

    def _stands_alone(self, message: Message) -> bool:
        """Whether bridging ``message`` reads nothing the records being written will store:
        it is surely new (not one of them again) and refers to no other message (a quote,
        a channel thread's root). Such a message is sent without waiting for them."""
        return (
            len(self._unrecorded) < RECORDS_AHEAD
            and self._surely_new(message)
            and not (self.portal.is_channel and message.reply_root_id)
            and not quoted_message_ids(message)
        )

    def _record_later(self, message: Message, event_id: EventID) -> None:
        """Store a one-part message's mapping, cursor and version behind the portal's next
        send instead of before it. Waiting for the database between one send's answer and
        the next send spread a portal's sends out in time, and each send that reaches the
        homeserver alone costs it more (its background work runs once per batch of new
        events). The record goes to the process's `RecordWriter`, which writes it with
        other portals' in one statement, in order; anything that reads what they store
        waits for them (`settled`). A crash before a record is stored leaves the message
        after the cursor: it is sent again with the same transaction id, as when the crash
        came between a send and its record before."""
        portal = self.portal
        ahead = self._cursor_queued or portal.last_message_id
        cursor = message.id if _newer(message.id, ahead) else None
        record = dbm.Record(
            portal.thread_id,
            portal.receiver,
            [self._mapping(message, 0, event_id, FROM_TEAMS)],
            portal.updates.version_state(message),
            cursor,
        )
        if cursor is not None:
            self._cursor_queued = cursor
        self._unrecorded.add(message.id)
        done = self._track(record)
        done.add_done_callback(functools.partial(self._recorded, message, event_id, record))

    def _track(self, record: dbm.Record) -> asyncio.Future[None]:
        """Queue ``record`` in the process's writer as the room's newest: `settled` waits
        for it, and so for every record of the room before it (batches go in order)."""
        done = dbm.RecordWriter.current.add(record)
        self._recording = done
        return done

    def record_later(self, record: dbm.Record) -> asyncio.Future[None]:
        """Queue the record of a Matrix event delivered to Teams (see `_track`)."""
        done = self._track(record)
        done.add_done_callback(self._settled_if_newest)
        return done

    def _settled_if_newest(self, done: asyncio.Future[None]) -> None:
        if self._recording is done:
            self._recording = None
            self._cursor_queued = None

    def _recorded(
        self, message: Message, event_id: EventID, record: dbm.Record, done: asyncio.Future[None]
    ) -> None:
        """A record of `_record_later` is stored, or given up."""
        portal = self.portal
        self._unrecorded.discard(message.id)
        if self._recording is done:
            self._recording = None
            self._cursor_queued = None
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is not None:
            self.log.error("Giving up storing the mapping of message %s: %s", message.id, error)
            return
        if record.cursor is not None and _newer(record.cursor, portal.last_message_id):
            portal.last_message_id = record.cursor
        metrics.delivered(metrics.TO_MATRIX, message_timestamp_ms(message))
        portal.threads.note_recorded(message, event_id)

    async def settled(self) -> None:
        """Wait until the records being written are stored (or given up)."""
        while self._recording is not None:
            dbm.RecordWriter.current.flush()
            await asyncio.wait({self._recording})

    def is_idle(self) -> bool:
        return self._recording is None

    async def _record(
        self, message: Message, part: int, event_id: EventID, *, last: bool = True
    ) -> None:
        """Map a part to its Matrix event; with the last part, the message is done: the
        cursor moves past it and its version is remembered, all in one write."""
        portal = self.portal
        mapping = self._mapping(message, part, event_id, FROM_TEAMS).insert_query()
        if last:
            await self._store_with_cursor(message, [mapping])
            metrics.delivered(metrics.TO_MATRIX, message_timestamp_ms(message))
        else:
            await execute_batch(portal.db, [mapping])
        portal.threads.note_recorded(message, event_id)

    def _mapping(
        self,
        message: Message,
        part: int,
        event_id: EventID,
        origin: str,
        *,
        room: RoomID | None = None,
    ) -> dbm.Message:
        """The row that maps a Teams message (one part of it) to its Matrix event."""
        portal = self.portal
        return dbm.Message(
            thread_id=portal.thread_id,
            receiver=portal.receiver,
            message_id=message.id,
            part=part,
            mxid=event_id,
            mx_room=room or portal.mxid,
            sender_mri=message.sender_mri,
            timestamp=message_timestamp_ms(message),
            version=message.version,
            origin=origin,
        )

    async def _store_with_cursor(self, message: Message, queries: list[Query]) -> None:
        """Store what bridging a message changed, its version and the moved cursor at once."""
        portal = self.portal
        queries = queries + portal.updates.version_queries(message)
        newer = _newer(message.id, portal.last_message_id)
        if newer:
            queries.append(portal.cursor_query(message.id))
        await execute_batch(portal.db, queries)
        if newer:
            portal.last_message_id = message.id

    async def advance_cursor(self, message_id: str) -> None:
        portal = self.portal
        if _newer(message_id, portal.last_message_id):
            await execute_batch(portal.db, [portal.cursor_query(message_id)])
            portal.last_message_id = message_id

    def start_cursor_at(self, message_id: str) -> None:
        """Where a new room's catch-up starts (saved with the room)."""
        self.portal.last_message_id = message_id


def _call_sender(call: CallEvent) -> Sender:
    """The caller, as for the messages they write in Teams."""
    mri = call.originator
    return mri if mri and is_participant_mri(mri) else Voice.ROOM


def is_history(message: Message) -> bool:
    """Whether a message of the chat's past belongs in a new room's history: what was
    said (text, files, calls), not deleted; not typing or roster changes, which tell of
    a past the room already shows as it is now."""
    mtype = message.message_type or ""
    if mtype.startswith(("Control/", "ThreadActivity/")):
        return False
    return not message.is_deleted


def message_timestamp_ms(message: Message) -> int:
    when = message.arrival_time or message.compose_time
    if when is not None:
        return int(when.timestamp() * 1000)
    try:
        return int(message.id)
    except (TypeError, ValueError):
        return 0


def _newer(candidate: str, current: str | None) -> bool:
    if current is None:
        return True
    try:
        return int(candidate) > int(current)
    except ValueError:
        return candidate > current
