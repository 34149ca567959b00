"""Smoke tests of the test stack itself: PostgreSQL, Synapse, appservice registrations and
the Matrix test client."""

from __future__ import annotations

import aiohttp
import asyncpg
from mautrix.types import EventType, MessageType

from tests.harness import PostgresCluster, SynapseServer


async def test_postgres_accepts_connections_and_creates_databases(
    postgres: PostgresCluster,
) -> None:
    url = postgres.create_database("stack_smoke")
    assert url == f"postgres://postgres@127.0.0.1:{postgres.port}/stack_smoke"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        await conn.execute("INSERT INTO t VALUES (1, 'x')")
        assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "x"
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


async def test_postgres_restart_keeps_data(
    postgres_database: str, postgres: PostgresCluster
) -> None:
    conn = await asyncpg.connect(postgres_database)
    await conn.execute("CREATE TABLE kept (v TEXT)")
    await conn.execute("INSERT INTO kept VALUES ('before restart')")
    await conn.close()

    postgres.restart()

    conn = await asyncpg.connect(postgres_database)
    try:
        assert await conn.fetchval("SELECT v FROM kept") == "before restart"
    finally:
        await conn.close()


async def test_synapse_answers_on_loopback(synapse: SynapseServer) -> None:
    assert synapse.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{synapse.url}/_matrix/client/versions") as resp:
            assert resp.status == 200
            assert "versions" in await resp.json()


async def test_user_sends_and_receives_own_message_via_sync(matrix_client_factory) -> None:
    alice = await matrix_client_factory("stack_alice")
    assert alice.user_id == "@stack_alice:localhost"
    room_id = await alice.create_room(name="smoke")
    event_id = await alice.send_text(room_id, "hello", html="<b>hello</b>")

    evt = await alice.wait_for_message(room_id, body="hello")
    assert evt.event_id == event_id
    assert evt.sender == alice.user_id
    assert evt.content.formatted_body == "<b>hello</b>"
    # Already-seen events satisfy a later wait at once.
    again = await alice.wait_for_event(room_id, lambda e: e.event_id == event_id, timeout=1)
    assert again.event_id == event_id


async def test_dm_invite_join_and_notice_between_two_users(matrix_client_factory) -> None:
    alice = await matrix_client_factory()
    bob = await matrix_client_factory()

    room_id = await alice.create_dm(bob.user_id)
    invited = await bob.wait_for_invite(lambda inv: inv.sender == alice.user_id)
    assert invited == room_id
    assert bob.invites[room_id].is_direct

    await bob.join(room_id)
    assert room_id not in bob.invites
    members = await alice.members(room_id)
    assert members[bob.user_id] == "join"

    first = await alice.send_text(room_id, "ping")
    await bob.send_text(room_id, "pong", notice=True)
    reply = await alice.wait_for_notice(room_id, contains="pong", after=first)
    assert reply.sender == bob.user_id
    assert reply.content.msgtype == MessageType.NOTICE

    state = await bob.room_state(room_id)
    create = next(e for e in state if e.type == EventType.ROOM_CREATE)
    assert create.sender == alice.user_id


async def test_appservice_registrations_are_accepted(synapse: SynapseServer) -> None:
    pg, lite = synapse.appservices["pg"], synapse.appservices["lite"]
    assert pg.prefix == "teamspg" and lite.prefix == "teamslite"
    assert pg.port != lite.port
    async with aiohttp.ClientSession() as session:

        async def register(as_token: str, localpart: str) -> tuple[int, dict]:
            async with session.post(
                f"{synapse.url}/_matrix/client/v3/register",
                json={
                    "type": "m.login.application_service",
                    "username": localpart,
                    "inhibit_login": True,
                },
                headers={"Authorization": f"Bearer {as_token}"},
            ) as resp:
                return resp.status, await resp.json()

        status, body = await register(pg.as_token, "teamspg_probe")
        assert status == 200, body
        assert body["user_id"] == "@teamspg_probe:localhost"
        # (The bots themselves may already exist: bridges in other tests register them.)
        status, body = await register(lite.as_token, "teamslite_probe")
        assert status == 200, body
        assert body["user_id"] == "@teamslite_probe:localhost"
        # Namespaces are exclusive: one bridge cannot claim the other's users.
        status, body = await register(lite.as_token, "teamspg_intruder")
        assert status == 400 and body["errcode"] == "M_EXCLUSIVE", body

        async with session.get(
            f"{synapse.url}/_matrix/client/v3/account/whoami",
            params={"user_id": "@teamspg_probe:localhost"},
            headers={"Authorization": f"Bearer {pg.as_token}"},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["user_id"] == "@teamspg_probe:localhost"


async def test_client_rides_out_a_synapse_restart(matrix_client_factory, synapse) -> None:
    carol = await matrix_client_factory()
    room_id = await carol.create_room()
    await carol.send_text(room_id, "before")
    await carol.wait_for_message(room_id, body="before")

    synapse.restart()

    await carol.send_text(room_id, "after")
    evt = await carol.wait_for_message(room_id, body="after")
    assert evt.sender == carol.user_id
