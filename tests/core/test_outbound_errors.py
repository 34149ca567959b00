"""A room's Matrix -> Teams queue never stays stuck on one event: an event whose handling
raises fails for good after a few counted attempts (the count is stored), is reported to the
user, and the events after it are delivered. Database and network trouble is not counted."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from types import SimpleNamespace
from typing import Any

from mautrix.util.async_db import Database

from teams_bridge import db as dbm
from teams_bridge.db.matrix_event import DONE, FAILED, PENDING
from teams_bridge.portal.outbound import MAX_UNEXPECTED_ATTEMPTS, OutboundMixin
from teams_bridge.portal.writer import RoomWriter

ROOM = "!room:localhost"


class QueuePortal(OutboundMixin):
    """Just the queue of a portal: delivery is scripted, what the user is sent is recorded."""

    def __init__(
        self,
        always: dict[str, BaseException] | None = None,
        once: dict[str, list[BaseException]] | None = None,
        real: frozenset[str] = frozenset(),
    ):
        self.mxid = ROOM
        self.log = logging.getLogger("test.outbound")
        self._outbound_wakeup = asyncio.Event()
        self._outbound_task: asyncio.Task | None = None
        self._checked_ms = 0
        self.bridge = SimpleNamespace(disruptions=SimpleNamespace(must_check=lambda *_: False))
        self.sent: list[tuple[str, Any]] = []
        bot = SimpleNamespace(send_message_event=self._record_event)
        self.writer = RoomWriter(
            room_id=lambda: ROOM,
            bot=bot,  # type: ignore[arg-type]
            room_voice=lambda: bot,  # type: ignore[arg-type,return-value]
            ghost=None,  # type: ignore[arg-type]
            encrypted=lambda: False,
            e2ee=lambda: None,
        )
        self.always = always or {}  # raised on every try
        self.once = once or {}  # raised one after the other, then the delivery works
        self.real = real
        self.delivered: list[str] = []

    async def _record_event(self, room_id, event_type, content, **_: Any) -> str:
        if str(event_type) == "m.room.message":
            self.sent.append(("notice", content.body))
            return "$notice"
        self.sent.append((str(event_type), content))
        return "$status"

    async def _deliver(self, row: dbm.MatrixEvent) -> None:
        if row.event_id in self.real:
            await OutboundMixin._deliver(self, row)
            return
        if row.event_id in self.always:
            raise self.always[row.event_id]
        if self.once.get(row.event_id):
            raise self.once[row.event_id].pop(0)
        await row.finish(DONE)
        self.delivered.append(row.event_id)


async def _store(event_id: str, seq: int, content: dict[str, Any], attempts: int = 0) -> None:
    raw = {
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": "@ada:localhost",
        "event_id": event_id,
        "content": content,
    }
    row = dbm.MatrixEvent(
        event_id, ROOM, "@ada:localhost", seq, "m.room.message", json.dumps(raw), PENDING,
        attempts, None, None,
    )  # fmt: skip
    await dbm.MatrixEvent.insert_many([row])


async def _run_until(portal: QueuePortal, event_id: str) -> None:
    portal.wake_outbound()
    try:
        async with asyncio.timeout(30):
            while event_id not in portal.delivered:
                await asyncio.sleep(0.05)
    finally:
        assert portal._outbound_task is not None
        portal._outbound_task.cancel()


def _statuses(portal: QueuePortal, event_id: str) -> list[dict[str, Any]]:
    return [
        content
        for kind, content in portal.sent
        if kind == "com.beeper.message_send_status"
        and content["m.relates_to"]["event_id"] == event_id
    ]


async def test_an_event_that_keeps_raising_fails_alone(database: Database):
    text = {"msgtype": "m.text", "body": "hi"}
    await _store("$poison", 1, text)
    await _store("$next", 2, text)
    portal = QueuePortal(always={"$poison": TypeError("unhashable type: 'list'")})
    await _run_until(portal, "$next")
    poison = await dbm.MatrixEvent.get("$poison")
    assert poison.status == FAILED
    assert poison.attempts == MAX_UNEXPECTED_ATTEMPTS
    assert poison.error == "internal error (TypeError)"
    [status] = _statuses(portal, "$poison")
    assert status["status"] == "FAIL_PERMANENT"
    assert any(kind == "notice" and "could not be delivered" in c for kind, c in portal.sent)


async def test_the_count_survives_a_restart(database: Database):
    # Two attempts were counted before a restart: the next error is the last.
    await _store("$poison", 1, {"msgtype": "m.text", "body": "hi"}, attempts=2)
    await _store("$next", 2, {"msgtype": "m.text", "body": "hi"})
    portal = QueuePortal(always={"$poison": KeyError("x")})
    await _run_until(portal, "$next")
    poison = await dbm.MatrixEvent.get("$poison")
    assert (poison.status, poison.attempts) == (FAILED, 3)


async def test_database_and_network_trouble_is_not_counted(database: Database):
    await _store("$flaky", 1, {"msgtype": "m.text", "body": "hi"})
    portal = QueuePortal(
        once={"$flaky": [ConnectionResetError(), sqlite3.OperationalError("locked")]}
    )
    await _run_until(portal, "$flaky")
    flaky = await dbm.MatrixEvent.get("$flaky")
    assert (flaky.status, flaky.attempts) == (DONE, 0)
    assert _statuses(portal, "$flaky") == []


async def test_content_of_the_wrong_type_fails_at_once(database: Database):
    await _store("$sticker", 1, {"msgtype": ["m.text"], "body": "x"})
    await _store("$next", 2, {"msgtype": "m.text", "body": "hi"})
    portal = QueuePortal(real=frozenset({"$sticker"}))
    await _run_until(portal, "$next")
    sticker = await dbm.MatrixEvent.get("$sticker")
    assert sticker.status == FAILED and "'msgtype' is not a string" in sticker.error
    [status] = _statuses(portal, "$sticker")
    assert status["status"] == "FAIL_PERMANENT" and "msgtype" in status["error"]
