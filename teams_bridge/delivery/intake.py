"""Which Matrix events are stored for delivery to Teams: one rule, for the appservice
endpoint (before the homeserver's transaction is answered) and for the timeline check after
a disruption, and again for an encrypted event once the worker has decrypted it.

Encrypted events are taken as they come: mautrix decrypts only after the transaction is
answered, so waiting for the plaintext would break "stored before answered". Whatever the
bridge itself sent is left out: the bot's and the ghosts' events, and events sent through
double puppeting for a bridge user, which mautrix marks with the bridge's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID, UserID

from .. import db as dbm
from ..appservice import event_problem

# mautrix's mark on the content of what it sends for a real user (double puppeting).
DOUBLE_PUPPET_SOURCE_KEY = "fi.mau.double_puppet_source"
ENCRYPTED = "m.room.encrypted"
# Matrix event types that are delivered to Teams.
OUTBOUND_TYPES = frozenset(
    {"m.room.message", "m.sticker", "m.reaction", "m.room.redaction", ENCRYPTED}
)


@dataclass(frozen=True)
class Intake:
    """What the rule needs to know of the bridge."""

    bot_mxid: str
    is_ghost: Callable[[UserID], bool]
    command_prefix: str
    # The name mautrix puts in the double-puppet mark of this bridge's sends.
    bridge_name: str


def skip_reason(raw: Any, rule: Intake) -> str | None:
    """Why the event is not for Teams; None when it is. Content with fields of the wrong
    type is taken, and fails at delivery, so that its sender is told."""
    problem = event_problem(raw)
    if problem:
        return f"malformed event: {problem}"
    if raw["type"] not in OUTBOUND_TYPES:
        return f"{raw['type']} events are not bridged to Teams"
    if "state_key" in raw:
        return "a state event"
    sender = UserID(raw["sender"])
    if sender == rule.bot_mxid or rule.is_ghost(sender):
        return "sent by the bridge"
    content = raw["content"]
    if content.get(DOUBLE_PUPPET_SOURCE_KEY) == rule.bridge_name:
        return "sent by the bridge for its user (double puppeting)"
    body = content.get("body")
    if isinstance(body, str) and body.startswith(rule.command_prefix):
        return "a bridge command"
    return None


def is_for_teams(raw: Any, rule: Intake) -> bool:
    return skip_reason(raw, rule) is None


def needs_no_handling(raw: dict[str, Any], rule: Intake, *, queued: bool) -> bool:
    """Whether mautrix's Matrix handler would do nothing with an event (a well-formed one,
    see `event_problem`) that matters, so that it need not be read for it at all:

    * what the bridge itself sent, other than state (mautrix ignores the bot's and the
      ghosts' events; state is kept for its state store and encryption);
    * a message ``queued`` for its portal's delivery worker, sent in the clear and not
      looking like a command anywhere in it (mautrix would only wake that worker again).
      Encrypted events still go to mautrix: a command may be inside.
    """
    if "state_key" in raw:
        return False
    sender = raw["sender"]
    if sender == rule.bot_mxid or rule.is_ghost(UserID(sender)):
        return True
    if not queued or raw["type"] == ENCRYPTED:
        return False
    body = raw["content"].get("body")
    return not (isinstance(body, str) and rule.command_prefix in body)


def queue_row(raw: dict[str, Any], seq: int, txn_seq: int | None, now: int) -> dbm.MatrixEvent:
    """The stored, pending form of an event `is_for_teams` took."""
    return dbm.MatrixEvent(
        event_id=raw["event_id"],
        room_id=RoomID(raw["room_id"]),
        sender=UserID(raw["sender"]),
        seq=seq,
        event_type=raw["type"],
        content=json.dumps(raw),
        status=dbm.matrix_event.PENDING,
        attempts=0,
        client_message_id=None,
        error=None,
        txn_seq=txn_seq,
        received_at=now,
    )
