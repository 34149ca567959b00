"""Teams presence of the people in the users' chats, as their ghosts' Matrix presence.

Each logged-in user has a `PresenceTracker`: it lists the people in the user's bridged
rooms, fetches their presence in batches and subscribes to the pushes of changes, which
arrive over the user's Trouter connection. All trackers feed one `PresenceSync`, which
coalesces (only the newest state of a person waits to be sent), sets a ghost's presence
only when its Matrix state changed, and keeps non-offline ghosts from timing out.

Several bridge users sharing a person: the person has one *source*, the first tracker that
claimed them; only that user subscribes to them and only that user's reports are used.
When the source logs out or stops sharing a chat with the person, another user who has
them takes over (subscribing and fetching then), so a person is never followed twice and
two logins can never flip a ghost back and forth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mautrix.types import PresenceState, UserID

from . import db as dbm
from .puppet import Puppet
from .teams import Presence, TeamsError

if TYPE_CHECKING:
    from .__main__ import TeamsBridge
    from .user import User

log = logging.getLogger("mau.presence")

# Teams availability -> Matrix presence, and the words a status message uses for it.
_AVAILABILITY: dict[str, tuple[PresenceState, str | None]] = {
    "available": (PresenceState.ONLINE, None),
    "availableidle": (PresenceState.UNAVAILABLE, None),
    "busy": (PresenceState.ONLINE, "Busy"),
    "busyidle": (PresenceState.UNAVAILABLE, "Busy"),
    "donotdisturb": (PresenceState.ONLINE, "Do not disturb"),
    "berightback": (PresenceState.UNAVAILABLE, "Be right back"),
    "away": (PresenceState.UNAVAILABLE, None),
    "offline": (PresenceState.OFFLINE, None),
    "presenceunknown": (PresenceState.OFFLINE, None),
}
# Activities worth naming over the availability's own words (a call says more than "Busy").
_ACTIVITY: dict[str, str] = {
    "inacall": "In a call",
    "inaconferencecall": "In a call",
    "inameeting": "In a meeting",
    "presenting": "Presenting",
    "focusing": "Focusing",
    "urgentinterruptionsonly": "Urgent interruptions only",
    "outofoffice": "Out of office",
}
MAX_STATUS = 200
# How often a tracker reads its user's chats again for people who joined or left them.
CONTACTS_REFRESH_SECONDS = 300.0
# More people than this per user are not followed (the rest are logged once).
MAX_CONTACTS_PER_USER = 10_000


@dataclass(frozen=True)
class MatrixPresence:
    state: PresenceState
    status: str | None = None


def matrix_presence(presence: Presence) -> MatrixPresence:
    """What a Teams presence looks like in Matrix: the state, and a status message naming
    what Matrix cannot say (busy, do not disturb, in a call, …) plus the person's note."""
    state, label = _AVAILABILITY.get(presence.availability.lower(), (PresenceState.OFFLINE, None))
    activity = (presence.activity or "").lower()
    if state is not PresenceState.OFFLINE and activity in _ACTIVITY:
        label = _ACTIVITY[activity]
    if presence.out_of_office and state is not PresenceState.OFFLINE and not label:
        label = "Out of office"
    parts = [p for p in (label, presence.note) if p]
    status = " — ".join(parts)[:MAX_STATUS] if parts else None
    return MatrixPresence(state, status)


SetPresence = Callable[[str, MatrixPresence], Awaitable[None]]
# The MRIs of the people in a user's chats (not the user).
LoadPeople = Callable[["User"], Awaitable[set[str]]]


class PresenceSync:
    """The bridge-wide half: who is whose source, what Matrix was told, and the one worker
    that tells it."""

    def __init__(
        self, set_presence: SetPresence, load_people: LoadPeople, *, refresh_seconds: float
    ) -> None:
        self._set = set_presence
        self.load_people = load_people
        self.refresh_seconds = refresh_seconds
        self.owners: dict[str, UserID] = {}
        self.trackers: dict[UserID, PresenceTracker] = {}
        # What each ghost's Matrix presence was set to (only people someone follows).
        self.applied: dict[str, MatrixPresence] = {}
        # The newest state per person not yet sent (a newer report replaces an older one).
        self.pending: dict[str, MatrixPresence] = {}
        self.sets = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- trackers ------------------------------------------------------------------------
    def attach(self, user: User) -> PresenceTracker:
        tracker = self.trackers.get(user.mxid)
        if tracker is None:
            tracker = self.trackers[user.mxid] = PresenceTracker(self, user)
        self.start()
        return tracker

    def detach(self, tracker: PresenceTracker) -> None:
        if self.trackers.get(tracker.mxid) is tracker:
            del self.trackers[tracker.mxid]
        tracker.close()
        self.release(tracker, list(tracker.owned()))

    def claim(self, tracker: PresenceTracker, mris: Iterable[str]) -> list[str]:
        """Make ``tracker`` the source of those of ``mris`` that have none; the ones it got."""
        got = []
        for mri in mris:
            owner = self.owners.get(mri)
            if owner is None or owner not in self.trackers:
                self.owners[mri] = tracker.mxid
                got.append(mri)
        return got

    def release(self, tracker: PresenceTracker, mris: Iterable[str]) -> None:
        """``tracker`` no longer follows ``mris``: hand each to another user who has that
        person, or forget the person."""
        handed: dict[UserID, list[str]] = {}
        others = sorted(
            (t for t in self.trackers.values() if t is not tracker), key=lambda t: t.mxid
        )
        for mri in mris:
            if self.owners.get(mri) != tracker.mxid:
                continue
            heir = next((t for t in others if mri in t.contacts), None)
            if heir is None:
                del self.owners[mri]
                self.applied.pop(mri, None)
                self.pending.pop(mri, None)
            else:
                self.owners[mri] = heir.mxid
                handed.setdefault(heir.mxid, []).append(mri)
        for mxid, taken in handed.items():
            self.trackers[mxid].adopt(taken)

    def report(self, tracker: PresenceTracker, presences: Iterable[Presence]) -> int:
        """Queue what ``tracker``'s user was told; reports about people it is not the
        source of are ignored. The number queued."""
        queued = 0
        for presence in presences:
            if self.owners.get(presence.mri) != tracker.mxid:
                continue
            self.pending[presence.mri] = matrix_presence(presence)
            queued += 1
        if queued:
            self._wake.set()
        return queued

    # -- the worker ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="presence-sync")

    async def stop(self) -> None:
        for tracker in list(self.trackers.values()):
            tracker.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_seconds
        while True:
            timeout = max(0.0, next_refresh - loop.time()) if self.refresh_seconds > 0 else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            if self.refresh_seconds > 0 and loop.time() >= next_refresh:
                await self._refresh()
                next_refresh = loop.time() + self.refresh_seconds

    async def flush(self) -> int:
        """Send what is pending and changed; the number of presences set."""
        batch, self.pending = self.pending, {}
        done = 0
        for mri, wanted in batch.items():
            if mri not in self.owners or self.applied.get(mri) == wanted:
                continue
            if await self._send(mri, wanted):
                self.applied[mri] = wanted
                done += 1
        return done

    async def _refresh(self) -> None:
        """Set every non-offline ghost again: the homeserver turns a user it has not heard
        from for a while (30 s in Synapse) offline, and ghosts never sync."""
        for mri, current in list(self.applied.items()):
            if current.state is PresenceState.OFFLINE or self.applied.get(mri) is not current:
                continue
            await self._send(mri, current)
            if self.pending:
                # A change must not wait for a long round of refreshes.
                await self.flush()

    async def _send(self, mri: str, wanted: MatrixPresence) -> bool:
        try:
            await self._set(mri, wanted)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("Could not set the presence of %s: %s", mri, e)
            return False
        self.sets += 1
        return True


class PresenceTracker:
    """One user's half: their people, their subscription, their pushes."""

    def __init__(self, sync: PresenceSync, user: User) -> None:
        self.sync = sync
        self.user = user
        self.mxid = user.mxid
        self.contacts: set[str] = set()
        self.surl: str | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._warned_cap = False
        self._refresher: asyncio.Task | None = None

    def owned(self) -> Iterable[str]:
        return (m for m, owner in self.sync.owners.items() if owner == self.mxid)

    def close(self) -> None:
        self._closed = True
        for task in (*self._tasks, self._refresher):
            if task is not None:
                task.cancel()

    # -- Trouter callbacks ---------------------------------------------------------------
    async def on_connected(self, surl: str) -> None:
        """After every (re)connect: the push URL is new, so subscribe everyone again and
        fetch what changed while disconnected."""
        self.surl = surl
        await self.refresh(resubscribe=True)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_loop(), name="presence-contacts")

    def on_presence(self, presences: list[Presence], snapshot: bool) -> None:
        self.sync.report(self, presences)

    # -- following people ----------------------------------------------------------------
    async def refresh(self, *, resubscribe: bool = False) -> None:
        """Read the user's people again; follow the new ones, release the gone ones."""
        if self._closed:
            return
        async with self._lock:
            people = await self.sync.load_people(self.user)
            if len(people) > MAX_CONTACTS_PER_USER:
                if not self._warned_cap:
                    log.warning(
                        "%s has %d people in their chats; following the first %d",
                        self.mxid,
                        len(people),
                        MAX_CONTACTS_PER_USER,
                    )
                    self._warned_cap = True
                people = set(sorted(people)[:MAX_CONTACTS_PER_USER])
            gone = self.contacts - people
            self.contacts = people
            unfollow = [m for m in gone if self.sync.owners.get(m) == self.mxid]
            self.sync.release(self, gone)
            new = self.sync.claim(self, people)
            follow = list(self.owned()) if resubscribe else new
            await self._follow(follow, [] if resubscribe else unfollow, purge=resubscribe)

    def adopt(self, mris: list[str]) -> None:
        """Become the source of ``mris`` (another user stopped being it)."""
        if self._closed or not mris:
            return
        task = asyncio.create_task(self._adopt(mris), name="presence-adopt")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, mris: list[str]) -> None:
        async with self._lock:
            await self._follow([m for m in mris if self.sync.owners.get(m) == self.mxid], [])

    async def _follow(self, add: list[str], remove: list[str], *, purge: bool = False) -> None:
        client = self.user.client
        if client is None or self._closed:
            return
        if self.surl is not None and (add or remove or purge):
            try:
                await client.subscribe_presence(self.surl, add, remove, purge=purge)
            except TeamsError as e:
                log.warning("Could not subscribe to presence for %s: %s", self.mxid, e)
        if add:
            try:
                found = await client.get_presence(add)
            except TeamsError as e:
                log.warning("Could not read presence for %s: %s", self.mxid, e)
                return
            self.sync.report(self, found)

    async def _refresh_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(CONTACTS_REFRESH_SECONDS)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Refreshing the people of %s failed", self.mxid, exc_info=True)


def for_bridge(bridge: TeamsBridge) -> PresenceSync | None:
    """The bridge's presence sync, or None when ``bridge.sync_presence`` is off."""
    if not bridge.config["bridge.sync_presence"]:
        return None

    async def set_ghost(mri: str, wanted: MatrixPresence) -> None:
        # The ghost itself (never a double puppet: that is someone's real account). Our
        # own change detection decides; mautrix's cache compares status messages only.
        intent = bridge.az.intent.user(Puppet.get_mxid_from_mri(mri))
        await intent.set_presence(wanted.state, wanted.status, ignore_cache=True)

    async def people(user: User) -> set[str]:
        found: set[str] = set()
        for mxid in await dbm.Portal.joined_members(user.mxid):
            mri = Puppet.get_mri_from_mxid(mxid)
            if mri and mri != user.mri:
                found.add(mri)
        return found

    return PresenceSync(
        set_ghost, people, refresh_seconds=float(bridge.config["bridge.presence_refresh_seconds"])
    )
