"""Finished Matrix events are deleted once older than the retention, on PostgreSQL and SQLite:
never a pending one, and never one a timeline check after a disruption may look back to."""

from __future__ import annotations

import json

from mautrix.util.async_db import Database

from teams_bridge import db as dbm
from teams_bridge.db.matrix_event import DONE, FAILED, PENDING
from teams_bridge.delivery.prune import HOUR_MS, QueuePruner, prune_before
from teams_bridge.disruption import LOOKBACK_MS, Disruptions

NOW = 1_800_000_000_000
DAY = 24 * HOUR_MS


async def _store(event_id: str, status: str, received_at: int) -> None:
    row = dbm.MatrixEvent(
        event_id, "!room:localhost", "@ada:localhost", received_at, "m.room.message",
        json.dumps({"content": {"msgtype": "m.text", "body": "hi"}}), status, 1, None, None,
        None, received_at,
    )  # fmt: skip
    await dbm.MatrixEvent.insert_many([row])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _calm() -> Disruptions:
    return Disruptions(300, clock=Clock(), wall_ms=lambda: NOW)


async def _left() -> set[str]:
    return {row["event_id"] for row in await dbm.MatrixEvent.db.fetch("SELECT * FROM matrix_event")}


async def test_finished_events_older_than_the_retention_go(database: Database):
    await _store("$done-old", DONE, NOW - DAY - 1)
    await _store("$failed-old", FAILED, NOW - 3 * DAY)
    await _store("$pending-old", PENDING, NOW - 3 * DAY)
    await _store("$done-recent", DONE, NOW - DAY + 60_000)
    await _store("$failed-recent", FAILED, NOW - 1)
    await _store("$from-before-v2", DONE, 0)  # (stored before received_at existed)
    pruner = QueuePruner(24, _calm(), wall_ms=lambda: NOW)
    assert await pruner.prune() == 3
    assert await _left() == {"$pending-old", "$done-recent", "$failed-recent"}
    assert await pruner.prune() == 0
    # Kept: what is pending is read again as it was.
    assert (await dbm.MatrixEvent.get("$pending-old")).status == PENDING
    assert [r.event_id for r in await dbm.MatrixEvent.pending("!room:localhost", 10)] == [
        "$pending-old"
    ]


async def test_nothing_goes_while_a_disruption_check_may_look_back(database: Database):
    clock = Clock()
    disruptions = Disruptions(300, clock=clock, wall_ms=lambda: NOW - 2 * DAY)
    disruptions.note_trouble()  # the homeserver went away two days ago, and is still away
    await _store("$before-the-disruption", DONE, NOW - 2 * DAY - LOOKBACK_MS - 1)
    await _store("$in-the-lookback", DONE, NOW - 2 * DAY - LOOKBACK_MS + 1)
    await _store("$during", FAILED, NOW - DAY - HOUR_MS)
    pruner = QueuePruner(24, disruptions, wall_ms=lambda: NOW)
    assert await pruner.prune() == 1
    assert await _left() == {"$in-the-lookback", "$during"}
    # Once the window is over, the retention alone counts.
    clock.now += 301
    assert await pruner.prune() == 2
    assert await _left() == set()


async def test_a_retention_of_zero_keeps_everything(database: Database):
    await _store("$done-old", DONE, 1)
    pruner = QueuePruner(0, _calm(), wall_ms=lambda: NOW)
    assert await pruner.prune() == 0
    assert await _left() == {"$done-old"}
    pruner.start()
    assert pruner._task is None  # nothing runs


def test_the_cutoff():
    calm = _calm()
    assert prune_before(NOW, 24, calm) == NOW - DAY
    assert prune_before(NOW, 0.5, calm) == NOW - HOUR_MS // 2
    assert prune_before(NOW, 0, calm) is None
    assert prune_before(NOW, -1, calm) is None


async def _sent(client_message_id: str, event_id: str, created_at: int) -> None:
    record = dbm.SentMessage.new(
        client_message_id, "19:chat@thread.v2", "", event_id, "!room:localhost", created_at
    )
    await record.insert()


async def _sent_left() -> set[str]:
    rows = await dbm.SentMessage.db.fetch("SELECT client_message_id FROM sent_message")
    return {row["client_message_id"] for row in rows}


async def test_send_records_go_with_their_events(database: Database):
    """A send record (a post's clientmessageid) outlives its event's delivery only as long
    as the event is kept: one whose event is still pending stays whatever its age."""
    await _store("$done-old", DONE, NOW - 2 * DAY)
    await _store("$pending-old", PENDING, NOW - 2 * DAY)
    await _store("$done-recent", DONE, NOW - 1)
    await _sent("1001", "$done-old", NOW - 2 * DAY)
    await _sent("1002", "$pending-old", NOW - 2 * DAY)
    await _sent("1003", "$done-recent", NOW - 1)
    await _sent("1004", "$pruned-long-ago", NOW - 3 * DAY)  # its event is gone already
    pruner = QueuePruner(24, _calm(), wall_ms=lambda: NOW)
    assert await pruner.prune() == 1
    assert await _sent_left() == {"1002", "1003"}
    assert (await dbm.SentMessage.get("1002")).mxid == "$pending-old"
    assert await pruner.prune() == 0 and await _sent_left() == {"1002", "1003"}
