"""Replies both ways: a Teams reply quote is a Matrix ``m.in_reply_to``, and a Matrix reply
becomes the quote block Teams clients show plus ``properties.qtdMsgs`` (protocol §4.7).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mautrix.types import EventID

from .. import db as dbm
from ..formatter import build_reply_quote
from .calls import is_chat_message_id

if TYPE_CHECKING:
    from ..directory import Directory
    from ..teams import Message
    from .portal import Portal

_FALLBACK_LINE = re.compile(r"^> ?")
# Opening tags of Teams reply quotes; the formatter finds the one that counts.
_QUOTE_TAG = re.compile(r"<blockquote\b[^>]*>", re.IGNORECASE)
_ITEM_ID = re.compile(r"""\bitemid\s*=\s*["']?([0-9]{1,20})""", re.IGNORECASE)
MAX_QUOTES = 5


@dataclass(frozen=True)
class ReplyQuote:
    html: str
    qtd_msgs: str
    message_id: str  # the quoted Teams message


def strip_reply_fallback(body: str) -> str:
    """Drop the ``> <@user> quoted text`` lines a client put before the reply text."""
    lines = body.split("\n")
    if not lines or not _FALLBACK_LINE.match(lines[0]):
        return body
    index = 0
    while index < len(lines) and _FALLBACK_LINE.match(lines[index]):
        index += 1
    if index < len(lines) and not lines[index].strip():
        index += 1
    return "\n".join(lines[index:])


def reply_event_id(content: dict[str, Any]) -> EventID | None:
    """The event a Matrix message replies to (not a thread's fallback reply)."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None
    if relates.get("rel_type") == "m.thread" and relates.get("is_falling_back"):
        return None
    in_reply_to = relates.get("m.in_reply_to")
    if not isinstance(in_reply_to, dict):
        return None
    event_id = in_reply_to.get("event_id")
    return EventID(event_id) if isinstance(event_id, str) and event_id else None


def quoted_message_ids(message: Message) -> list[str]:
    """Teams messages a message may quote: its Reply blockquotes and ``qtdMsgs``."""
    ids: list[str] = []
    for tag in _QUOTE_TAG.findall(message.content or ""):
        if "schema.skype.com/reply" in tag.lower():
            found = _ITEM_ID.search(tag)
            if found and found.group(1) not in ids:
                ids.append(found.group(1))
    for quoted in message.quoted_message_ids:
        if quoted not in ids:
            ids.append(quoted)
    return ids[:MAX_QUOTES]


async def quoted_events(portal: Portal, message: Message) -> dict[str, EventID]:
    """The Matrix events the messages a Teams message quotes became (their first parts).

    Looked up before the (synchronous) conversion, which picks the quote that counts.
    """
    found: dict[str, EventID] = {}
    for message_id in quoted_message_ids(message):
        row = await dbm.Message.get(portal.thread_id, portal.receiver, message_id)
        if row is not None:
            found[message_id] = row.mxid
    return found


async def teams_quote_for(portal: Portal, content: dict[str, Any]) -> ReplyQuote | None:
    """The Teams quote block for a Matrix reply, or None when it replies to nothing known."""
    event_id = reply_event_id(content)
    if event_id is None or not portal.mxid:
        return None
    target = await dbm.Message.get_by_mxid(event_id, portal.mxid)
    if target is None or not target.sender_mri or not is_chat_message_id(target.message_id):
        return None
    name = await _sender_name(portal.directory, target.sender_mri)
    preview = await _preview(portal, event_id)
    try:
        when = int(target.message_id)
    except ValueError:
        when = target.timestamp
    qtd = [{"messageId": target.message_id, "sender": target.sender_mri, "time": when}]
    return ReplyQuote(
        html=build_reply_quote(target.message_id, target.sender_mri, name, preview),
        qtd_msgs=json.dumps(qtd),
        message_id=target.message_id,
    )


async def _sender_name(directory: Directory, mri: str) -> str:
    user = directory.user_by_mri(mri)
    if user and user.display_name:
        return user.display_name
    puppet = await directory.puppet(mri, create=False)
    return puppet.name if puppet and puppet.name else mri


async def _preview(portal: Portal, event_id: EventID) -> str:
    """The quoted message's text as the room shows it."""
    assert portal.mxid
    try:
        event = await portal.az.intent.get_event(portal.mxid, event_id)
    except Exception as e:
        portal.log.debug("Could not fetch %s for a reply preview: %s", event_id, e)
        return ""
    content = event.content
    body = content.get("body") if hasattr(content, "get") else None
    if not isinstance(body, str):
        return ""
    msgtype = str(content.get("msgtype") or "")
    if msgtype in ("m.image", "m.video", "m.audio", "m.file"):
        return body or msgtype[2:].capitalize()
    return strip_reply_fallback(body)
