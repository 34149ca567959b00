"""Teams -> Matrix for ``MessageUpdate``: edits, soft deletes and reactions.

Teams re-sends the whole message for each of these (protocol §4.9, §4.10), so what changed
is worked out against what was bridged: the ``message_state`` row (content digest, edit
time, deleted) and the ``reaction`` rows.
"""

from __future__ import annotations

import hashlib
import html
import time
from typing import TYPE_CHECKING

from mautrix.errors import MatrixRequestError
from mautrix.types import (
    JSON,
    EventID,
    EventType,
    Format,
    MessageType,
    ReactionEventContent,
    RelatesTo,
    RelationType,
    TextMessageEventContent,
)

from .. import db as dbm
from ..db.batch import Query
from ..teams import reaction_key_to_unicode
from .rules import Edit, edit_action, reaction_diff
from .writer import Sender, Voice, txn_id

if TYPE_CHECKING:
    from ..teams import Message, Reaction
    from ..user import User
    from .portal import Portal

# How long a reaction removed from Matrix is remembered, so a stale update cannot revive it.
REMOVED_MEMORY_MS = 300_000


def content_digest(message: Message) -> str:
    """What identifies a version of a message's content (mentions included)."""
    mentions = message.properties.get("mentions")
    text = f"{message.message_type}\x00{message.content}\x00{mentions or ''}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def html_digest(message_type: str, html: str, mentions: str | None) -> str:
    """The digest of content the bridge itself sends (see ``content_digest``)."""
    text = f"{message_type}\x00{html}\x00{mentions or ''}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def epoch_ms(message: Message) -> int | None:
    return int(message.edit_time.timestamp() * 1000) if message.edit_time else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def edit_fallback_html(html: str) -> str:
    """The ``formatted_body`` an edit shows in clients that do not apply edits: the new
    text marked with ``*`` (inside its first paragraph, so the mark is not a line of
    its own)."""
    if html[:3].lower() == "<p>":
        return f"<p>* {html[3:]}"
    return f"* {html}"


class _Replacement(TextMessageEventContent):
    def serialize(self) -> JSON:
        data = super().serialize()
        new = data.get("m.new_content")
        if isinstance(new, dict) and isinstance(new.get("formatted_body"), str):
            data["formatted_body"] = edit_fallback_html(new["formatted_body"])
        return data


def _replacement(content: TextMessageEventContent, target: EventID) -> TextMessageEventContent:
    """An m.replace of ``target`` with the new content."""
    edit = _Replacement(msgtype=content.msgtype, body=content.body)
    if content.formatted_body:
        edit.format = Format.HTML
        edit.formatted_body = content.formatted_body
    edit["m.mentions"] = content.get("m.mentions") or {"user_ids": []}
    edit.set_edit(target)
    return edit


def _edit_notice(content: TextMessageEventContent, target: EventID) -> TextMessageEventContent:
    """A notice in reply to ``target`` that gives the text as edited in Teams."""
    new_html = content.formatted_body or html.escape(content.body).replace("\n", "<br/>")
    notice = TextMessageEventContent(
        msgtype=MessageType.NOTICE,
        body=f"Edited in Teams: {content.body}",
        format=Format.HTML,
        formatted_body=f"<p><em>Edited in Teams:</em></p>{new_html}",
    )
    notice["m.mentions"] = {"user_ids": []}  # the edit pings nobody again
    notice.set_reply(target)
    return notice


class Updates:
    """Teams edits, deletes and reactions of bridged messages. Owns the memory of reactions
    recently removed from Matrix."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.log = portal.log
        self._removed_reactions: dict[tuple[str, str, str], int] = {}

    def is_idle(self) -> bool:
        return not self._removed_reactions

    async def handle(self, source: User, message: Message) -> None:
        if not message.is_content or not self.portal.mxid:
            return
        parts = await dbm.Message.get_all_parts(
            self.portal.thread_id, self.portal.receiver, message.id
        )
        if not parts:
            # Sent before the bridge knew the chat (or never bridged): nothing to change.
            self.log.debug("Ignoring an update of %s: the message was not bridged", message.id)
            return
        state = await dbm.MessageState.get(self.portal.thread_id, self.portal.receiver, message.id)
        if message.is_deleted:
            await self._bridge_teams_delete(message, parts, state)
            return
        if state is not None and state.deleted:
            self.log.debug("Ignoring an update of deleted message %s", message.id)
            return
        await self._bridge_teams_edit(source, message, parts, state)
        await self._bridge_teams_reactions(message, parts[0])

    def version_queries(self, message: Message) -> list[Query]:
        """Remember the version of a new message as it reached Matrix (later updates compare
        to it); stored with the message's mapping."""
        state = self.version_state(message)
        return [] if state is None else [state.insert_if_absent_query()]

    def version_state(self, message: Message) -> dbm.MessageState | None:
        """The version of a new message as it reached Matrix, if it has content."""
        if not message.is_content:
            return None
        return dbm.MessageState(
            self.portal.thread_id,
            self.portal.receiver,
            message.id,
            epoch_ms(message),
            content_digest(message),
            False,
        )

    # -- deletes -------------------------------------------------------------------------

    async def _bridge_teams_delete(
        self,
        message: Message,
        parts: list[dbm.Message],
        state: dbm.MessageState | None,
    ) -> None:
        if state is not None and state.deleted:
            return  # already redacted (or deleted from Matrix: this is the echo)
        sender: Sender = parts[0].sender_mri or Voice.ROOM
        for part in reversed(parts):
            await self.redact_as(sender, part.mxid, from_matrix=part.from_matrix)
        # Marked only now: if a redaction fails, the retry redacts again.
        await dbm.MessageState(
            self.portal.thread_id,
            self.portal.receiver,
            message.id,
            state.edit_time if state else None,
            state.content_hash if state else None,
            True,
        ).upsert()

    async def redact_as(self, sender: Sender, event_id: EventID, *, from_matrix: bool) -> None:
        """Redact as the Teams user. An event a real user sent from Matrix (and deleted in
        a Teams client) is redacted by the bridge bot, which has the power to in every
        portal; in a DM it would otherwise seem to be the other person's doing."""
        await self.portal.writer.redact(Voice.BOT if from_matrix else sender, event_id)

    # -- edits ---------------------------------------------------------------------------

    async def _bridge_teams_edit(
        self,
        source: User,
        message: Message,
        parts: list[dbm.Message],
        state: dbm.MessageState | None,
    ) -> None:
        digest = content_digest(message)
        edit_ms = epoch_ms(message)
        target = parts[0]
        action = edit_action(
            stored=(state.content_hash, state.edit_time) if state is not None else None,
            digest=digest,
            edit_ms=edit_ms,
            is_edited=message.is_edited,
            from_matrix=target.from_matrix,
        )
        if action is Edit.OLDER:
            self.log.debug("Ignoring an older version of %s", message.id)
        if action not in (Edit.REPLACE, Edit.NOTICE):
            return
        new_state = dbm.MessageState(
            self.portal.thread_id, self.portal.receiver, message.id, edit_ms, digest, False
        )
        content = self.portal.inbound.convert_text(message)
        if content is None:
            self.log.debug("Not bridging an edit of non-text message %s", message.id)
            await new_state.upsert()
            return
        if action is Edit.NOTICE:
            # Sent from Matrix and edited in a Teams client: only the Matrix sender could
            # replace the event, so the new text is told in a reply instead, from the ghost
            # that bridges what the user writes in Teams.
            event = _edit_notice(content, target.mxid)
        else:
            event = _replacement(content, target.mxid)
        await self.portal.writer.send(
            target.sender_mri or message.sender_mri or Voice.ROOM,
            event,
            txn=txn_id("edit", f"{self.portal.thread_id}|{message.id}|edit|{digest}"),
            timestamp=edit_ms,
        )
        await new_state.upsert()

    # -- reactions -----------------------------------------------------------------------

    async def _bridge_teams_reactions(self, message: Message, target: dbm.Message) -> None:
        current: dict[tuple[str, str], Reaction] = {(r.mri, r.key): r for r in message.emotions}
        stored = {
            (row.sender_mri, row.emotion_key): row
            for row in await dbm.Reaction.get_for_message(
                self.portal.thread_id, self.portal.receiver, message.id
            )
        }
        removed = {
            (mri, key): at
            for (message_id, mri, key), at in self._recently_removed().items()
            if message_id == message.id
        }
        diff = reaction_diff(
            stored={ident: row.sent_at for ident, row in stored.items()},
            current={ident: reaction.time_ms for ident, reaction in current.items()},
            update_ms=message.version or _now_ms(),
            removed=removed,
        )
        for ident in diff.redact:
            row = stored[ident]
            try:
                await self.redact_as(row.sender_mri, row.mxid, from_matrix=row.from_matrix)
            except MatrixRequestError as e:
                if e.http_status >= 500 or e.http_status == 429:
                    raise  # retried with the whole update
                self.log.warning("Could not redact reaction %s: %s", row.mxid, e)
            await row.delete()
        for ident in diff.send:
            await self._send_teams_reaction(message, target, current[ident])

    def _recently_removed(self) -> dict[tuple[str, str, str], int]:
        cutoff = _now_ms() - REMOVED_MEMORY_MS
        for key in [k for k, v in self._removed_reactions.items() if v < cutoff]:
            del self._removed_reactions[key]
        return self._removed_reactions

    def reaction_removed(self, message_id: str, mri: str, key: str) -> None:
        self._recently_removed()[(message_id, mri, key)] = _now_ms()

    async def _send_teams_reaction(
        self, message: Message, target: dbm.Message, reaction: Reaction
    ) -> None:
        assert self.portal.mxid
        try:
            emoji = reaction_key_to_unicode(reaction.key)
        except ValueError:
            return
        content = ReactionEventContent(
            relates_to=RelatesTo(rel_type=RelationType.ANNOTATION, event_id=target.mxid, key=emoji)
        )
        seed = (
            f"{self.portal.thread_id}|{message.id}|{reaction.mri}|{reaction.key}|{reaction.time_ms}"
        )
        event_id = await self.portal.writer.send(
            reaction.mri,
            content,
            event_type=EventType.REACTION,
            txn=txn_id("reaction", seed),
            timestamp=reaction.time_ms,
        )
        await dbm.Reaction.new(
            self.portal.thread_id,
            self.portal.receiver,
            message.id,
            reaction.mri,
            reaction.key,
            event_id,
            self.portal.mxid,
            from_matrix=False,
        ).insert()
