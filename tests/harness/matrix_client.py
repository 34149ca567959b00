"""The test user's Matrix client: `mautrix.client.Client` over a real /sync loop.

Every timeline event, ephemeral event and invite the user sees is recorded, so a wait can
be satisfied by something that arrived before the wait started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from mautrix.client import Client
from mautrix.types import (
    BaseFileInfo,
    ContentURI,
    EphemeralEvent,
    Event,
    EventID,
    EventType,
    Format,
    GenericEvent,
    MessageType,
    RoomCreatePreset,
    RoomID,
    StateEvent,
    TextMessageEventContent,
    UserID,
)
from mautrix.types.util import SerializerError

log = logging.getLogger("harness.matrix_client")

SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 200}}})

EventPredicate = Callable[[Event], bool]

# How long a wait may take before it fails. Generous: a passing wait returns as soon as its
# condition holds, and a machine running two test suites at once is slow.
WAIT_TIMEOUT = 60.0


@dataclass
class Invite:
    """A pending invite as seen in /sync."""

    room_id: RoomID
    sender: UserID | None
    is_direct: bool
    state: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        for evt in self.state:
            if evt.get("type") == "m.room.name":
                return evt.get("content", {}).get("name")
        return None


def _value(x: Any) -> Any:
    """mautrix enums do not compare equal to their strings; compare values instead."""
    return getattr(x, "value", x)


def _deserialize(raw: dict[str, Any]) -> Event:
    try:
        return Event.deserialize(raw)
    except SerializerError:
        return GenericEvent.deserialize(raw)


class MatrixTestClient:
    """A logged-in user with a background sync loop."""

    def __init__(self, client: Client, session: aiohttp.ClientSession, password: str) -> None:
        self.client = client
        self.user_id: UserID = client.mxid
        self.password = password
        self._session = session
        self.timeline: dict[RoomID, list[Event]] = defaultdict(list)
        self.ephemeral: dict[RoomID, list[EphemeralEvent | GenericEvent]] = defaultdict(list)
        self.invites: dict[RoomID, Invite] = {}
        self.joined: set[RoomID] = set()
        self._seen_ids: set[str] = set()
        self._next_batch: str | None = None
        self._changed = asyncio.Condition()
        self._sync_task: asyncio.Task | None = None
        self._sync_lock = asyncio.Lock()
        self.sync_error: BaseException | None = None

    @classmethod
    async def create(
        cls,
        synapse: Any,
        localpart: str,
        password: str | None = None,
        *,
        displayname: str | None = None,
        admin: bool = False,
        background_sync: bool = True,
    ) -> MatrixTestClient:
        """Register `localpart` on `synapse`, log in with the password and start syncing."""
        password = password or secrets.token_urlsafe(16)
        user_id, _ = await synapse.register_user(localpart, password, admin=admin)
        return await cls.login(
            synapse.url,
            user_id,
            password,
            displayname=displayname,
            background_sync=background_sync,
        )

    @classmethod
    async def login(
        cls,
        base_url: str,
        user_id: str,
        password: str,
        *,
        displayname: str | None = None,
        background_sync: bool = True,
    ) -> MatrixTestClient:
        """Log an existing user in (a new device) and start syncing."""
        session = aiohttp.ClientSession()
        client = Client(mxid=UserID(user_id), base_url=base_url, client_session=session)
        try:
            resp = await client.login(
                identifier=user_id, password=password, device_name="teams-bridge tests"
            )
            client.device_id = resp.device_id
            if displayname:
                await client.set_displayname(displayname)
            self = cls(client, session, password)
            await self.sync_once(timeout_ms=0)
        except BaseException:
            await session.close()
            raise
        if background_sync:
            self.start()
        return self

    # sync
    def start(self) -> None:
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.create_task(self._sync_loop(), name=f"sync {self.user_id}")

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            try:
                await self._sync_task
            except (asyncio.CancelledError, Exception):
                pass
            self._sync_task = None

    async def close(self) -> None:
        await self.stop()
        await self._session.close()

    async def __aenter__(self) -> MatrixTestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _sync_loop(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.sync_once(timeout_ms=30_000)
                delay = 0.2
                self.sync_error = None
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # The homeserver may be restarted by a test; keep trying.
                self.sync_error = e
                log.debug("sync failed for %s: %s", self.user_id, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def sync_once(self, timeout_ms: int = 0) -> None:
        """One /sync request; records what it returns and wakes waiters."""
        async with self._sync_lock:
            data = await self.client.sync(
                since=self._next_batch, timeout=timeout_ms, filter_id=SYNC_FILTER
            )
            await self._handle_sync(data, initial=self._next_batch is None)
            self._next_batch = data["next_batch"]
        async with self._changed:
            self._changed.notify_all()

    async def _handle_sync(self, data: dict[str, Any], initial: bool) -> None:
        rooms = data.get("rooms", {})
        for room_id, room in rooms.get("join", {}).items():
            self.joined.add(room_id)
            self.invites.pop(room_id, None)
            timeline = room.get("timeline", {})
            events = timeline.get("events", [])
            if timeline.get("limited") and not initial:
                events = await self._fill_gap(room_id, timeline.get("prev_batch"), events)
            self._record_timeline(room_id, events)
            for raw in room.get("ephemeral", {}).get("events", []):
                raw["room_id"] = room_id
                try:
                    self.ephemeral[room_id].append(EphemeralEvent.deserialize(raw))
                except SerializerError:
                    self.ephemeral[room_id].append(GenericEvent.deserialize(raw))
        for room_id, room in rooms.get("invite", {}).items():
            state = room.get("invite_state", {}).get("events", [])
            own = next(
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
                is_direct=bool(own.get("content", {}).get("is_direct")),
                state=state,
            )
        for room_id, room in rooms.get("leave", {}).items():
            self.joined.discard(room_id)
            self.invites.pop(room_id, None)
            self._record_timeline(room_id, room.get("timeline", {}).get("events", []))

    def _record_timeline(self, room_id: RoomID, events: list[dict[str, Any]]) -> None:
        for raw in events:
            event_id = raw.get("event_id")
            if event_id in self._seen_ids:
                continue
            self._seen_ids.add(event_id)
            raw["room_id"] = room_id
            self.timeline[room_id].append(_deserialize(raw))

    async def _fill_gap(
        self, room_id: RoomID, prev_batch: str | None, events: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """A limited timeline skipped events: page back until we reach ones we have seen."""
        missing: list[dict[str, Any]] = []
        token = prev_batch
        while token:
            resp = await self.client.api.request(
                "GET",
                f"/_matrix/client/v3/rooms/{room_id}/messages",
                query_params={"from": token, "dir": "b", "limit": "100"},
            )
            chunk = resp.get("chunk", [])
            fresh = [e for e in chunk if e.get("event_id") not in self._seen_ids]
            missing.extend(fresh)
            if not chunk or len(fresh) < len(chunk) or resp.get("end") in (None, token):
                break
            token = resp["end"]
        return list(reversed(missing)) + events

    # waiting
    async def _wait(self, find: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._sync_task is None:
                        found = find()
                        if found is not None:
                            return found
                        await self.sync_once(timeout_ms=1_000)
                        continue
                    # find() runs under the condition's lock, so a sync that lands between
                    # the check and the wait cannot be missed.
                    async with self._changed:
                        found = find()
                        if found is not None:
                            return found
                        await self._changed.wait()
        except TimeoutError:
            detail = f" (last sync error: {self.sync_error!r})" if self.sync_error else ""
            raise TimeoutError(
                f"{self.user_id}: timed out after {timeout}s waiting for {what}{detail}"
            ) from None

    async def wait_for_invite(
        self, predicate: Callable[[Invite], bool] | None = None, timeout: float = WAIT_TIMEOUT
    ) -> RoomID:
        """A pending (not yet joined) invite matching `predicate`; returns its room ID."""

        def find() -> RoomID | None:
            for invite in list(self.invites.values()):
                if predicate is None or predicate(invite):
                    return invite.room_id
            return None

        return await self._wait(find, timeout, "a matching invite")

    async def wait_for_event(
        self,
        room_id: RoomID,
        predicate: EventPredicate,
        timeout: float = WAIT_TIMEOUT,
        *,
        after: EventID | None = None,
    ) -> Event:
        """The first timeline event in `room_id` matching `predicate` (already seen or new).

        `after` limits the search to events that came after that event ID.
        """

        def find() -> Event | None:
            events = self.timeline.get(room_id, [])
            start = 0
            if after is not None:
                for i, evt in enumerate(events):
                    if evt.event_id == after:
                        start = i + 1
                        break
                else:
                    return None
            for evt in events[start:]:
                if predicate(evt):
                    return evt
            return None

        return await self._wait(find, timeout, f"a matching event in {room_id}")

    async def wait_for_message(
        self,
        room_id: RoomID,
        *,
        sender: str | None = None,
        body: str | None = None,
        contains: str | None = None,
        msgtype: MessageType | str | None = None,
        after: EventID | None = None,
        timeout: float = WAIT_TIMEOUT,
    ) -> Event:
        """An `m.room.message` filtered by sender, exact body, substring and msgtype."""

        def predicate(evt: Event) -> bool:
            if evt.type != EventType.ROOM_MESSAGE:
                return False
            content_body = getattr(evt.content, "body", None) or ""
            return (
                (sender is None or evt.sender == sender)
                and (body is None or content_body == body)
                and (contains is None or contains in content_body)
                and (msgtype is None or _value(evt.content.msgtype) == _value(msgtype))
            )

        return await self.wait_for_event(room_id, predicate, timeout, after=after)

    async def wait_for_notice(
        self, room_id: RoomID, contains: str | None = None, **kwargs: Any
    ) -> Event:
        """A bot reply (`m.notice`)."""
        return await self.wait_for_message(
            room_id, contains=contains, msgtype=MessageType.NOTICE, **kwargs
        )

    async def wait_for_ephemeral(
        self,
        room_id: RoomID,
        predicate: Callable[[EphemeralEvent | GenericEvent], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> EphemeralEvent | GenericEvent:
        """A typing notification or receipt, for example."""

        def find() -> Any:
            return next((e for e in self.ephemeral.get(room_id, []) if predicate(e)), None)

        return await self._wait(find, timeout, f"a matching ephemeral event in {room_id}")

    # actions
    async def join(self, room_id: RoomID, timeout: float = WAIT_TIMEOUT) -> RoomID:
        """Join and wait until our own join shows up in /sync."""
        await self.client.join_room_by_id(room_id)
        self.invites.pop(room_id, None)
        await self.wait_for_event(
            room_id,
            lambda e: (
                e.type == EventType.ROOM_MEMBER
                and e.state_key == self.user_id
                and _value(e.content.membership) == "join"
            ),
            timeout,
        )
        return room_id

    async def leave(self, room_id: RoomID) -> None:
        await self.client.leave_room(room_id)

    async def send_text(
        self, room_id: RoomID, body: str, html: str | None = None, *, notice: bool = False
    ) -> EventID:
        content = TextMessageEventContent(
            msgtype=MessageType.NOTICE if notice else MessageType.TEXT, body=body
        )
        if html is not None:
            content.format = Format.HTML
            content.formatted_body = html
        return await self.client.send_message(room_id, content)

    async def edit_text(
        self, room_id: RoomID, event_id: EventID, body: str, html: str | None = None
    ) -> EventID:
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=body)
        if html is not None:
            content.format = Format.HTML
            content.formatted_body = html
        content.set_edit(event_id)  # serialises to "* body" plus m.new_content
        return await self.client.send_message(room_id, content)

    async def reply_text(self, room_id: RoomID, event_id: EventID, body: str) -> EventID:
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=body)
        content.set_reply(event_id)
        return await self.client.send_message(room_id, content)

    async def react(self, room_id: RoomID, event_id: EventID, key: str) -> EventID:
        return await self.client.react(room_id, event_id, key)

    async def redact(
        self, room_id: RoomID, event_id: EventID, reason: str | None = None
    ) -> EventID:
        return await self.client.redact(room_id, event_id, reason=reason)

    async def send_file(
        self,
        room_id: RoomID,
        data: bytes,
        file_name: str,
        mime_type: str = "application/octet-stream",
        msgtype: MessageType = MessageType.FILE,
    ) -> EventID:
        url: ContentURI = await self.client.upload_media(
            data, mime_type=mime_type, filename=file_name
        )
        info = BaseFileInfo(mimetype=mime_type, size=len(data))
        return await self.client.send_file(
            room_id, url, info=info, file_name=file_name, file_type=msgtype
        )

    async def create_dm(self, user_id: str, *, name: str | None = None) -> RoomID:
        """A private room with `is_direct`, inviting `user_id` (as a client's "new DM")."""
        room_id = await self.client.create_room(
            preset=RoomCreatePreset.PRIVATE,
            is_direct=True,
            invitees=[UserID(user_id)],
            name=name,
        )
        self.joined.add(room_id)
        return room_id

    async def create_room(self, name: str | None = None, invitees: list[str] = ()) -> RoomID:
        return await self.client.create_room(
            preset=RoomCreatePreset.PRIVATE, name=name, invitees=[UserID(u) for u in invitees]
        )

    async def room_state(self, room_id: RoomID) -> list[StateEvent]:
        return await self.client.get_state(room_id)

    async def members(self, room_id: RoomID) -> dict[UserID, str]:
        """user ID -> membership ("join", "invite", ...), from the current room state."""
        return {
            UserID(evt.state_key): _value(evt.content.membership)
            for evt in await self.room_state(room_id)
            if evt.type == EventType.ROOM_MEMBER
        }

    def messages(self, room_id: RoomID) -> list[Event]:
        """The `m.room.message` events seen so far in `room_id`."""
        return [e for e in self.timeline.get(room_id, []) if e.type == EventType.ROOM_MESSAGE]

    def __repr__(self) -> str:
        return f"MatrixTestClient({self.user_id!r})"


__all__ = ["Invite", "MatrixTestClient"]
