"""What delivering one Matrix event to Teams came to. Handlers return one of these and
never write the outcome themselves: the worker records it (`DeliveryWorker.record`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sent:
    """The event became a new Teams message."""

    message_id: str
    sender_mri: str | None
    # When the send was first tried (epoch ms); 0 when that is not known.
    timestamp: int


@dataclass(frozen=True)
class Done:
    """The change the event asks for was made in Teams (an edit, a reaction, a removal),
    or had been made already."""


@dataclass(frozen=True)
class Skipped:
    """Nothing for Teams to do (an edit of a message that never reached Teams, a reaction
    to a notice): not an error to report, so the room is not told."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """Delivery failed for good; the room is told why."""

    reason: str


Result = Sent | Done | Skipped
Outcome = Result | Failed
