"""Calls as room notices: ``Event/Call`` messages in a chat and entries of the call log
(a feed of the user's calls, each naming the chat it was in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..teams import CallEvent, CallEventKind, is_call_log_id

if TYPE_CHECKING:
    from ..teams import Message

# How a call ended is told once per call, whether it arrives as a call-log entry or as an
# `Event/Call` in the chat, or both: that notice is stored under this prefix and the call
# id (it stands for the call, not for one Teams message of the chat).
CALL_LOG_PREFIX = "calllog:"


def is_chat_message_id(message_id: str) -> bool:
    """Whether a stored message id names a message of the chat in Teams."""
    return not message_id.startswith(CALL_LOG_PREFIX)


def format_duration(seconds: int) -> str:
    """``63`` -> ``1 min 3 s``; ``3600`` -> ``1 h``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs or not parts:
        parts.append(f"{secs} s")
    return " ".join(parts)


def is_call_outcome(message: Message, call: CallEvent) -> bool:
    """Whether ``call`` tells how a call ended, in a form that may come twice: a call-log
    entry, or an ``Event/Call`` that names its call."""
    if is_call_log_id(message.conversation_id):
        return True
    return call.call_id is not None and call.kind is not CallEventKind.STARTED


def call_notice(call: CallEvent) -> str:
    if call.kind is CallEventKind.STARTED:
        return "Call started"
    if call.kind is CallEventKind.MISSED:
        return "Missed call"
    if call.kind is CallEventKind.DECLINED:
        return "Call declined"
    if call.duration is not None:
        return f"Call ended, {format_duration(call.duration)}"
    return "Call ended"
