"""The Teams simulator as its own process, plus two read-only routes the benchmark needs.

`python -m bench.sim_server --set key=value ...` prints one JSON line (`url`) and serves
until SIGTERM. Besides the simulator's own routes it answers:

* `GET /_bench/marks?since=N&timeout=S`: every chat-service message POST whose content
  carries a benchmark marker, as `[marker, unix time of arrival]`, from index `since` on;
  waits up to `timeout` seconds for a new one (long poll).
* `GET /_bench/registered?since=T`: how many users have a Trouter connection opened at or
  after unix time `T` with an unexpired messaging registration pointing at it.

The simulator itself is not changed: the marks come from one extra middleware that sees
the same requests as the simulator's request recorder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import time
from typing import Any

from aiohttp import web

from tests.fake_teams import FakeTeams

MARKER = re.compile(r"BM[0-9a-z]{4,32}")
_MESSAGES_PATH = re.compile(r"/conversations/[^/]+/messages$")


class Marks:
    """Arrival times of marked messages, with a long-poll reader."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []
        self._changed = asyncio.Event()

    def add(self, marker: str, when: float) -> None:
        self.items.append((marker, when))
        self._changed.set()

    async def since(self, index: int, timeout: float) -> list[tuple[str, float]]:
        deadline = time.monotonic() + timeout
        while len(self.items) <= index:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.items[index:]


def install(sim: FakeTeams) -> None:
    marks = Marks()

    @web.middleware
    async def mark(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and not request.path.startswith("/_"):
            if _MESSAGES_PATH.search(request.path):
                when = time.time()
                text = await request.text()
                found = MARKER.search(text)
                if found:
                    marks.add(found.group(0), when)
        return await handler(request)

    async def get_marks(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        timeout = min(float(request.query.get("timeout", "10")), 30.0)
        items = await marks.since(since, timeout)
        return web.json_response({"next": since + len(items), "marks": items})

    async def registered(request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        hub = sim.hub
        ready: set[str] = set()
        for reg in list(hub.registrations.values()):
            if reg.expired:
                continue
            conn = hub.connection_for_path(reg.path)
            if conn is not None and conn.connected_at >= since:
                ready.add(reg.mri)
        return web.json_response({"registered": len(ready), "connections": len(hub.connections)})

    sim.app.middlewares.append(mark)
    sim.app.router.add_get("/_bench/marks", get_marks)
    sim.app.router.add_get("/_bench/registered", registered)


async def serve(options: dict[str, Any]) -> None:
    sim = FakeTeams(**options)
    install(sim)
    await sim.start(host="127.0.0.1", port=0)
    print(json.dumps({"url": sim.url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


def _option(text: str) -> tuple[str, Any]:
    key, _, raw = text.partition("=")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sim_server")
    parser.add_argument("--set", dest="options", action="append", type=_option, default=[])
    args = parser.parse_args()
    asyncio.run(serve(dict(args.options)))


if __name__ == "__main__":
    main()
