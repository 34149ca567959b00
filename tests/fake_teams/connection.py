"""One live Trouter websocket: ordered delivery, acks, redelivery, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import socketio
from .util import compact_json, gzip_b64

if TYPE_CHECKING:
    from .trouter import Allocation, TrouterHub

log = logging.getLogger("fake_teams.trouter")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\"\s]+")


def _redact(frame: str) -> str:
    """Client frames may carry tokens (user.authenticate); never hand those out."""
    return _BEARER.sub(r"\1<redacted>", frame)


@dataclass
class Pending:
    """A `3:::` request the client has not answered yet."""

    request_id: int
    frame: str
    url: str
    attempts: int = 0
    sent_at: float = 0.0


@dataclass
class ConnStats:
    delivered: int = 0
    redelivered: int = 0
    dropped: int = 0
    acked_events: int = 0
    replies: list[dict[str, Any]] = field(default_factory=list)


class Connection:
    """Everything the server sends goes through one writer task, so frames never interleave
    and requests leave in the order they were queued."""

    def __init__(self, hub: TrouterHub, allocation: Allocation, ws: web.WebSocketResponse) -> None:
        self.hub = hub
        self.silent = False
        self._heartbeat_outstanding = False
        self.allocation = allocation
        self.ws = ws
        self.id = str(uuid.uuid4())
        self.mri = allocation.mri
        self.connected_at = time.time()
        self.last_seen = time.monotonic()
        self.pending: dict[int, Pending] = {}
        self.stats = ConnStats()
        self.frames_in: deque[str] = deque(maxlen=500)
        self.authenticated = False
        self.closed = False
        self._out: asyncio.Queue[tuple[str, Pending | None]] = asyncio.Queue()
        self._next_request = random.randrange(10**8, 10**9)
        self._server_seq = 0
        self._tasks: list[asyncio.Task[None]] = []

    # -- sending ---------------------------------------------------------------
    def send(self, frame: str) -> None:
        if self.silent:
            return  # a half-open socket: nothing reaches the client any more
        if not self.closed:
            self._out.put_nowait((frame, None))

    def send_event(self, name: str, args: list[Any]) -> int:
        self._server_seq += 1
        self.send(socketio.event(name, args, self._server_seq))
        return self._server_seq

    def request(self, url: str, body: str, gzip_body: bool) -> int:
        """Queue an HTTP-over-websocket request (§5.7); it is redelivered until answered."""
        self._next_request += 1
        rid = self._next_request
        headers = {
            "X-Microsoft-Skype-Chain-ID": str(uuid.uuid4()),
            "X-Microsoft-Skype-Message-ID": "0",
            "X-Trouter-Delivery-Control": "async; ttl=600",
            "Content-Type": "application/json; charset=utf-8",
            "MS-CV": f"{uuid.uuid4().hex[:22]}.1",
            "trouter-request": compact_json(
                {"id": str(uuid.uuid4()), "src": "fake-trouter-1", "port": 3443}
            ),
            "Trouter-Timeout": "117298",
        }
        if gzip_body:
            headers["X-Microsoft-Skype-Content-Encoding"] = "gzip"
            body = gzip_b64(body)
        envelope = {"id": rid, "method": "POST", "url": url, "headers": headers, "body": body}
        pending = Pending(rid, "3:::" + compact_json(envelope), url)
        self.pending[rid] = pending
        if not self.closed:
            self._out.put_nowait((pending.frame, pending))
        return rid

    async def _writer(self) -> None:
        while True:
            frame, pending = await self._out.get()
            if pending is not None:
                if pending.request_id not in self.pending:
                    continue  # answered while it waited to be resent
                pending.attempts += 1
                pending.sent_at = time.monotonic()
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def _maintenance(self) -> None:
        opts = self.hub.options
        tick = max(0.05, min(opts.redelivery_timeout / 4, 1.0))
        last_heartbeat = time.monotonic()
        while not self.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for p in list(self.pending.values()):
                if p.sent_at and now - p.sent_at >= opts.redelivery_timeout:
                    if p.attempts > opts.max_redeliveries:
                        del self.pending[p.request_id]
                        self.stats.dropped += 1
                        self.hub.note_loss(self)
                        continue
                    p.sent_at = 0.0  # not due again until the writer resends it
                    self.stats.redelivered += 1
                    self._out.put_nowait((p.frame, p))
            if now - last_heartbeat >= opts.server_heartbeat_interval:
                last_heartbeat = now
                self._heartbeat_outstanding = True
                self.send("2::")
            if opts.idle_timeout is not None and now - self.last_seen > opts.idle_timeout:
                log.info("closing silent trouter connection %s", self.id)
                self.send('0:::{"reason":"timeout"}')
                await asyncio.sleep(0.05)
                await self.close()

    # -- receiving -------------------------------------------------------------
    def handle(self, text: str) -> None:
        self.last_seen = time.monotonic()
        self.frames_in.append(text)
        frame = socketio.parse(text)
        if frame is None:
            return
        if frame.type == "2":
            # Answer a client's heartbeat, but not the client's answer to ours: echoing
            # that too would bounce heartbeats back and forth for ever.
            if self._heartbeat_outstanding:
                self._heartbeat_outstanding = False
            else:
                self.send("2::")
        elif frame.type == "3":
            self._on_reply(frame.data)
        elif frame.type == "5":
            self._on_event(frame)
        elif frame.type == "6":
            self.stats.acked_events += 1
        elif frame.type == "0":
            self._tasks.append(asyncio.ensure_future(self.close()))

    def _on_reply(self, data: str) -> None:
        try:
            reply = json.loads(data)
            rid = int(reply["id"])
        except (ValueError, KeyError, TypeError):
            return
        if self.pending.pop(rid, None) is not None:
            self.stats.delivered += 1
            self.stats.replies.append({"id": rid, "status": reply.get("status")})
            del self.stats.replies[:-50]

    def _on_event(self, frame: socketio.Frame) -> None:
        try:
            payload = frame.json()
        except ValueError:
            payload = {}
        name = payload.get("name") if isinstance(payload, dict) else None
        if name == "user.authenticate":
            self.authenticated = True
        if frame.id:
            self.send(socketio.ack(frame.id, ["pong"] if name == "ping" else []))

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._writer()),
            asyncio.ensure_future(self._maintenance()),
        ]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Let queued frames (e.g. a disconnect notice) go out before closing.
        for _ in range(20):
            if self._out.empty():
                break
            await asyncio.sleep(0.01)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.hub.forget(self)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "epid": self.allocation.epid,
            "surl": self.allocation.surl,
            "connected_at": self.connected_at,
            "authenticated": self.authenticated,
            "pending": len(self.pending),
            "delivered": self.stats.delivered,
            "redelivered": self.stats.redelivered,
            "dropped": self.stats.dropped,
            "recent_client_frames": [_redact(f) for f in list(self.frames_in)[-20:]],
        }
