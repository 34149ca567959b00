"""The portal's subtle decisions as plain functions: given what is known, what to do.

Nothing here reads the database, the homeserver or Teams, so each rule is unit-tested on
its own (tests/core/test_portal_rules.py); the portal gathers the facts and acts.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mautrix.types import RelationType

from ..names import MEMBER_IN_ROOM_NAME_MAX_BYTES, ROOM_NAME_MAX_BYTES, clean_name
from ..teams import ResourceType
from .replies import reply_event_id

# A group room named after its members names this many, then "and N others".
NAMED_MEMBERS = 5


@dataclass(frozen=True)
class Member:
    mri: str
    name: str | None


def channel_room_name(channel: str | None, team: str | None) -> str | None:
    """``Design (Contoso)``: the channel, and its team."""
    if channel and team and channel != team:
        return f"{channel} ({team})"
    return channel or team


def room_name(
    *,
    kind: str,
    topic: str | None,
    team: str | None,
    members: Sequence[Member],
    own_mri: str | None,
    private_chat_meta: bool,
) -> str | None:
    """The room's name, made from Teams names: a channel is named with its team, a chat by
    its topic, a 1:1 room after the other person (when `private_chat_meta`), an unnamed
    group after its other members. Cleaned and cut to fit (names.py)."""
    return (
        clean_name(
            _name(kind, topic, team, members, own_mri, private_chat_meta), ROOM_NAME_MAX_BYTES
        )
        or None
    )


def _name(
    kind: str,
    topic: str | None,
    team: str | None,
    members: Sequence[Member],
    own_mri: str | None,
    private_chat_meta: bool,
) -> str | None:
    if kind == "channel":
        return channel_room_name(topic, team)
    if topic:
        return topic
    others = [m for m in members if m.mri != own_mri]
    if kind == "one_to_one":
        if not private_chat_meta:
            return None
        return others[0].name if others and others[0].name else None
    names = sorted(clean_name(m.name, MEMBER_IN_ROOM_NAME_MAX_BYTES) or m.mri for m in others)
    if not names:
        return None
    if len(names) > NAMED_MEMBERS:
        rest = len(names) - NAMED_MEMBERS
        return ", ".join(names[:NAMED_MEMBERS]) + f" and {rest} others"
    return ", ".join(names)


class TeamsEvent(enum.Enum):
    """What a queued Teams event is, for the portal's dispatch table."""

    MESSAGE = "message"  # a new chat message (text, files, a call)
    TYPING = "typing"  # Control/Typing, Control/ClearTyping: never stored
    ACTIVITY = "activity"  # ThreadActivity/*: members, topic, read positions
    UPDATE = "update"  # MessageUpdate: an edit, delete or reaction
    THREAD = "thread"  # ThreadUpdate: the chat's properties (its picture)
    OWN_READ = "own_read"  # ConversationUpdate: the signed-in user's own read position


def teams_event_kind(
    resource_type: str,
    message_type: str | None,
    *,
    has_message: bool,
    has_thread: bool,
    has_own_horizon: bool = False,
) -> TeamsEvent | None:
    """Which handler a queued event goes to; None: nothing to do (other control messages,
    conversation updates, unknown resource types)."""
    if resource_type == ResourceType.NEW_MESSAGE and has_message:
        mtype = message_type or ""
        if mtype.startswith("Control/"):
            typing = mtype.lower() in ("control/typing", "control/cleartyping")
            return TeamsEvent.TYPING if typing else None
        if mtype.startswith("ThreadActivity/"):
            return TeamsEvent.ACTIVITY
        return TeamsEvent.MESSAGE
    if resource_type == ResourceType.MESSAGE_UPDATE and has_message:
        return TeamsEvent.UPDATE
    if resource_type == ResourceType.THREAD_UPDATE and has_thread:
        return TeamsEvent.THREAD
    if resource_type == ResourceType.CONVERSATION_UPDATE and has_own_horizon:
        return TeamsEvent.OWN_READ
    return None


class Incoming(enum.Enum):
    """What to do with a Teams message that arrives in a portal."""

    SEEN = "seen"  # bridged before, with its state: nothing to do
    NOTE_STATE = "note_state"  # bridged (e.g. our own send, mapped when sent): note its version
    CLAIM_ECHO = "claim_echo"  # the echo of our own send from this portal: map it, bridge nothing
    BRIDGE = "bridge"  # new here: bridge it


def incoming_action(
    *,
    bridged: bool,
    has_state: bool,
    sent_from: tuple[str, str] | None,
    portal_key: tuple[str, str],
) -> Incoming:
    """`sent_from`: the portal key a send with this message's clientmessageid was made from
    (None: the bridge never sent it). An echo is ours only in the portal it was sent from;
    in another bridge user's own room of the same 1:1 chat it is a new message."""
    if bridged:
        return Incoming.SEEN if has_state else Incoming.NOTE_STATE
    if sent_from is not None and sent_from == portal_key:
        return Incoming.CLAIM_ECHO
    return Incoming.BRIDGE


def thread_relation(content: dict[str, Any]) -> tuple[str | None, bool]:
    """The event a Matrix message's channel thread is found from, and whether the message
    says it is in a thread: a thread event's root, else the event a reply answers."""
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == RelationType.THREAD.value:
        root = relates.get("event_id")
        if isinstance(root, str) and root:
            return root, True
    return reply_event_id(content), False


class Edit(enum.Enum):
    """What to do with a Teams update of a bridged message's content."""

    UNCHANGED = "unchanged"  # same content: a reaction-only update, a redelivery, our echo
    OLDER = "older"  # a version older than the one bridged
    NOT_EDITED = "not_edited"  # nothing to compare against and Teams does not call it edited
    REPLACE = "replace"  # an m.replace of the bridged event
    NOTICE = "notice"  # an "Edited in Teams" reply: the event was sent from Matrix


def edit_action(
    *,
    stored: tuple[str | None, int | None] | None,
    digest: str,
    edit_ms: int | None,
    is_edited: bool,
    from_matrix: bool,
) -> Edit:
    """`stored`: the content digest and edit time of the version bridged (None: unknown).
    An event sent from Matrix can only be replaced by its Matrix sender, so an edit made
    to it in a Teams client is told in a notice instead."""
    if stored is not None:
        stored_digest, stored_ms = stored
        if stored_digest == digest:
            return Edit.UNCHANGED
        if edit_ms is not None and stored_ms is not None and edit_ms < stored_ms:
            return Edit.OLDER
    elif not is_edited:
        return Edit.NOT_EDITED
    return Edit.NOTICE if from_matrix else Edit.REPLACE


# A Teams update generated this soon after a reaction was sent from Matrix may predate it.
REACTION_GRACE_MS = 5_000

ReactionId = tuple[str, str]  # (sender MRI, Teams reaction key)


@dataclass(frozen=True)
class ReactionDiff:
    redact: list[ReactionId]  # bridged reactions gone from the message
    send: list[ReactionId]  # reactions on the message not bridged yet


def reaction_diff(
    *,
    stored: Mapping[ReactionId, int | None],
    current: Mapping[ReactionId, int | None],
    update_ms: int,
    removed: Mapping[ReactionId, int],
) -> ReactionDiff:
    """Bring the bridged reactions of a message in line with a Teams update of it.

    `stored`: the bridged reactions, with when each was sent from Matrix (None: it came
    from Teams); `current`: the reactions in the update, with when each was made;
    `update_ms`: when the update was made; `removed`: reactions removed from Matrix
    lately, with when. A reaction sent from Matrix within REACTION_GRACE_MS before the
    update may be missing from it only because the update predates it, so it stays; a
    reaction removed from Matrix after it was made is not brought back by an update."""
    redact = [
        ident
        for ident, sent_at in stored.items()
        if ident not in current and not (sent_at and sent_at + REACTION_GRACE_MS >= update_ms)
    ]
    send = [
        ident
        for ident, made_at in current.items()
        if ident not in stored and not (ident in removed and (made_at or 0) <= removed[ident])
    ]
    return ReactionDiff(redact, send)
