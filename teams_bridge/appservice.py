"""The appservice endpoint, made durable: events are stored before a transaction is answered.

mautrix answers 200 even when handling failed, and handles events in background tasks after
answering; its transaction dedup is an in-memory set. Here a transaction is answered only
after its events bound for Teams are in the database, and a storage failure answers 500 so
the homeserver sends the same transaction again.

The homeserver resends a refused transaction until it is accepted, and sends nothing else
meanwhile: anything in one transaction that makes the bridge refuse it stops all bridging.
So a malformed event is logged and skipped, never a reason to refuse the events beside it,
and the request size limit is never below what the homeserver can send.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from mautrix.appservice import AppService
from mautrix.types import JSON, DeviceLists, DeviceOTKCount, Event

from .bot_intent import EncryptingBotIntent

if TYPE_CHECKING:
    from mautrix.bridge.e2ee import EncryptionManager

# Stores a transaction's events bound for Teams; the ids of those that need nothing more
# (see `DurableAppService.handle_transaction`).
EventPersister = Callable[[str, list[dict[str, Any]]], Awaitable[set[str]]]
# Where a transaction's parsed body is kept on its request, so that it is parsed once
# (a typed key where aiohttp has them, 3.12 on).
_PARSED: Any = (
    web.RequestKey("teams_bridge.transaction", tuple)
    if hasattr(web, "RequestKey")
    else "teams_bridge.transaction"
)
# The key of `extra_data` that carries the ids the persister returned.
_DONE_IDS = "teams_bridge.handled_ids"

MIB = 1024**2

# The smallest request body limit (MiB) that can hold any transaction Synapse sends. Synapse
# puts up to 100 events in a transaction, as canonical JSON (UTF-8, nothing escaped that the
# event itself does not escape). An event is at most 64 KiB as stored (the whole PDU);
# as sent, a state event also carries the content it replaced (`unsigned.prev_content`, up
# to 64 KiB more), and an invite or a knock carries the room's stripped state (by default 7
# state events plus the inviter's membership, up to 64 KiB each). That is at most
# 100 x (1 + 1 + 8) x 64 KiB = 62.5 MiB of events. Up to 100 ephemeral events and 100
# to-device messages, and a homeserver configured to share more state with invites, fit in
# the rest. A bridged message is only ever 64 KiB, but a hostile room can make the invites
# of bridge users that large, and one refused transaction blocks every room.
MIN_BODY_MIB = 100

# Matrix identifiers (event, room and user IDs, event types) are at most 255 bytes.
MAX_ID_BYTES = 255
_ID_FIELDS = ("type", "event_id", "room_id", "sender")


def body_limit_bytes(configured: Any, log: logging.Logger | None = None) -> int:
    """The request body limit for `appservice.max_body_size` (MiB), never below the minimum.

    Configs written before the minimum existed say 1 MiB; the config upgrade keeps that value,
    which would refuse a transaction of 20 long messages forever.
    """
    try:
        mib = float(configured)
    except (TypeError, ValueError):
        mib = 0.0
    if not (MIN_BODY_MIB <= mib < math.inf):  # (not NaN either)
        if log is not None:
            log.warning(
                "appservice.max_body_size is %r MiB, below the %d MiB a homeserver transaction "
                "can take; using %d MiB",
                configured,
                MIN_BODY_MIB,
                MIN_BODY_MIB,
            )
        mib = MIN_BODY_MIB
    return int(mib * MIB)


def _id_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"'{key}' is missing or not a string"
    if "\x00" in value:
        return f"'{key}' holds a NUL character"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"'{key}' is not valid Unicode"
    if size > MAX_ID_BYTES:
        return f"'{key}' is longer than {MAX_ID_BYTES} bytes"
    return None


def event_problem(raw: Any) -> str | None:
    """Why a transaction's event cannot be handled at all (None: it can be).

    Synapse only sends events of this shape; anything else is forged or broken, and is
    skipped rather than allowed to fail the transaction it came in.
    """
    if not isinstance(raw, dict):
        return f"the event is not an object ({type(raw).__name__})"
    for key in _ID_FIELDS:
        problem = _id_problem(key, raw.get(key))
        if problem:
            return problem
    if not isinstance(raw.get("content"), dict):
        return "'content' is missing or not an object"
    if "state_key" in raw and not isinstance(raw["state_key"], str):
        return "'state_key' is not a string"
    if raw.get("unsigned") is not None and not isinstance(raw["unsigned"], dict):
        return "'unsigned' is not an object"
    if "redacts" in raw and raw["redacts"] is not None and not isinstance(raw["redacts"], str):
        return "'redacts' is not a string"
    return None


def describe(raw: Any) -> str:
    """An event's id for a log line, or what stands in for it (never the content)."""
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    if isinstance(event_id, str):
        return repr(event_id[:100])
    return f"without an event ID ({type(raw).__name__})"


class DurableAppService(AppService):
    persist_events: EventPersister | None = None
    # Called before the events of a transaction that came over a connection no earlier
    # transaction used (a restarted homeserver's first one does; see `_note_connection`).
    on_new_connection: Callable[[], None] | None = None
    # The connections transactions came over, while they are open.
    _connections: weakref.WeakSet | None = None
    # The bridge's encryption, when it has any: the bot's sends are then encrypted in
    # encrypted rooms (`EncryptingBotIntent`).
    e2ee: Callable[[], EncryptionManager | None] | None = None

    # Trace configs for the client session to the homeserver (mautrix makes it with none).
    request_traces: list[aiohttp.TraceConfig] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        await super().start(host, port)
        if self.request_traces:
            await self._trace_requests(self.request_traces)
        if self.e2ee is not None and self.e2ee() is not None:
            EncryptingBotIntent.install(self.intent, self.e2ee)

    async def _trace_requests(self, traces: list[aiohttp.TraceConfig]) -> None:
        """The client session again, as mautrix makes it, with `traces`; before any request
        (the bot's intent is the only user of the first one yet)."""
        old = self._http_session
        assert old is not None
        if self.server.startswith("https://") and not self.verify_ssl:
            connector = aiohttp.TCPConnector(limit=self.connection_limit, ssl=False)
        else:
            connector = aiohttp.TCPConnector(limit=self.connection_limit)
        self._http_session = aiohttp.ClientSession(
            connector=connector, headers=old.headers, trace_configs=traces
        )
        self.intent.api.session = self._http_session
        await old.close()

    # Transaction ids of the homeserver's pings that reached this endpoint (the newest few).
    pings_received: deque[str]

    async def _http_ping(self, request: web.Request) -> web.Response:
        response = await super()._http_ping(request)
        try:
            txn_id = (await request.json()).get("transaction_id")
        except Exception:
            txn_id = None
        if isinstance(txn_id, str):
            if not hasattr(self, "pings_received"):
                self.pings_received = deque(maxlen=16)
            self.pings_received.append(txn_id)
        return response

    async def _read_transaction_header(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """As mautrix's, parsed once per request (the regular handling reads it again)."""
        parsed = request.get(_PARSED)
        if parsed is None:
            parsed = await super()._read_transaction_header(request)
            request[_PARSED] = parsed
        return parsed

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        transaction_id, data = await self._read_transaction_header(request)
        if not isinstance(data, dict) or not isinstance(data.get("events", []), list):
            return web.json_response(
                {"errcode": "M_BAD_JSON", "error": "A transaction is an object with a list"},
                status=400,
            )
        self._note_connection(request)
        if self.persist_events is not None:
            events = []
            for index, raw in enumerate(data.get("events") or []):
                problem = event_problem(raw)
                if problem:
                    self.log.warning(
                        "Skipping malformed event %s (number %d in transaction %s): %s",
                        describe(raw),
                        index,
                        transaction_id,
                        problem,
                    )
                else:
                    events.append(raw)
            try:
                # Shielded: if the homeserver hangs up mid-request, aiohttp cancels this
                # handler, and a query cancelled halfway leaves its connection unusable.
                done = await asyncio.shield(self.persist_events(transaction_id, events))
            except Exception:
                self.log.exception(
                    "Could not store transaction %s; the homeserver will send it again",
                    transaction_id,
                )
                return web.json_response(
                    {"errcode": "M_UNKNOWN", "error": "The bridge could not store the events"},
                    status=500,
                )
            if done:
                data[_DONE_IDS] = done
        return await super()._http_handle_transaction(request)

    def _note_connection(self, request: web.Request) -> None:
        """Call `on_new_connection` if the (authenticated) transaction in `request` is the
        first one over its connection.

        A homeserver keeps its connection to the appservice open between transactions, and
        a restarted one opens a new one: its first transaction can come before anything
        else shows the restart, with events it lost in the restart behind it.
        """
        transport = request.transport
        if transport is None:
            return
        if self._connections is None:
            self._connections = weakref.WeakSet()
        if transport in self._connections:
            return
        self._connections.add(transport)
        if self.on_new_connection is not None:
            self.on_new_connection()

    async def handle_transaction(
        self,
        txn_id: str,
        *,
        events: list[JSON],
        extra_data: JSON,
        ephemeral: list[JSON] | None = None,
        to_device: list[JSON] | None = None,
        otk_counts: dict[str, dict[str, DeviceOTKCount]] | None = None,
        device_lists: DeviceLists | None = None,
    ) -> JSON:
        """As mautrix's, but one event that cannot be read never stops the others: mautrix
        gives up on the rest of a transaction when an event raises anything but its own
        deserialisation error. Events the persister said need nothing more are not read
        again at all: the bridge's own (which mautrix's handler ignores) and messages taken
        for a portal's worker (for which it would only wake that worker once more)."""
        output: JSON = {}
        done: set[str] = extra_data.pop(_DONE_IDS, None) or set()
        try:
            output = await super().handle_transaction(
                txn_id,
                events=[],
                extra_data=extra_data,
                ephemeral=ephemeral,
                to_device=to_device,
                otk_counts=otk_counts,
                device_lists=device_lists,
            )
        except Exception:
            self.log.exception("Could not handle the ephemeral part of transaction %s", txn_id)
        for raw in events:
            if event_problem(raw):
                continue  # (logged when the transaction was stored)
            if raw["event_id"] in done:
                continue  # stored for its portal's worker, with nothing for mautrix to do
            try:
                self._fix_prev_content(raw)
                event = Event.deserialize(raw)
            except Exception as e:
                self.log.warning("Could not read event %s: %s", describe(raw), e)
                continue
            await self.handle_matrix_event(event)
        return output
