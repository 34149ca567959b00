"""Every table's queries, on PostgreSQL and on SQLite (the same SQL runs on both)."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from mautrix.util.async_db import Database

from teams_bridge import db as dbm
from teams_bridge.db.batch import combine, execute_batch
from teams_bridge.db.upgrade import LATEST_VERSION, upgrade_table


async def test_schema_is_at_latest_version(database: Database):
    version = await database.fetchval("SELECT version FROM version")
    assert version == LATEST_VERSION
    # mautrix's crypto store joins on portal.mxid and portal.encrypted.
    await database.fetch("SELECT mxid, encrypted FROM portal")


async def test_user_round_trip(database: Database):
    user = dbm.User("@ada:localhost", None, None, None, None)
    await user.insert()
    user.mri, user.credentials, user.endpoint_id = "8:orgid:a", '{"refresh_token":"x"}', "ep"
    user.management_room = "!room:localhost"
    await user.update()
    loaded = await dbm.User.get_by_mxid("@ada:localhost")
    assert loaded == user
    assert await dbm.User.get_by_mri("8:orgid:a") == user
    assert [u.mxid for u in await dbm.User.all_logged_in()] == ["@ada:localhost"]
    user.credentials = None
    await user.update()
    assert await dbm.User.all_logged_in() == []


async def test_puppet_round_trip(database: Database):
    puppet = dbm.Puppet("8:orgid:b", None, None, False, None, False, False, None, None, None, None)
    await puppet.insert()
    assert (await dbm.Puppet.get_by_mri("8:orgid:b")).avatar_checked_at == 0
    puppet.name, puppet.name_source, puppet.name_set = "Bob", "profile", True
    puppet.avatar_url, puppet.avatar_hash = "mxc://localhost/abc", "ab" * 32
    puppet.avatar_checked_at = 1_715_842_456_893
    await puppet.update()
    loaded = await dbm.Puppet.get_by_mri("8:orgid:b")
    assert loaded.name == "Bob" and loaded.name_set is True and loaded.name_source == "profile"
    assert (loaded.avatar_url, loaded.avatar_hash) == ("mxc://localhost/abc", "ab" * 32)
    assert loaded.avatar_checked_at == 1_715_842_456_893


async def test_upgrade_from_v3_keeps_rows_and_adds_the_picture_columns(database: Database):
    # A v3 database: the later columns gone, the version set back.
    await _portal()
    await dbm.Puppet(
        "8:orgid:b", "Bob", "profile", True, None, False, False, None, None, None, None
    ).insert()
    for table, column in (
        ("puppet", "avatar_hash"),
        ("puppet", "avatar_checked_at"),
        ("portal", "avatar_source"),
        ("portal", "team_id"),
        ("portal", "team_name"),
        ("message", "origin"),
    ):
        await database.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    await database.execute("DROP TABLE space")
    await database.execute("UPDATE version SET version=3")
    await upgrade_table.upgrade(database)
    assert await database.fetchval("SELECT version FROM version") == LATEST_VERSION
    puppet = await dbm.Puppet.get_by_mri("8:orgid:b")
    assert (puppet.name, puppet.avatar_hash, puppet.avatar_checked_at) == ("Bob", None, 0)
    portal = await dbm.Portal.get_by_thread("19:abc@thread.v2")
    assert portal.avatar_source is None
    portal.avatar_source = "https://ams.example/v1/objects/0-x/views/avatar_fullsize"
    await portal.update()
    loaded = await dbm.Portal.get_by_thread("19:abc@thread.v2")
    assert loaded.avatar_source == portal.avatar_source


async def _portal(thread_id: str = "19:abc@thread.v2") -> dbm.Portal:
    portal = dbm.Portal(
        thread_id, "", None, "group", None, False, None, None, False, None, None, None
    )
    await portal.insert()
    return portal


async def test_portal_and_membership(database: Database):
    portal = await _portal()
    portal.mxid, portal.name, portal.last_message_id = "!p:localhost", "Team", "1715842456893"
    await portal.update()
    assert (await dbm.Portal.get_by_mxid("!p:localhost")).name == "Team"
    loaded = await dbm.Portal.get_by_thread("19:abc@thread.v2")
    assert loaded.last_message_id == "1715842456893"
    await dbm.User("@ada:localhost", None, None, None, None).insert()
    assert not await portal.has_user("@ada:localhost")
    await portal.add_user("@ada:localhost")
    await portal.add_user("@ada:localhost")  # idempotent
    assert await portal.has_user("@ada:localhost")
    assert not await portal.has_user("@bob:localhost")
    assert [p.thread_id for p in await dbm.Portal.for_user("@ada:localhost")] == [
        "19:abc@thread.v2"
    ]
    assert [p.mxid for p in await dbm.Portal.all_with_room()] == ["!p:localhost"]


async def test_message_insert_reports_duplicates(database: Database):
    await _portal()
    message = dbm.Message(
        "19:abc@thread.v2", "", "1000", 0, "$e1", "!p:localhost", "8:orgid:b", 1000, "1000", "teams"
    )
    assert await message.insert() is True
    assert await message.insert() is False
    assert await dbm.Message.count_in_thread("19:abc@thread.v2") == 1
    assert (await dbm.Message.get("19:abc@thread.v2", "", "1000")).mxid == "$e1"
    mine = dbm.Message(
        "19:abc@thread.v2",
        "",
        "1001",
        0,
        "$e2",
        "!p:localhost",
        "8:orgid:a",
        1001,
        "1001",
        "matrix",
    )
    await mine.insert()
    assert (await dbm.Message.get_by_mxid("$e2", "!p:localhost")).from_matrix is True
    assert (await dbm.Message.get_by_mxid("$e1", "!p:localhost")).from_matrix is False
    assert (await dbm.Message.get_by_mxid("$e1", "!p:localhost")).message_id == "1000"
    assert await dbm.Message.get("19:abc@thread.v2", "", "1000", part=1) is None


async def test_sent_message_tracks_client_message_id(database: Database):
    sent = dbm.SentMessage.new("1234567890123456789", "19:abc@thread.v2", "", "$m", "!p:x")
    await sent.insert()
    await sent.set_message_id("2000")
    loaded = await dbm.SentMessage.get("1234567890123456789")
    assert loaded.message_id == "2000" and loaded.mxid == "$m"
    assert await dbm.SentMessage.get("nope") is None


async def test_lookup_incoming_answers_every_check_at_once(database: Database):
    await _portal()
    thread = "19:abc@thread.v2"
    seen = await dbm.Message.lookup_incoming(thread, "", "1000", None)
    assert seen == dbm.Incoming(bridged=False, has_state=False, sent=None)
    sent = dbm.SentMessage.new("1234567890123456789", thread, "", "$m", "!p:localhost")
    await sent.insert()
    seen = await dbm.Message.lookup_incoming(thread, "", "1000", "1234567890123456789")
    assert seen.sent == sent and not seen.bridged
    await dbm.Message(
        thread, "", "1000", 0, "$m", "!p:localhost", "8:orgid:b", 1, "1", "matrix"
    ).insert()
    await dbm.MessageState(thread, "", "1000", None, "digest", False).insert_if_absent()
    seen = await dbm.Message.lookup_incoming(thread, "", "1000", "unknown")
    assert seen == dbm.Incoming(bridged=True, has_state=True, sent=None)


async def test_known_ids_finds_mapped_and_stated_messages_in_one_go(database: Database):
    await _portal()
    thread = "19:abc@thread.v2"
    assert await dbm.Message.known_ids(thread, "", []) == set()
    await dbm.Message(
        thread, "", "1000", 0, "$m", "!p:localhost", "8:orgid:b", 1, "1", "teams"
    ).insert()
    await dbm.MessageState(thread, "", "1002", None, "digest", False).insert_if_absent()
    # Another chat's mapping of the same id is not this one's.
    await _portal("19:other@thread.v2")
    await dbm.Message(
        "19:other@thread.v2", "", "1003", 0, "$n", "!q:localhost", "8:orgid:b", 1, "1", "teams"
    ).insert()
    ids = [str(n) for n in range(1000, 1000 + dbm.message.KNOWN_IDS_CHUNK + 5)]
    assert await dbm.Message.known_ids(thread, "", ids) == {"1000", "1002"}
    assert await dbm.Message.known_ids(thread, "", ids[2:]) == {"1002"}


async def test_batch_writes_all_or_nothing(database: Database):
    portal = await _portal()
    message = dbm.Message(
        "19:abc@thread.v2", "", "1000", 0, "$e1", "!p:localhost", "8:orgid:b", 1000, "1000", "teams"
    )
    state = dbm.MessageState("19:abc@thread.v2", "", "1000", None, "digest", False)
    queries = [message.insert_query(), state.insert_if_absent_query(), portal.cursor_query("1000")]
    await execute_batch(database, queries)
    assert (await dbm.Message.get("19:abc@thread.v2", "", "1000")).mxid == "$e1"
    assert (await dbm.MessageState.get("19:abc@thread.v2", "", "1000")).content_hash == "digest"
    assert (await dbm.Portal.get_by_thread("19:abc@thread.v2")).last_message_id == "1000"
    # A failing part (here a second sent_message with the same key) undoes the others.
    sent = dbm.SentMessage.new("1234567890123456789", "19:abc@thread.v2", "", "$m", "!p:x")
    await sent.insert()
    later = dbm.Message(
        "19:abc@thread.v2", "", "2000", 0, "$e2", "!p:localhost", "8:orgid:b", 2000, "2000", "teams"
    )
    with pytest.raises((asyncpg.UniqueViolationError, sqlite3.IntegrityError)):
        await execute_batch(
            database, [later.insert_query(), portal.cursor_query("2000"), sent.insert_query()]
        )
    assert await dbm.Message.get("19:abc@thread.v2", "", "2000") is None
    assert (await dbm.Portal.get_by_thread("19:abc@thread.v2")).last_message_id == "1000"


async def test_a_batch_inside_a_transaction_is_part_of_it(database: Database):
    # (On PostgreSQL a batch outside a transaction skips mautrix's connection wrapper; inside
    # one it must still run on the transaction's connection, or a rollback would miss it.)
    portal = await _portal()

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with database.acquire() as conn, conn.transaction():
            await execute_batch(database, [portal.cursor_query("3000")])
            await execute_batch(
                database, [portal.cursor_query("3000"), ("SELECT 1 FROM portal", ())]
            )
            raise Undo
    assert (await dbm.Portal.get_by_thread("19:abc@thread.v2")).last_message_id != "3000"
    await execute_batch(database, [portal.cursor_query("3000")])
    assert (await dbm.Portal.get_by_thread("19:abc@thread.v2")).last_message_id == "3000"


def test_batch_renumbers_parameters():
    q, args = combine(
        [("UPDATE a SET x=$2 WHERE k=$1", (1, 2)), ("DELETE FROM b WHERE k=$1", (3,))]
    )
    assert q == "WITH w0 AS (UPDATE a SET x=$2 WHERE k=$1) DELETE FROM b WHERE k=$3"
    assert args == [1, 2, 3]
