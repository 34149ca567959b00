"""The records of bridged messages, written together (`db/records.py`), on PostgreSQL and
on SQLite."""

from __future__ import annotations

import asyncio

import pytest
from mautrix.util.async_db import Database

from teams_bridge import db as dbm
from teams_bridge.db import records
from teams_bridge.db.matrix_event import DONE, PENDING
from teams_bridge.db.message import FROM_MATRIX, FROM_TEAMS

# Long enough that only a flush (or a full batch) writes anything in these tests.
NEVER = 3600.0


async def _portal(thread_id: str) -> dbm.Portal:
    portal = dbm.Portal(
        thread_id, "", None, "group", None, False, None, None, False, None, None, None
    )
    await portal.insert()
    return portal


def _record(thread_id: str, message_id: str, event_id: str, *, cursor: bool = True) -> dbm.Record:
    mapping = dbm.Message(
        thread_id=thread_id,
        receiver="",
        message_id=message_id,
        part=0,
        mxid=event_id,
        mx_room=f"!{thread_id[3:6]}:localhost",
        sender_mri="8:orgid:b",
        timestamp=int(message_id),
        version=message_id,
        origin=FROM_TEAMS,
    )
    state = dbm.MessageState(thread_id, "", message_id, None, "digest-" + message_id, False)
    return dbm.Record(thread_id, "", [mapping], state, message_id if cursor else None)


def _count_writes(writer: records.RecordWriter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch ``writer`` stores, as it stores them."""
    writes: list[int] = []
    store = writer._store

    async def counted(batch: list[dbm.Record]) -> None:
        writes.append(len(batch))
        await store(batch)

    monkeypatch.setattr(writer, "_store", counted)
    return writes


async def _store_now(writer: records.RecordWriter, record: dbm.Record) -> None:
    done = writer.add(record)
    writer.flush()
    await done


async def _stored(thread_id: str) -> tuple[list[str], list[str], str | None]:
    db = dbm.Message.db
    mapped = await db.fetch(
        "SELECT message_id FROM message WHERE thread_id=$1 ORDER BY message_id", thread_id
    )
    states = await db.fetch(
        "SELECT message_id FROM message_state WHERE thread_id=$1 ORDER BY message_id", thread_id
    )
    cursor = await db.fetchval("SELECT last_message_id FROM portal WHERE thread_id=$1", thread_id)
    return [r["message_id"] for r in mapped], [r["message_id"] for r in states], cursor


async def test_records_of_several_portals_go_out_in_one_write(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    await _portal("19:aaa@thread.v2")
    await _portal("19:bbb@thread.v2")
    writer = records.RecordWriter(database, window=NEVER)
    writes = _count_writes(writer, monkeypatch)
    done = [
        writer.add(_record("19:aaa@thread.v2", "1001", "$a1")),
        writer.add(_record("19:bbb@thread.v2", "2001", "$b1")),
        writer.add(_record("19:aaa@thread.v2", "1002", "$a2")),
        # Not the portal's newest (it came out of order): no cursor of its own.
        writer.add(_record("19:bbb@thread.v2", "2000", "$b0", cursor=False)),
    ]
    assert not any(d.done() for d in done)  # waiting for others, not written one by one
    writer.flush()
    await asyncio.gather(*done)
    assert writes == [4]
    assert await _stored("19:aaa@thread.v2") == (["1001", "1002"], ["1001", "1002"], "1002")
    assert await _stored("19:bbb@thread.v2") == (["2000", "2001"], ["2000", "2001"], "2001")


async def test_records_of_deliveries_to_teams_go_out_with_the_others(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    """A Matrix event delivered to Teams: the post's mapping, the Teams id of its send
    record and the event marked done, in the same write as a Teams message's record."""
    await _portal("19:aaa@thread.v2")
    room = "!aaa:localhost"
    rows = [
        dbm.MatrixEvent("$post", room, "@ada:localhost", 1, "m.room.message", "{}",
                        PENDING, 0, "cmid-1", None),
        dbm.MatrixEvent("$react", room, "@ada:localhost", 2, "m.reaction", "{}",
                        PENDING, 0, None, None),
    ]  # fmt: skip
    await dbm.MatrixEvent.insert_many(rows)
    await dbm.SentMessage.new("cmid-1", "19:aaa@thread.v2", "", "$post", room).insert()
    writer = records.RecordWriter(database, window=NEVER)
    writes = _count_writes(writer, monkeypatch)
    post = dbm.Message(
        thread_id="19:aaa@thread.v2",
        receiver="",
        message_id="1005",
        part=0,
        mxid="$post",
        mx_room=room,
        sender_mri="8:orgid:a",
        timestamp=1005,
        version="1005",
        origin=FROM_MATRIX,
    )
    done = [
        writer.add(_record("19:aaa@thread.v2", "1001", "$a1")),
        writer.add(
            dbm.Record("19:aaa@thread.v2", "", [post], finished="$post", sent=("cmid-1", "1005"))
        ),
        writer.add(dbm.Record("19:aaa@thread.v2", "", [], finished="$react")),
    ]
    writer.flush()
    await asyncio.gather(*done)
    assert writes == [3]
    assert (await dbm.MatrixEvent.get("$post")).status == DONE
    assert (await dbm.MatrixEvent.get("$react")).status == DONE
    assert (await dbm.SentMessage.get("cmid-1")).message_id == "1005"
    assert (await dbm.Message.get_by_mxid("$post", room)).message_id == "1005"
    # The Teams message's cursor is untouched by the delivery's record.
    assert await _stored("19:aaa@thread.v2") == (["1001", "1005"], ["1001"], "1001")


async def test_a_record_stored_already_changes_nothing(database: Database):
    await _portal("19:aaa@thread.v2")
    writer = records.RecordWriter(database, window=NEVER)
    await _store_now(writer, _record("19:aaa@thread.v2", "1001", "$a1"))
    # The same message again (sent twice before a crash), and the newest after it.
    again = writer.add(_record("19:aaa@thread.v2", "1001", "$a1"))
    newest = writer.add(_record("19:aaa@thread.v2", "1002", "$a2"))
    writer.flush()
    await asyncio.gather(again, newest)
    assert await _stored("19:aaa@thread.v2") == (["1001", "1002"], ["1001", "1002"], "1002")


async def test_a_bad_record_fails_alone(database: Database):
    await _portal("19:aaa@thread.v2")
    await _portal("19:bbb@thread.v2")
    writer = records.RecordWriter(database, window=NEVER)
    await _store_now(writer, _record("19:aaa@thread.v2", "1001", "$a1"))
    good = writer.add(_record("19:bbb@thread.v2", "2001", "$b1"))
    # Another message mapped onto an event already mapped: the database refuses it.
    bad = writer.add(_record("19:aaa@thread.v2", "1002", "$a1"))
    later = writer.add(_record("19:aaa@thread.v2", "1003", "$a3"))
    writer.flush()
    results = await asyncio.gather(good, bad, later, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    assert await _stored("19:bbb@thread.v2") == (["2001"], ["2001"], "2001")
    assert await _stored("19:aaa@thread.v2") == (["1001", "1003"], ["1001", "1003"], "1003")


async def test_closing_writes_what_waits(database: Database):
    await _portal("19:aaa@thread.v2")
    writer = records.RecordWriter(database, window=NEVER)
    done = writer.add(_record("19:aaa@thread.v2", "1001", "$a1"))
    await writer.close()
    assert done.done() and done.exception() is None
    assert await _stored("19:aaa@thread.v2") == (["1001"], ["1001"], "1001")


async def test_a_full_batch_goes_out_without_a_flush(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    await _portal("19:aaa@thread.v2")
    monkeypatch.setattr(records, "MOST", 3)
    writer = records.RecordWriter(database, window=NEVER)
    done = [writer.add(_record("19:aaa@thread.v2", str(1001 + i), f"$a{i}")) for i in range(3)]
    await asyncio.gather(*done)
    assert (await _stored("19:aaa@thread.v2"))[2] == "1003"


async def test_the_database_away_is_waited_out(database: Database, monkeypatch: pytest.MonkeyPatch):
    await _portal("19:aaa@thread.v2")
    monkeypatch.setattr(records, "FIRST_PAUSE", 0.0)
    monkeypatch.setattr(records, "LONGEST_PAUSE", 0.0)
    writer = records.RecordWriter(database, window=NEVER)
    store = writer._store
    tries: list[int] = []

    async def flaky(batch: list[dbm.Record]) -> None:
        tries.append(len(batch))
        if len(tries) < 3:
            raise (ConnectionResetError if len(tries) == 1 else RuntimeError)("connection lost")
        await store(batch)

    monkeypatch.setattr(writer, "_store", flaky)
    first = writer.add(_record("19:aaa@thread.v2", "1001", "$a1"))
    second = writer.add(_record("19:aaa@thread.v2", "1002", "$a2"))
    writer.flush()
    await asyncio.gather(first, second)
    assert tries == [2, 2, 2]  # the batch as a whole each time, not split
    assert await _stored("19:aaa@thread.v2") == (["1001", "1002"], ["1001", "1002"], "1002")
