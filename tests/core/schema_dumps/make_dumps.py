"""Make the SQL dumps of databases created by each shipped schema version.

    .venv/bin/python -m tests.core.schema_dumps.make_dumps

For each version, the schema code exactly as that version's commit shipped it (read from
git; the newest version may be read from the working tree) creates a fresh database on
PostgreSQL and on SQLite; a few rows of every table are added, and the database is dumped
(`pg_dump`, SQLite's own dump) to `vN.postgres.sql` and `vN.sqlite.sql` beside this file.
tests/core/test_upgrades.py upgrades those dumps.
Run it again only when a new schema version ships (add it below).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import re
import sqlite3
import subprocess
import sys
import tempfile
import types
from pathlib import Path

from mautrix.util.async_db import Database

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

# Schema version -> the commit that shipped it (the last commit before the next version);
# None for the newest version: its schema is read from the working tree. When the next
# version comes, put the commit that shipped this one in its place.
VERSIONS: dict[int, str | None] = {
    1: "4bdba81",
    2: "76cbaef",
    3: "1fd2682",
    4: "a3de64c",
    5: "35c8c68",
    6: "35464c4",
    7: None,
}

# Rows for each table, added once the table exists (version it appeared in, SQL).
ROWS: list[tuple[int, str]] = [
    (
        1,
        """INSERT INTO "user" (mxid, mri, credentials, endpoint_id, management_room)
        VALUES ('@ada:example.org', '8:orgid:ada', '{"refresh_token":"rt-ada"}', 'ep-1',
                '!mgmt:example.org')""",
    ),
    (
        1,
        "INSERT INTO puppet (mri, name, name_source, name_set) VALUES "
        "('8:orgid:bob', 'Bob Babbage', 'profile', true)",
    ),
    (
        1,
        "INSERT INTO portal (thread_id, receiver, mxid, kind, name, name_set, last_message_id) "
        "VALUES ('19:abc@thread.v2', '', '!room:example.org', 'group', 'Engines', true, "
        "'1700000000001')",
    ),
    (
        1,
        "INSERT INTO user_portal (user_mxid, thread_id, receiver) VALUES "
        "('@ada:example.org', '19:abc@thread.v2', '')",
    ),
    (
        1,
        "INSERT INTO message (thread_id, receiver, message_id, part, mxid, mx_room, sender_mri, "
        "timestamp, version) VALUES ('19:abc@thread.v2', '', '1700000000001', 0, '$m1', "
        "'!room:example.org', '8:orgid:bob', 1700000000001, '1700000000001')",
    ),
    # Sent from Matrix: known as such by its sent_message row.
    (
        1,
        "INSERT INTO message (thread_id, receiver, message_id, part, mxid, mx_room, sender_mri, "
        "timestamp, version) VALUES ('19:abc@thread.v2', '', '1700000000002', 0, '$s1', "
        "'!room:example.org', '8:orgid:ada', 1700000000002, '1700000000002')",
    ),
    (
        1,
        "INSERT INTO sent_message (client_message_id, thread_id, receiver, mxid, mx_room, "
        "message_id, created_at) VALUES ('123456789', '19:abc@thread.v2', '', '$s1', "
        "'!room:example.org', '1700000000002', 1700000000002)",
    ),
    (
        2,
        "INSERT INTO matrix_event (event_id, room_id, sender, seq, event_type, content, status) "
        "VALUES ('$s1', '!room:example.org', '@ada:example.org', 1, 'm.room.message', "
        '\'{"msgtype":"m.text","body":"hi"}\', \'done\')',
    ),
    (2, "INSERT INTO bridge_state_kv (key, value) VALUES ('last_txn', '17')"),
    # Sent from Matrix: known as such by its matrix_event row only.
    (
        2,
        "INSERT INTO matrix_event (event_id, room_id, sender, seq, event_type, content, status) "
        "VALUES ('$e1', '!room:example.org', '@ada:example.org', 2, 'm.room.message', "
        '\'{"msgtype":"m.text","body":"yo"}\', \'done\')',
    ),
    (
        2,
        "INSERT INTO message (thread_id, receiver, message_id, part, mxid, mx_room, sender_mri, "
        "timestamp, version) VALUES ('19:abc@thread.v2', '', '1700000000005', 0, '$e1', "
        "'!room:example.org', '8:orgid:ada', 1700000000005, '1700000000005')",
    ),
    (
        3,
        "INSERT INTO reaction (thread_id, receiver, message_id, sender_mri, emotion_key, mxid, "
        "mx_room, sent_at) VALUES ('19:abc@thread.v2', '', '1700000000001', '8:orgid:ada', "
        "'like', '$r1', '!room:example.org', 0)",
    ),
    (
        3,
        "INSERT INTO message_state (thread_id, receiver, message_id, edit_time, content_hash, "
        "deleted) VALUES ('19:abc@thread.v2', '', '1700000000001', NULL, 'abc', false)",
    ),
    (4, "UPDATE puppet SET avatar_hash = 'ff', avatar_checked_at = 1700000000000"),
    # 1:1 chats: a bridge user's with Bob, and one between two bridge users whose room Cy's
    # connection made (named after Ada); and a channel.
    (
        1,
        """INSERT INTO "user" (mxid, mri, credentials, endpoint_id, management_room)
        VALUES ('@cy:example.org', '8:orgid:cy', '{"refresh_token":"rt-cy"}', 'ep-2', NULL)""",
    ),
    (
        1,
        "INSERT INTO portal (thread_id, receiver, mxid, kind, name, name_set, other_user_mri, "
        "last_message_id) VALUES ('19:ada_bob@unq.gbl.spaces', '', '!dm:example.org', "
        "'one_to_one', 'Bob Babbage', true, '8:orgid:bob', '1700000000003')",
    ),
    (
        1,
        "INSERT INTO user_portal (user_mxid, thread_id, receiver) VALUES "
        "('@ada:example.org', '19:ada_bob@unq.gbl.spaces', '')",
    ),
    (
        1,
        "INSERT INTO message (thread_id, receiver, message_id, part, mxid, mx_room, sender_mri, "
        "timestamp, version) VALUES ('19:ada_bob@unq.gbl.spaces', '', '1700000000003', 0, "
        "'$d1', '!dm:example.org', '8:orgid:bob', 1700000000003, '1700000000003')",
    ),
    (
        1,
        "INSERT INTO sent_message (client_message_id, thread_id, receiver, mxid, mx_room, "
        "message_id, created_at) VALUES ('223456789', '19:ada_bob@unq.gbl.spaces', '', '$d2', "
        "'!dm:example.org', '1700000000004', 1700000000004)",
    ),
    (
        1,
        "INSERT INTO portal (thread_id, receiver, mxid, kind, name, name_set, other_user_mri) "
        "VALUES ('19:ada_cy@unq.gbl.spaces', '', '!dm2:example.org', 'one_to_one', "
        "'Ada Lovelace', true, '8:orgid:ada')",
    ),
    (
        1,
        "INSERT INTO user_portal (user_mxid, thread_id, receiver) VALUES "
        "('@ada:example.org', '19:ada_cy@unq.gbl.spaces', ''), "
        "('@cy:example.org', '19:ada_cy@unq.gbl.spaces', '')",
    ),
    (
        1,
        "INSERT INTO portal (thread_id, receiver, mxid, kind, name, name_set, topic) VALUES "
        "('19:design@thread.tacv2', '', '!chan:example.org', 'channel', 'Design (Contoso)', "
        "true, 'Design')",
    ),
    (
        3,
        "INSERT INTO reaction (thread_id, receiver, message_id, sender_mri, emotion_key, mxid, "
        "mx_room, sent_at) VALUES ('19:ada_bob@unq.gbl.spaces', '', '1700000000003', "
        "'8:orgid:ada', 'heart', '$r2', '!dm:example.org', 0)",
    ),
    (
        3,
        "INSERT INTO message_state (thread_id, receiver, message_id, edit_time, content_hash, "
        "deleted) VALUES ('19:ada_bob@unq.gbl.spaces', '', '1700000000003', NULL, 'def', false)",
    ),
    # From v5 a 1:1 chat's rows are under its bridge user's MRI (the foreign keys carry it
    # to the rows of the portal; sent_message has none), and a channel's team is stored.
    (
        5,
        "DELETE FROM user_portal WHERE user_mxid = '@ada:example.org' "
        "AND thread_id = '19:ada_cy@unq.gbl.spaces'",
    ),
    (
        5,
        "UPDATE portal SET receiver = '8:orgid:ada' WHERE thread_id = '19:ada_bob@unq.gbl.spaces'",
    ),
    (
        5,
        "UPDATE sent_message SET receiver = '8:orgid:ada' "
        "WHERE thread_id = '19:ada_bob@unq.gbl.spaces'",
    ),
    (
        5,
        "UPDATE portal SET receiver = '8:orgid:cy' WHERE thread_id = '19:ada_cy@unq.gbl.spaces'",
    ),
    (
        5,
        "UPDATE portal SET team_id = '19:contoso@thread.tacv2', team_name = 'Contoso' "
        "WHERE thread_id = '19:design@thread.tacv2'",
    ),
    # From v6 each message says where it came from.
    (6, "UPDATE message SET origin = 'matrix' WHERE mxid IN ('$s1', '$e1')"),
    (
        7,
        "INSERT INTO space (user_mxid, team_id, mxid, name) VALUES "
        "('@ada:example.org', '', '!space:example.org', 'Microsoft Teams')",
    ),
]


@functools.cache
def load_schema(version: int) -> types.ModuleType:
    """The schema code of that version: its commit's, as a standalone module or package
    (the working tree's for the newest version). Loaded once: a package's modules register
    themselves with its upgrade table only when first imported."""
    commit = VERSIONS[version]
    name = f"schema_v{version}"
    if commit is None:
        from teams_bridge.db import upgrade as module
    elif _git("ls-tree", "--name-only", commit, "teams_bridge/db/upgrade.py").strip():
        # One module up to v4.
        spec = importlib.util.spec_from_loader(name, loader=None)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        source = _git("show", f"{commit}:teams_bridge/db/upgrade.py")
        exec(compile(source, name, "exec"), module.__dict__)
    else:
        # A package with one module per version since v5.
        package = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        for path in _git("ls-tree", "--name-only", f"{commit}:teams_bridge/db/upgrade/").split():
            if path.endswith(".py"):
                source = _git("show", f"{commit}:teams_bridge/db/upgrade/{path}")
                (package / path).write_text(source)
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    assert module.LATEST_VERSION == version
    return module


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


async def create(url: str, version: int) -> None:
    schema = load_schema(version)
    db = Database.create(url, upgrade_table=schema.upgrade_table, owner_name="teams-bridge")
    await db.start()
    try:
        for since, sql in ROWS:
            if since <= version:
                await db.execute(sql)
    finally:
        await db.stop()


def pg_dump(cluster, database: str) -> str:
    out = subprocess.run(
        [
            str(cluster.bin_dir / "pg_dump") if hasattr(cluster, "bin_dir") else "pg_dump",
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "--inserts",
            "-h",
            cluster.host,
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            database,
        ],  # fmt: skip
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # Session settings are the loader's business; keep the statements only.
    lines = [
        line
        for line in out.splitlines()
        if not line.startswith(("SET ", "SELECT pg_catalog.set_config", "--", "\\"))
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.harness import PostgresCluster

    with PostgresCluster() as cluster:
        for version in VERSIONS:
            name = f"dump_v{version}"
            url = cluster.create_database(name)
            asyncio.run(create(url, version))
            (HERE / f"v{version}.postgres.sql").write_text(pg_dump(cluster, name))
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bridge.db"
                asyncio.run(create(f"sqlite:{path}", version))
                conn = sqlite3.connect(path)
                dump = "\n".join(conn.iterdump()) + "\n"
                conn.close()
            (HERE / f"v{version}.sqlite.sql").write_text(dump)
            print(f"v{version}: dumped")


if __name__ == "__main__":
    main()
