"""A no-op appservice: accepts every transaction Synapse pushes and notes when each event came.

`python -m bench.noop_as --port N` (the hs_token is read from the environment variable
`BENCH_NOOP_HS_TOKEN`, never from the command line) prints one JSON line and serves until
SIGTERM. It is the baseline for Matrix -> Teams: the homeserver's own cost of handing an
event to an appservice, with nothing done with it.

`GET /_bench/events?since=N&timeout=S` long-polls the received events as
`[unix time, room_id, type, sender, state_key, membership, marker]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import re
import signal
import time
from typing import Any

from aiohttp import web

MARKER = re.compile(r"BM[0-9a-z]{4,32}")


class Log:
    def __init__(self) -> None:
        self.items: list[list[Any]] = []
        self.transactions = 0
        self._changed = asyncio.Event()

    def add(self, item: list[Any]) -> None:
        self.items.append(item)
        self._changed.set()

    async def since(self, index: int, timeout: float) -> list[list[Any]]:
        deadline = time.monotonic() + timeout
        while len(self.items) <= index:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.items[index:]


def build_app(hs_token: str) -> web.Application:
    log = Log()
    expected = f"Bearer {hs_token}"

    def authorised(request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        if not given and "access_token" in request.query:
            given = f"Bearer {request.query['access_token']}"
        return hmac.compare_digest(given.encode(), expected.encode())

    async def transaction(request: web.Request) -> web.Response:
        when = time.time()
        if not authorised(request):
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        body = await request.json()
        log.transactions += 1
        for evt in body.get("events") or []:
            content = evt.get("content") or {}
            text = content.get("body")
            found = MARKER.search(text) if isinstance(text, str) else None
            log.add(
                [
                    when,
                    evt.get("room_id"),
                    evt.get("type"),
                    evt.get("sender"),
                    evt.get("state_key"),
                    content.get("membership"),
                    found.group(0) if found else None,
                ]
            )
        return web.json_response({})

    async def not_found(request: web.Request) -> web.Response:
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)

    async def events(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        timeout = min(float(request.query.get("timeout", "10")), 30.0)
        items = await log.since(since, timeout)
        return web.json_response(
            {"next": since + len(items), "events": items, "transactions": log.transactions}
        )

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_put("/_matrix/app/v1/transactions/{txn}", transaction)
    app.router.add_put("/transactions/{txn}", transaction)
    app.router.add_get("/_matrix/app/v1/users/{user}", not_found)
    app.router.add_get("/_matrix/app/v1/rooms/{room}", not_found)
    app.router.add_get("/_bench/events", events)
    return app


async def serve(port: int, hs_token: str) -> None:
    runner = web.AppRunner(build_app(hs_token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.noop_as")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    hs_token = os.environ.get("BENCH_NOOP_HS_TOKEN")
    if not hs_token:
        parser.error("BENCH_NOOP_HS_TOKEN is not set")
    asyncio.run(serve(args.port, hs_token))


if __name__ == "__main__":
    main()
