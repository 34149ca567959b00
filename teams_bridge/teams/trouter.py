"""Trouter push connection, classic flow (``/v4/a`` + socket.io 0.9 over WebSocket).

One long-lived task per login: allocate, handshake, authenticate, register,
then read frames until the socket dies, and start over with backoff. Pushed
requests are answered before they are processed; events reach the consumer in
arrival order and a slow consumer slows the reader instead of losing events.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import websockets

from .endpoints import Endpoints
from .errors import ParseError, ReloginRequired, TeamsError
from .http import Auth, TeamsHttp
from .kinds import AccountKind
from .models import EventMessage
from .parse import parse_event
from .presence import Presence, is_presence_path, parse_push
from .push import PushBodyError, PushRequest, decode_body, parse_request, reply_for
from .registrar import register
from .socketio import (
    HEARTBEAT,
    Frame,
    FrameError,
    FrameType,
    ack_frame,
    event_frame,
    message_frame,
    parse_ack,
    parse_frame,
    parse_json_data,
    serialise_frame,
)
from .trouter_wire import (
    SID_RE,
    TC_PARAM,
    USER_AGENT,
    WS_LOG,
    Allocation,
    Socket,
    activity_cv,
    join_query,
    parse_allocation,
    ws_url,
)

__all__ = [
    "Frame",
    "FrameError",
    "FrameType",
    "Trouter",
    "TrouterConfig",
    "TrouterState",
    "parse_frame",
    "serialise_frame",
]

log = logging.getLogger("teams.trouter")

EventCallback = Callable[[EventMessage], Awaitable[None] | None]
StateCallback = Callable[["TrouterState", str | None], Awaitable[None] | None]
ResyncCallback = Callable[[], Awaitable[None] | None]
# Presence pushes: the entries and whether they are a full snapshot.
PresenceCallback = Callable[[list[Presence], bool], Awaitable[None] | None]
# After every (re)connect and registration: the new push URL (``surl``), which presence
# subscriptions must name.
ConnectedCallback = Callable[[str], Awaitable[None] | None]


class TrouterState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


class TokenSource(Protocol):
    async def skype_token(self) -> str: ...

    async def access_token(self) -> str: ...

    async def invalidate_skype_token(self, token: str) -> None: ...


@dataclass(frozen=True)
class TrouterConfig:
    """Timings and limits (tests shorten them)."""

    ping_interval: float = 30.0
    pong_timeout: float = 15.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    registration_ttl: int = 86400
    reregister_fraction: float = 0.8
    registration_retry: float = 60.0
    max_session_age: float | None = 4 * 3600.0
    max_message_size: int = 64 * 1024 * 1024
    open_timeout: float = 30.0


class TrouterDead(Exception):
    """The socket stopped answering or the server asked us to go."""


def _describe(exc: BaseException) -> str:
    """An error text without URLs (their queries carry signatures)."""
    if isinstance(exc, TeamsError):
        return str(exc)
    if isinstance(exc, websockets.InvalidStatus):
        return f"websocket handshake refused: HTTP {exc.response.status_code}"
    if isinstance(exc, websockets.ConnectionClosed):
        return f"websocket closed (code {exc.rcvd.code if exc.rcvd else 'none'})"
    if isinstance(exc, TrouterDead):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'connection failed'}"
    return type(exc).__name__


async def _call(callback: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


class Trouter:
    """Keeps a Trouter connection up and hands pushed events to the consumer."""

    def __init__(
        self,
        http: TeamsHttp,
        tokens: TokenSource,
        *,
        endpoints: Endpoints,
        kind: AccountKind,
        endpoint_id: str,
        on_event: EventCallback,
        on_state: StateCallback | None = None,
        on_resync: ResyncCallback | None = None,
        config: TrouterConfig | None = None,
        on_presence: PresenceCallback | None = None,
        on_connected: ConnectedCallback | None = None,
        on_gap: Callable[[], None] | None = None,
    ) -> None:
        self.http = http
        self.on_presence = on_presence
        # Called at once, before any later push is handed on, when pushes may have been
        # missed (a (re)connect, a message-loss notice); the resync follows in its own time.
        self.on_gap = on_gap
        self.on_connected = on_connected
        self.tokens = tokens
        self.endpoints = endpoints
        self.kind = kind
        self.endpoint_id = endpoint_id
        self.on_event = on_event
        self.on_state = on_state
        self.on_resync = on_resync
        self.config = config or TrouterConfig()
        self.state = TrouterState.DISCONNECTED
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._con_num = 0
        self._resync_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._logged_malformed: set[str] = set()
        self._connected_once = False
        self._pending_ping: tuple[int, float] | None = None
        self._last_rx = 0.0

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the connection task (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="trouter")

    async def stop(self) -> None:
        """Close the socket, stop reconnecting and report ``STOPPED``."""
        self._stopping = True
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        # gather, not suppress(CancelledError): a cancellation of stop() itself must propagate.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._background.clear()
        if self.state is not TrouterState.STOPPED:
            await self._set_state(TrouterState.STOPPED, None)

    async def _set_state(self, state: TrouterState, error: str | None) -> None:
        self.state = state
        if self.on_state is None:
            return
        try:
            await _call(self.on_state, state, error)
        except Exception:
            log.exception("The Trouter state callback failed")

    async def _run(self) -> None:
        backoff = self.config.backoff_initial
        while not self._stopping:
            await self._set_state(TrouterState.CONNECTING, None)
            self._connected_once = False
            error: str | None = None
            try:
                await self._run_session()
            except asyncio.CancelledError:
                raise
            except ReloginRequired as exc:
                # Retrying cannot help until the user logs in again.
                log.warning("Trouter stopped: %s", exc)
                self._stopping = True
                await self._set_state(TrouterState.STOPPED, str(exc))
                return
            except Exception as exc:
                error = _describe(exc)
                log.warning("Trouter connection lost: %s", error)
            if self._stopping:
                break
            if self._connected_once:
                backoff = self.config.backoff_initial
            await self._set_state(TrouterState.DISCONNECTED, error or "connection closed")
            delay = min(self.config.backoff_max, backoff * random.uniform(0.75, 1.25))
            log.info("Reconnecting to Trouter in %.1fs", delay)
            await asyncio.sleep(delay)
            backoff = min(self.config.backoff_max, backoff * 2)

    # handshake -----------------------------------------------------------------------

    async def _allocate(self) -> Allocation:
        url = join_query(self.endpoints.trouter(self.kind), {"epid": self.endpoint_id})
        resp = await self.http.request("POST", url, auth=Auth.SKYPE, data=b"")
        return parse_allocation(resp.json())

    def _query(self, alloc: Allocation) -> str:
        self._con_num += 1
        params: dict[str, str] = {"v": "v4", **alloc.connectparams}
        params.update(
            {
                "tc": TC_PARAM,
                "con_num": f"{int(time.time() * 1000)}_{self._con_num}",
                "epid": self.endpoint_id,
                "auth": "true",
                "timeout": "40",
            }
        )
        if alloc.ccid:
            params["ccid"] = alloc.ccid
        return urlencode(params)

    async def _session_id(self, alloc: Allocation, query: str) -> str:
        url = f"{alloc.socketio}socket.io/1/?{query}"
        resp = await self.http.request("GET", url, auth=Auth.SKYPE, headers={"Accept": "*/*"})
        sid = resp.text().strip().split(":", 1)[0]
        if not SID_RE.match(sid):
            raise TeamsError(
                resp.status, "invalid_response", "socket.io handshake gave no session id"
            )
        return sid

    async def _run_session(self) -> None:
        alloc = await self._allocate()
        query = self._query(alloc)
        sid = await self._session_id(alloc, query)
        skype = await self.tokens.skype_token()
        proxy: Literal[True] | None = True if self.http.session.trust_env else None
        try:
            connection = websockets.connect(
                ws_url(alloc.socketio, sid, query),
                additional_headers={"X-Skypetoken": skype},
                user_agent_header=USER_AGENT,
                max_size=self.config.max_message_size,
                # No permessage-deflate: its zlib state is about 100 kB per connection once
                # used (one connection per user), and Trouter's frames are small JSON.
                compression=None,
                ping_interval=None,
                open_timeout=self.config.open_timeout,
                proxy=proxy,
                logger=WS_LOG,
            )
            async with connection as ws:
                await self._serve(Socket(ws), alloc)
        except websockets.InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                await self.tokens.invalidate_skype_token(skype)
            raise

    # reading -------------------------------------------------------------------------

    async def _serve(self, sock: Socket, alloc: Allocation) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._last_rx = started
        self._pending_ping = None
        self._logged_malformed.clear()
        helpers: list[asyncio.Task[None]] = []
        try:
            while True:
                now = loop.time()
                deadline = self._last_rx + self.config.ping_interval + self.config.pong_timeout
                if self._pending_ping is not None:
                    deadline = min(deadline, self._pending_ping[1] + self.config.pong_timeout)
                wait = max(deadline - now, 2.0)
                if self.config.max_session_age is not None:
                    age_left = started + self.config.max_session_age - now
                    if age_left <= 0:
                        log.info("Refreshing the Trouter session after %.0fs", now - started)
                        return
                    wait = min(wait, max(age_left, 0.01))
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that races with a received frame, and stop() would hang.
                    async with asyncio.timeout(wait):
                        raw = await sock.ws.recv()
                except TimeoutError:
                    if (
                        self.config.max_session_age is not None
                        and loop.time() >= started + self.config.max_session_age
                    ):
                        continue
                    if self._pending_ping is not None:
                        raise TrouterDead("no pong from Trouter") from None
                    raise TrouterDead("no traffic from Trouter") from None
                self._last_rx = loop.time()
                text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
                try:
                    frame = parse_frame(text)
                except FrameError as exc:
                    self._malformed("frame", exc, len(text))
                    continue
                if frame.type is FrameType.CONNECT and not self._connected_once:
                    await self._on_connect(sock, alloc, helpers)
                    continue
                await self._handle(sock, frame)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    def _malformed(self, what: str, exc: Exception, size: int) -> None:
        """Log a malformed input once per connection, with no content (it may hold tokens)."""
        key = f"{what}:{type(exc).__name__}:{exc}"
        level = logging.DEBUG if key in self._logged_malformed else logging.WARNING
        self._logged_malformed.add(key)
        log.log(level, "Skipping a malformed Trouter %s (%d chars): %s", what, size, exc)

    async def _handle(self, sock: Socket, frame: Frame) -> None:
        if frame.type is FrameType.HEARTBEAT:
            await sock.send(HEARTBEAT)
        elif frame.type is FrameType.MESSAGE:
            await self._on_request(sock, frame)
        elif frame.type is FrameType.EVENT:
            await self._on_event_frame(sock, frame)
        elif frame.type is FrameType.ACK:
            try:
                ack_id, args = parse_ack(frame)
            except FrameError as exc:
                self._malformed("ack", exc, len(frame.data or ""))
                return
            if self._pending_ping is not None and ack_id == self._pending_ping[0]:
                self._pending_ping = None
            elif args == ["pong"]:
                self._pending_ping = None
        elif frame.type is FrameType.DISCONNECT:
            raise TrouterDead("Trouter closed the session")
        elif frame.type is FrameType.ERROR:
            raise TrouterDead("Trouter reported a socket.io error")

    async def _on_connect(
        self, sock: Socket, alloc: Allocation, helpers: list[asyncio.Task[None]]
    ) -> None:
        access = await self.tokens.access_token()
        auth_args = [
            {
                "headers": {
                    "X-Ms-Test-User": "False",
                    "Authorization": f"Bearer {access}",
                    "X-MS-Migration": "True",
                },
                "connectparams": dict(alloc.connectparams),
            }
        ]
        await sock.send(event_frame("user.authenticate", auth_args))
        activity = [{"state": "active", "cv": activity_cv()}]
        await sock.send(event_frame("user.activity", activity, frame_id=sock.next_id()))
        await self._register(alloc)
        self._connected_once = True
        await self._set_state(TrouterState.CONNECTED, None)
        helpers.append(asyncio.create_task(self._ping_loop(sock), name="trouter-ping"))
        helpers.append(asyncio.create_task(self._reregister_loop(sock, alloc), name="trouter-reg"))
        self._schedule_resync("connected")
        if self.on_connected is not None:
            self._spawn(self._after_connect(alloc.surl), "trouter-connected")

    async def _register(self, alloc: Allocation) -> None:
        await register(
            self.http,
            self.endpoints.registrar(self.kind),
            self.kind,
            self.endpoint_id,
            alloc.surl,
            self.config.registration_ttl,
        )

    async def _on_request(self, sock: Socket, frame: Frame) -> None:
        try:
            request = parse_request(parse_json_data(frame))
        except (FrameError, PushBodyError) as exc:
            self._malformed("request", exc, len(frame.data or ""))
            return
        await sock.send(message_frame(reply_for(request)))
        if self.on_presence is not None and is_presence_path(request.path):
            await self._on_presence_push(request)
            return
        if not request.is_messaging():
            log.debug("Ignoring a Trouter push for %s", request.path.rsplit("/", 1)[-1][:40])
            return
        try:
            event = parse_event(decode_body(request))
        except (PushBodyError, ParseError) as exc:
            self._malformed("event", exc, len(str(request.body or "")))
            return
        try:
            await _call(self.on_event, event)
        except Exception:
            log.exception("The event consumer failed on a %s event", event.resource_type)

    async def _on_presence_push(self, request: PushRequest) -> None:
        assert self.on_presence is not None
        try:
            entries, snapshot = parse_push(decode_body(request))
        except PushBodyError as exc:
            self._malformed("presence push", exc, len(str(request.body or "")))
            return
        try:
            await _call(self.on_presence, entries, snapshot)
        except Exception:
            log.exception("The presence consumer failed")

    async def _on_event_frame(self, sock: Socket, frame: Frame) -> None:
        try:
            payload = parse_json_data(frame)
        except FrameError as exc:
            self._malformed("event frame", exc, len(frame.data or ""))
            payload = None
        name = payload.get("name") if isinstance(payload, Mapping) else None
        if frame.id is not None:
            await sock.send(ack_frame(frame.id, ["pong"] if name == "ping" else []))
        if name == "trouter.message_loss":
            log.info("Trouter reported message loss; resyncing")
            self._schedule_resync("message loss")
        elif name is not None:
            log.debug("Trouter event %s", str(name)[:60])

    # periodic work -------------------------------------------------------------------

    async def _ping_loop(self, sock: Socket) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval)
            frame_id = sock.next_id()
            if self._pending_ping is None:
                self._pending_ping = (frame_id, asyncio.get_running_loop().time())
            await sock.send(event_frame("ping", frame_id=frame_id))

    async def _reregister_loop(self, sock: Socket, alloc: Allocation) -> None:
        ttl = float(self.config.registration_ttl)
        loop = asyncio.get_running_loop()
        expires = loop.time() + ttl
        delay = ttl * self.config.reregister_fraction
        while True:
            await asyncio.sleep(delay)
            try:
                await self._register(alloc)
            except Exception as exc:
                left = expires - loop.time()
                log.warning("Re-registering with the registrar failed: %s", _describe(exc))
                if left <= 0:
                    log.warning("The registration lapsed; reconnecting")
                    await sock.ws.close()
                    return
                delay = min(self.config.registration_retry, left)
                continue
            expires = loop.time() + ttl
            delay = ttl * self.config.reregister_fraction

    def _schedule_resync(self, reason: str) -> None:
        if self.on_gap is not None:
            self.on_gap()
        if self.on_resync is None:
            return
        self._spawn(self._resync(reason), "trouter-resync")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_connect(self, surl: str) -> None:
        callback = self.on_connected
        if callback is None:
            return
        try:
            await _call(callback, surl)
        except Exception:
            log.exception("The connected callback failed")

    async def _resync(self, reason: str) -> None:
        callback = self.on_resync
        if callback is None:
            return
        async with self._resync_lock:
            try:
                await _call(callback)
            except Exception:
                log.exception("The resync callback failed (after %s)", reason)
