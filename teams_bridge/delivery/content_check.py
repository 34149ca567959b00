"""Whether a stored Matrix event bound for Teams has fields of the types its conversion reads.

The homeserver accepts any JSON object as content (a sticker whose `msgtype` is a list, a
message whose `body` is a number); such an event must fail alone, at once and with a clear
reason, instead of raising somewhere in the conversion.
"""

from __future__ import annotations

from typing import Any

# Fields read from message content, and their type. Absent or null is always fine.
_MESSAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "msgtype": str,
    "body": str,
    "format": str,
    "formatted_body": str,
    "url": str,
    "filename": str,
    "info": dict,
    "file": dict,
    "m.mentions": dict,
    "m.relates_to": dict,
    "m.new_content": dict,
}
_RELATION_FIELDS: dict[str, type | tuple[type, ...]] = {
    "rel_type": str,
    "event_id": str,
    "key": str,
    "m.in_reply_to": dict,
    "is_falling_back": bool,
}
_NAMES = {str: "a string", dict: "an object", list: "a list", bool: "true or false"}


def _wrong(where: str, fields: dict[str, Any], types: dict[str, type | tuple[type, ...]]):
    for key, expected in types.items():
        value = fields.get(key)
        if value is not None and not isinstance(value, expected):
            name = _NAMES.get(expected, expected) if isinstance(expected, type) else expected
            return f"'{where}{key}' is not {name}"
    return None


def _message_problem(content: dict[str, Any], where: str = "") -> str | None:
    problem = _wrong(where, content, _MESSAGE_FIELDS)
    if problem:
        return problem
    relates = content.get("m.relates_to")
    if isinstance(relates, dict):
        problem = _wrong(f"{where}m.relates_to.", relates, _RELATION_FIELDS)
        if problem:
            return problem
        reply = relates.get("m.in_reply_to")
        if isinstance(reply, dict):
            problem = _wrong(f"{where}m.relates_to.m.in_reply_to.", reply, {"event_id": str})
            if problem:
                return problem
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        problem = _wrong(f"{where}m.mentions.", mentions, {"user_ids": list, "room": bool})
        if problem:
            return problem
        if any(not isinstance(u, str) for u in mentions.get("user_ids") or []):
            return f"'{where}m.mentions.user_ids' holds something that is not a user ID"
    return None


def content_problem(raw: Any) -> str | None:
    """Why the event cannot be converted for Teams (None: it can be tried)."""
    if not isinstance(raw, dict):
        return "the event is not an object"
    content = raw.get("content")
    if not isinstance(content, dict):
        return "the event has no content object"
    if raw.get("redacts") is not None and not isinstance(raw["redacts"], str):
        return "'redacts' is not a string"
    if content.get("redacts") is not None and not isinstance(content["redacts"], str):
        return "'redacts' is not a string"
    problem = _message_problem(content)
    if problem:
        return problem
    new_content = content.get("m.new_content")
    if isinstance(new_content, dict):
        return _message_problem(new_content, "m.new_content.")
    return None
