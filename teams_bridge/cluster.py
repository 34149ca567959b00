"""An active process and standbys on one PostgreSQL database (`bridge.cluster`).

Several processes may run with the same config. One of them holds the bridge's lease, a row
of `bridge_lease`, and is the bridge: it listens for the homeserver, connects the users to
Teams and runs the portals. The others stand by with nothing but one database connection.
When the active process stops it deletes the row and says so (`NOTIFY`), and a standby
takes over at once; when it dies or loses the database, its lease runs out after
`lease_seconds` and a standby takes over then. Taking over is an ordinary start: everything
the bridge must finish (events to send, messages to catch up on) is in the database.

A lease is renewed every `renew_seconds`. A process that cannot renew in time, or finds the
row no longer its own, exits at once without finishing anything (`on_lost`): it stops
before its lease can have run out in the database, since it counts from before each
renewal was sent, so two processes never work at the same time.

The table is outside the versioned schema on purpose: the lease is taken before the schema
is upgraded, so that two processes starting at once never upgrade it together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg

from .db.batch import rows_affected

LEASE = "bridge"
CHANNEL = "teams_bridge_lease"
# Serialises creating the table (two processes creating it at once would collide).
TABLE_LOCK = 0x7465616D73  # "teams"

CREATE = """
CREATE TABLE IF NOT EXISTS bridge_lease (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
)
"""

# Takes the lease when nobody holds it or its holder's time has run out. The holder before
# (NULL when there was no row) tells how it was taken.
TAKE = """
WITH before AS (
    SELECT owner, expires_at FROM bridge_lease WHERE name = $1
)
INSERT INTO bridge_lease AS l (name, owner, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
    SET owner = excluded.owner, taken_at = now(), expires_at = excluded.expires_at
    WHERE l.expires_at < now()
RETURNING (SELECT owner FROM before) AS previous
"""

HOLDER = """
SELECT owner, EXTRACT(EPOCH FROM expires_at - now())::float8 AS left_s
FROM bridge_lease WHERE name = $1
"""

RENEW = """
UPDATE bridge_lease SET expires_at = now() + make_interval(secs => $3)
WHERE name = $1 AND owner = $2
"""

RELEASE = """
WITH gone AS (DELETE FROM bridge_lease WHERE name = $1 AND owner = $2 RETURNING owner)
SELECT pg_notify($3, owner) FROM gone
"""


def fence_trace(check: Callable[[], None]) -> aiohttp.TraceConfig:
    """`check()` before each request of an aiohttp session."""

    async def on_start(*_: Any) -> None:
        check()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    return trace


def fence_setup(check: Callable[[], None]) -> Callable[[Any], Awaitable[None]]:
    """`check()` each time an asyncpg pool hands out a connection (its ``setup``): every
    statement and transaction the bridge runs takes one first."""

    async def setup(_connection: Any) -> None:
        check()

    return setup


def process_name() -> str:
    """This process, as other processes and operators see it: host, pid, a random part (a
    pid can come back after a restart)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


Connect = Callable[[str], Awaitable[Any]]

# What waiting does not mend: the config or the database's permissions are wrong.
PERMANENT = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
)


async def _connect(dsn: str) -> Any:
    return await asyncpg.connect(dsn, timeout=15)


class Lease:
    def __init__(
        self,
        dsn: str,
        *,
        lease_seconds: float,
        renew_seconds: float,
        owner: str | None = None,
        connect: Connect = _connect,
        log: logging.Logger | None = None,
    ) -> None:
        if not 0 < renew_seconds * 2 <= lease_seconds:
            raise ValueError("renew_seconds must be at most half of lease_seconds")
        self.dsn = dsn
        self.ttl = float(lease_seconds)
        self.renew = float(renew_seconds)
        self.owner = owner or process_name()
        self.log = log or logging.getLogger("teams.cluster")
        self._connect = connect
        self._conn: Any = None
        self._wake = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._on_lost: Callable[[str], None] = lambda _reason: None
        self.held = False
        # Monotonic time by which this process must have stopped unless it renews again.
        self.deadline = 0.0

    # -- the connection ------------------------------------------------------------------

    async def _connection(self) -> Any:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = None
        conn = await self._connect(self.dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", TABLE_LOCK)
                await conn.execute(CREATE)
            if not self.held:
                await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            await _close(conn)
            raise
        self._conn = conn
        return conn

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)

    # -- standing by -----------------------------------------------------------------------

    async def acquire(self) -> str | None:
        """Wait until this process holds the lease; the process that held it before (None
        when it was free: never taken, or released). Waits through the database being
        unreachable; raises what waiting cannot mend (`PERMANENT`)."""
        shown: str | None = None
        while True:
            self._wake.clear()
            pause = self.renew
            try:
                conn = await self._connection()
                sent = time.monotonic()
                row = await conn.fetchrow(TAKE, LEASE, self.owner, self.ttl)
                if row is not None:
                    self.held = True
                    self.deadline = sent + self._fence_after()
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(CHANNEL, self._notified)
                    return row["previous"]
                holder = await conn.fetchrow(HOLDER, LEASE)
                if holder is not None:
                    if holder["owner"] != shown:
                        shown = holder["owner"]
                        self.log.info(
                            "Standing by: process %s is the bridge (its lease runs %.0f s more)",
                            shown,
                            max(0.0, holder["left_s"]),
                        )
                    # Try again just after it runs out, or sooner if it is released.
                    pause = min(self.renew, max(0.05, holder["left_s"] + 0.05))
                else:
                    pause = 0.0  # released between the two statements
            except PERMANENT:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.log.warning("Cannot reach the database to take the lease: %s", e)
                await self._drop_connection()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    def _fence_after(self) -> float:
        """Seconds after sending a renewal by which this process stops unless it renews
        again: half a renewal interval before the lease can run out in the database."""
        return self.ttl - self.renew / 2

    # -- being the bridge ------------------------------------------------------------------

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew the lease until released; `on_lost(reason)` when it cannot be kept."""
        self._on_lost = on_lost
        self._keeper = asyncio.create_task(self._keep(on_lost), name="lease renewal")

    def check(self) -> None:
        """Before anything goes out to the homeserver or Teams: a process that was paused
        (a frozen machine, SIGSTOP) past its deadline must not act on what it had in hand
        when it resumes, before its renewal task has run; `on_lost` then."""
        if self.held and time.monotonic() >= self.deadline:
            self.held = False
            self._on_lost("it was not renewed in time")

    async def _keep(self, on_lost: Callable[[str], None]) -> None:
        while True:
            await asyncio.sleep(min(self.renew, max(0.0, self.deadline - time.monotonic())))
            sent = time.monotonic()
            if sent >= self.deadline:
                self.held = False
                on_lost("it could not be renewed in time")
                return
            try:
                conn = await self._connection()
                status = await asyncio.wait_for(
                    conn.execute(RENEW, LEASE, self.owner, self.ttl), self.deadline - sent
                )
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                TimeoutError,
            ) as e:
                self.log.warning("Renewing the lease failed: %s", e)
                await self._drop_connection()
                continue
            if rows_affected(status) == 0:
                self.held = False
                on_lost("another process holds it")
                return
            self.deadline = sent + self._fence_after()

    async def release(self) -> None:
        """Give the lease up (after this process has stopped working) and tell the
        standbys."""
        await self._stop_keeping()
        if self.held:
            self.held = False
            try:
                conn = await self._connection()
                await conn.fetch(RELEASE, LEASE, self.owner, CHANNEL)
                self.log.info("Released the lease")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.log.warning("Could not release the lease (it runs out by itself): %s", e)
        await self._drop_connection()

    async def close(self) -> None:
        """Stop without releasing (a standby leaving, or a test)."""
        await self._stop_keeping()
        await self._drop_connection()

    async def _stop_keeping(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:
        conn.terminate()
