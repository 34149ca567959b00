"""A Matrix user's Teams login and the lifecycle of its connection."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, cast

from mautrix.bridge import BaseUser
from mautrix.types import RoomID, UserID
from mautrix.util.bridge_state import BridgeState, BridgeStateEvent

from . import db as dbm
from . import start_chat as chats
from .config import Config
from .log_filter import register_secret
from .portal import Portal
from .portal.key import PortalKey
from .presence import PresenceTracker
from .puppet import Puppet
from .spaces import Spaces
from .teams import (
    AuthError,
    ConversationKind,
    Credentials,
    Endpoints,
    EventMessage,
    TeamsClient,
    TrouterConfig,
    TrouterState,
)

if TYPE_CHECKING:
    from .__main__ import TeamsBridge
    from .directory import Directory
    from .teams import Conversation

# With this many new rooms or more, the management room hears how far the sync is, every
# this many rooms.
PROGRESS_EVERY = 10

BRIDGED_KINDS = {
    ConversationKind.ONE_TO_ONE,
    ConversationKind.GROUP,
    ConversationKind.MEETING,
    ConversationKind.CHANNEL,
}


class User(dbm.User, BaseUser):
    config: Config
    directory: Directory
    bridge: TeamsBridge

    client: TeamsClient | None
    display_name: str | None
    trouter_state: TrouterState | None
    trouter_error: str | None
    login_task: asyncio.Task | None
    presence: PresenceTracker | None
    _sync_task: asyncio.Task | None
    _connect_lock: asyncio.Lock

    def __init__(
        self,
        mxid: UserID,
        mri: str | None = None,
        credentials: str | None = None,
        endpoint_id: str | None = None,
        management_room: RoomID | None = None,
    ) -> None:
        super().__init__(
            mxid=mxid,
            mri=mri,
            credentials=credentials,
            endpoint_id=endpoint_id,
            management_room=management_room,
        )
        BaseUser.__init__(self)
        perms = self.config.get_permissions(mxid)
        self.relay_whitelisted, self.is_whitelisted, self.is_admin, self.permission_level = perms
        self.client = None
        self.display_name = None
        self.trouter_state = None
        self.trouter_error = None
        self.login_task = None
        self.presence = None
        self._sync_task = None
        self._connect_lock = asyncio.Lock()
        self._resync_lock = asyncio.Lock()
        # Counts the times pushes may have been missed (`note_gap`), and the last of them
        # every portal has caught up from (`_resync`).
        self.gap = 0
        self.gap_filled = 0
        self.spaces = Spaces(self)

    @classmethod
    def init_cls(cls, bridge: TeamsBridge) -> Awaitable[None]:
        cls.bridge = bridge
        cls.config = bridge.config
        cls.directory = bridge.directory
        cls.az = bridge.az
        cls.loop = bridge.loop
        return cls._start_all()

    @classmethod
    async def _start_all(cls) -> None:
        # The rows read are the users (the loaded copy wins): not read again one by one.
        users = [await cls.directory.adopt_user(row) for row in await super().all_logged_in()]
        await asyncio.gather(*(user.connect() for user in users if user), return_exceptions=True)

    # -- loading (the cache is the directory's) ----------------------------------------------

    def is_idle(self) -> bool:
        """Not logged in, not logging in, not in the middle of a command or anything else
        held only in memory: the directory may drop this object."""
        return (
            not self.credentials
            and self.client is None
            and self.command_status is None
            and (self.login_task is None or self.login_task.done())
            and (self._sync_task is None or self._sync_task.done())
            and not self._connect_lock.locked()
            and not self._resync_lock.locked()
            and self.presence is None
        )

    @classmethod
    async def load_by_mxid(cls, mxid: UserID) -> User | None:
        return cast(User, await super().get_by_mxid(mxid))

    @classmethod
    async def get_by_mxid(cls, mxid: UserID, *, create: bool = True) -> User | None:
        return await cls.directory.user(mxid, create=create)

    # -- BaseUser ----------------------------------------------------------------------------

    async def is_logged_in(self) -> bool:
        return self.client is not None and self.mri is not None

    async def get_puppet(self) -> Puppet | None:
        if not self.mri:
            return None
        return await Puppet.get_by_mri(self.mri)

    async def get_direct_chats(self) -> dict[UserID, list[RoomID]]:
        """The user's 1:1 rooms by the other person's ghost (for ``m.direct``)."""
        dms: dict[UserID, list[RoomID]] = {}
        for row in await Portal.for_user(self.mxid):
            if row.kind == "one_to_one" and row.mxid and row.other_user_mri:
                ghost = Puppet.get_mxid_from_mri(row.other_user_mri)
                dms.setdefault(ghost, []).append(row.mxid)
        return dms

    async def double_puppet(self) -> Puppet | None:
        """The user's own puppet when it acts as the user's Matrix account."""
        puppet = await self.get_puppet()
        return (
            puppet if puppet and puppet.is_real_user and puppet.custom_mxid == self.mxid else None
        )

    async def _auto_double_puppet(self, puppet: Puppet) -> None:
        """Turn double puppeting on by itself where the config lets the bridge log in as
        the user (``bridge.login_shared_secret_map``)."""
        if puppet.custom_mxid == self.mxid or not Puppet.can_auto_login(self.mxid):
            return
        try:
            await puppet.switch_mxid("auto", self.mxid)
            self.log.info("Double puppeting is on")
        except Exception as e:
            self.log.warning("Could not turn on double puppeting: %s", e)

    async def get_portal_with(self, puppet: Puppet, create: bool = True) -> Portal | None:
        """The user's 1:1 portal with a Teams user, its room made (and the Teams chat
        started, when there is none and ``create``); for a DM started from a Matrix client."""
        if self.client is None or puppet.mri == self.mri:
            return None
        try:
            contact = await chats.resolve(self, puppet.mri)
            if contact is None or (contact.dm_room is None and not create):
                return None
            await chats.open_dm(self, contact)
        except Exception as e:
            self.log.warning("Could not open the 1:1 with %s: %s", puppet.mri, e)
            return None
        return await Portal.get_by_mxid(contact.dm_room) if contact.dm_room else None

    async def get_bridge_states(self) -> list[BridgeState]:
        if not self.credentials:
            return []
        state = BridgeState(state_event=BridgeStateEvent.UNKNOWN_ERROR)
        if self.trouter_state == TrouterState.CONNECTED:
            state.state_event = BridgeStateEvent.CONNECTED
        elif self.client is not None:
            state.state_event = BridgeStateEvent.CONNECTING
        return [state]

    async def fill_bridge_state(self, state: BridgeState) -> None:
        await super().fill_bridge_state(state)
        state.remote_id = self.mri
        state.remote_name = self.display_name

    # -- login -------------------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        return self.bridge.teams_endpoints

    async def save_credentials(self, credentials: Credentials) -> None:
        """Persist at once: the refresh token rotates and the old one stops working."""
        register_secret(credentials.refresh_token)
        self.credentials = json.dumps(credentials.to_dict())
        await self.update()

    async def login(self, credentials: Credentials, management_room: RoomID | None) -> str:
        """Store freshly obtained credentials and connect; return the Teams display name."""
        await self.disconnect()
        if management_room:
            self.management_room = management_room
        await self.save_credentials(credentials)
        await self.connect(raise_errors=True)
        return self.display_name or self.mri or "?"

    async def logout(self) -> None:
        if self.login_task and not self.login_task.done():
            self.login_task.cancel()
        await self.disconnect()
        puppet = await self.double_puppet()
        if puppet is not None:
            # The Teams account is no longer this Matrix user's: nor is its puppet.
            await puppet.switch_mxid(None, None)
        self.directory.note_user_mri(self, None)
        self.credentials = None
        await self.update()
        await self.push_bridge_state(BridgeStateEvent.LOGGED_OUT)

    # -- connection --------------------------------------------------------------------------

    async def connect(self, raise_errors: bool = False) -> None:
        async with self._connect_lock:
            if self.client is not None or not self.credentials:
                return
            credentials = Credentials.from_dict(json.loads(self.credentials))
            register_secret(credentials.refresh_token)
            if not self.endpoint_id:
                self.endpoint_id = str(uuid.uuid4())
                await self.update()
            client = TeamsClient(
                self.bridge.teams_session,
                self.endpoints,
                credentials,
                endpoint_id=self.endpoint_id,
                on_credentials_changed=self.save_credentials,
                trouter_config=TrouterConfig(
                    ping_interval=float(self.config["teams.trouter.ping_interval"]),
                    pong_timeout=float(self.config["teams.trouter.pong_timeout"]),
                    backoff_max=float(self.config["teams.trouter.backoff_max"]),
                ),
                lean=self.bridge.teams_lean,
            )
            await self.push_bridge_state(BridgeStateEvent.CONNECTING)
            try:
                info = await client.connect()
            except AuthError as e:
                await client.stop()
                self.log.warning("Teams rejected the stored login: %s", e)
                await self.push_bridge_state(BridgeStateEvent.BAD_CREDENTIALS, error=str(e))
                await self.send_management_notice(
                    f"Your Teams login is no longer valid ({e}). Send `login` to log in again."
                )
                if raise_errors:
                    raise
                return
            except Exception:
                await client.stop()
                self.log.exception("Failed to connect to Teams")
                await self.push_bridge_state(
                    BridgeStateEvent.TRANSIENT_DISCONNECT, error="teams-connect-failed"
                )
                if raise_errors:
                    raise
                self.loop.call_later(30, lambda: asyncio.ensure_future(self.connect()))
                return
            self.client = client
            self.display_name = info.display_name
            if self.mri != info.mri:
                self.mri = info.mri
                await self.update()
            self.directory.note_user_mri(self, self.mri)
            puppet = await Puppet.get_by_mri(info.mri)
            await puppet.update_name(info.display_name, "profile")
            puppet.schedule_avatar_sync(client)
            await self._auto_double_puppet(puppet)
            sync = self.bridge.presence
            self.presence = sync.attach(self) if sync is not None else None
            client.start_trouter(
                self._on_event,
                self._on_trouter_state,
                self._resync,
                on_presence=self.presence.on_presence if self.presence else None,
                on_connected=self.presence.on_connected if self.presence else None,
                on_gap=self.note_gap,
            )
            self.start_chat_sync()

    def start_chat_sync(self) -> bool:
        """Sync the chat list in the background; False when a sync is running already."""
        if self.client is None or (self._sync_task is not None and not self._sync_task.done()):
            return False
        self._sync_task = asyncio.create_task(self._sync_chats())
        return True

    async def disconnect(self) -> None:
        client, self.client = self.client, None
        if self._sync_task and not self._sync_task.done():
            self._sync_task.cancel()
        self._sync_task = None
        tracker, self.presence = self.presence, None
        if tracker is not None and self.bridge.presence is not None:
            self.bridge.presence.detach(tracker)
        if client:
            await client.stop()
        self.trouter_state = None

    async def _on_trouter_state(self, state: TrouterState, error: str | None) -> None:
        self.trouter_state = state
        self.trouter_error = error
        if state == TrouterState.CONNECTED:
            await self.push_bridge_state(BridgeStateEvent.CONNECTED)
        elif state == TrouterState.CONNECTING:
            await self.push_bridge_state(BridgeStateEvent.CONNECTING)
        elif state == TrouterState.DISCONNECTED:
            await self.push_bridge_state(BridgeStateEvent.TRANSIENT_DISCONNECT, error=error)
        elif state == TrouterState.STOPPED and error and self.client is not None:
            # The client gives up only when the login itself is gone (e.g. a revoked
            # refresh token): tell the user what to do.
            self.log.warning("Teams connection stopped: %s", error)
            await self.push_bridge_state(BridgeStateEvent.BAD_CREDENTIALS, error=error)
            await self.send_management_notice(
                f"You were logged out of Teams ({error}). Send `login` to log in again."
            )

    async def _on_event(self, evt: EventMessage) -> None:
        """Route a Trouter event to its portal's queue; awaiting it slows the reader."""
        ref = evt.conversation_ref
        if ref is None:
            return  # no chat's
        if evt.conversation is not None:
            # Of a conversation update only the user's own read position is bridged, and
            # only with double puppeting (to the portal's queue, in order with messages).
            if evt.conversation.consumption_horizon is None or await self.double_puppet() is None:
                return
            portal = await Portal.for_conversation(ref.id, self.mri, one_to_one=ref.one_to_one)
            if portal is not None and portal.mxid:
                await portal.queue_teams_event(self, evt)
            return
        portal = await Portal.for_conversation(
            ref.id, self.mri, one_to_one=ref.one_to_one, create=ref.opens_chat
        )
        if portal is None or not (ref.opens_chat or portal.mxid):
            return  # what is about a chat (its picture, a call log) makes no room
        await portal.queue_teams_event(self, evt)

    def note_gap(self) -> None:
        """Pushes may have been missed (called before the next push is handled): until a
        portal has caught up, its next pushed message first fetches what came before it
        (`Portal.fill_gap`), so that one does not move the cursor past what was missed."""
        self.gap += 1

    def gap_open(self) -> int | None:
        """The gap a portal must have caught up from before it takes a pushed message;
        None when every portal has."""
        return self.gap if self.gap_filled < self.gap else None

    async def _resync(self) -> None:
        """After every (re)connect and message loss: fetch what was missed, per portal."""
        async with self._resync_lock:
            if self.client is None:
                return
            gap = self.gap
            total = rooms = 0
            for row in await Portal.for_user(self.mxid):
                portal = await Portal.get_by_key(PortalKey(row.thread_id, row.receiver))
                if portal is None or not portal.mxid:
                    continue
                rooms += 1
                try:
                    total += await portal.catch_up(self)
                except Exception:
                    self.log.warning("Catch-up of %s failed", row.thread_id, exc_info=True)
            self.gap_filled = max(self.gap_filled, gap)
            self.log.info("Resync done: %d messages fetched in %d rooms", total, rooms)

    async def _sync_chats(self) -> None:
        """Create or refresh portals for the user's recent chats. When rooms are to be made,
        the management room says so first (each arrives as an invite) and when it is done."""
        assert self.client is not None
        limit = self.config["bridge.initial_chat_sync"]
        try:
            conversations = await self.client.list_conversations(limit=limit)
        except Exception:
            self.log.exception("Failed to list Teams chats")
            return
        portals: list[tuple[Portal, Conversation]] = []
        for conversation in conversations[:limit]:
            if conversation.kind not in BRIDGED_KINDS:
                continue
            try:
                one_to_one = conversation.kind is ConversationKind.ONE_TO_ONE
                portal = await Portal.for_conversation(
                    conversation.id, self.mri, one_to_one=one_to_one, create=True
                )
            except Exception:
                self.log.exception("Failed to load the portal of chat %s", conversation.id)
                continue
            if portal:
                portals.append((portal, conversation))
        new = sum(1 for portal, _ in portals if not portal.mxid)
        if new:
            await self.send_management_notice(
                f"Setting up {_chats(new)} from Teams: you will be invited to a room for each"
                + (" (and to a space holding them)." if self.spaces.enabled else ".")
            )
        made = 0
        # Newest first, a few chats at a time: while the homeserver stores one chat's
        # history, the bridge prepares the next chat's.
        pending = iter(portals)

        async def worker() -> None:
            nonlocal made
            for portal, conversation in pending:
                had_room = bool(portal.mxid)
                try:
                    await portal.sync_with_teams(self, conversation)
                except Exception:
                    self.log.exception("Failed to sync chat %s", conversation.id)
                if not portal.mxid or had_room:
                    continue
                made += 1
                if new >= PROGRESS_EVERY and made % PROGRESS_EVERY == 0:
                    await self.send_management_notice(f"History: {made} of {new} chats")

        parallel = max(1, int(self.config["bridge.backfill.parallel_chats"]))
        await asyncio.gather(*(worker() for _ in range(min(parallel, len(portals)) or 1)))
        await self.update_direct_chats()
        if self.presence is not None:
            # The people in rooms made just now.
            try:
                await self.presence.refresh()
            except Exception:
                self.log.warning("Could not follow the presence of new people", exc_info=True)
        if new:
            failed = new - made
            await self.send_management_notice(
                f"Your Teams chats are set up: {_chats(made)} made"
                + (
                    f", {failed} could not be (they are tried again at the next start)."
                    if failed
                    else "."
                )
            )

    # -- management room ---------------------------------------------------------------------

    async def send_management_notice(self, text: str) -> None:
        if not self.management_room:
            return
        try:
            await self.az.intent.send_notice(self.management_room, text)
        except Exception:
            self.log.warning("Failed to send a notice to the management room", exc_info=True)


def _chats(count: int) -> str:
    return f"{count} chat" if count == 1 else f"{count} chats"
