"""Teams -> Matrix: events from a portal's queue become Matrix events, each exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mautrix.types import (
    EventID,
    Format,
    MessageEventContent,
    MessageType,
    TextMessageEventContent,
)

from .. import db as dbm
from .. import metrics
from ..db.batch import Query, execute_batch
from ..db.message import FROM_MATRIX, FROM_TEAMS
from ..formatter import teams_to_matrix
from ..puppet import Puppet
from ..teams import ResourceType
from .rules import Incoming, incoming_action
from .writer import txn_id

if TYPE_CHECKING:
    from ..teams import EventMessage, Message
    from ..user import User
    from .portal import Portal

TEXT_TYPES = {"Text", "RichText", "RichText/Html"}


class InboundMixin:
    async def handle_teams_event(self: Portal, source: User, evt: EventMessage) -> None:
        """Dispatch one queued event; every kind has one handler (see TeamsEventsMixin)."""
        if evt.resource_type == ResourceType.NEW_MESSAGE and evt.message is not None:
            message = evt.message
            mtype = message.message_type or ""
            if mtype.startswith("Control/"):
                await self.handle_teams_control(source, message)
            elif mtype.startswith("ThreadActivity/"):
                if not await dbm.Message.get(self.thread_id, self.receiver, message.id):
                    await self.handle_thread_activity(source, message)
                await self._advance_cursor(message.id)
            else:
                await self.handle_teams_message(source, message)
        elif evt.resource_type == ResourceType.MESSAGE_UPDATE and evt.message is not None:
            await self.handle_teams_update(source, evt.message)
        elif evt.resource_type == ResourceType.CONVERSATION_UPDATE and evt.conversation:
            await self.handle_conversation_update(source, evt.conversation)
        elif evt.resource_type == ResourceType.THREAD_UPDATE and evt.thread:
            await self.handle_thread_update(source, evt.thread)
        else:
            self.log.debug("Ignoring %s event %s", evt.resource_type, evt.id)

    async def handle_teams_message(self: Portal, source: User, message: Message) -> None:
        seen = await dbm.Message.lookup_incoming(
            self.thread_id, self.receiver, message.id, message.client_message_id or None
        )
        sent_from = (seen.sent.thread_id, seen.sent.receiver) if seen.sent else None
        action = incoming_action(
            bridged=seen.bridged, has_state=seen.has_state, sent_from=sent_from, portal_key=self.key
        )
        if action is Incoming.SEEN:
            return
        if action is Incoming.NOTE_STATE:
            # E.g. the echo of a message sent from Matrix, mapped when it was sent.
            await execute_batch(self.db, self.bridged_version_queries(message))
            return
        if action is Incoming.CLAIM_ECHO:
            assert seen.sent is not None
            await self._claim_echo(message, seen.sent)
            return
        if not message.sender_mri:
            self.log.warning("Message %s has no sender; skipping", message.id)
            return
        if not await self.ensure_room(source):
            return
        puppet = await Puppet.get_by_mri(message.sender_mri)
        if not puppet.name:
            await puppet.update_name(message.sender_name, "message")
        parts = await self.convert_teams_message(source, message)
        for part, content in enumerate(parts):
            # (Part 0 was looked up above.)
            if part and await dbm.Message.get(self.thread_id, self.receiver, message.id, part):
                continue  # sent before a crash: the rest of the parts still go out
            event_id = await self._send_teams_part(puppet, message, part, content)
            await self._record(message, part, event_id, last=part == len(parts) - 1)

    async def convert_teams_message(
        self: Portal, source: User, message: Message
    ) -> list[MessageEventContent]:
        """The Matrix events one Teams message becomes (media adds parts, see MediaMixin)."""
        content = self._convert_text(message)
        if content is None:
            content = TextMessageEventContent(
                msgtype=MessageType.NOTICE,
                body=f"Unsupported Teams message type: {message.message_type}",
            )
        return [content]

    async def _claim_echo(self: Portal, message: Message, sent: dbm.SentMessage) -> None:
        """An echo of something this bridge posted from this portal maps onto the existing
        Matrix event (which portal may claim it: `rules.incoming_action`)."""
        queries: list[Query] = []
        if sent.message_id is None:
            queries.append(sent.set_message_id_query(message.id))
        queries.append(
            dbm.Message(
                thread_id=self.thread_id,
                receiver=self.receiver,
                message_id=message.id,
                part=0,
                mxid=sent.mxid,
                mx_room=sent.mx_room,
                sender_mri=message.sender_mri,
                timestamp=message_timestamp_ms(message),
                version=message.version,
                origin=FROM_MATRIX,
            ).insert_query()
        )
        await self._store_with_cursor(message, queries)
        sent.message_id = message.id

    def _convert_text(self: Portal, message: Message) -> TextMessageEventContent | None:
        if message.message_type not in TEXT_TYPES:
            return None
        converted = teams_to_matrix(
            message.content or "",
            message_type=message.message_type,
            mentions_property=(message.properties or {}).get("mentions"),
            resolve_mention=self._resolve_mention,
            is_room_mention=self.is_room_mention,
        )
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=converted.body)
        if converted.formatted_body is not None:
            content.format = Format.HTML
            content.formatted_body = converted.formatted_body
        content["m.mentions"] = {"user_ids": list(converted.mentioned_user_ids)}
        if converted.mentions_room:
            content["m.mentions"]["room"] = True
        reply_to = getattr(self, "reply_events", {}).get(converted.reply_to_message_id or "")
        if reply_to:
            # The quoted message's event, looked up before converting (TeamsEventsMixin).
            content.set_reply(reply_to)
        return content

    def _resolve_mention(self: Portal, mri: str) -> tuple[str, str] | None:
        user = self.user_in_room(mri)
        puppet = self.directory.cached_puppet(mri)
        name = (puppet.name if puppet else None) or (user.display_name if user else None)
        if user:
            return user.mxid, name or user.mxid
        if puppet is None:
            return None
        return Puppet.get_mxid_from_mri(mri), name or mri

    async def _send_teams_part(
        self: Portal, puppet: Puppet, message: Message, part: int, content: MessageEventContent
    ) -> EventID:
        return await self.writer.send(
            puppet.mri,
            content,
            txn=txn_id("", f"{self.thread_id}|{self.receiver}|{message.id}|{part}"),
            timestamp=message_timestamp_ms(message),
        )

    async def _record(
        self: Portal, message: Message, part: int, event_id: EventID, *, last: bool = True
    ) -> None:
        """Map a part to its Matrix event; with the last part, the message is done: the
        cursor moves past it and its version is remembered, all in one write."""
        mapping = dbm.Message(
            thread_id=self.thread_id,
            receiver=self.receiver,
            message_id=message.id,
            part=part,
            mxid=event_id,
            mx_room=self.mxid,
            sender_mri=message.sender_mri,
            timestamp=message_timestamp_ms(message),
            version=message.version,
            origin=FROM_TEAMS,
        ).insert_query()
        if last:
            await self._store_with_cursor(message, [mapping])
            metrics.delivered(metrics.TO_MATRIX, message_timestamp_ms(message))
        else:
            await execute_batch(self.db, [mapping])

    async def _store_with_cursor(self: Portal, message: Message, queries: list[Query]) -> None:
        """Store what bridging a message changed, its version and the moved cursor at once."""
        queries = queries + self.bridged_version_queries(message)
        newer = _newer(message.id, self.last_message_id)
        if newer:
            queries.append(self.cursor_query(message.id))
        await execute_batch(self.db, queries)
        if newer:
            self.last_message_id = message.id

    async def _advance_cursor(self: Portal, message_id: str) -> None:
        if _newer(message_id, self.last_message_id):
            await execute_batch(self.db, [self.cursor_query(message_id)])
            self.last_message_id = message_id


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
