"""The bridge's lease (cluster.py) on a real PostgreSQL: one holder at a time, a released
lease taken at once, an expired one taken over, a lost one noticed."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from teams_bridge.cluster import Lease, fence_setup, fence_trace

# Long enough that nothing in these tests runs out unless a test makes it.
LONG = 600.0


def lease(url: str, owner: str, ttl: float = LONG, renew: float | None = None) -> Lease:
    return Lease(url, lease_seconds=ttl, renew_seconds=renew or ttl / 4, owner=owner)


async def holder(url: str) -> str | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT owner FROM bridge_lease WHERE name = 'bridge'")
    finally:
        await conn.close()


async def test_one_holder_and_release_hands_over_at_once(postgres_database: str):
    a, b = lease(postgres_database, "a"), lease(postgres_database, "b")
    try:
        assert await a.acquire() is None  # free: never taken
        a.keep(lambda reason: pytest.fail(f"a lost its lease: {reason}"))
        waiting = asyncio.create_task(b.acquire())
        # b stands by: the lease is a's for ten minutes.
        await asyncio.sleep(0)
        for _ in range(50):
            await asyncio.sleep(0.02)
            assert not waiting.done()
        assert await holder(postgres_database) == "a"
        await a.release()
        # Released: b takes it (long before a's ten minutes, so through the notice or its
        # next look, which is at most renew_seconds away).
        assert await asyncio.wait_for(waiting, 120) is None
        assert await holder(postgres_database) == "b"
    finally:
        await a.close()
        await b.close()


async def test_expired_lease_is_taken_over(postgres_database: str):
    conn = await asyncpg.connect(postgres_database)
    a, b = lease(postgres_database, "a"), lease(postgres_database, "b")
    try:
        await a.acquire()
        # a dies without a word (no renewals, no release): its time runs out.
        await a.close()
        await conn.execute(
            "UPDATE bridge_lease SET expires_at = now() - interval '1 second' WHERE owner = 'a'"
        )
        assert await asyncio.wait_for(b.acquire(), 120) == "a"
        assert await holder(postgres_database) == "b"
    finally:
        await conn.close()
        await a.close()
        await b.close()


async def test_renewal_keeps_the_lease_and_a_taken_one_is_noticed(postgres_database: str):
    conn = await asyncpg.connect(postgres_database)
    a = lease(postgres_database, "a", ttl=60.0, renew=0.2)
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    try:
        await a.acquire()
        first = await conn.fetchval("SELECT expires_at FROM bridge_lease")
        a.keep(lost.set_result)

        async def renewed() -> bool:
            return await conn.fetchval("SELECT expires_at FROM bridge_lease") > first

        for _ in range(6000):
            if await renewed():
                break
            await asyncio.sleep(0.01)
        assert await renewed()
        assert not lost.done()
        # Someone else holds the row now (as after a take-over this process missed).
        await conn.execute("UPDATE bridge_lease SET owner = 'b'")
        assert await asyncio.wait_for(lost, 120) == "another process holds it"
        assert not a.held
    finally:
        await conn.close()
        await a.close()


async def test_lease_that_cannot_be_renewed_in_time_is_given_up(postgres_database: str):
    """The database stops answering: the holder gives up before its lease can have run out
    in the database, so that a standby never works beside it."""
    a = lease(postgres_database, "a", ttl=6.0, renew=3.0)
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    try:
        await a.acquire()
        conn = await asyncpg.connect(postgres_database)
        try:
            # Hold the row locked: every renewal waits and times out.
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT * FROM bridge_lease FOR UPDATE")
            a.keep(lost.set_result)
            assert await asyncio.wait_for(lost, 120) == "it could not be renewed in time"
            expires = await conn.fetchval(
                "SELECT EXTRACT(EPOCH FROM expires_at - now()) FROM bridge_lease"
            )
            # Given up while the database still counted it as held.
            assert expires > 0
            await tx.rollback()
        finally:
            await conn.close()
    finally:
        await a.close()


async def test_two_standbys_one_winner(postgres_database: str):
    a, b, c = (lease(postgres_database, n) for n in "abc")
    try:
        await a.acquire()
        waiting = [asyncio.create_task(x.acquire()) for x in (b, c)]
        await a.release()
        done, pending = await asyncio.wait(waiting, timeout=120, return_when="FIRST_COMPLETED")
        assert len(done) == 1
        winner = b if waiting[0] in done else c
        assert await holder(postgres_database) == winner.owner
        for _ in range(50):
            await asyncio.sleep(0.02)
        assert all(not t.done() for t in pending)
        for t in pending:
            t.cancel()
    finally:
        for x in (a, b, c):
            await x.close()


def test_renewals_must_fit_in_a_lease():
    with pytest.raises(ValueError):
        Lease("postgres://x", lease_seconds=10, renew_seconds=6)


async def test_check_stops_a_holder_past_its_deadline(postgres_database: str):
    """What runs before each request: nothing once the deadline has passed."""
    a = lease(postgres_database, "a")
    lost: list[str] = []
    try:
        a.check()  # not held: nothing to check
        await a.acquire()
        a.keep(lost.append)
        a.check()
        assert lost == [] and a.held
        # As after the process was paused past its deadline, before its renewal task ran.
        a.deadline = time.monotonic() - 0.001
        a.check()
        assert lost == ["it was not renewed in time"] and not a.held
        a.check()
        assert len(lost) == 1
    finally:
        await a.close()


class Stopped(Exception):
    pass


class Switch:
    """A fence's check: raises `Stopped` while it is on."""

    def __init__(self) -> None:
        self.on = False

    def __call__(self) -> None:
        if self.on:
            raise Stopped


async def test_fence_trace_stops_an_aiohttp_request_before_it_is_sent():
    requests: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(text="ok")

    check = Switch()
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(trace_configs=[fence_trace(check)]) as session:
            async with session.get(f"http://127.0.0.1:{port}/one") as resp:
                assert await resp.text() == "ok"
            check.on = True
            with pytest.raises(Stopped):
                await session.get(f"http://127.0.0.1:{port}/two")
    finally:
        await runner.cleanup()
    assert requests == ["/one"]


async def test_fence_setup_stops_a_statement_before_it_runs(postgres_database: str):
    check = Switch()
    pool = await asyncpg.create_pool(
        postgres_database, min_size=1, max_size=2, setup=fence_setup(check)
    )
    try:
        await pool.execute("CREATE TABLE fenced (n int)")
        await pool.execute("INSERT INTO fenced VALUES (1)")
        check.on = True
        with pytest.raises(Stopped):
            await pool.execute("INSERT INTO fenced VALUES (2)")
        with pytest.raises(Stopped):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO fenced VALUES (3)")
        check.on = False
        assert [r["n"] for r in await pool.fetch("SELECT n FROM fenced")] == [1]
    finally:
        await pool.close()
