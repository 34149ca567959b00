"""Finding messages in a user's Teams chats, for the `search` command.

The reference of the Teams protocol this bridge follows has no confirmed shape for the
search service's answers, so the search reads the chats' recent history instead: the newest
``SEARCH_MESSAGES`` messages of each of the user's ``SEARCH_CHATS`` most recent chats (or of
one chat). A message matches when its text contains every word of the query, in any case.
Each match names its chat, sender and time, and the Matrix event it was bridged to.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mautrix.types import EventID, RoomID

from . import db as dbm
from .formatter import teams_to_matrix
from .portal import Portal
from .portal.inbound import is_history, message_timestamp_ms
from .puppet import Puppet
from .teams import ConversationKind, TeamsError

if TYPE_CHECKING:
    from .teams import Message
    from .user import User

log = logging.getLogger("mau.search")

SEARCH_CHATS = 20
SEARCH_MESSAGES = 200
MAX_HITS = 10
EXCERPT = 80
MIN_QUERY = 2
SEARCHED_KINDS = {
    ConversationKind.ONE_TO_ONE,
    ConversationKind.GROUP,
    ConversationKind.MEETING,
    ConversationKind.CHANNEL,
}


@dataclass(frozen=True)
class Hit:
    chat_name: str
    room: RoomID | None
    sender: str
    when_ms: int
    excerpt: str
    event_id: EventID | None

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.when_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Searched:
    hits: list[Hit]
    chats: int
    unreadable: int


def words_of(query: str) -> list[str]:
    return [w for w in query.lower().split() if w]


def excerpt(text: str, words: list[str], width: int = EXCERPT) -> str:
    """A piece of ``text`` around the first match, the matched words in bold."""
    flat = " ".join(text.split())
    first = min((flat.lower().find(w) for w in words if w in flat.lower()), default=0)
    start = max(0, first - width // 3)
    piece = flat[start : start + width]
    piece = ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")
    for word in sorted(set(words), key=len, reverse=True):
        piece = re.sub(f"({re.escape(word)})", r"**\1**", piece, flags=re.IGNORECASE)
    return piece.replace("****", "")


def matches(text: str, words: list[str]) -> bool:
    lowered = text.lower()
    return bool(words) and all(w in lowered for w in words)


async def search(user: User, query: str, *, only: Portal | None = None) -> Searched:
    """The newest matches first, at most ``MAX_HITS``."""
    assert user.client is not None
    words = words_of(query)
    if only is not None:
        targets = [(only.thread_id, only.is_direct)]
    else:
        conversations = await user.client.list_conversations(limit=SEARCH_CHATS)
        targets = [
            (c.id, c.kind is ConversationKind.ONE_TO_ONE)
            for c in conversations[:SEARCH_CHATS]
            if c.kind in SEARCHED_KINDS
        ]
    results = await asyncio.gather(*(_one_chat(user, t, d, words) for t, d in targets))
    hits = [hit for found in results if found is not None for hit in found]
    hits.sort(key=lambda h: h.when_ms, reverse=True)
    unreadable = sum(1 for found in results if found is None)
    return Searched(hits[:MAX_HITS], len(targets), unreadable)


async def _one_chat(user: User, thread_id: str, direct: bool, words: list[str]) -> list[Hit] | None:
    assert user.client is not None
    try:
        messages = await user.client.list_messages(thread_id, limit=SEARCH_MESSAGES)
    except TeamsError as e:
        log.debug("Could not read %s for a search: %s", thread_id, e)
        return None
    portal = await Portal.for_conversation(thread_id, user.mri, one_to_one=direct)
    if portal is not None:
        # Messages just bridged may have their records (the events they link to) on the way.
        await portal.inbound.settled()
    found = []
    for message in messages:
        if not is_history(message):
            continue
        text = _text(message)
        if not matches(text, words):
            continue
        found.append(await _hit(portal, message, text, words))
    return found


def _text(message: Message) -> str:
    if message.message_type not in ("Text", "RichText", "RichText/Html"):
        return ""
    return teams_to_matrix(message.content or "", message_type=message.message_type).body


async def _hit(portal: Portal | None, message: Message, text: str, words: list[str]) -> Hit:
    event_id = None
    if portal is not None:
        row = await dbm.Message.get(portal.thread_id, portal.receiver, message.id)
        event_id = row.mxid if row else None
    sender = message.sender_name or message.sender_mri or "?"
    if message.sender_mri:
        puppet = await Puppet.get_by_mri(message.sender_mri, create=False)
        if puppet is not None and puppet.name:
            sender = puppet.name
    return Hit(
        chat_name=(portal.name if portal else None) or "a chat without a room",
        room=portal.mxid if portal else None,
        sender=sender,
        when_ms=message_timestamp_ms(message),
        excerpt=excerpt(text, words),
        event_id=event_id,
    )
