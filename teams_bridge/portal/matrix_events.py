"""Matrix -> Teams for everything that is not a new message: edits, redactions, reactions
(all stored durably like messages), and the ephemeral typing and read receipts.

What is changed in Teams is written to the database first (reaction rows, the message's
state), so the echo Teams pushes back is recognised as ours, however fast it comes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mautrix.api import Method, Path
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID

from .. import db as dbm
from ..delivery.errors import NotSupported, Permanent, Transient, call_teams
from ..delivery.intake import ENCRYPTED
from ..delivery.results import Done, Result, Skipped
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


class MatrixEvents:
    """Matrix edits, reactions and redactions to Teams, and a user's typing and read
    receipts. Owns when each user's typing and read position was last sent."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.log = portal.log
        self._typing_sent: dict[str, float] = {}
        self._read_sent: dict[str, int] = {}

    # -- edits -----------------------------------------------------------------------------

    async def edit(self, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]) -> Result:
        assert sender.client is not None and self.portal.mxid
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
        await self.portal.outbound.load_mentioned(new_content)
        html, properties = self.portal.outbound.convert(sender, new_content)
        # The reply quote is part of a Teams message's content: keep it through edits.
        quote = await teams_quote_for(self.portal, original_raw) if original_raw else None
        if quote is not None:
            html = quote.html + html
            properties["qtdMsgs"] = quote.qtd_msgs
        client_message_id = await self.portal.delivery.claim(row)
        state = await dbm.MessageState.get(
            self.portal.thread_id, self.portal.receiver, message.message_id
        )
        await dbm.MessageState(
            self.portal.thread_id,
            self.portal.receiver,
            message.message_id,
            state.edit_time if state else None,
            html_digest("RichText/Html", html, properties.get("mentions")),
            False,
        ).upsert()
        await call_teams(
            "the edit",
            sender.client.edit_message(
                self.portal.thread_id,
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
        self, event_id: EventID
    ) -> tuple[dbm.Message, dict[str, Any] | None] | None:
        """The bridged message an edit targets (following an edit of an edit) and, for a
        message sent from Matrix, the content it was sent with."""
        assert self.portal.mxid
        for _ in range(5):
            message = await dbm.Message.get_by_mxid(event_id, self.portal.mxid)
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

    async def _event_content(self, event_id: EventID) -> dict[str, Any] | None:
        """An event's content as the homeserver has it (decrypted, when the bridge can);
        None for an event it does not show the bridge, or cannot be decrypted."""
        assert self.portal.mxid
        path = Path.v3.rooms[self.portal.mxid].event[event_id]
        try:
            raw = await self.portal.az.intent.api.request(Method.GET, path)
        except MatrixRequestError as e:
            if 400 <= e.http_status < 500 and e.http_status != 429:
                return None
            raise Transient(f"the homeserver did not answer ({e})") from e
        if isinstance(raw, dict) and raw.get("type") == ENCRYPTED:
            try:
                raw = await self.portal.delivery.decrypt(raw)
            except Permanent:
                return None
        content = raw.get("content") if isinstance(raw, dict) else None
        return content if isinstance(content, dict) else None

    # -- reactions -------------------------------------------------------------------------

    async def reaction(self, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]) -> Result:
        assert sender.client is not None and sender.mri and self.portal.mxid
        relates = _relation(raw.get("content") or {})
        target_id, emoji = relates.get("event_id"), relates.get("key")
        if relates.get("rel_type") != "m.annotation" or not target_id or not emoji:
            return Skipped("not a reaction to a message")
        target = await dbm.Message.get_by_mxid(EventID(str(target_id)), self.portal.mxid)
        if target is None or not is_chat_message_id(target.message_id):
            return Skipped("the message reacted to was not bridged to Teams")
        try:
            key = unicode_to_reaction_key(str(emoji))
        except ValueError:
            return Skipped("empty reaction")
        reaction = dbm.Reaction.new(
            self.portal.thread_id,
            self.portal.receiver,
            target.message_id,
            sender.mri,
            key,
            row.event_id,
            self.portal.mxid,
            from_matrix=True,
        )
        await reaction.insert()
        await self.portal.delivery.claim(row)
        await call_teams(
            "the reaction",
            sender.client.add_reaction(self.portal.thread_id, target.message_id, key),
            undo=reaction.delete,
        )
        return Done()

    # -- redactions ------------------------------------------------------------------------

    async def redaction(self, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]) -> Result:
        assert sender.client is not None and sender.mri and self.portal.mxid
        redacts = raw.get("redacts") or (raw.get("content") or {}).get("redacts")
        if not isinstance(redacts, str) or not redacts:
            return Skipped("the redaction names no event")
        event_id = EventID(redacts)
        reaction = await dbm.Reaction.get_by_mxid(event_id, self.portal.mxid)
        if reaction is not None:
            if reaction.sender_mri != sender.mri:
                raise NotSupported("only your own reactions can be removed in Teams")
            await reaction.delete()
            self.portal.updates.reaction_removed(
                reaction.message_id, reaction.sender_mri, reaction.emotion_key
            )
            await self.portal.delivery.claim(row)
            await call_teams(
                "the reaction removal",
                sender.client.remove_reaction(
                    self.portal.thread_id, reaction.message_id, reaction.emotion_key
                ),
            )
            return Done()
        message = await dbm.Message.get_by_mxid(event_id, self.portal.mxid)
        if message is None or not is_chat_message_id(message.message_id):
            return Skipped("the redacted event was not bridged to Teams")
        if message.sender_mri != sender.mri:
            raise NotSupported("only your own messages can be deleted in Teams")
        state = await dbm.MessageState.get(
            self.portal.thread_id, self.portal.receiver, message.message_id
        )
        if state is not None and state.deleted:
            return Done()
        await dbm.MessageState(
            self.portal.thread_id,
            self.portal.receiver,
            message.message_id,
            state.edit_time if state else None,
            state.content_hash if state else None,
            True,
        ).upsert()
        await self.portal.delivery.claim(row)
        await call_teams(
            "the deletion",
            sender.client.delete_message(self.portal.thread_id, message.message_id),
            undo=self._restore_state(message.message_id, state),
        )
        # The rest of a message that became several events goes too.
        for part in await dbm.Message.get_all_parts(
            self.portal.thread_id, self.portal.receiver, message.message_id
        ):
            if part.mxid != event_id:
                try:
                    await self.portal.updates.redact_as(
                        sender.mri, part.mxid, from_matrix=part.from_matrix
                    )
                except Exception as e:
                    self.log.warning("Could not redact %s: %s", part.mxid, e)
        return Done()

    # -- helpers ---------------------------------------------------------------------------

    def _restore_state(
        self, message_id: str, state: dbm.MessageState | None
    ) -> Callable[[], Awaitable[None]]:
        """What undoes recording a change in advance, when Teams refuses the change."""
        previous = state or dbm.MessageState(
            self.portal.thread_id, self.portal.receiver, message_id, None, None, False
        )
        return previous.upsert

    # -- ephemeral: typing, receipts ------------------------------------------------

    async def typing(self, user: User, typing: bool) -> None:
        """At most one Teams typing notice per user and chat every 20 s."""
        if not typing or user.client is None:
            return
        now = time.monotonic()
        last = self._typing_sent.get(user.mxid)
        if last is not None and now - last < TYPING_INTERVAL:
            return
        self._typing_sent[user.mxid] = now
        try:
            await user.client.send_typing(self.portal.thread_id)
        except Exception as e:
            self.log.debug("Typing notice not sent: %s", e)

    async def read(self, user: User, event_id: EventID) -> None:
        """Move the user's Teams read position to the message the receipt is on."""
        if user.client is None or not self.portal.mxid:
            return
        message_id = await self._message_read(event_id)
        if message_id is None:
            return
        try:
            number = int(message_id)
        except ValueError:
            number = 0
        if number and number <= self._read_sent.get(user.mxid, 0):
            return  # Teams read positions only move forward
        self._read_sent[user.mxid] = number
        try:
            await user.client.set_consumption_horizon(self.portal.thread_id, message_id)
        except Exception as e:
            self.log.warning("Could not update the Teams read position: %s", e)

    async def _message_read(self, event_id: EventID) -> str | None:
        assert self.portal.mxid
        # The read event may be one whose record is on its way (`Inbound.settled`).
        await self.portal.inbound.settled()
        message = await dbm.Message.get_by_mxid(event_id, self.portal.mxid)
        if message is not None:
            return message.message_id if is_chat_message_id(message.message_id) else None
        # A receipt on something that is not a message (a notice, a reaction): the newest
        # message at or before it.
        try:
            event = await self.portal.az.intent.get_event(self.portal.mxid, event_id)
        except Exception:
            return None
        row = await dbm.Message.get_newest_until(
            self.portal.thread_id, self.portal.receiver, event.timestamp
        )
        return row.message_id if row and is_chat_message_id(row.message_id) else None
