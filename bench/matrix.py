"""A lean Matrix client for measuring: raw JSON over aiohttp, every timeline event stamped
with the wall-clock time its /sync response was read.

Deliberately lighter than the test suite's client: with a thousand events in flight, event
parsing in the measuring process must not become the bottleneck. Bridge and baseline
events go through exactly the same code, so its cost cancels out of every difference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

log = logging.getLogger("bench.matrix")

MARKER = re.compile(r"BM[0-9a-z]{4,32}")
SYNC_FILTER = json.dumps(
    {
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": 1000},
            "state": {"lazy_load_members": True},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        },
    }
)


class MatrixError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        errcode = body.get("errcode") if isinstance(body, dict) else None
        error = body.get("error") if isinstance(body, dict) else None
        super().__init__(f"homeserver answered {status} {errcode or ''} {error or ''}".strip())
        self.status = status
        self.body = body


def _q(value: str) -> str:
    return quote(value, safe="")


class Api:
    """Authenticated calls with one token; `user_id` makes it act as that appservice user."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, token: str, user_id: str | None = None
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.user_id = user_id

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        *,
        as_user: str | None = None,
        timeout: float = 60,
    ) -> Any:
        query = dict(params or {})
        if as_user:
            query["user_id"] = as_user
        async with self.session.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            params=query or None,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise MatrixError(resp.status, data)
            return data

    async def send_message(
        self, room_id: str, content: dict[str, Any], *, as_user: str | None = None
    ) -> str:
        txn = uuid.uuid4().hex
        data = await self.call(
            "PUT",
            f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/{txn}",
            content,
            as_user=as_user,
        )
        return data["event_id"]

    async def join(self, room_id: str, *, as_user: str | None = None) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{_q(room_id)}", {}, as_user=as_user)

    async def create_room(self, **body: Any) -> str:
        return (await self.call("POST", "/_matrix/client/v3/createRoom", body))["room_id"]

    async def joined_members(self, room_id: str, *, as_user: str | None = None) -> list[str]:
        data = await self.call(
            "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/joined_members", as_user=as_user
        )
        return list(data.get("joined", {}))


def text_content(body: str, html: str | None = None, msgtype: str = "m.text") -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": msgtype, "body": body}
    if html is not None:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = html
    return content


@dataclass
class Seen:
    """One timeline event as the client saw it."""

    at: float
    room_id: str
    event_id: str
    type: str
    sender: str
    body: str | None
    msgtype: str | None
    state_key: str | None = None
    membership: str | None = None


@dataclass
class Invite:
    room_id: str
    sender: str | None
    name: str | None
    is_direct: bool


@dataclass
class SyncingUser:
    """A logged-in user with a background /sync loop that stamps what arrives."""

    api: Api
    user_id: str
    arrivals: dict[str, float] = field(default_factory=dict)  # marker -> first seen
    timeline: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    invites: dict[str, Invite] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)
    syncs: int = 0
    sync_error: BaseException | None = None

    def __post_init__(self) -> None:
        self._next_batch: str | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None

    # -- sync loop -------------------------------------------------------------------
    async def start(self) -> None:
        await self._sync_once(0)
        self._task = asyncio.create_task(self._loop(), name=f"sync {self.user_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _loop(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._sync_once(30_000)
                delay = 0.1
                self.sync_error = None
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.sync_error = e
                log.debug("sync failed: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _sync_once(self, timeout_ms: int) -> None:
        params = {"timeout": str(timeout_ms), "filter": SYNC_FILTER}
        if self._next_batch:
            params["since"] = self._next_batch
        data = await self.api.call(
            "GET", "/_matrix/client/v3/sync", params=params, timeout=timeout_ms / 1000 + 60
        )
        now = time.time()
        self._record(data, now)
        self._next_batch = data["next_batch"]
        self.syncs += 1
        async with self._changed:
            self._changed.notify_all()

    def _record(self, data: dict[str, Any], now: float) -> None:
        rooms = data.get("rooms") or {}
        for room_id, room in (rooms.get("join") or {}).items():
            self.joined.add(room_id)
            self.invites.pop(room_id, None)
            for evt in (room.get("timeline") or {}).get("events") or []:
                content = evt.get("content") or {}
                body = content.get("body") if isinstance(content.get("body"), str) else None
                seen = Seen(
                    at=now,
                    room_id=room_id,
                    event_id=evt.get("event_id", ""),
                    type=evt.get("type", ""),
                    sender=evt.get("sender", ""),
                    body=body,
                    msgtype=content.get("msgtype"),
                    state_key=evt.get("state_key"),
                    membership=content.get("membership"),
                )
                self.timeline[room_id].append(seen)
                if body:
                    found = MARKER.search(body)
                    if found and found.group(0) not in self.arrivals:
                        self.arrivals[found.group(0)] = now
        for room_id, room in (rooms.get("invite") or {}).items():
            state = (room.get("invite_state") or {}).get("events") or []
            name = next(
                (e.get("content", {}).get("name") for e in state if e.get("type") == "m.room.name"),
                None,
            )
            own: dict[str, Any] = next(
                (
                    e
                    for e in state
                    if e.get("type") == "m.room.member" and e.get("state_key") == self.user_id
                ),
                {},
            )
            self.invites[room_id] = Invite(
                room_id=room_id,
                sender=own.get("sender"),
                name=name,
                is_direct=bool((own.get("content") or {}).get("is_direct")),
            )
        for room_id in rooms.get("leave") or {}:
            self.joined.discard(room_id)
            self.invites.pop(room_id, None)

    # -- waiting ---------------------------------------------------------------------
    async def wait(self, find: Any, timeout: float, what: str) -> Any:
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while True:
                        found = find()
                        if found is not None and found is not False:
                            return found
                        await self._changed.wait()
        except TimeoutError:
            detail = f" (last sync error: {self.sync_error!r})" if self.sync_error else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}") from None

    async def wait_marker(self, marker: str, timeout: float = 60) -> float:
        return await self.wait(lambda: self.arrivals.get(marker), timeout, f"marker {marker}")

    async def wait_markers(self, markers: list[str], timeout: float) -> float:
        """Until every marker arrived; returns the latest arrival time."""
        pending = set(markers)

        def find() -> float | None:
            for m in list(pending):
                if m in self.arrivals:
                    pending.discard(m)
            if pending:
                return None
            return max(self.arrivals[m] for m in markers)

        try:
            return await self.wait(find, timeout, f"{len(markers)} markers")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; {len(pending)} of {len(markers)} still missing") from None

    async def wait_message(
        self,
        room_id: str,
        *,
        sender: str | None = None,
        contains: str | None = None,
        msgtype: str | None = None,
        timeout: float = 60,
    ) -> Seen:
        def find() -> Seen | None:
            for seen in self.timeline.get(room_id, []):
                if seen.type != "m.room.message":
                    continue
                if sender and seen.sender != sender:
                    continue
                if msgtype and seen.msgtype != msgtype:
                    continue
                if contains and contains not in (seen.body or ""):
                    continue
                return seen
            return None

        return await self.wait(find, timeout, f"a message in {room_id} ({contains!r})")

    async def wait_invites(self, count: int, timeout: float = 120) -> list[Invite]:
        def find() -> list[Invite] | None:
            return list(self.invites.values()) if len(self.invites) >= count else None

        return await self.wait(find, timeout, f"{count} invites")

    async def wait_joined_member(self, room_id: str, user_id: str, timeout: float = 60) -> Seen:
        def find() -> Seen | None:
            for seen in self.timeline.get(room_id, []):
                if (
                    seen.type == "m.room.member"
                    and seen.state_key == user_id
                    and seen.membership == "join"
                ):
                    return seen
            return None

        return await self.wait(find, timeout, f"{user_id} to join {room_id}")
