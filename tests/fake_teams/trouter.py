"""Trouter classic flow (teams-protocol.md §5.3-5.7): allocate, socket.io handshake,
websocket, and the fan-out of events to registered, live connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from aiohttp import WSMsgType, web

from .auth import skype_value
from .connection import Connection
from .context import SimContext, ctx
from .errors import json_error, unauthorized
from .options import SimOptions
from .util import compact_json, iso_ms3, now_ms, random_b64
from .world import Resource

_SURL_ID = re.compile(r"/v4/f/([^/]+)")


@dataclass
class Allocation:
    id: str
    mri: str
    epid: str
    surl: str
    sig: str
    created: float

    @property
    def surl_path(self) -> str:
        return f"/v4/f/{self.id}/"


@dataclass
class Session:
    sid: str
    allocation: Allocation
    expires: float


@dataclass
class Registration:
    mri: str
    registration_id: str
    app_id: str
    template_key: str
    path: str
    ttl: int
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def describe(self, hub: TrouterHub) -> dict[str, Any]:
        conn = hub.connection_for_path(self.path)
        return {
            "registration_id": self.registration_id,
            "app_id": self.app_id,
            "template_key": self.template_key,
            "path": self.path,
            "ttl": self.ttl,
            "expires_in": round(self.expires_at - time.time(), 1),
            "expired": self.expired,
            "live": conn is not None,
        }


class TrouterHub:
    """Allocations, sessions, live connections and registrations; the world's event sink."""

    def __init__(self, c: SimContext) -> None:
        self.c = c
        self.options: SimOptions = c.options
        self.allocations: dict[str, Allocation] = {}
        self.sessions: dict[str, Session] = {}
        self.connections: dict[str, Connection] = {}  # allocation id -> live connection
        self.registrations: dict[tuple[str, str, str, str], Registration] = {}
        self.lost: set[tuple[str, str]] = set()
        self._event_id = 1000
        # Fault switches, by MRI: deliveries dropped (paused) or sent twice (duplicate).
        self.paused: set[str] = set()
        self.duplicate: set[str] = set()

    # -- registrations -----------------------------------------------------------
    def register(self, regs: list[Registration]) -> None:
        """A registration id (per app) is replaced as a whole when it is posted again."""
        for reg in regs:
            stale = [
                k
                for k in self.registrations
                if k[:3] == (reg.mri, reg.registration_id, reg.app_id.lower())
            ]
            for key in stale:
                del self.registrations[key]
        for reg in regs:
            self.registrations[(reg.mri, reg.registration_id, reg.app_id.lower(), reg.path)] = reg

    def unregister(self, mri: str, registration_id: str) -> int:
        doomed = [k for k in self.registrations if k[0] == mri and k[1] == registration_id]
        for key in doomed:
            del self.registrations[key]
        return len(doomed)

    def connection_for_path(self, path: str) -> Connection | None:
        match = _SURL_ID.search(path)
        if match is None:
            return None
        conn = self.connections.get(match.group(1))
        return conn if conn is not None and not conn.closed else None

    # -- fan-out -----------------------------------------------------------------
    def publish(
        self, recipients: list[str], resource_type: str, resource: Resource, link: str
    ) -> None:
        for mri in dict.fromkeys(recipients):
            self._event_id += 1
            body = resource(mri) if callable(resource) else resource
            event = {
                "id": self._event_id,
                "type": "EventMessage",
                "resourceType": resource_type,
                "time": iso_ms3(now_ms()),
                "resourceLink": link,
                "isactive": True,
                "resource": body,
            }
            text = compact_json(event)
            if mri in self.paused:
                for conn, _url in self._targets(mri):
                    self.note_loss(conn)
                continue
            copies = 2 if mri in self.duplicate else 1
            for conn, url in self._targets(mri):
                for _ in range(copies):
                    conn.request(url, text, self.c.variant(self.options.gzip_bodies))

    def _targets(self, mri: str) -> list[tuple[Connection, str]]:
        """One delivery per (live connection, url) that an unexpired registration points at."""
        seen: set[tuple[str, str]] = set()
        out: list[tuple[Connection, str]] = []
        for reg in list(self.registrations.values()):
            if reg.mri != mri or reg.expired:
                continue
            path = reg.path if reg.path.endswith("/") else reg.path + "/"
            match = _SURL_ID.search(path)
            if match is None or path[match.end() :] != "/":
                continue  # another app's suffix (calling, presence): not messaging
            conn = self.connection_for_path(path)
            if conn is None:
                self.lost.add((mri, reg.registration_id))
                continue
            url = path + "messaging"
            absolute = self.options.delivery_urls == "absolute" or (
                self.options.delivery_urls == "random" and self.c.rng.random() < 0.5
            )
            if absolute:
                url = self.c.base_url + url
            if (conn.id, url) not in seen:
                seen.add((conn.id, url))
                out.append((conn, url))
        return out

    def note_loss(self, conn: Connection) -> None:
        self.lost.add((conn.mri, conn.allocation.epid))

    # -- connections -------------------------------------------------------------
    def forget(self, conn: Connection) -> None:
        if self.connections.get(conn.allocation.id) is conn:
            del self.connections[conn.allocation.id]
        if conn.pending:
            self.note_loss(conn)

    def user_connections(self, mri: str) -> list[Connection]:
        return [c for c in self.connections.values() if c.mri == mri and not c.closed]

    def pause(self, mri: str) -> bool:
        self.paused.add(mri)
        return True

    def resume(self, mri: str, notice: bool = True) -> int:
        self.paused.discard(mri)
        return self.message_loss(mri) if notice else 0

    def set_flag(self, flag: str, mri: str, body: dict[str, Any]) -> bool:
        if flag == "silent":
            # Only today's sockets go quiet, as a half-open connection would; a new one works.
            conns = self.user_connections(mri)
            for conn in conns:
                conn.silent = bool(body.get("enabled", True))
            return bool(conns)
        users: set[str] = getattr(self, flag)
        if body.get("enabled", True):
            users.add(mri)
        else:
            users.discard(mri)
        return mri in users

    def message_loss(self, mri: str) -> int:
        conns = self.user_connections(mri)
        for conn in conns:
            conn.send_event("trouter.message_loss", [{"reason": "simulated", "time": now_ms()}])
        return len(conns)

    async def disconnect(self, mri: str, notice: bool = True) -> int:
        conns = self.user_connections(mri)
        for conn in conns:
            if notice:
                conn.send('0:::{"reason":"timeout"}')
            await conn.close()
        return len(conns)

    async def close_all(self) -> None:
        for conn in list(self.connections.values()):
            await conn.close()

    def describe(self) -> dict[str, Any]:
        users: dict[str, Any] = {}
        for conn in self.connections.values():
            users.setdefault(conn.mri, {"connections": [], "registrations": []})
            users[conn.mri]["connections"].append(conn.describe())
        for reg in self.registrations.values():
            users.setdefault(reg.mri, {"connections": [], "registrations": []})
            users[reg.mri]["registrations"].append(reg.describe(self))
        return users


# -- HTTP handlers ---------------------------------------------------------------------
def hub_of(request: web.Request) -> TrouterHub:
    hub = ctx(request).trouter
    assert hub is not None
    return hub


async def allocate(request: web.Request) -> web.Response:
    c = ctx(request)
    token = c.tokens.valid(skype_value(request), "skype")
    if token is None:
        return unauthorized(c.options.error_bodies, c.rng)
    epid = request.query.get("epid") or str(uuid.uuid4())
    aid = random_b64(12)
    surl = f"{c.base_url}/v4/f/{aid}/"
    alloc = Allocation(aid, token.mri, epid, surl, random_b64(32), time.time())
    hub_of(request).allocations[aid] = alloc
    now = now_ms()
    body = {
        "socketio": f"{c.base_url}/",
        "surl": surl,
        "url": surl,
        "ttl": "589000",
        "connectparams": {
            "sr": aid,
            "issuer": "prod-2",
            "sp": "connect",
            "se": str(now + 589000),
            "st": str(now),
            "sig": alloc.sig,
        },
        "ccid": random_b64(8),
        "healthUrl": f"{c.base_url}/v4/h",
    }
    return web.Response(text=compact_json(body), content_type="application/json")


async def handshake(request: web.Request) -> web.Response:
    c = ctx(request)
    hub = hub_of(request)
    token = c.tokens.valid(skype_value(request), "skype")
    if token is None:
        return unauthorized(c.options.error_bodies, c.rng)
    sig = request.query.get("sig")
    epid = request.query.get("epid")
    candidates = [
        a
        for a in hub.allocations.values()
        if a.mri == token.mri and ((sig and a.sig == sig) or (not sig and a.epid == epid))
    ]
    if not candidates:
        return json_error(
            400, "UnknownAllocation", "no allocation matches these connect parameters"
        )
    alloc = max(candidates, key=lambda a: a.created)
    sid = secrets.token_hex(16)
    hub.sessions[sid] = Session(sid, alloc, time.monotonic() + c.options.session_lifetime)
    beat = int(c.options.idle_timeout or 180)
    return web.Response(
        text=f"{sid}:{beat}:{beat}:websocket,xhr-polling", content_type="text/plain"
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    hub = hub_of(request)
    session = hub.sessions.pop(request.match_info["sid"], None)
    if session is None or session.expires < time.monotonic():
        return json_error(404, "UnknownSession", "unknown or expired socket.io session")
    token = c.tokens.valid(skype_value(request), "skype")
    if token is None or token.mri != session.allocation.mri:
        return unauthorized(c.options.error_bodies, c.rng)
    ws = web.WebSocketResponse(max_msg_size=8 * 1024 * 1024, autoping=True)
    await ws.prepare(request)
    alloc = session.allocation
    old = hub.connections.get(alloc.id)
    if old is not None:
        await old.close()
    conn = Connection(hub, alloc, ws)
    hub.connections[alloc.id] = conn
    conn.start()
    conn.send("1::")
    if (alloc.mri, alloc.epid) in hub.lost:
        hub.lost.discard((alloc.mri, alloc.epid))
        conn.send_event("trouter.message_loss", [{"reason": "undelivered", "time": now_ms()}])
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                conn.handle(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await conn.close()
    return ws


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def add_routes(app: web.Application) -> None:
    app.router.add_route("POST", "/v4/a", allocate)
    app.router.add_route("GET", "/v4/a", allocate)
    app.router.add_get("/socket.io/1/", handshake)
    app.router.add_get("/socket.io/1", handshake)
    app.router.add_get("/socket.io/1/websocket/{sid}", websocket)
    app.router.add_get("/v4/h", health)


def registration_paths(body: dict[str, Any]) -> list[tuple[str, int]]:
    """(url path, ttl) of each TROUTER transport in a registrar body."""
    transports = body.get("transports")
    entries = transports.get("TROUTER") if isinstance(transports, dict) else None
    out: list[tuple[str, int]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        try:
            ttl = int(entry.get("ttl", 86400))
        except (TypeError, ValueError):
            ttl = 86400
        out.append((urlparse(entry["path"]).path or entry["path"], ttl))
    return out
