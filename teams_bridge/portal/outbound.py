"""Matrix -> Teams: events stored by the appservice endpoint are delivered in order, once.

Each portal has one worker that takes its room's pending events from the database oldest
first. A send that may already have reached Teams (it has a clientmessageid) is looked up
in the chat service before it is tried again, so a crash or retry never double-posts.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
from mautrix.api import Method, Path
from mautrix.types import (
    EventID,
    EventType,
    MessageEventContent,
    MessageType,
)

from .. import db as dbm
from .. import metrics
from ..db.batch import Query, execute_batch
from ..db.matrix_event import DONE, FAILED, PENDING
from ..formatter import matrix_to_teams
from ..puppet import Puppet
from ..teams import AuthError, TeamsError
from .content_check import content_problem
from .matrix_events import NotSupported
from .replies import reply_event_id, strip_reply_fallback, teams_quote_for
from .writer import Voice

if TYPE_CHECKING:
    from ..user import User
    from .portal import Portal

TEXT_MSGTYPES = {MessageType.TEXT.value, MessageType.NOTICE.value, MessageType.EMOTE.value}
SEND_STATUS = EventType("com.beeper.message_send_status", EventType.Class.MESSAGE)
# How often a send that failed for a passing reason is retried before the user is told.
MAX_ATTEMPTS = 8
# Attempts after which an event whose handling raised something unforeseen is given up on:
# such an error is almost always the event's own and would recur on every try, while the
# room's later events wait behind it.
MAX_UNEXPECTED_ATTEMPTS = 3
# Seconds before a failed timeline check after a disruption is tried again.
GAP_RETRY = 3.0
# Pages of 100 timeline events read back at most when checking the timeline.
GAP_PAGES = 5
# How long to wait for the sender's Teams connection (e.g. right after start-up).
CONNECT_WAIT = 60.0
# Pending events read from the database at a time.
PENDING_BATCH = 16


class Transient(Exception):
    """Worth retrying: the network, Teams or the login will probably come back."""


class Permanent(Exception):
    """Retrying cannot help; the user is told why."""


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


def new_client_message_id() -> str:
    """A fresh numeric clientmessageid, as Teams clients send (19 digits)."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


class OutboundMixin:
    async def handle_matrix_message(
        self: Portal, sender: User, message: MessageEventContent, event_id: EventID
    ) -> None:
        # The appservice endpoint already stored the event and woke the worker (waking it
        # again would only make it read the room once more); make sure it runs.
        self._ensure_outbound_worker()

    def wake_outbound(self: Portal) -> None:
        self._outbound_wakeup.set()
        self._ensure_outbound_worker()

    def _ensure_outbound_worker(self: Portal) -> None:
        if self._outbound_task is None or self._outbound_task.done():
            self._outbound_task = asyncio.create_task(self._outbound_loop())

    async def _outbound_loop(self: Portal) -> None:
        backoff = 1.0
        # The room's oldest pending events, as last read; `complete` when that read found
        # every one of them. New events set the wakeup (the appservice endpoint stores them
        # first); they may sort before the ones at hand, so the room is read again then.
        rows: deque[dbm.MatrixEvent] = deque()
        complete = False
        while True:
            if self._outbound_wakeup.is_set() or not rows:
                if not rows and complete:
                    await self._outbound_wakeup.wait()
                self._outbound_wakeup.clear()
                try:
                    rows = deque(await dbm.MatrixEvent.pending(self.mxid, PENDING_BATCH))
                except Exception:
                    self.log.warning("Could not read pending events; retrying", exc_info=True)
                    rows, complete = deque(), False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
                complete = len(rows) < PENDING_BATCH
                continue
            row = rows[0]
            if self.bridge.disruptions.must_check(row, self._checked_ms):
                # The homeserver was disrupted: events it never sent us may precede this one.
                if not await self.reconcile(row):
                    await asyncio.sleep(GAP_RETRY)
                rows, complete = deque(), False
                continue
            # Anything but a delivery re-reads the room: the row has changed in the database.
            delivered = False
            try:
                await self._deliver(row)
                delivered = True
                metrics.delivered(metrics.TO_TEAMS, row.received_at)
                backoff = 1.0
            except Transient as e:
                if row.attempts >= MAX_ATTEMPTS:
                    await self._fail(row, str(e))
                else:
                    self.log.info("Delivery of %s will be retried: %s", row.event_id, e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
            except Permanent as e:
                await self._fail(row, str(e))
            except Exception as e:
                self.log.exception("Unexpected error delivering %s", row.event_id)
                if await self._unexpected_error(row, e):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30)
            if delivered:
                rows.popleft()
            else:
                rows, complete = deque(), False

    async def _unexpected_error(self: Portal, row: dbm.MatrixEvent, error: Exception) -> bool:
        """Count an unforeseen error as an attempt, and give the event up for good after a
        few, so one event never holds the room's queue forever (across restarts too: the
        count is stored). Whether to wait before the next try."""
        if row.status != PENDING:
            return False  # it was finished (delivered or failed) before the error
        if isinstance(error, OUTAGE_ERRORS):
            return True
        try:
            await row.count_attempt()
        except Exception:
            self.log.warning("Could not count the attempt for %s", row.event_id, exc_info=True)
            return True
        if row.attempts < MAX_UNEXPECTED_ATTEMPTS:
            return True
        await self._fail(row, f"internal error ({type(error).__name__})")
        return False

    async def reconcile(self: Portal, anchor: dbm.MatrixEvent | None) -> bool:
        """Store the user's events in this room's timeline that the homeserver never sent us.

        Only after a homeserver disruption. With an `anchor` (the oldest pending event), what
        precedes it in the timeline is stored ahead of it; without one, what is newest is
        stored after everything else. Whether the check was done (False: retry later).
        """
        disruptions = self.bridge.disruptions
        async with self._reconcile_lock:
            started = int(time.time() * 1000)
            if not disruptions.portal_is_behind(self._checked_ms) or not self.mxid:
                self._checked_ms = max(self._checked_ms, started)
                return True
            try:
                missing = await self._unseen_in_timeline(anchor, disruptions.lookback_ms)
            except Exception as e:
                self.log.warning("Could not read the room timeline after a disruption: %s", e)
                return False
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
                row = self.bridge.outbound_row(raw, seq, None, now)
                if row:
                    rows.append(row)
            await dbm.MatrixEvent.insert_many(rows)
            if rows:
                self.log.warning(
                    "Recovered %d events the homeserver did not send after a disruption", len(rows)
                )
                self.wake_outbound()
            self._checked_ms = started
            return True

    async def _unseen_in_timeline(
        self: Portal, anchor: dbm.MatrixEvent | None, since_ms: int
    ) -> list[dict[str, Any]]:
        """The user's events, older than `anchor` (if any), never stored; oldest first.

        Read newest first, back to the user's newest event we know, or to `since_ms`.
        """
        newest_first: list[dict[str, Any]] = []
        token = None
        seen_anchor = anchor is None
        for _ in range(GAP_PAGES):
            path = Path.v3.rooms[self.mxid].messages
            query: dict[str, Any] = {"dir": "b", "limit": "100"}
            if token:
                query["from"] = token
            resp = await self.az.intent.api.request(Method.GET, path, query_params=query)
            chunk = [e for e in resp.get("chunk") or [] if isinstance(e, dict)]
            for raw in chunk:
                event_id = raw.get("event_id")
                if not seen_anchor:
                    seen_anchor = anchor is not None and event_id == anchor.event_id
                    continue
                ts = raw.get("origin_server_ts")
                if isinstance(ts, int) and ts < since_ms:
                    return list(reversed(newest_first))
                if self.bridge.outbound_row(raw, 0, None, 0) is None:
                    continue  # not the user's, or nothing for Teams
                if await dbm.MatrixEvent.get(event_id) or await dbm.Message.get_by_mxid(
                    event_id, self.mxid
                ):
                    return list(reversed(newest_first))
                newest_first.append(raw)
            token = resp.get("end")
            if not chunk or not token:
                break
        return list(reversed(newest_first))

    async def _fail(self: Portal, row: dbm.MatrixEvent, reason: str) -> None:
        try:
            await row.finish(FAILED, reason)
        except Exception:
            self.log.warning("Could not mark %s as failed", row.event_id, exc_info=True)
            return
        metrics.failed(metrics.TO_TEAMS)
        self.log.warning("Could not deliver %s to Teams: %s", row.event_id, reason)
        await self._send_status(row.event_id, ok=False, reason=reason)
        await self._notice(f"Your message could not be delivered to Teams: {reason}")

    async def _send_status(self: Portal, event_id: EventID, *, ok: bool, reason: str = "") -> None:
        content: dict[str, Any] = {
            "m.relates_to": {"rel_type": "m.reference", "event_id": event_id},
            "network": "teams",
            # Every failure reported is final: passing ones are retried, silently.
            "status": "SUCCESS" if ok else "FAIL_PERMANENT",
        }
        if not ok:
            content.update(
                reason="m.foreign_network_error", error=reason, message=reason, is_certain=True
            )
        try:
            await self.writer.send(Voice.BOT, content, event_type=SEND_STATUS)
        except Exception:
            self.log.warning("Could not send the message status for %s", event_id, exc_info=True)

    async def _sender_client(self: Portal, row: dbm.MatrixEvent) -> User:
        from ..user import User

        sender = await User.get_by_mxid(row.sender)
        if sender is None or not sender.is_whitelisted:
            raise Permanent("you are not allowed to use this bridge")
        if not sender.credentials:
            raise Permanent("you are not logged in to Teams")
        waited = 0.0
        while sender.client is None or sender.mri is None:
            if not sender.credentials:
                raise Permanent("you are not logged in to Teams")
            if waited >= CONNECT_WAIT:
                raise Transient("the Teams connection is not ready")
            await asyncio.sleep(0.5)
            waited += 0.5
        return sender

    async def _deliver(self: Portal, row: dbm.MatrixEvent) -> None:
        # Delivered, but not marked so? Only possible after an attempt: every way of sending
        # counts one first, and the mapping is stored with the status.
        if row.attempts and await dbm.Message.get_by_mxid(row.event_id, self.mxid):
            await row.finish(DONE)
            return
        raw = json.loads(row.content)
        problem = content_problem(raw)
        if problem:
            raise Permanent(f"the message is malformed ({problem})")
        content = raw["content"]
        sender = await self._sender_client(row)
        try:
            async with self._send_lock:
                await self._dispatch_outbound(sender, row, raw, content)
        except NotSupported as e:
            raise Permanent(str(e)) from e

    async def _dispatch_outbound(
        self: Portal,
        sender: User,
        row: dbm.MatrixEvent,
        raw: dict[str, Any],
        content: dict[str, Any],
    ) -> None:
        relates = content.get("m.relates_to") or {}
        if row.event_type == "m.reaction":
            await self.deliver_reaction(sender, row, raw)
        elif row.event_type == "m.room.redaction":
            await self.deliver_redaction(sender, row, raw)
        elif isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
            await self.deliver_edit(sender, row, raw)
        elif content.get("msgtype") in TEXT_MSGTYPES:
            await self._send_text(sender, row, content)
        else:
            await self.deliver_media(sender, row, raw)

    async def _send_text(
        self: Portal, sender: User, row: dbm.MatrixEvent, content: dict[str, Any]
    ) -> None:
        assert sender.client is not None and self.mxid
        client = sender.client
        if await self._already_sent(sender, row):
            return
        await self.load_mentioned_puppets(content)
        html, properties = self._convert_outgoing(sender, content)
        thread = await self.thread_target(sender, content)
        quote = await teams_quote_for(self, content)
        if quote is not None and (thread is None or quote.message_id != thread.root_id):
            # A reply: Teams shows the quoted message above the text (in a channel thread
            # only when it answers one reply rather than the thread's root post).
            html = quote.html + html
            properties["qtdMsgs"] = quote.qtd_msgs
        client_message_id = row.client_message_id or new_client_message_id()
        sent: dbm.SentMessage | None = None
        queries: list[Query] = []
        if not row.client_message_id:
            sent = dbm.SentMessage.new(
                client_message_id, self.thread_id, self.receiver, row.event_id, self.mxid
            )
            queries.append(sent.insert_query())
        queries.append(row.set_client_message_id_query(client_message_id))
        await execute_batch(self.db, queries)
        row.attempt_stored(client_message_id)
        try:
            message_id = await client.send_message(
                self.thread_id,
                html,
                client_message_id=client_message_id,
                display_name=sender.display_name or "",
                properties=properties,
                thread_root_id=thread.root_id if thread else None,
            )
        except AuthError as e:
            raise Transient(f"Teams rejected the login ({e})") from e
        except TeamsError as e:
            if e.status is None or e.status >= 500 or e.status in (408, 429):
                raise Transient(str(e)) from e
            raise Permanent(f"Teams refused the message ({e})") from e
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise Transient(f"network error ({type(e).__name__})") from e
        await self._record_sent(sender, row, message_id, sent=sent)
        self.note_sent_in_thread(thread, message_id, row.event_id)

    async def _already_sent(self: Portal, sender: User, row: dbm.MatrixEvent) -> bool:
        """An earlier attempt may have reached Teams: look before sending again, and record
        what was found as sent."""
        if not row.client_message_id:
            return False
        existing = await self._find_sent(sender, row.client_message_id)
        if not existing:
            return False
        await self._record_sent(sender, row, existing)
        return True

    async def _find_sent(self: Portal, sender: User, client_message_id: str) -> str | None:
        assert sender.client is not None
        try:
            recent = await sender.client.list_messages(self.thread_id, limit=200)
        except (TimeoutError, TeamsError, aiohttp.ClientError, OSError) as e:
            raise Transient(f"could not check for an earlier send ({e})") from e
        for message in recent:
            if message.client_message_id == client_message_id:
                return message.id
        return None

    async def _record_sent(
        self: Portal,
        sender: User,
        row: dbm.MatrixEvent,
        message_id: str,
        *,
        sent: dbm.SentMessage | None = None,
    ) -> None:
        """Map the event to the Teams message and mark it done, in one write. `sent`: the
        record of this send when the caller has it (else it is read)."""
        if sent is None:
            sent = await dbm.SentMessage.get(row.client_message_id or "")
        queries: list[Query] = []
        if sent and sent.message_id is None:
            # (If the echo came first and stored it already, this stores the same id.)
            queries.append(sent.set_message_id_query(message_id))
        mapping = dbm.Message(
            thread_id=self.thread_id,
            receiver=self.receiver,
            message_id=message_id,
            part=0,
            mxid=row.event_id,
            mx_room=self.mxid,
            sender_mri=sender.mri,
            timestamp=sent.created_at if sent else 0,
            version=message_id,
        )
        queries += [mapping.insert_query(), row.finish_query(DONE)]
        await execute_batch(self.db, queries)
        if sent:
            sent.message_id = message_id
        row.status, row.error = DONE, None

    async def deliver_media(
        self: Portal, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]
    ) -> None:
        msgtype = (raw.get("content") or {}).get("msgtype") or row.event_type
        raise NotSupported(f"sending {msgtype} to Teams is not supported yet")

    def _convert_outgoing(
        self: Portal, sender: User, content: dict[str, Any]
    ) -> tuple[str, dict[str, str]]:
        body = content.get("body") or ""
        if reply_event_id(content) is not None:
            body = strip_reply_fallback(str(body))
        formatted = None
        if content.get("format") == "org.matrix.custom.html":
            formatted = content.get("formatted_body")
        if content.get("msgtype") == MessageType.EMOTE.value:
            name = sender.display_name or sender.mxid
            body = f"* {name} {body}"
            formatted = f"* {name} {formatted}" if formatted else None
        mentions = content.get("m.mentions")
        converted = matrix_to_teams(
            str(body),
            formatted if isinstance(formatted, str) else None,
            resolve_user=self._resolve_matrix_user,
            mentioned_user_ids=list(mentions.get("user_ids") or [])
            if isinstance(mentions, dict)
            else None,
            room_mention=self.outgoing_room_mention(content),
        )
        properties: dict[str, str] = {}
        if converted.mentions:
            properties["mentions"] = json.dumps(converted.mentions)
        return converted.html, properties

    def _resolve_matrix_user(self: Portal, user_id: str) -> tuple[str, str] | None:
        from ..user import User

        mri = Puppet.get_mri_from_mxid(user_id)
        if mri:
            puppet = Puppet.by_mri.get(mri)
            return mri, (puppet.name if puppet and puppet.name else mri)
        user = User.by_mxid.get(user_id)
        if user and user.mri:
            return user.mri, user.display_name or user.mri
        return None

    async def _notice(self: Portal, text: str) -> None:
        if not self.mxid:
            return
        try:
            await self.writer.notice(text)
        except Exception:
            self.log.warning("Failed to send a notice", exc_info=True)
