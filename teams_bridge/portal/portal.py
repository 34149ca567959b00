"""A Teams conversation and its Matrix room.

The portal keeps what it is (its key, kind and stored row) and its two workers: the ordered
queue of Teams events (handled by `Inbound`) and the Matrix -> Teams `DeliveryWorker`. The
rest is done by helpers it owns, each with its own state:

- `writer`: the one way to write to the room (sender, encryption, transaction ids);
- `room`: the room itself, and the only writer of its name, topic, avatar and team;
- `inbound`: Teams -> Matrix, one dispatch table and one conversion pipeline; the cursor;
- `updates`: Teams edits, deletes and reactions; `roster`: members, reads, typing;
- `threads`: channel threads and mentions of everyone; `media`: files both ways;
- `outbound` and `matrix_events`: the handlers for Matrix text, edits, reactions and
  redactions that the delivery worker calls, and a user's typing and receipts.

The `BasePortal` contract (what mautrix's Matrix handler calls) is a few delegations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from mautrix.appservice import IntentAPI
from mautrix.bridge import BasePortal
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, MessageEventContent, RoomID, UserID

from .. import db as dbm
from .. import metrics
from ..config import Config
from ..db.batch import Query
from ..delivery.worker import DeliveryWorker
from ..keyed_log import KeyedLog
from ..puppet import Puppet
from ..teams import EventMessage as TeamsEventMessage
from ..teams import ResourceType, is_channel_id
from .channels import Threads
from .inbound import Inbound, is_history
from .key import PortalKey
from .matrix_events import MatrixEvents
from .media import Media
from .outbound import Outbound
from .room import Room
from .roster import Roster
from .updates import Updates
from .writer import RoomWriter

if TYPE_CHECKING:
    from ..__main__ import TeamsBridge
    from ..directory import Directory
    from ..teams import Conversation, EventMessage, Message
    from ..user import User

# Messages per REST page when catching up.
CATCH_UP_PAGE = 200
# Attempts at bridging one Teams event before it is given up (about two minutes).
INBOUND_ATTEMPTS = 12
# Messages queued again (`Portal.requeue_message`), referenced until they are queued.
_requeued: set[asyncio.Task] = set()


def synthetic_event(message: Message, *, update: bool = False) -> TeamsEventMessage:
    """Wrap a message fetched over REST so it takes the same path as a pushed one (as a
    new message, or as an update of it)."""
    kind = ResourceType.MESSAGE_UPDATE if update else ResourceType.NEW_MESSAGE
    return TeamsEventMessage(id=None, resource_type=kind, time=None, resource=message, fetched=True)


class Portal(dbm.Portal, BasePortal):
    config: Config
    directory: Directory
    bridge: TeamsBridge

    _queue: asyncio.Queue[tuple[User, EventMessage]] | None
    _worker: asyncio.Task | None

    def __init__(
        self,
        thread_id: str,
        receiver: str = "",
        mxid: RoomID | None = None,
        kind: str = "group",
        name: str | None = None,
        name_set: bool = False,
        topic: str | None = None,
        avatar_url: str | None = None,
        encrypted: bool = False,
        other_user_mri: str | None = None,
        last_message_id: str | None = None,
        relay_user_id: UserID | None = None,
        avatar_source: str | None = None,
        team_id: str | None = None,
        team_name: str | None = None,
    ) -> None:
        super().__init__(
            thread_id=thread_id,
            receiver=receiver,
            mxid=mxid,
            kind=kind,
            name=name,
            name_set=name_set,
            topic=topic,
            avatar_url=avatar_url,
            encrypted=encrypted,
            other_user_mri=other_user_mri,
            last_message_id=last_message_id,
            relay_user_id=relay_user_id,
            avatar_source=avatar_source,
            team_id=team_id,
            team_name=team_name,
        )
        BasePortal.__init__(self)
        self.log = KeyedLog(self.log, thread_id)
        # Made when an event comes, let go when the worker has emptied it: an idle portal
        # holds neither the queue nor a task.
        self._queue = None
        self._worker = None
        self._catchup_lock = asyncio.Lock()
        # Per user (Matrix ID): the newest of their gaps (`User.gap`) this portal has
        # caught up from.
        self._gaps_filled: dict[str, int] = {}
        self._relay_user = None
        self.writer = RoomWriter(
            room_id=lambda: self.mxid,
            bot=self.az.intent,
            room_voice=lambda: self.main_intent,
            ghost=self._ghost_intent,
            encrypted=lambda: self.encrypted,
            e2ee=lambda: self.matrix.e2ee,
            http=self.bridge.homeserver_lean,
        )
        self.room = Room(self)
        self.threads = Threads(self)
        self.media = Media(self)
        self.updates = Updates(self)
        self.roster = Roster(self)
        self.inbound = Inbound(self)
        self.outbound = Outbound(self)
        self.matrix_events = MatrixEvents(self)
        self._delivery: DeliveryWorker | None = None

    @property
    def delivery(self) -> DeliveryWorker:
        """Matrix -> Teams: the room's stored events, each kind to its handler (made when
        first needed; most portals loaded at a time only ever bridge from Teams)."""
        if self._delivery is None:
            self._delivery = DeliveryWorker(
                self,
                self.bridge.delivery_services,
                {
                    "text": self.outbound.text,
                    "media": self.media.deliver,
                    "edit": self.matrix_events.edit,
                    "reaction": self.matrix_events.reaction,
                    "redaction": self.matrix_events.redaction,
                },
            )
        return self._delivery

    def _teams_queue(self) -> asyncio.Queue[tuple[User, EventMessage]]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.config["bridge.portal_queue_size"])
        return self._queue

    @classmethod
    def init_cls(cls, bridge: TeamsBridge) -> None:
        cls.bridge = bridge
        cls.config = bridge.config
        cls.directory = bridge.directory
        cls.matrix = bridge.matrix
        cls.az = bridge.az
        cls.loop = bridge.loop

    # -- identity ----------------------------------------------------------------------------

    @property
    def key(self) -> PortalKey:
        return PortalKey(self.thread_id, self.receiver)

    @property
    def is_direct(self) -> bool:
        return self.kind == "one_to_one"

    @property
    def is_channel(self) -> bool:
        return self.kind == "channel" or is_channel_id(self.thread_id)

    @property
    def main_intent(self) -> IntentAPI:
        if self.is_direct and self.other_user_mri:
            return self.az.intent.user(Puppet.get_mxid_from_mri(self.other_user_mri))
        return self.az.intent

    def user_in_room(self, mri: str | None) -> User | None:
        """The bridge user who is the Teams user ``mri`` in this room with their own Matrix
        account: any bridge user in a shared room, only the receiver in a 1:1 room (there
        the other person is a ghost, even if they use the bridge too)."""
        if not mri or (self.receiver and mri != self.receiver):
            return None
        return self.directory.user_by_mri(mri)

    async def _ghost_intent(self, mri: str) -> IntentAPI:
        """Who writes for the Teams user ``mri`` here: their ghost, or, for a bridge user
        of this room with double puppeting, their own Matrix account (whose sends carry
        ``fi.mau.double_puppet_source``, so they never go back to Teams)."""
        puppet = await self.directory.puppet(mri)
        assert puppet is not None
        user = self.user_in_room(mri)
        if user is not None and puppet.is_real_user and puppet.custom_mxid == user.mxid:
            return puppet.intent
        return puppet.default_mxid_intent

    async def save(self) -> None:
        await self.update()

    def is_idle(self) -> bool:
        """Nothing running, queued or remembered only in memory: the directory may drop
        this object, to be loaded again from the database when next needed."""
        return (
            (self._worker is None or self._worker.done())
            and (self._queue is None or self._queue.empty())
            and self.room.is_idle()
            and not self._catchup_lock.locked()
            and self.updates.is_idle()
            and (self._delivery is None or self._delivery.is_idle())
            and self.inbound.is_idle()
        )

    # -- loading (the cache is the directory's) ----------------------------------------------

    @classmethod
    async def load_by_key(cls, key: PortalKey) -> Portal | None:
        return cast(Portal, await super().get_by_thread(key.thread_id, key.receiver))

    @classmethod
    async def load_by_mxid(cls, mxid: RoomID) -> Portal | None:
        return cast(Portal, await super().get_by_mxid(mxid))

    @classmethod
    async def get_by_mxid(cls, mxid: RoomID) -> Portal | None:
        return await cls.directory.portal_by_mxid(mxid)

    @classmethod
    async def get_by_key(cls, key: PortalKey, *, create: bool = False) -> Portal | None:
        return await cls.directory.portal(key, create=create)

    @classmethod
    async def for_conversation(
        cls, thread_id: str, user_mri: str | None, *, one_to_one: bool, create: bool = False
    ) -> Portal | None:
        """The portal of a Teams conversation for a bridge user (see ``PortalKey``)."""
        return await cls.directory.portal_for_conversation(
            thread_id, user_mri, one_to_one=one_to_one, create=create
        )

    @classmethod
    async def get_by_thread(
        cls, thread_id: str, receiver: str = "", *, create: bool = False
    ) -> Portal | None:
        return await cls.directory.portal(PortalKey(thread_id, receiver), create=create)

    # -- ordered queue -----------------------------------------------------------------------

    async def queue_teams_event(self, source: User, evt: EventMessage) -> None:
        """Queue in arrival order; a full queue blocks the caller instead of dropping.

        While a catch-up runs, live events wait here so that history goes first.
        """
        async with self._catchup_lock:
            await self._enqueue((source, evt))

    async def _enqueue(self, item: tuple[User, EventMessage]) -> None:
        """Queue an event, and make sure a worker runs to take it (the worker stops when
        the queue is empty, so an idle portal holds no task)."""
        self._ensure_worker()
        await self._teams_queue().put(item)
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run_queue())

    async def catch_up(self, source: User) -> int:
        """Queue every message after the cursor, fetched over REST, before live events."""
        if source.client is None or not self.mxid:
            return 0
        async with self._catchup_lock:
            self._ensure_worker()
            # Let what is queued settle first, so the cursor is current.
            await self._teams_queue().join()
            await self.inbound.settled()
            gap = source.gap
            after = self.last_message_id
            if after is None:
                return 0
            count = 0
            async for page in self._pages_after(source, after):
                for message in page:
                    await self._enqueue((source, synthetic_event(message)))
                count += len(page)
            self._gaps_filled[source.mxid] = max(self._gaps_filled.get(source.mxid, 0), gap)
            if count:
                self.log.info("Catching up %d messages after %s", count, after)
            return count

    async def _pages_after(self, source: User, after: str) -> AsyncIterator[list[Message]]:
        """The chat's messages after ``after``, a page at a time, oldest first."""
        assert source.client is not None
        while True:
            page = await source.client.list_messages(
                self.thread_id, after_id=after, limit=CATCH_UP_PAGE
            )
            yield page
            if len(page) < CATCH_UP_PAGE:
                return
            after = page[-1].id

    async def fill_gap(self, source: User) -> None:
        """Before a pushed message (in the worker): when ``source``'s pushes may have
        missed some of this chat's messages and this portal has not caught up since, fetch
        and bridge them first. Otherwise the pushed message would move the cursor past
        them, and the catch-up, when the resync comes to this portal, would not see them.
        A failure leaves them to that catch-up (as before a gap was noticed)."""
        gap = source.gap_open()
        if gap is None or self._gaps_filled.get(source.mxid, 0) >= gap:
            return
        if source.client is None or not self.mxid:
            return
        await self.inbound.settled()
        after = self.last_message_id
        if after is not None:
            count = 0
            try:
                async for page in self._pages_after(source, after):
                    for message in page:
                        await self._handle_with_retry(source, synthetic_event(message))
                    count += len(page)
            except Exception:
                self.log.warning("Catching up before a pushed message failed", exc_info=True)
                return
            if count:
                self.log.info("Caught up %d messages after %s before a pushed one", count, after)
        self._gaps_filled[source.mxid] = max(self._gaps_filled.get(source.mxid, 0), gap)

    async def backfill(self, source: User, limit: int) -> int:
        """Put the chat's history into its new room: the newest ``limit`` messages (after
        the cursor, when a backfill cut short goes on), oldest first, through the same
        queue and handlers as live events, which wait behind them. Returns once they are
        in the room; how many were queued."""
        if source.client is None or not self.mxid or limit <= 0:
            return 0
        async with self._catchup_lock:
            self._ensure_worker()
            await self._teams_queue().join()
            await self.inbound.settled()
            after = self.last_message_id
            page = await source.client.list_messages(self.thread_id, after_id=after, limit=limit)
            history = [m for m in page if is_history(m)]
            for message in history:
                await self._enqueue((source, synthetic_event(message)))
                if message.emotions:
                    # Its reactions, worked out as for a live update of the message.
                    await self._enqueue((source, synthetic_event(message, update=True)))
        await self._teams_queue().join()
        await self.inbound.settled()
        return len(history)

    async def _run_queue(self) -> None:
        """Handle queued events in order until the queue is empty."""
        while True:
            queue = self._teams_queue()
            try:
                source, evt = queue.get_nowait()
            except asyncio.QueueEmpty:
                self._queue = None  # (nobody waits on an empty queue: see `_enqueue`)
                return
            try:
                if self.receiver and source.mri != self.receiver:
                    await self._pass_on(source, evt)
                else:
                    if not evt.fetched and evt.message is not None:
                        await self.fill_gap(source)
                    await self._handle_with_retry(source, evt)
            finally:
                queue.task_done()

    async def _pass_on(self, source: User, evt: EventMessage) -> None:
        """An event from another user's connection, queued while this portal was still
        shared (see ``make_private``), belongs in that user's own portal of the chat."""
        if not source.mri:
            return
        own = await Portal.get_by_key(PortalKey(self.thread_id, source.mri), create=True)
        if own is not None and own is not self:
            await own.queue_teams_event(source, evt)

    async def _handle_with_retry(self, source: User, evt: EventMessage) -> None:
        """Retry what fails for a passing reason (homeserver or database restarting)."""
        delay = 0.5
        for attempt in range(1, INBOUND_ATTEMPTS + 1):
            try:
                await self.inbound.handle(source, evt)
                return
            except MatrixRequestError as e:
                if 400 <= e.http_status < 500 and e.http_status != 429:
                    self.log.warning("Homeserver refused Teams event %s: %s", evt.id, e)
                    metrics.failed(metrics.TO_MATRIX)
                    return
                error: Exception = e
            except Exception as e:
                error = e
            self.log.warning(
                "Handling Teams event %s failed (attempt %d): %s", evt.id, attempt, error
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15)
        self.log.error("Giving up on Teams event %s after %d attempts", evt.id, INBOUND_ATTEMPTS)
        metrics.failed(metrics.TO_MATRIX)

    @property
    def queue_depth(self) -> int:
        """Teams events waiting in this portal's queue."""
        return self._queue.qsize() if self._queue is not None else 0

    async def wait_idle(self) -> None:
        await self._teams_queue().join()

    # -- BasePortal: what mautrix's Matrix handler and the bridge call ------------------------

    async def sync_with_teams(self, source: User, conversation: Conversation) -> None:
        await self.room.sync_with_teams(source, conversation)

    def expect_echo(self, message_id: str, client_message_id: str) -> None:
        """(The delivery worker's `Host`.)"""
        self.inbound.expect_echo(message_id, client_message_id)

    def expect_post(self, client_message_id: str, sender_mri: str) -> None:
        """(The delivery worker's `Host`.)"""
        self.inbound.expect_post(client_message_id, sender_mri)

    def held_echo_queries(self, client_message_id: str, message_id: str) -> list[Query] | None:
        """(The delivery worker's `Host`.)"""
        return self.inbound.held_echo_queries(client_message_id, message_id)

    def end_post(self, client_message_id: str, *, stored: bool) -> None:
        """(The delivery worker's `Host`.)"""
        self.inbound.end_post(client_message_id, stored=stored)

    async def records_settled(self) -> None:
        """(The delivery worker's `Host`.)"""
        await self.inbound.settled()

    def record_later(self, record: dbm.Record) -> asyncio.Future[None]:
        """(The delivery worker's `Host`.)"""
        return self.inbound.record_later(record)

    def requeue_message(self, source: User, message: Message) -> None:
        """Queue a message again (an echo held for a post that was not mapped after all)."""
        task = asyncio.create_task(self.queue_teams_event(source, synthetic_event(message)))
        _requeued.add(task)
        task.add_done_callback(_requeued.discard)

    async def handle_matrix_message(
        self, sender: User, message: MessageEventContent, event_id: EventID
    ) -> None:
        # The appservice endpoint already stored the event and woke the worker (waking it
        # again would only make it read the room once more); make sure it runs.
        self.delivery.ensure_running()

    async def handle_matrix_typing(self, user: User, typing: bool) -> None:
        await self.matrix_events.typing(user, typing)

    async def handle_matrix_read(self, user: User, event_id: EventID) -> None:
        await self.matrix_events.read(user, event_id)

    async def handle_matrix_name(self, user: User, name: str) -> None:
        await self.room.matrix_renamed(user, name)

    async def handle_matrix_invite(self, invited_by: User, puppet: Puppet) -> None:  # type: ignore[override]
        await self.roster.matrix_invite(invited_by, puppet)

    async def accept_matrix_dm(self, room_id: RoomID, invited_by: User, puppet: Puppet) -> None:  # type: ignore[override]
        """A DM with a ghost started from a Matrix client: answered in that room with this
        portal (which the user is invited to), and left, as mautrix bridges do for a DM
        that already exists."""
        await self.reject_duplicate_dm(room_id, invited_by, puppet)

    async def update_bridge_info(self) -> None:
        await self.room.update_bridge_info()

    async def notice(self, text: str) -> None:
        """A notice from the bot in the room (logged, not raised, when it fails)."""
        if not self.mxid:
            return
        try:
            await self.writer.notice(text)
        except Exception:
            self.log.warning("Failed to send a notice", exc_info=True)

    @property
    def bridge_info_state_key(self) -> str:
        return f"net.teams://teams/{self.thread_id}"

    @property
    def bridge_info(self) -> dict[str, Any]:
        info = {
            "bridgebot": self.az.bot_mxid,
            "creator": self.main_intent.mxid,
            "protocol": {"id": "teams", "displayname": "Microsoft Teams"},
            "channel": {"id": self.thread_id, "displayname": self.name},
        }
        if self.team_id:
            # A channel's team: what a space per team will gather its rooms by.
            info["network"] = {"id": self.team_id, "displayname": self.team_name}
        return info

    async def make_private(self, receiver: str) -> None:
        """Key a portal made as shared to its user, before its room exists: the chat
        turned out to be 1:1 only when its details were read (the id did not show it)."""
        if self.receiver == receiver or self.mxid:
            return
        old = self.key
        try:
            await self.set_receiver(receiver)
        except Exception:
            self.log.warning("Could not make the portal %s's own", receiver, exc_info=True)
            return
        self.directory.portal_stored(self, old)

    async def delete(self) -> None:
        self.directory.portal_deleted(self)
        await super().delete()

    async def get_dm_puppet(self):  # type: ignore[override]
        if not self.is_direct or not self.other_user_mri:
            return None
        return await self.directory.puppet(self.other_user_mri)
