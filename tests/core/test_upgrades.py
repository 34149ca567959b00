"""Upgrades from every shipped schema version, on PostgreSQL and SQLite.

The databases are real: `schema_dumps/vN.*.sql` were made by each version's own schema code
(see schema_dumps/make_dumps.py). Each is loaded, upgraded by today's code, and must then
keep its rows and have exactly the schema a new database gets.
"""

from __future__ import annotations

import ast
import sqlite3
import uuid
from pathlib import Path

import asyncpg
import pytest
from mautrix.util.async_db import Database

from teams_bridge import db as dbm
from teams_bridge.db.upgrade import LATEST_VERSION, upgrade_table

DUMPS = Path(__file__).resolve().parent / "schema_dumps"
UPGRADES = Path(dbm.__file__).resolve().parent / "upgrade"
VERSIONS = sorted(int(p.name[1:].split(".")[0]) for p in DUMPS.glob("v*.sqlite.sql"))


def test_every_shipped_version_has_dumps():
    assert VERSIONS == list(range(1, LATEST_VERSION + 1))
    assert sorted(p.name for p in DUMPS.glob("v*.postgres.sql")) == [
        f"v{v}.postgres.sql" for v in VERSIONS
    ]


async def _load(backend: str, version: int, request: pytest.FixtureRequest, tmp_path: Path):
    """A database holding the dump of `version`; its URL."""
    sql = (DUMPS / f"v{version}.{backend}.sql").read_text()
    if backend == "sqlite":
        path = tmp_path / f"v{version}.db"
        conn = sqlite3.connect(path)
        conn.executescript(sql)
        conn.close()
        return f"sqlite:{path}"
    cluster = request.getfixturevalue("postgres")
    url = cluster.create_database(f"up_{uuid.uuid4().hex[:12]}")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
    return url


async def _schema(db: Database) -> dict:
    """Tables with their columns (type, nullability, default), indexes and foreign keys."""
    if db.scheme.value == "sqlite":
        tables = [
            r["name"]
            for r in await db.fetch(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        schema = {}
        for t in sorted(tables):
            cols = [tuple(r) for r in await db.fetch(f'PRAGMA table_info("{t}")')]
            idx = sorted(
                (r["name"], r["unique"]) for r in await db.fetch(f'PRAGMA index_list("{t}")')
            )
            fks = sorted(tuple(r)[2:5] for r in await db.fetch(f'PRAGMA foreign_key_list("{t}")'))
            schema[t] = (cols, idx, fks)
        return schema
    cols = await db.fetch(
        """SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position"""
    )
    idx = await db.fetch(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "ORDER BY tablename, indexname"
    )
    cons = await db.fetch(
        """SELECT conrelid::regclass::text AS t, contype, pg_get_constraintdef(oid) AS def
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2, 3"""
    )
    return {
        "columns": [tuple(r) for r in cols],
        "indexes": [tuple(r) for r in idx],
        "constraints": [tuple(r) for r in cons],
    }


async def _open(url: str) -> Database:
    db = Database.create(url, upgrade_table=upgrade_table, owner_name="teams-bridge")
    await db.start()
    return db


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
@pytest.mark.parametrize("version", VERSIONS)
async def test_upgrade_from_a_shipped_version(backend, version, request, tmp_path):
    url = await _load(backend, version, request, tmp_path)
    upgraded = await _open(url)
    fresh_url = (
        f"sqlite:{tmp_path / 'fresh.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres").create_database(f"fr_{uuid.uuid4().hex[:12]}")
    )
    fresh = await _open(fresh_url)
    try:
        assert await upgraded.fetchval("SELECT version FROM version") == LATEST_VERSION
        assert await _schema(upgraded) == await _schema(fresh)
        # The rows the old version held are all still there.
        dbm.init(upgraded)
        user = await dbm.User.get_by_mxid("@ada:example.org")
        assert user.credentials == '{"refresh_token":"rt-ada"}'
        portal = await dbm.Portal.get_by_thread("19:abc@thread.v2")
        assert (portal.mxid, portal.name, portal.last_message_id) == (
            "!room:example.org",
            "Engines",
            "1700000000001",
        )
        puppet = await dbm.Puppet.get_by_mri("8:orgid:bob")
        assert (puppet.name, puppet.name_set) == ("Bob Babbage", True)
        assert await dbm.Message.get("19:abc@thread.v2", "", "1700000000001") is not None
        if version >= 2:
            assert await upgraded.fetchval("SELECT status FROM matrix_event") == "done"
        if version >= 3:
            assert await upgraded.fetchval("SELECT emotion_key FROM reaction") == "like"
        if version >= 4:
            assert puppet.avatar_hash == "ff"
        await _check_portal_keys(upgraded, version)
        # Where each message came from, worked out from what the old version recorded: the
        # messages the bridge posted (sent_message) and the events it took from Matrix
        # (matrix_event, since v2).
        origins = {r["mxid"]: r["origin"] for r in await upgraded.fetch("SELECT * FROM message")}
        expected = {"$m1": "teams", "$s1": "matrix", "$d1": "teams"}
        if version >= 2:
            expected["$e1"] = "matrix"
        assert origins == expected
        assert (await dbm.Message.get_by_mxid("$s1", "!room:example.org")).from_matrix
    finally:
        await upgraded.stop()
        await fresh.stop()


async def _check_portal_keys(db: Database, version: int) -> None:
    """A 1:1 chat's portal, with every row that belongs to it, is its bridge user's: the
    user in it who is not the person the room is named after. Other portals are shared."""
    rows = {
        table: sorted(
            tuple(r)
            for r in await db.fetch(
                f"SELECT DISTINCT thread_id, receiver FROM {table} ORDER BY 1, 2"
            )
        )
        for table in ("portal", "message", "sent_message", "reaction", "message_state")
    }
    dm, dm2, group = "19:ada_bob@unq.gbl.spaces", "19:ada_cy@unq.gbl.spaces", "19:abc@thread.v2"
    channel = "19:design@thread.tacv2"
    assert rows["portal"] == [(group, ""), (dm, "8:orgid:ada"), (dm2, "8:orgid:cy"), (channel, "")]
    assert rows["message"] == [(group, ""), (dm, "8:orgid:ada")]
    assert rows["sent_message"] == [(group, ""), (dm, "8:orgid:ada")]
    if version >= 3:
        assert rows["reaction"] == rows["message_state"] == [(group, ""), (dm, "8:orgid:ada")]
    # Ada is the other person in Cy's room: she is no longer in its portal.
    members = sorted(tuple(r) for r in await db.fetch("SELECT * FROM user_portal"))
    assert members == [
        ("@ada:example.org", group, ""),
        ("@ada:example.org", dm, "8:orgid:ada"),
        ("@cy:example.org", dm2, "8:orgid:cy"),
    ]
    portal = await dbm.Portal.get_by_thread(dm, "8:orgid:ada")
    assert (portal.mxid, portal.other_user_mri) == ("!dm:example.org", "8:orgid:bob")
    assert [p.thread_id for p in await dbm.Portal.for_user("@cy:example.org")] == [dm2]
    sent = await dbm.SentMessage.get("223456789")
    assert (sent.thread_id, sent.receiver) == (dm, "8:orgid:ada")
    # The team of a channel: stored from v5 on.
    channel_portal = await dbm.Portal.get_by_thread(channel)
    team = ("19:contoso@thread.tacv2", "Contoso") if version >= 5 else (None, None)
    assert (channel_portal.team_id, channel_portal.team_name) == team


def test_numbered_upgrades_are_frozen_scripts():
    """Each version's upgrade holds its own SQL: it imports nothing of the project but the
    upgrade table, defines only its upgrade function, and calls nothing but the connection."""
    modules = sorted(p for p in UPGRADES.glob("v*.py") if not p.name.startswith("v00_"))
    assert [p.name[:3] for p in modules] == [f"v{v:02d}" for v in range(2, LATEST_VERSION + 1)]
    for path in modules:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                assert [a.name for a in node.names] == ["upgrade_table"], path.name
        functions = [n for n in tree.body if isinstance(n, ast.AsyncFunctionDef)]
        assert len(functions) == 1, path.name
        body = functions[0].body
        for call in (c for stmt in body for c in ast.walk(stmt)):
            if isinstance(call, ast.Call):
                assert ast.unparse(call.func).startswith("conn."), (path.name, ast.unparse(call))
