"""Entry point: `python -m teams_bridge -c config.yaml [-g -r registration.yaml]`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

import aiohttp
from mautrix.api import HTTPAPI, Method, Path
from mautrix.bridge import Bridge
from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database
from mautrix.util.message_send_checkpoint import MessageSendCheckpoint

from . import __version__, cluster, metrics, presence, startup
from . import db as dbm
from .appservice import DurableAppService, body_limit_bytes, describe
from .config import Config
from .db import upgrade_table
from .db.files import restrict_sqlite_files
from .delivery.intake import Intake, is_for_teams, needs_no_handling, queue_row
from .delivery.prune import QueuePruner
from .delivery.worker import Services, store_transaction
from .directory import Directory
from .disruption import Disruptions, HomeserverWatch
from .matrix import MatrixHandler
from .portal import Portal
from .puppet import Puppet
from .state_store import CachedStateStore
from .teams import Endpoints
from .teams.lean_http import LeanHttp
from .user import User
from .web import provisioning

try:
    import uvloop
except ImportError:  # not built for every platform; the standard loop works too
    uvloop = None  # type: ignore[assignment]

# Seconds after the homeserver's return before idle portals check their timelines.
RECONCILE_DELAY = 5.0
# After a start, that check waits for the start-up (every user connected) first, but no
# longer than this: a start-up held up by Teams must not keep the check from running.
STARTUP_FIRST_SECONDS = 60.0
# The exit status of a process that lost the lease (`bridge.cluster`): a supervisor that
# starts it again gets a standby.
LEASE_LOST_EXIT = 75


class TeamsBridge(Bridge):
    name = "teams-bridge"
    module = "teams_bridge"
    command = "python -m teams_bridge"
    description = "A Matrix-Microsoft Teams puppeting bridge."
    repo_url = "https://example.invalid/teams-bridge"
    version = __version__
    markdown_version = __version__
    config_class = Config
    matrix_class = MatrixHandler
    upgrade_table = upgrade_table
    state_store_class = CachedStateStore

    config: Config
    matrix: MatrixHandler
    teams_session: aiohttp.ClientSession
    teams_lean: LeanHttp
    homeserver_lean: LeanHttp
    teams_endpoints: Endpoints
    intake: Intake
    delivery_services: Services
    presence: presence.PresenceSync | None

    # -- start-up checks (startup.py) ------------------------------------------------------------

    def load_and_update_config(self) -> None:
        with startup.config_file(self.config.path):
            super().load_and_update_config()

    def prepare_log(self) -> None:
        with startup.logging_setup():
            super().prepare_log()

    def check_config(self) -> None:
        startup.check_config(self.config)

    async def start_db(self) -> None:
        # Started by the start-up checks, before anything else; not again by mautrix.
        if not getattr(self, "_db_started", False):
            await startup.start_database(super().start_db, self.config["appservice.database"])
            self._db_started = True

    def _log_db_error(self, e: Exception) -> None:
        raise e  # explained by startup.start_database

    def start_prometheus(self) -> None:
        pass  # the metrics listener is ours (metrics.py), started in start()

    def prepare_db(self) -> None:
        opts = dict(self.config["appservice.database_opts"] or {})
        if str(self.config["appservice.database"]).startswith(("postgres", "cockroach")):
            # No query or connection attempt may hang forever (e.g. while PostgreSQL
            # restarts): the callers retry what failed.
            opts.setdefault("command_timeout", 60)
            opts.setdefault("timeout", 15)
            # A connection cut mid-transaction (PostgreSQL restarting) can surface as an
            # asyncpg InternalClientError, on which mautrix would exit the process. The
            # pool throws such a connection away on release and the callers retry, so
            # the bridge carries on instead.
            opts.setdefault("meow_exit_on_ice", False)
            if self.config["bridge.cluster.enabled"]:
                # A process resumed past its lease writes nothing either (cluster.Lease.check).
                opts["setup"] = cluster.fence_setup(self._check_lease)
        # Before SQLite opens (or creates) it: the file holds the users' refresh tokens.
        restrict_sqlite_files(self.config["appservice.database"])
        self.db = Database.create(
            self.config["appservice.database"],
            upgrade_table=self.upgrade_table,
            db_args=opts,
            owner_name=self.name,
            ignore_foreign_tables=self.args.ignore_foreign_tables,
        )
        dbm.init(self.db)

    def prepare_appservice(self) -> None:
        """As mautrix's, but with the durable transaction endpoint."""
        self.make_state_store()
        body_limit = body_limit_bytes(self.config["appservice.max_body_size"], self.log)
        if self.name not in HTTPAPI.default_ua:
            HTTPAPI.default_ua = f"{self.name}/{self.version} {HTTPAPI.default_ua}"
        self.az = DurableAppService(
            server=self.config["homeserver.address"],
            domain=self.config["homeserver.domain"],
            verify_ssl=self.config["homeserver.verify_ssl"],
            connection_limit=self.config["homeserver.connection_limit"],
            id=self.config["appservice.id"],
            as_token=self.config["appservice.as_token"],
            hs_token=self.config["appservice.hs_token"],
            tls_cert=self.config.get("appservice.tls_cert", None),
            tls_key=self.config.get("appservice.tls_key", None),
            bot_localpart=self.config["appservice.bot_username"],
            ephemeral_events=self.config["appservice.ephemeral_events"],
            encryption_events=self.config["bridge.encryption.appservice"],
            default_ua=HTTPAPI.default_ua,
            default_http_retry_count=self.config.get("homeserver.http_retry_count", None),
            log="mau.as",
            loop=self.loop,
            state_store=self.state_store,
            bridge_name=self.name,
            aiohttp_params={"client_max_size": body_limit},
        )
        self.az.persist_events = self.persist_events
        self.az.e2ee = lambda: self.matrix.e2ee
        self.az.app.router.add_post("/_matrix/app/com.beeper.bridge_state", self.get_bridge_state)
        # The provisioning API shares the appservice listener (web/provisioning.py).
        self.provisioning = provisioning.setup(self)

    async def persist_events(self, txn_id: str, events: list[dict[str, Any]]) -> set[str]:
        """Store the events of a transaction that must reach Teams, then wake their portals.
        The ids of the events that need nothing more (`needs_no_handling`)."""
        entries: list[tuple[dict[str, Any], dbm.MatrixEvent, Portal]] = []
        # With a checkpoint endpoint, mautrix reports each message it is given: it gets them.
        skip_handled = not self.config["homeserver.message_send_checkpoint_endpoint"]
        done: set[str] = set()
        txn_number = Disruptions.number(txn_id)
        now = int(time.time() * 1000)
        for index, raw in enumerate(events):
            if txn_number is not None:
                seq = dbm.matrix_event.txn_order(txn_number, index)
            else:
                seq = dbm.matrix_event.next_seq()
            try:
                row = (
                    queue_row(raw, seq, txn_number, now) if is_for_teams(raw, self.intake) else None
                )
            except Exception:
                # Never a reason to refuse the transaction: the homeserver would resend it
                # forever, and the other events with it.
                self.log.exception("Skipping event %s that could not be read", describe(raw))
                continue
            queued = row is not None and await self.directory.portal_by_mxid(row.room_id)
            if row and queued:
                entries.append((raw, row, queued))
            if needs_no_handling(raw, self.intake, queued=bool(queued) and skip_handled):
                done.add(raw["event_id"])
        try:
            stored = await store_transaction(self.delivery_services, txn_id, now, entries)
        except Exception:
            # The homeserver retries this transaction, and its recovery can leave a later
            # one unsent: a disruption.
            self._store_failing = True
            self.disruptions.note_trouble()
            raise
        if self._store_failing:
            self._store_failing = False
            self.disruptions.note_recovered()
        by_room: dict[RoomID, list[dbm.MatrixEvent]] = {row.room_id: [] for _, row, _ in entries}
        for row in stored:
            by_room[row.room_id].append(row)
        for room_id, new in by_room.items():
            portal = await self.directory.portal_by_mxid(room_id)
            if portal:
                # (Events seen before wake it too: it reads the room, in case they wait.)
                portal.delivery.wake(new)
        return done

    async def _resume_outbound(self) -> None:
        # The homeserver answered the start-up checks (and was told to resend what it kept).
        self.disruptions.note_recovered()
        self.homeserver_watch.start()
        self.queue_pruner.start()
        for room_id in await dbm.MatrixEvent.rooms_with_pending():
            portal = await self.directory.portal_by_mxid(room_id)
            if portal:
                portal.delivery.wake()

    def prepare_bridge(self) -> None:
        super().prepare_bridge()
        self.teams_endpoints = Endpoints.from_dict(dict(self.config["teams.endpoints"]))
        if isinstance(self.state_store, CachedStateStore):
            self.state_store.room_limit = self.config["bridge.cache.portals"]
        self.directory = Directory(
            portal_limit=self.config["bridge.cache.portals"],
            puppet_limit=self.config["bridge.cache.puppets"],
            user_limit=self.config["bridge.cache.users"],
            user_class=User,
            portal_class=Portal,
            puppet_class=Puppet,
            bot_mxid=self.az.bot_mxid,
        )
        self._background: set[asyncio.Task] = set()
        self._store_failing = False
        # Set once the start-up actions are done (every logged-in user connected).
        self._started = asyncio.Event()
        self.intake = Intake(
            bot_mxid=self.az.bot_mxid,
            is_ghost=self.is_bridge_ghost,
            command_prefix=self.config["bridge.command_prefix"],
            bridge_name=self.az.bridge_name or self.name,
        )
        self.disruptions = Disruptions(self.config["bridge.matrix_order_hold_seconds"])
        self.disruptions.on_recovered.append(self._after_homeserver_return)
        self.az.on_new_connection = self.disruptions.note_new_connection
        self._probe_session: aiohttp.ClientSession | None = None
        self._probe_connections = 0
        self.homeserver_watch = HomeserverWatch(
            self.disruptions,
            self._probe_homeserver,
            interval=self.config["bridge.homeserver_watch_seconds"],
            timeout=5.0,
        )
        self.presence = presence.for_bridge(self)
        self.queue_pruner = QueuePruner(
            self.config["bridge.matrix_event_retention_hours"], self.disruptions
        )
        self.delivery_services = Services(
            intake=self.intake,
            disruptions=self.disruptions,
            get_user=self.directory.user,
            timeline_page=self._timeline_page,
            e2ee=lambda: self.matrix.e2ee,
            send_checkpoint=self._send_checkpoint,
            status_events=bool(self.config["bridge.message_status_events"]),
            require_encryption=bool(
                self.config["bridge.encryption.allow"] and self.config["bridge.encryption.require"]
            ),
            relay_enabled=bool(self.config["bridge.relay.enabled"]),
            relay_formats=dict(self.config["bridge.relay.message_formats"] or {}),
            profile=self._matrix_display_name,
        )

    async def start(self) -> None:
        self.lease: cluster.Lease | None = None
        if self.config["bridge.cluster.enabled"]:
            await self._stand_by()
        self._active = True
        await startup.preflight(self)
        self.metrics_server = await startup.start_metrics(self)
        # With a lease, nothing goes out once it may have run out (cluster.Lease.check).
        fence = self.lease.check if self.lease is not None else None
        traces = [metrics.teams_trace_config()]
        if fence is not None:
            traces.append(cluster.fence_trace(fence))
            self.az.request_traces = [cluster.fence_trace(fence)]
        self.teams_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120, connect=30),
            headers={"User-Agent": f"teams-bridge/{__version__}"},
            # Every login shares this session: a cookie one account's services set must not
            # travel with another's requests, and the middle tier's hand-made picture cookie
            # must go out as written (a jar would re-serialise and quote it).
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=traces,
        )
        # REST calls to the Teams services (a message sent, read, edited; presence;
        # profiles) take the small client; media, logins and Trouter stay on the session.
        self.teams_lean = LeanHttp(
            # (The same compression aiohttp offered: large listings come much smaller.)
            default_headers={
                "User-Agent": f"teams-bridge/{__version__}",
                "Accept-Encoding": "gzip, deflate",
            },
            on_response=metrics.teams_request,
            before_send=fence,
        )
        # A ghost's event to a homeserver reached over plain HTTP, likewise (with the
        # User-Agent mautrix sends).
        self.homeserver_lean = LeanHttp(
            default_headers={"User-Agent": HTTPAPI.default_ua}, before_send=fence
        )
        # Stop cleanly on SIGTERM/SIGINT from the event loop, instead of an interrupt raised
        # wherever the main thread happens to be (which can be swallowed in a callback).
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self._request_stop)
        Portal.init_cls(self)
        self.add_startup_actions(Puppet.init_cls(self))
        self.add_startup_actions(User.init_cls(self))
        self.add_startup_actions(self._resume_outbound())
        # Before the appservice listens: whatever the homeserver sends from now on may follow
        # a transaction its recovery left unsent (disruption.py).
        self.disruptions.note_start()
        await super().start()
        self._started.set()

    async def _stand_by(self) -> None:
        """With `bridge.cluster`, wait until this process holds the lease (cluster.py),
        before it touches anything another process could be working on."""
        self.lease = cluster.Lease(
            self.config["appservice.database"],
            lease_seconds=self.config["bridge.cluster.lease_seconds"],
            renew_seconds=self.config["bridge.cluster.renew_seconds"],
            log=self.log.getChild("cluster"),
        )
        self.log.info("Process %s is waiting for the bridge's lease", self.lease.owner)
        try:
            previous = await self.lease.acquire()
        except cluster.PERMANENT as e:
            url = self.config["appservice.database"]
            startup.fail(
                startup.StartupError(startup.explain_database_error(e, url), startup.EXIT_DATABASE)
            )
        if previous is None:
            self.log.info("Took the lease: it was free")
        else:
            self.log.warning("Took over from process %s: its lease had run out", previous)
        self.lease.keep(self._lease_lost)

    def _check_lease(self) -> None:
        lease: cluster.Lease | None = getattr(self, "lease", None)
        if lease is not None:
            lease.check()

    def _lease_lost(self, reason: str) -> None:
        """Another process may be the bridge now: stop at once, finishing nothing (what is
        unfinished is in the database, for whoever holds the lease)."""
        self.log.critical("Lost the bridge's lease (%s): exiting", reason)
        logging.shutdown()
        os._exit(LEASE_LOST_EXIT)

    def _request_stop(self) -> None:
        if not self._stop_task.done():
            self.manual_stop(0)

    def prepare_stop(self) -> None:
        for user in self.directory.users():
            self.add_shutdown_actions(user.disconnect())

    def _after_homeserver_return(self) -> None:
        task = asyncio.create_task(self._reconcile_portals())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reconcile_portals(self) -> None:
        """Once the homeserver is back, every portal checks its timeline for lost events: a
        moment later, and again just before the window closes (the homeserver's recovery can
        leave a transaction unsent as it ends, which is late when it had much to resend).

        After a start, the start-up goes first: the check reads a page of every loaded room's
        timeline, two at a time (613 rooms took 12 s in a start of the benchmark's 1000
        users), and overlapping the start-up it kept users waiting for their connection and
        catch-up. Rooms with new events do not wait for it: each checks its own timeline
        before sending them.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), STARTUP_FIRST_SECONDS)
        # Give the homeserver a moment to send what it still has queued.
        await asyncio.sleep(RECONCILE_DELAY)
        await self._check_timelines()
        left = self.disruptions.remaining() - RECONCILE_DELAY
        if left > 0:
            await asyncio.sleep(left)
            if self.disruptions.ask_again():
                await self._check_timelines()

    async def _check_timelines(self) -> None:
        limit = asyncio.Semaphore(2)

        async def one(portal: Portal) -> None:
            async with limit:
                await portal.delivery.reconcile(None)

        portals = [p for p in self.directory.portals() if p.mxid]
        await asyncio.gather(*(one(p) for p in portals))
        self.log.info("Checked the timelines of %d rooms after a disruption", len(portals))

    async def _timeline_page(
        self, room_id: RoomID, token: str | None, limit: int = 100
    ) -> dict[str, Any]:
        """One page of a room's timeline, newest first, as the bot sees it."""
        query: dict[str, Any] = {"dir": "b", "limit": str(limit)}
        if token:
            query["from"] = token
        path = Path.v3.rooms[room_id].messages
        return await self.az.intent.api.request(Method.GET, path, query_params=query)

    async def _send_checkpoint(self, checkpoint: MessageSendCheckpoint) -> None:
        endpoint = self.config["homeserver.message_send_checkpoint_endpoint"]
        if endpoint:
            await checkpoint.send(endpoint, self.az.as_token, self.log)

    async def _probe_homeserver(self) -> int:
        """Ask the homeserver something cheap over the probe's own kept-alive connection;
        which connection that was (a new one after the server closed the old)."""
        if self._probe_session is None:
            trace = aiohttp.TraceConfig()

            async def opened(*_: object) -> None:
                self._probe_connections += 1

            trace.on_connection_create_end.append(opened)
            self._probe_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=300),
                trace_configs=[trace],
            )
        api = self.az.intent.api
        async with self._probe_session.get(api.base_url / "_matrix/client/versions") as resp:
            await resp.read()
            if resp.status >= 500:
                raise ConnectionError(f"HTTP {resp.status}")
        return self._probe_connections

    async def stop(self) -> None:
        lease: cluster.Lease | None = getattr(self, "lease", None)
        if not getattr(self, "_active", False):
            # A standby stopping: it started nothing.
            if lease is not None:
                await lease.close()
            return
        await self._stop_bridge()
        if lease is not None:
            await lease.release()  # last: a standby may start the moment it is free

    async def stop_db(self) -> None:
        # Records of bridged messages still waiting for their batch go in first.
        writer = getattr(dbm.RecordWriter, "current", None)
        if writer is not None and writer.db is self.db:
            await writer.close()
        await super().stop_db()

    async def _stop_bridge(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        sync: presence.PresenceSync | None = getattr(self, "presence", None)
        if sync is not None:
            await sync.stop()
        await self.homeserver_watch.stop()
        if getattr(self, "_probe_session", None) is not None:
            await self._probe_session.close()
        await self.queue_pruner.stop()
        await super().stop()
        if hasattr(self, "teams_session"):
            await self.teams_session.close()
            await self.teams_lean.close()
            await self.homeserver_lean.close()
        if getattr(self, "metrics_server", None):
            await self.metrics_server.stop()

    async def get_user(self, user_id: UserID, create: bool = True) -> User | None:
        return await self.directory.user(user_id, create=create)

    async def get_portal(self, room_id: RoomID) -> Portal | None:
        return await self.directory.portal_by_mxid(room_id)

    async def get_puppet(self, user_id: UserID, create: bool = False) -> Puppet | None:
        return await self.directory.puppet_by_mxid(user_id, create=create)

    async def get_double_puppet(self, user_id: UserID) -> Puppet | None:
        return await self.directory.puppet_by_custom_mxid(user_id)

    def is_bridge_ghost(self, user_id: UserID) -> bool:
        return Puppet.get_mri_from_mxid(user_id) is not None

    async def _matrix_display_name(self, user_id: UserID) -> str | None:
        """A Matrix user's display name (for attributing relayed messages)."""
        try:
            profile = await self.az.intent.get_profile(user_id)
        except Exception:
            return None
        return profile.displayname or None

    def init_loop(self) -> None:
        """The event loop: uvloop (`bridge.uvloop`, on by default) when it is installed. It
        cut the bridge's CPU per message by 5-16 % in the benchmark (docs/benchmarks.md)."""
        if self.config["bridge.uvloop"] and uvloop is not None:
            uvloop.install()
            self.log.debug("Using uvloop for asyncio")
        else:
            asyncio.set_event_loop_policy(None)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    async def count_logged_in_users(self) -> int:
        return sum(1 for user in self.directory.users() if user.client is not None)


def main() -> None:
    TeamsBridge().run()


if __name__ == "__main__":
    main()
