"""Matrix -> Teams: events stored by the appservice endpoint are delivered in order, once,
and how each delivery ended is recorded in one place.

Each portal has one worker that takes its room's pending events from the database oldest
first and hands each to the portal's handler for its kind. A handler returns what it did
(`Sent`, `Done`, `Skipped`) or raises `Transient`/`Permanent`; `record` then stores the
outcome (the message mapping, the event's status) and tells the room (a message send
status, a notice on failure) and, when one is configured, the checkpoint endpoint.

A send that may already have reached Teams (it has a clientmessageid) is looked up in the
chat service before it is tried again, so a crash or retry never double-posts. An encrypted
event is decrypted here, after it was stored: the homeserver's transaction was answered
long before.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import aiohttp
import asyncpg
from mautrix.errors import DecryptionError, SessionNotFound
from mautrix.types import JSON, EncryptedEvent, EventID, EventType, RoomID, UserID
from mautrix.util.message_send_checkpoint import (
    MessageSendCheckpoint,
    MessageSendCheckpointReportedBy,
    MessageSendCheckpointStatus,
    MessageSendCheckpointStep,
)

from .. import db as dbm
from .. import metrics
from ..db.batch import Query, execute_batch
from ..db.matrix_event import DONE, FAILED, PENDING
from ..db.message import FROM_MATRIX
from ..teams.chat import new_client_message_id
from .content_check import content_problem
from .errors import NotSupported, Permanent, Transient, call_teams, classify
from .intake import ENCRYPTED, Intake, is_for_teams, queue_row, skip_reason
from .relay import relay_content
from .results import Done, Failed, Outcome, Result, Sent, Skipped

if TYPE_CHECKING:
    from mautrix.bridge.e2ee import EncryptionManager

    from ..disruption import Disruptions
    from ..portal.writer import RoomWriter
    from ..user import User

TEXT_MSGTYPES = {"m.text", "m.notice", "m.emote"}
# How long (seconds) a decryption waits for the event's room keys: the first time, and
# each time after the keys were asked for.
KEY_WAIT_FIRST = 5
KEY_WAIT = 10
# How often a send that failed for a passing reason is retried before the user is told.
MAX_ATTEMPTS = 8
# Attempts after which an event whose handling raised something unforeseen is given up on:
# such an error is almost always the event's own and would recur on every try, while the
# room's later events wait behind it.
MAX_UNEXPECTED_ATTEMPTS = 3
# Seconds before a failed timeline check after a disruption is tried again.
GAP_RETRY = 3.0
# Pages of timeline events read back at most when checking the timeline.
GAP_PAGES = 6
# Events per page of a room's timeline read for that check (the first page of a check with
# nothing to line up against: a few).
PAGE = 100
FIRST_PAGE = 10
# How long to wait for the sender's Teams connection (e.g. right after start-up).
CONNECT_WAIT = 60.0
# Pending events read from the database at a time.
PENDING_BATCH = 16
NOT_ENCRYPTED = "the message was not encrypted, and this bridge requires encryption"
NO_ENCRYPTION = "encrypted messages cannot be bridged: encryption is not enabled on this bridge"

# Database and network trouble: not the fault of the event being handled, so not counted
# against it (the database being briefly away must not fail the messages of the moment).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    aiohttp.ClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    sqlite3.OperationalError,
)

Handler = Callable[["User", dbm.MatrixEvent, dict[str, Any]], Awaitable[Result]]


class Host(Protocol):
    """What the worker needs of its portal: the room, the chat and the writer."""

    @property
    def mxid(self) -> RoomID | None: ...
    @property
    def thread_id(self) -> str: ...
    @property
    def receiver(self) -> str: ...
    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter: ...
    @property
    def writer(self) -> RoomWriter: ...

    def expect_echo(self, message_id: str, client_message_id: str) -> None:
        """A post was mapped to Teams message ``message_id``: its echo is expected."""

    def expect_post(self, client_message_id: str, sender_mri: str) -> None:
        """A post is about to go out: an echo of it that comes first is held."""

    def held_echo_queries(self, client_message_id: str, message_id: str) -> list[Query] | None:
        """What the post's held echo adds to the write that maps it (``None``: no echo of
        Teams message ``message_id`` came yet)."""

    def end_post(self, client_message_id: str, *, stored: bool) -> None:
        """The post is mapped (``stored``: with its held echo's writes) or given up; a held
        echo not stored is handled as any message."""

    async def records_settled(self) -> None:
        """Wait until the records of messages bridged in the room (either way) are stored."""

    def record_later(self, record: dbm.Record) -> asyncio.Future[None]:
        """Queue the record of a delivered event, to be written with others; the future is
        done once it is stored (or given up). `records_settled` waits for it."""

    async def get_relay_user(self) -> User | None: ...


async def _no_profile(user_id: UserID) -> str | None:
    return None


class Untried:
    """The clientmessageids of first attempts the endpoint stored with their events
    (`preclaim`) that no send has been tried with since, in this process: they are known
    not to have reached Teams, so the worker neither looks for them in the chat nor stores
    the attempt again. Noted before the event is stored (so no worker can read it first)
    and keyed by the new id, which only that row carries. After a restart the set is
    empty and every stored attempt is looked up before it is tried, as any other. Bounded:
    an id dropped from it only costs that lookup."""

    LIMIT = 65536

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, client_message_id: object) -> bool:
        return client_message_id in self._ids

    def add(self, client_message_id: str) -> None:
        ids = self._ids
        ids[client_message_id] = None
        if len(ids) > self.LIMIT:
            del ids[next(iter(ids))]

    def take(self, client_message_id: str) -> bool:
        """Whether the id was untried; from now on it is not (a send is under way)."""
        try:
            del self._ids[client_message_id]
        except KeyError:
            return False
        return True

    def discard(self, client_message_id: str | None) -> None:
        if client_message_id:
            self._ids.pop(client_message_id, None)


@dataclass(frozen=True)
class Services:
    """What every portal's worker shares, from the bridge."""

    intake: Intake
    disruptions: Disruptions
    get_user: Callable[[UserID], Awaitable[User | None]]
    # One page of a room's timeline, newest first: (room, the `from` token or None).
    timeline_page: Callable[[RoomID, str | None, int], Awaitable[dict[str, Any]]]
    # The bridge's encryption helper, when encryption is enabled.
    e2ee: Callable[[], EncryptionManager | None]
    # Posts a checkpoint when an endpoint is configured (else does nothing).
    send_checkpoint: Callable[[MessageSendCheckpoint], Awaitable[None]]
    # Relay mode (`bridge.relay`): whether it is on, and the attribution templates.
    relay_enabled: bool = False
    relay_formats: dict[str, str] = field(default_factory=dict)
    # The Matrix display name of a user (for relay attribution), or None.
    profile: Callable[[UserID], Awaitable[str | None]] = _no_profile
    # Whether each outcome is also told to the room as a `com.beeper.message_send_status`
    # (`bridge.message_status_events`): one more event for the homeserver per message.
    status_events: bool = True
    # `bridge.encryption.require`: a message sent in the clear is refused, as in mautrix.
    require_encryption: bool = False
    # Events stored with their first attempt and not tried yet (`Untried`).
    untried: Untried = field(default_factory=Untried)
    # Held while a transaction is noted and stored (`store_transaction`), and while a room's
    # check with nothing waiting makes sure nothing came in and stores what it recovered:
    # no transaction is stored between the two (`DeliveryWorker.reconcile`).
    storing: asyncio.Lock = field(default_factory=asyncio.Lock)


def _status_content(
    row: dbm.MatrixEvent,
    status: str,
    reason: str | None = None,
    error: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """A `com.beeper.message_send_status` about ``row``; a failure names its reason and
    error (and a message for the user, the error itself unless given)."""
    content: dict[str, Any] = {
        "m.relates_to": {"rel_type": "m.reference", "event_id": row.event_id},
        "network": "teams",
        "status": status,
    }
    if error is not None:
        content.update(reason=reason, error=error, message=message or error, is_certain=True)
    return content


HANDLER_KINDS = ("text", "media", "edit", "reaction", "redaction")


def handler_kind(raw: dict[str, Any]) -> str:
    """Which handler an event goes to: reaction, redaction, edit, text or media."""
    event_type = raw.get("type")
    content = raw.get("content") or {}
    relates = content.get("m.relates_to")
    if event_type == "m.reaction":
        return "reaction"
    if event_type == "m.room.redaction":
        return "redaction"
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        return "edit"
    if content.get("msgtype") in TEXT_MSGTYPES:
        return "text"
    return "media"


def preclaim(
    raw: dict[str, Any], row: dbm.MatrixEvent, thread_id: str, receiver: str
) -> dbm.SentMessage | None:
    """The first attempt of a plain message, stored with the event by the endpoint: its
    clientmessageid and the record that recognises its echo (what `post` would otherwise
    write before sending, one statement more on the way to Teams). ``row`` is changed to
    match; ``None`` for any other event (edits, reactions, media, anything encrypted)."""
    if raw.get("type") != "m.room.message" or handler_kind(raw) != "text":
        return None
    client_message_id = new_client_message_id()
    row.client_message_id = client_message_id
    row.attempts = 1
    return dbm.SentMessage.new(
        client_message_id, thread_id, receiver, row.event_id, row.room_id, row.received_at
    )


async def store_events(
    entries: Sequence[tuple[dict[str, Any], dbm.MatrixEvent, Host]], untried: Untried
) -> list[dbm.MatrixEvent]:
    """Store the events of a transaction bound for portals (each with the portal it is for),
    a plain message with its first attempt (`preclaim`), noted as untried before anything
    can read it. The rows that were new, in order; events seen before keep what they were
    stored with."""
    rows: list[dbm.MatrixEvent] = []
    claims: dict[str, dbm.SentMessage] = {}
    for raw, row, host in entries:
        rows.append(row)
        claim = preclaim(raw, row, host.thread_id, host.receiver)
        if claim is not None:
            claims[row.event_id] = claim
            untried.add(claim.client_message_id)
    try:
        stored = await dbm.MatrixEvent.insert_many(rows, claims)
    except BaseException:
        for claim in claims.values():
            untried.discard(claim.client_message_id)
        raise
    if claims:
        new = {row.event_id for row in stored}
        for event_id, claim in claims.items():
            if event_id not in new:
                untried.discard(claim.client_message_id)
    return stored


async def store_transaction(
    services: Services,
    txn_id: str,
    received_ms: int,
    entries: Sequence[tuple[dict[str, Any], dbm.MatrixEvent, Host]],
) -> list[dbm.MatrixEvent]:
    """Note a transaction received at `received_ms` and store its events (`store_events`),
    with no room's check storing what it recovered in between (`Services.storing`)."""
    async with services.storing:
        # Noted before the rows can be seen, so a gap holds them back for a check.
        services.disruptions.record(txn_id, received_ms)
        return await store_events(entries, services.untried)


class DeliveryWorker:
    """The Matrix -> Teams worker of one portal."""

    def __init__(self, host: Host, services: Services, handlers: Mapping[str, Handler]) -> None:
        """``handlers``: one per kind of event (see ``handler_kind``: text, media, edit,
        reaction, redaction). A handler gets the sender (logged in, connected), the stored
        row and the event (decrypted), and returns what it did."""
        missing = set(HANDLER_KINDS) - set(handlers)
        if missing:
            raise ValueError(f"no handler for {', '.join(sorted(missing))}")
        self.host = host
        self.services = services
        self.handlers = dict(handlers)
        # Set when the room's pending events must be read from the database (see `wake`).
        self._must_read = True
        self._rows: deque[dbm.MatrixEvent] = deque()
        self._complete = False
        # The highest `seq` taken into `_rows` so far (read or handed over).
        self._max_seq = -1
        self._task: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()
        # When (wall ms) the room's timeline was last compared with what was stored.
        self.checked_ms = 0
        self._reconcile_lock = asyncio.Lock()
        # What the room is told (statuses, notices, checkpoints), sent in order by one task
        # so that deliveries never wait for the homeserver.
        self._reports: deque[tuple[str, Callable[[], Awaitable[object]]]] = deque()
        self._reporter: asyncio.Task | None = None
        # Room key requests on their way (kept so they are not collected while running).
        self._key_requests: set[asyncio.Task] = set()

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter:
        return self.host.log

    # -- the loop ----------------------------------------------------------------------------

    def is_idle(self) -> bool:
        """Neither delivering nor reporting, nor started to."""
        return (
            (self._task is None or self._task.done())
            and (self._reporter is None or self._reporter.done())
            and not self._reports
            and not self._send_lock.locked()
            and not self._reconcile_lock.locked()
        )

    def wake(self, stored: list[dbm.MatrixEvent] | None = None) -> None:
        """New events were stored for the room: ``stored``, the rows just written (in
        order), when the caller has them.

        While the worker holds every pending event of the room and the new ones come after
        all it has taken, they are queued as they are, without reading the room again (one
        statement less per message, and no wait for it). Anything else (no rows given, rows
        that may sort before ones taken already, a read under way, a batch that did not
        hold the whole room) makes it read the room's pending events from the database.
        """
        if (
            stored
            and self._complete
            and stored[0].seq > self._max_seq
            and all(a.seq < b.seq for a, b in zip(stored, stored[1:], strict=False))
        ):
            self._rows.extend(stored)
            self._max_seq = stored[-1].seq
        else:
            self._must_read = True
        self.ensure_running()

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        backoff = 1.0
        # `_rows`: the room's oldest pending events, as last read, and those handed over
        # since (`wake`); `_complete` while they are every pending one of the room.
        rows = self._rows
        while True:
            if self._must_read or not rows:
                if not rows and self._complete and not self._must_read:
                    # Nothing pending: the task ends (`wake` starts another), so an idle
                    # portal holds none and may be dropped from memory.
                    return
                self._must_read = False
                # Until the read is in, new rows cannot be told apart from what it returns.
                self._complete = False
                try:
                    assert self.host.mxid
                    # Events delivered lately are marked done by records still on their way.
                    await self.host.records_settled()
                    read = await dbm.MatrixEvent.pending(self.host.mxid, PENDING_BATCH)
                except Exception:
                    self.log.warning("Could not read pending events; retrying", exc_info=True)
                    self._reset_rows()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
                rows.clear()
                rows.extend(read)
                self._complete = len(read) < PENDING_BATCH
                if read:
                    self._max_seq = max(self._max_seq, read[-1].seq)
                continue
            row = rows[0]
            if self.services.disruptions.must_check(row, self.checked_ms):
                # The homeserver was disrupted: events it never sent us may precede this one.
                if not await self.reconcile(row):
                    await asyncio.sleep(GAP_RETRY)
                self._reset_rows()
                continue
            # Anything but a delivery re-reads the room: the row has changed in the database.
            delivered = False
            try:
                await self.record(row, await self._deliver(row))
                delivered = True
                backoff = 1.0
            except Transient as e:
                if row.attempts >= MAX_ATTEMPTS:
                    await self.record(row, Failed(str(e)))
                else:
                    self.log.info("Delivery of %s will be retried: %s", row.event_id, e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
            except Permanent as e:
                await self.record(row, Failed(str(e)))
            except Exception as e:
                self.log.exception("Unexpected error delivering %s", row.event_id)
                if await self._unexpected_error(row, e):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
            if delivered and rows and rows[0] is row:
                rows.popleft()
            else:
                self._reset_rows()

    def _reset_rows(self) -> None:
        """Forget what was read: the room is read again before the next delivery."""
        self._rows.clear()
        self._complete = False
        self._must_read = True

    async def _unexpected_error(self, row: dbm.MatrixEvent, error: Exception) -> bool:
        """Count an unforeseen error as an attempt, and give the event up for good after a
        few, so one event never holds the room's queue forever (across restarts too: the
        count is stored). Whether to wait before the next try."""
        if row.status != PENDING:
            return False  # it was finished (delivered or failed) before the error
        if isinstance(error, OUTAGE_ERRORS):
            return True
        if row.client_message_id and self.services.untried.take(row.client_message_id):
            return True  # its first try, counted when the event was stored
        try:
            await row.count_attempt()
        except Exception:
            self.log.warning("Could not count the attempt for %s", row.event_id, exc_info=True)
            return True
        if row.attempts < MAX_UNEXPECTED_ATTEMPTS:
            return True
        await self.record(row, Failed(f"internal error ({type(error).__name__})"))
        return False

    # -- one event ---------------------------------------------------------------------------

    async def _deliver(self, row: dbm.MatrixEvent) -> Result:
        assert self.host.mxid
        # Delivered, but not marked so? Only possible after an attempt: every way of sending
        # counts one first, and the mapping is stored with the status.
        if (
            row.attempts
            and row.client_message_id not in self.services.untried
            and await dbm.Message.get_by_mxid(row.event_id, self.host.mxid)
        ):
            return Done()
        raw = json.loads(row.content)
        encrypted = isinstance(raw, dict) and raw.get("type") == ENCRYPTED
        if self.services.require_encryption and not encrypted:
            raise Permanent(NOT_ENCRYPTED)
        if encrypted:
            try:
                # After the first miss the keys have been asked for: wait for them longer
                # (the wait ends as soon as they come).
                raw = await self.decrypt(raw, wait=KEY_WAIT_FIRST if not row.attempts else KEY_WAIT)
            except Transient as e:
                # The keys may still come; counted, so a message that never gets them fails.
                self._request_keys(row, raw)
                if not row.attempts:
                    self._tell_waiting_for_keys(row, str(e))
                await row.count_attempt()
                raise
            reason = skip_reason(raw, self.services.intake)
            if reason is not None:
                return Skipped(reason)
        problem = content_problem(raw)
        if problem:
            raise Permanent(f"the message is malformed ({problem})")
        sender, relayed_for = await self._sender(row)
        kind = handler_kind(raw)
        if relayed_for is not None:
            if kind == "reaction":
                raise NotSupported("reactions of people without a Teams login are not relayed")
            if kind in ("text", "media", "edit"):
                raw = {
                    **raw,
                    "content": relay_content(
                        raw.get("content") or {},
                        self.services.relay_formats,
                        mxid=relayed_for.mxid,
                        displayname=await self._display_name(relayed_for),
                    ),
                }
        if kind not in ("text", "media") or "m.relates_to" in raw["content"]:
            # What the event refers to (a reply's, an edit's or a reaction's target) may be
            # a message whose record is still on its way. A new message refers to nothing,
            # and does not wait: records of a room's messages sent one after another are
            # then written together.
            await self.host.records_settled()
        handler = self.handlers[kind]
        async with self._send_lock:
            try:
                return await handler(sender, row, raw)
            except Exception as e:
                failure = classify(e)
                if failure is None or failure is e:
                    raise
                raise failure from e

    async def decrypt(self, raw: dict[str, Any], wait: int = KEY_WAIT_FIRST) -> dict[str, Any]:
        """The plaintext event of an encrypted one, through the bridge's encryption helper:
        `Transient` while its keys have not arrived, `Permanent` when it cannot be."""
        e2ee = self.services.e2ee()
        if e2ee is None:
            raise Permanent(NO_ENCRYPTION)
        try:
            encrypted = EncryptedEvent.deserialize(cast(JSON, raw))
        except Exception as e:
            raise Permanent("the encrypted message is malformed") from e
        try:
            decrypted = await e2ee.decrypt(encrypted, wait_session_timeout=wait)
        except SessionNotFound as e:
            raise Transient(f"{e.human_message} yet") from e
        except DecryptionError as e:
            raise Permanent(f"the message could not be decrypted ({e})") from e
        plain = decrypted.serialize()
        if not isinstance(plain, dict):
            raise Permanent("the encrypted message is malformed")
        return plain

    def _request_keys(self, row: dbm.MatrixEvent, raw: dict[str, Any]) -> None:
        """Ask the sender's device for the room key of an event that cannot be decrypted
        (again at every try: a request may go unanswered, e.g. while the device is off)."""
        e2ee = self.services.e2ee()
        content = raw.get("content") if isinstance(raw.get("content"), dict) else {}
        session_id, sender_key = content.get("session_id"), content.get("sender_key")
        device_id = content.get("device_id")
        if e2ee is None or not (session_id and sender_key and device_id and self.host.mxid):
            return
        task = asyncio.create_task(
            e2ee.crypto.request_room_key(
                self.host.mxid,
                sender_key,
                session_id,
                from_devices={row.sender: [device_id]},
                timeout=0,
            )
        )
        self._key_requests.add(task)
        task.add_done_callback(self._key_requests.discard)

    def _tell_waiting_for_keys(self, row: dbm.MatrixEvent, why: str) -> None:
        """The first time an event cannot be decrypted for want of its keys, the room hears
        that the message waits (it is sent once they come, or fails with a notice after
        the last try)."""
        text = (
            "Your message has not reached Teams yet: the bridge does not have the keys to "
            f"decrypt it ({why}). It is sent as soon as they arrive."
        )
        self._reports.append(("the waiting notice", lambda: self._notice(text)))
        if self.services.status_events:
            status = _status_content(
                row, "FAIL_RETRIABLE", "com.beeper.undecryptable_event", why, text
            )
            self._reports.append(("the waiting status", lambda: self.host.writer.status(status)))
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self._send_reports())

    async def _sender(self, row: dbm.MatrixEvent) -> tuple[User, User | None]:
        """Who posts the event: its sender, logged in to Teams and connected; or, for a
        sender without a login in a room with a relay, the relay user (and the sender)."""
        sender = await self.services.get_user(row.sender)
        if sender is not None and not sender.credentials and self.services.relay_enabled:
            relay = await self.host.get_relay_user()
            if relay is not None and (sender.relay_whitelisted or sender.is_whitelisted):
                return await self._connected(relay), sender
        if sender is None or not sender.is_whitelisted:
            raise Permanent("you are not allowed to use this bridge")
        if not sender.credentials:
            raise Permanent("you are not logged in to Teams")
        return await self._connected(sender), None

    async def _display_name(self, user: User) -> str:
        try:
            profile = await self.services.profile(user.mxid)
        except Exception:
            profile = None
        return profile or user.mxid

    async def _connected(self, sender: User) -> User:
        waited = 0.0
        while sender.client is None or sender.mri is None:
            if not sender.credentials:
                raise Permanent("you are not logged in to Teams")
            if waited >= CONNECT_WAIT:
                raise Transient("the Teams connection is not ready")
            await asyncio.sleep(0.5)
            waited += 0.5
        return sender

    # -- what handlers share -----------------------------------------------------------------

    async def claim(self, row: dbm.MatrixEvent) -> str:
        """Count a try at changing something in Teams (the worker gives up after a number
        of them) and store the clientmessageid it goes with, which retries reuse."""
        client_message_id = row.client_message_id or new_client_message_id()
        await row.set_client_message_id(client_message_id)
        return client_message_id

    async def post(
        self, sender: User, row: dbm.MatrixEvent, send: Callable[[str], Awaitable[str]]
    ) -> Sent:
        """Post the event to Teams as a new message, at most once.

        A try that may have reached Teams already (it stored a clientmessageid) is looked up
        in the chat first. Otherwise the try is counted and its clientmessageid stored, with
        the record that recognises its echo, before ``send(client_message_id)`` posts it and
        returns the new message's id.
        """
        assert sender.client is not None
        created_at = 0
        queries: list[Query] = []
        client_message_id = row.client_message_id
        if client_message_id and self.services.untried.take(client_message_id):
            # Stored with the event (`preclaim`), and never tried: nothing to look for.
            if sender.mri:
                self.host.expect_post(client_message_id, sender.mri)
            return Sent(await send(client_message_id), sender.mri, row.received_at)
        if client_message_id:
            sent = await dbm.SentMessage.get(client_message_id)
            created_at = sent.created_at if sent else 0
            found = await self._find_sent(sender, client_message_id)
            if found is not None:
                return Sent(found, sender.mri, created_at)
        else:
            assert self.host.mxid
            client_message_id = new_client_message_id()
            sent = dbm.SentMessage.new(
                client_message_id,
                self.host.thread_id,
                self.host.receiver,
                row.event_id,
                self.host.mxid,
            )
            created_at = sent.created_at
            queries.append(sent.insert_query())
        queries.append(row.set_client_message_id_query(client_message_id))
        await execute_batch(dbm.MatrixEvent.db, queries)
        row.attempt_stored(client_message_id)
        if sender.mri:
            self.host.expect_post(client_message_id, sender.mri)
        return Sent(await send(client_message_id), sender.mri, created_at)

    async def _find_sent(self, sender: User, client_message_id: str) -> str | None:
        """The Teams message an earlier try posted, if it did."""
        assert sender.client is not None
        recent = await call_teams(
            "the check for an earlier send",
            sender.client.list_messages(self.host.thread_id, limit=200),
        )
        for message in recent:
            if message.client_message_id == client_message_id:
                return message.id
        return None

    # -- outcomes ----------------------------------------------------------------------------

    async def record(self, row: dbm.MatrixEvent, outcome: Outcome) -> None:
        """Store how the delivery of ``row`` ended, and tell the room.

        `Sent`: the event is mapped to the new Teams message and marked done, in one write.
        `Done`: marked done. Both get a ``SUCCESS`` message send status (when status events
        are on). `Skipped`: marked
        failed with the reason, and only logged. `Failed`: marked failed, and the room gets
        a ``FAIL_PERMANENT`` status and a notice saying why.
        """
        client_message_id = row.client_message_id
        self.services.untried.discard(client_message_id)
        if isinstance(outcome, Sent):
            # An echo that came already was held: what it changes is stored with the rest,
            # now. Otherwise the record goes with others (`record_later`).
            echo = None
            if client_message_id:
                echo = self.host.held_echo_queries(client_message_id, outcome.message_id)
            record = self._sent_record(row, outcome)
            if echo is None:
                self._record_later(row, record)
            else:
                await execute_batch(dbm.MatrixEvent.db, record.queries() + echo)
            row.status, row.error = DONE, None
            if client_message_id:
                self.host.end_post(client_message_id, stored=echo is not None)
                if echo is None:
                    self.host.expect_echo(outcome.message_id, client_message_id)
            metrics.delivered(metrics.TO_TEAMS, row.received_at)
        elif isinstance(outcome, Done):
            self._record_later(
                row, dbm.Record(self.host.thread_id, self.host.receiver, [], finished=row.event_id)
            )
            row.status, row.error = DONE, None
            metrics.delivered(metrics.TO_TEAMS, row.received_at)
        elif isinstance(outcome, Skipped):
            self._give_up_post(row)
            self.log.info("Not bridging %s (%s): %s", row.event_id, row.event_type, outcome.reason)
            await row.finish(FAILED, outcome.reason)
            return
        else:
            self._give_up_post(row)
            try:
                await row.finish(FAILED, outcome.reason)
            except Exception:
                self.log.warning("Could not mark %s as failed", row.event_id, exc_info=True)
                return
            metrics.failed(metrics.TO_TEAMS)
            self.log.warning("Could not deliver %s to Teams: %s", row.event_id, outcome.reason)
        self._report(row, outcome)

    def _give_up_post(self, row: dbm.MatrixEvent) -> None:
        if row.client_message_id:
            self.host.end_post(row.client_message_id, stored=False)

    def _record_later(self, row: dbm.MatrixEvent, record: dbm.Record) -> None:
        """Have ``record`` written with others. Until it is, the room's next read of its
        pending events waits for it (`records_settled`); if it is given up, the event is
        pending again for the next read, and a post is found in the chat by its
        clientmessageid rather than sent twice."""
        done = self.host.record_later(record)
        done.add_done_callback(functools.partial(self._record_failed, row))

    def _record_failed(self, row: dbm.MatrixEvent, done: asyncio.Future[None]) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is not None:
            self.log.error("Giving up storing that %s was delivered: %s", row.event_id, error)
            self.wake()

    def _sent_record(self, row: dbm.MatrixEvent, sent: Sent) -> dbm.Record:
        assert self.host.mxid
        mapping = dbm.Message(
            thread_id=self.host.thread_id,
            receiver=self.host.receiver,
            message_id=sent.message_id,
            part=0,
            mxid=row.event_id,
            mx_room=self.host.mxid,
            sender_mri=sent.sender_mri,
            timestamp=sent.timestamp,
            version=sent.message_id,
            origin=FROM_MATRIX,
        )
        # (If the echo came first and stored the send record's id already, this stores the
        # same id.)
        client_message_id = row.client_message_id
        return dbm.Record(
            self.host.thread_id,
            self.host.receiver,
            [mapping],
            finished=row.event_id,
            sent=(client_message_id, sent.message_id) if client_message_id else None,
        )

    def _report(self, row: dbm.MatrixEvent, outcome: Sent | Done | Failed) -> None:
        """Queue what the room (and the checkpoint endpoint) is told about ``row``."""
        ok = not isinstance(outcome, Failed)
        reason = outcome.reason if isinstance(outcome, Failed) else None
        if self.services.status_events:
            self._reports.append(("the message status", lambda: self._send_status(row, reason)))
        if reason is not None:
            text = f"Your message could not be delivered to Teams: {reason}"
            self._reports.append(("the failure notice", lambda: self._notice(text)))
        checkpoint = MessageSendCheckpoint(
            event_id=row.event_id,
            room_id=row.room_id,
            step=MessageSendCheckpointStep.REMOTE,
            timestamp=int(time.time() * 1000),
            status=(
                MessageSendCheckpointStatus.SUCCESS
                if ok
                else MessageSendCheckpointStatus.PERM_FAILURE
            ),
            event_type=EventType.find(row.event_type, EventType.Class.MESSAGE),
            reported_by=MessageSendCheckpointReportedBy.BRIDGE,
            retry_num=max(row.attempts - 1, 0),
            info=reason,
        )
        self._reports.append(("the checkpoint", lambda: self.services.send_checkpoint(checkpoint)))
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self._send_reports())

    async def _send_reports(self) -> None:
        """Send what is queued for the room, in order; the task ends when none is left
        (whoever queues a report starts it again)."""
        while self._reports:
            what, report = self._reports.popleft()
            try:
                await report()
            except Exception as e:
                self.log.warning("Could not send %s: %s", what, e)

    async def reports_sent(self) -> None:
        """Wait until everything queued for the room has been sent (or given up): the
        reporter ends only when none is left."""
        while self._reporter is not None and not self._reporter.done():
            await asyncio.wait([self._reporter])

    async def _send_status(self, row: dbm.MatrixEvent, error: str | None) -> None:
        # Every failure reported here is final: passing ones are retried, silently.
        if error is None:
            content = _status_content(row, "SUCCESS")
        else:
            content = _status_content(row, "FAIL_PERMANENT", "m.foreign_network_error", error)
        await self.host.writer.status(content)

    async def _notice(self, text: str) -> None:
        if self.host.mxid:
            await self.host.writer.notice(text)

    # -- after a homeserver disruption ---------------------------------------------------------

    async def reconcile(self, anchor: dbm.MatrixEvent | None) -> bool:
        """Store the user's events in this room's timeline that the homeserver never sent us.

        Only after a homeserver disruption. With an `anchor` (the oldest pending event), what
        precedes it in the timeline is stored ahead of it; without one (a room with nothing
        waiting), what is newest is stored after everything else, unless events came in while
        the timeline was read: then the check before the oldest of them does it. Whether the
        check was done (False: retry later).
        """
        disruptions = self.services.disruptions
        async with self._reconcile_lock:
            started = int(time.time() * 1000)
            if not disruptions.portal_is_behind(self.checked_ms) or not self.host.mxid:
                self.checked_ms = max(self.checked_ms, started)
                return True
            if anchor is None and await dbm.MatrixEvent.pending(self.host.mxid, 1):
                # Events are waiting: the check before the oldest of them covers the room. One
                # without an anchor stops at the newest event we know, and counting the room
                # checked would let a later event go out past a gap below that one.
                return True
            try:
                missing = await self._unseen_in_timeline(anchor, disruptions.lookback_ms)
            except Exception as e:
                self.log.warning("Could not read the room timeline after a disruption: %s", e)
                return False
            async with self.services.storing:
                if anchor is None and await dbm.MatrixEvent.pending(self.host.mxid, 1):
                    # A transaction was stored while the timeline was read. Its events can
                    # be newer than what was read (a restarted homeserver lost some, then
                    # sent the next), and placed after the newest transaction the lost ones
                    # would go out after them. The check before the oldest waiting event
                    # places them: it reads up to that event. So this one does not count.
                    return True
                now = int(time.time() * 1000)
                rows = []
                for index, raw in enumerate(missing):
                    if anchor is not None:
                        # Just below the anchor, in timeline order.
                        seq = anchor.seq - len(missing) + index
                    elif disruptions.last_txn is not None:
                        # After the newest transaction, before the next one.
                        seq = dbm.matrix_event.txn_order(disruptions.last_txn, 50_000 + index)
                    else:
                        seq = dbm.matrix_event.next_seq()
                    rows.append(queue_row(raw, seq, None, now))
                await dbm.MatrixEvent.insert_many(rows)
            if rows:
                self.log.warning(
                    "Recovered %d events the homeserver did not send after a disruption", len(rows)
                )
                self.wake()
            self.checked_ms = started
            return True

    async def _unseen_in_timeline(
        self, anchor: dbm.MatrixEvent | None, since_ms: int
    ) -> list[dict[str, Any]]:
        """The user's events, older than `anchor` (if any), never stored; oldest first.

        Read newest first, back to the user's newest event we know, or to `since_ms`.
        """
        room = self.host.mxid
        assert room
        newest_first: list[dict[str, Any]] = []
        token = None
        seen_anchor = anchor is None
        for page in range(GAP_PAGES):
            # A first page of a few events: most rooms checked after a start or a disruption
            # had nothing since, and that is all it takes to see it.
            limit = FIRST_PAGE if page == 0 and anchor is None else PAGE
            resp = await self.services.timeline_page(room, token, limit)
            chunk = [e for e in resp.get("chunk") or [] if isinstance(e, dict)]
            for raw in chunk:
                event_id = EventID(str(raw.get("event_id")))
                if not seen_anchor:
                    seen_anchor = anchor is not None and event_id == anchor.event_id
                    continue
                ts = raw.get("origin_server_ts")
                if isinstance(ts, int) and ts < since_ms:
                    return list(reversed(newest_first))
                if not is_for_teams(raw, self.services.intake):
                    continue  # not the user's, or nothing for Teams
                if await dbm.MatrixEvent.get(event_id) or await dbm.Message.get_by_mxid(
                    event_id, room
                ):
                    return list(reversed(newest_first))
                newest_first.append(raw)
            token = resp.get("end")
            if not chunk or not token:
                break
        return list(reversed(newest_first))
