"""Records what clients send (tests assert on it) and injects configured faults (429, 5xx)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .util import compact_json

CONTROL_PREFIX = "/_control/"


@dataclass
class Fault:
    path_contains: str
    method: str | None
    status: int
    remaining: int
    retry_after: str | None = None
    body: str | None = None
    # Seconds to stall before answering; with status 0 the request then goes through.
    delay: float = 0.0
    # Only requests whose body holds this text (e.g. one user's MRI in a JSON list), so
    # that a one-shot fault is not used up by another request to the same path.
    body_contains: str | None = None

    def matches(self, request: web.Request, body: str) -> bool:
        if self.remaining <= 0 or self.path_contains not in request.path:
            return False
        if self.body_contains is not None and self.body_contains not in body:
            return False
        return self.method is None or self.method.upper() == request.method

    def response(self) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else None
        if self.body is not None:
            text = self.body
        elif self.status == 429:
            text = compact_json(
                {
                    "errorCode": 429,
                    "message": "API calls quota exceeded!",
                    "standardizedError": {"errorCode": 429, "errorSubCode": 1},
                }
            )
        else:
            text = compact_json({"errorCode": self.status, "message": "Simulated failure"})
        return web.Response(
            status=self.status, text=text, headers=headers, content_type="application/json"
        )


class Recorder:
    def __init__(self, max_requests: int) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=max_requests)
        self.faults: list[Fault] = []

    def query(self, path_contains: str | None, method: str | None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if (not path_contains or path_contains in r["path"])
            and (not method or r["method"] == method.upper())
        ]

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path.startswith(CONTROL_PREFIX):
                return await handler(request)
            # AMS content uploads stream to disk; reading them here would buffer them whole.
            streamed = request.method == "PUT" and request.path.startswith("/v1/objects/")
            body = await request.text() if request.can_read_body and not streamed else ""
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "raw_path": request.raw_path,
                    "query": dict(request.query),
                    "query_string": request.query_string,
                    "headers": dict(request.headers),
                    "body": body,
                    "time": time.time(),
                }
            )
            for fault in self.faults:
                if fault.matches(request, body):
                    fault.remaining -= 1
                    if fault.delay:
                        await asyncio.sleep(fault.delay)
                    if fault.status == 0:
                        break
                    return fault.response()
            return await handler(request)

        return record
