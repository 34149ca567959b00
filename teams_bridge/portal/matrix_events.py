"""Matrix -> Teams for everything that is not a new message: edits, redactions, reactions
(all stored durably like messages), and the ephemeral typing, read receipts and room names.

What is changed in Teams is written to the database first (reaction rows, the message's
state), so the echo Teams pushes back is recognised as ours, however fast it comes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mautrix.api import Method, Path
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, UserID

from .. import db as dbm
from ..delivery.errors import NotSupported, Permanent, Transient, call_teams
from ..delivery.intake import ENCRYPTED
from ..delivery.results import Done, Result, Skipped
from ..puppet import Puppet
from ..teams import unicode_to_reaction_key
from .calls import is_chat_message_id
from .replies import teams_quote_for
from .updates import html_digest

if TYPE_CHECKING:
    from ..user import User
    from .portal import Portal

# Teams rate-limits typing notices; its own clients send at most one per 20 s per chat.
TYPING_INTERVAL = 20.0
TEXT_MSGTYPES = ("m.text", "m.notice", "m.emote")


def _relation(content: dict[str, Any]) -> dict[str, Any]:
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


class MatrixEventsMixin:
    _typing_sent: dict[str, float]
    _read_sent: dict[str, int]

    # -- edits -----------------------------------------------------------------------------

    async def deliver_edit(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> Result:
        assert sender.client is not None and self.mxid
        content = raw.get("content") or {}
        edited = _relation(content).get("event_id")
        original = await self._original_of(EventID(edited)) if isinstance(edited, str) else None
        if original is None:
            # As mautrix bridges do: an edit of something that never reached Teams is
            # dropped (with a log line), not sent as a new message.
            return Skipped("the edited message was not bridged to Teams")
        message, original_raw = original
        if message.sender_mri != sender.mri:
            raise NotSupported("only your own messages can be edited in Teams")
        new_content = content.get("m.new_content")
        if not isinstance(new_content, dict):
            new_content = dict(content)
            body = str(new_content.get("body") or "")
            new_content["body"] = body[2:] if body.startswith("* ") else body
            new_content.pop("format", None)
            new_content.pop("formatted_body", None)
        if new_content.get("msgtype") not in TEXT_MSGTYPES:
            raise NotSupported("only text can be edited in Teams")
        await self.load_mentioned_puppets(new_content)
        html, properties = self._convert_outgoing(sender, new_content)
        # The reply quote is part of a Teams message's content: keep it through edits.
        quote = await teams_quote_for(self, original_raw) if original_raw else None
        if quote is not None:
            html = quote.html + html
            properties["qtdMsgs"] = quote.qtd_msgs
        client_message_id = await self.delivery.claim(row)
        state = await dbm.MessageState.get(self.thread_id, self.receiver, message.message_id)
        await dbm.MessageState(
            self.thread_id,
            self.receiver,
            message.message_id,
            state.edit_time if state else None,
            html_digest("RichText/Html", html, properties.get("mentions")),
            False,
        ).upsert()
        await call_teams(
            "the edit",
            sender.client.edit_message(
                self.thread_id,
                message.message_id,
                html,
                display_name=sender.display_name or "",
                properties=properties,
                client_message_id=client_message_id,
            ),
            undo=self._restore_state(message.message_id, state),
        )
        return Done()

    async def _original_of(
        self: Portal, event_id: EventID
    ) -> tuple[dbm.Message, dict[str, Any] | None] | None:
        """The bridged message an edit targets (following an edit of an edit) and, for a
        message sent from Matrix, the content it was sent with."""
        assert self.mxid
        for _ in range(5):
            message = await dbm.Message.get_by_mxid(event_id, self.mxid)
            if message is not None:
                if not is_chat_message_id(message.message_id):
                    return None
                if not message.from_matrix:
                    return message, None
                return message, await self._event_content(event_id)
            relates = _relation(await self._event_content(event_id) or {})
            target = relates.get("event_id")
            if relates.get("rel_type") != "m.replace" or not isinstance(target, str) or not target:
                return None
            event_id = EventID(target)
        return None

    async def _event_content(self: Portal, event_id: EventID) -> dict[str, Any] | None:
        """An event's content as the homeserver has it (decrypted, when the bridge can);
        None for an event it does not show the bridge, or cannot be decrypted."""
        assert self.mxid
        path = Path.v3.rooms[self.mxid].event[event_id]
        try:
            raw = await self.az.intent.api.request(Method.GET, path)
        except MatrixRequestError as e:
            if 400 <= e.http_status < 500 and e.http_status != 429:
                return None
            raise Transient(f"the homeserver did not answer ({e})") from e
        if isinstance(raw, dict) and raw.get("type") == ENCRYPTED:
            try:
                raw = await self.delivery.decrypt(raw)
            except Permanent:
                return None
        content = raw.get("content") if isinstance(raw, dict) else None
        return content if isinstance(content, dict) else None

    # -- reactions -------------------------------------------------------------------------

    async def deliver_reaction(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> Result:
        assert sender.client is not None and sender.mri and self.mxid
        relates = _relation(raw.get("content") or {})
        target_id, emoji = relates.get("event_id"), relates.get("key")
        if relates.get("rel_type") != "m.annotation" or not target_id or not emoji:
            return Skipped("not a reaction to a message")
        target = await dbm.Message.get_by_mxid(EventID(str(target_id)), self.mxid)
        if target is None or not is_chat_message_id(target.message_id):
            return Skipped("the message reacted to was not bridged to Teams")
        try:
            key = unicode_to_reaction_key(str(emoji))
        except ValueError:
            return Skipped("empty reaction")
        reaction = dbm.Reaction.new(
            self.thread_id,
            self.receiver,
            target.message_id,
            sender.mri,
            key,
            row.event_id,
            self.mxid,
            from_matrix=True,
        )
        await reaction.insert()
        await self.delivery.claim(row)
        await call_teams(
            "the reaction",
            sender.client.add_reaction(self.thread_id, target.message_id, key),
            undo=reaction.delete,
        )
        return Done()

    # -- redactions ------------------------------------------------------------------------

    async def deliver_redaction(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> Result:
        assert sender.client is not None and sender.mri and self.mxid
        redacts = raw.get("redacts") or (raw.get("content") or {}).get("redacts")
        if not isinstance(redacts, str) or not redacts:
            return Skipped("the redaction names no event")
        event_id = EventID(redacts)
        reaction = await dbm.Reaction.get_by_mxid(event_id, self.mxid)
        if reaction is not None:
            if reaction.sender_mri != sender.mri:
                raise NotSupported("only your own reactions can be removed in Teams")
            await reaction.delete()
            self.note_reaction_removed(
                reaction.message_id, reaction.sender_mri, reaction.emotion_key
            )
            await self.delivery.claim(row)
            await call_teams(
                "the reaction removal",
                sender.client.remove_reaction(
                    self.thread_id, reaction.message_id, reaction.emotion_key
                ),
            )
            return Done()
        message = await dbm.Message.get_by_mxid(event_id, self.mxid)
        if message is None or not is_chat_message_id(message.message_id):
            return Skipped("the redacted event was not bridged to Teams")
        if message.sender_mri != sender.mri:
            raise NotSupported("only your own messages can be deleted in Teams")
        state = await dbm.MessageState.get(self.thread_id, self.receiver, message.message_id)
        if state is not None and state.deleted:
            return Done()
        await dbm.MessageState(
            self.thread_id,
            self.receiver,
            message.message_id,
            state.edit_time if state else None,
            state.content_hash if state else None,
            True,
        ).upsert()
        await self.delivery.claim(row)
        await call_teams(
            "the deletion",
            sender.client.delete_message(self.thread_id, message.message_id),
            undo=self._restore_state(message.message_id, state),
        )
        # The rest of a message that became several events goes too.
        for part in await dbm.Message.get_all_parts(
            self.thread_id, self.receiver, message.message_id
        ):
            if part.mxid != event_id:
                try:
                    await self._redact_as(sender.mri, part.mxid, from_matrix=part.from_matrix)
                except Exception as e:
                    self.log.warning("Could not redact %s: %s", part.mxid, e)
        return Done()

    # -- helpers ---------------------------------------------------------------------------

    async def load_mentioned_puppets(self: Portal, content: dict[str, Any]) -> None:
        """Load the puppets a message mentions, so their pills get their Teams names."""
        mentions = content.get("m.mentions")
        user_ids = mentions.get("user_ids") if isinstance(mentions, dict) else None
        for user_id in user_ids if isinstance(user_ids, list) else []:
            if isinstance(user_id, str) and Puppet.get_mri_from_mxid(UserID(user_id)):
                await Puppet.get_by_mxid(UserID(user_id), create=False)

    def _restore_state(
        self: Portal, message_id: str, state: dbm.MessageState | None
    ) -> Callable[[], Awaitable[None]]:
        """What undoes recording a change in advance, when Teams refuses the change."""
        previous = state or dbm.MessageState(
            self.thread_id, self.receiver, message_id, None, None, False
        )
        return previous.upsert

    # -- ephemeral: typing, receipts; room name ------------------------------------------------

    async def handle_matrix_typing(self: Portal, user: User, typing: bool) -> None:
        """At most one Teams typing notice per user and chat every 20 s."""
        if not typing or user.client is None:
            return
        if not hasattr(self, "_typing_sent"):
            self._typing_sent = {}
        now = time.monotonic()
        last = self._typing_sent.get(user.mxid)
        if last is not None and now - last < TYPING_INTERVAL:
            return
        self._typing_sent[user.mxid] = now
        try:
            await user.client.send_typing(self.thread_id)
        except Exception as e:
            self.log.debug("Typing notice not sent: %s", e)

    async def handle_matrix_read(self: Portal, user: User, event_id: EventID) -> None:
        """Move the user's Teams read position to the message the receipt is on."""
        if user.client is None or not self.mxid:
            return
        message_id = await self._message_read(event_id)
        if message_id is None:
            return
        if not hasattr(self, "_read_sent"):
            self._read_sent = {}
        try:
            number = int(message_id)
        except ValueError:
            number = 0
        if number and number <= self._read_sent.get(user.mxid, 0):
            return  # Teams read positions only move forward
        self._read_sent[user.mxid] = number
        try:
            await user.client.set_consumption_horizon(self.thread_id, message_id)
        except Exception as e:
            self.log.warning("Could not update the Teams read position: %s", e)

    async def _message_read(self: Portal, event_id: EventID) -> str | None:
        assert self.mxid
        message = await dbm.Message.get_by_mxid(event_id, self.mxid)
        if message is not None:
            return message.message_id if is_chat_message_id(message.message_id) else None
        # A receipt on something that is not a message (a notice, a reaction): the newest
        # message at or before it.
        try:
            event = await self.az.intent.get_event(self.mxid, event_id)
        except Exception:
            return None
        row = await dbm.Message.get_newest_until(self.thread_id, self.receiver, event.timestamp)
        return row.message_id if row and is_chat_message_id(row.message_id) else None

    async def handle_matrix_name(self: Portal, user: User, name: str) -> None:
        """A room rename by a bridge user renames the Teams chat (its topic)."""
        name = name.strip()
        if user.client is None or self.is_direct or not name or name == self.name:
            return
        if self.is_channel:
            return  # a channel's name is the team's business, not this room's
        old_topic = self.topic
        # Saved first, so the TopicUpdate echo is recognised as this change.
        self.topic, self.name, self.name_set = name, name, True
        await self.save()
        try:
            await user.client.set_topic(self.thread_id, name)
        except Exception as e:
            self.log.warning("Could not rename the Teams chat: %s", e)
            self.topic = old_topic
            await self.save()
            await self._notice(f"The Teams chat could not be renamed: {e}")
