"""Prometheus metrics: what the bridge counts, and the listener that serves them.

The counters are always kept (they cost next to nothing); `metrics.enabled` only decides
whether `/metrics` is served. The rest of the bridge reports through the small functions
below (`delivered`, `failed`), so no other module touches prometheus_client.

Gauges that describe the present (connected users, queued events) are read when a scrape
arrives rather than kept up to date by hand, so they cannot drift.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from yarl import URL

from . import db as dbm
from .teams import TrouterState
from .teams.services import service_of

if TYPE_CHECKING:
    from .__main__ import TeamsBridge

log = logging.getLogger("mau.metrics")

# No `*_created` series next to every counter: they double the output for nothing a
# dashboard uses.
disable_created_metrics()

TO_MATRIX = "to_matrix"
TO_TEAMS = "to_teams"
DIRECTIONS = (TO_MATRIX, TO_TEAMS)

MESSAGES = Counter(
    "teams_bridge_messages",
    "Events bridged: Teams messages written to Matrix (to_matrix); Matrix messages, edits, "
    "reactions and redactions accepted by Teams (to_teams).",
    ["direction"],
)
DELIVERY = Histogram(
    "teams_bridge_delivery_seconds",
    "From a message's arrival (Teams arrival time; the bridge's receipt of the Matrix event) "
    "to its acceptance by the other side.",
    ["direction"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
FAILED = Counter(
    "teams_bridge_failed_deliveries",
    "Events given up on: refused by the other side, or failing after every retry.",
    ["direction"],
)
TEAMS_REQUESTS = Counter(
    "teams_bridge_teams_requests",
    "HTTP requests to the Teams services (every attempt), by service and status "
    '(the HTTP status, or "error" when no answer came).',
    ["service", "status"],
)
CONNECTED_USERS = Gauge(
    "teams_bridge_connected_users",
    "Logged-in users whose real-time connection (Trouter) to Teams is up.",
)
LOADED = Gauge(
    "teams_bridge_loaded",
    "Portals, ghosts (puppet) and Matrix users (user) held in memory, bounded by bridge.cache.",
    ["kind"],
)
QUEUE_DEPTH = Gauge(
    "teams_bridge_queue_depth",
    "Events waiting: Matrix events stored but not yet delivered to Teams (to_teams), Teams "
    "events queued in the portals (to_matrix).",
    ["direction"],
)

for _direction in DIRECTIONS:
    # Every series exists from the start, at 0, so rates and alerts have a baseline.
    MESSAGES.labels(_direction)
    DELIVERY.labels(_direction)
    FAILED.labels(_direction)
    QUEUE_DEPTH.labels(_direction)


def delivered(direction: str, started_ms: int | float | None) -> None:
    """One event crossed to the other side; `started_ms` is when it arrived (epoch ms),
    0 or None when unknown."""
    counted, timed = _DELIVERED[direction]
    counted.inc()
    if started_ms:
        timed.observe(max(0.0, time.time() - started_ms / 1000))


# Each direction's children of the two metrics every delivery updates (looked up once).
_DELIVERED = {d: (MESSAGES.labels(d), DELIVERY.labels(d)) for d in DIRECTIONS}


def failed(direction: str) -> None:
    """One event that will never cross."""
    FAILED.labels(direction).inc()


def teams_request(url: str | URL, status: int | str) -> None:
    TEAMS_REQUESTS.labels(service_of(url), str(status)).inc()


def teams_trace_config() -> aiohttp.TraceConfig:
    """Counts every request made through the Teams HTTP session (REST calls of every
    service, logins, media, the Trouter websocket), each attempt on its own."""

    async def on_end(_session, _ctx, params) -> None:
        teams_request(params.url, params.response.status)

    async def on_error(_session, _ctx, params) -> None:
        teams_request(params.url, "error")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    trace.on_request_redirect.append(on_end)
    trace.on_request_exception.append(on_error)
    return trace


Refresh = Callable[[], Awaitable[None]]


async def refresh_bridge_gauges(bridge: TeamsBridge) -> None:
    """Read the present state into the gauges (before a scrape)."""
    directory = bridge.directory
    CONNECTED_USERS.set(
        sum(1 for user in directory.users() if user.trouter_state == TrouterState.CONNECTED)
    )
    portals = directory.portals()
    QUEUE_DEPTH.labels(TO_MATRIX).set(sum(portal.queue_depth for portal in portals))
    LOADED.labels("portal").set(len(portals))
    LOADED.labels("puppet").set(sum(1 for _ in directory.puppets()))
    LOADED.labels("user").set(len(directory.users()))
    QUEUE_DEPTH.labels(TO_TEAMS).set(await dbm.MatrixEvent.count_pending())


class MetricsServer:
    """Serves `/metrics` on its own listener (never the appservice's, which the homeserver
    talks to)."""

    def __init__(self, host: str, port: int, refresh: Refresh | None = None) -> None:
        self.host = host
        self.port = port
        self.refresh = refresh
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("Serving metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, _request: web.Request) -> web.Response:
        if self.refresh:
            try:
                await asyncio.wait_for(self.refresh(), timeout=5)
            except Exception as e:
                # A scrape while the database is away still gets the counters; the gauges
                # keep their last values.
                log.warning("Could not refresh the metrics gauges: %s", e)
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
