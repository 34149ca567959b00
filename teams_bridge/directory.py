"""The directory of loaded users, portals and puppets: the one place they are cached.

The bridge builds one ``Directory`` at start-up and hands it to the objects that look
others up (``Portal``, ``User``, ``Puppet``, the metrics and the entry point); nothing
else keeps a registry. Every lookup goes through one generic cache, ``Loader``: get or
load under a lock per key, so concurrent lookups of one key load it once. Portals,
puppets and users are bounded (``bridge.cache``): when over the bound, the least recently
used idle entries are dropped, to be loaded again from the database when next needed. A
busy entry (a portal with a running worker or queued events, a double puppet, a user who
is logged in or in the middle of a login or command) is never dropped, since two live
objects for one room or user would race.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from mautrix.types import RoomID, UserID

from .portal.key import PortalKey

if TYPE_CHECKING:
    from .portal import Portal
    from .puppet import Puppet
    from .user import User

K = TypeVar("K")
V = TypeVar("V")


class Loader(Generic[K, V]):
    """Loaded objects by key, least recently used first.

    ``limit`` (0: none) bounds how many are kept; when over it, the oldest entries for
    which ``idle`` holds are dropped (and ``dropped`` is told); busy ones stay, even if
    that leaves the cache over its bound for a while.
    """

    def __init__(
        self,
        *,
        limit: int = 0,
        idle: Callable[[V], bool] = lambda _: True,
        dropped: Callable[[K, V], None] = lambda _k, _v: None,
    ) -> None:
        self.limit = limit
        self._idle = idle
        self._dropped = dropped
        self._items: OrderedDict[K, V] = OrderedDict()
        # Per key: the lock, and how many lookups hold or wait for it.
        self._locks: dict[K, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def values(self) -> list[V]:
        return list(self._items.values())

    def cached(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        self._trim()

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached object, else what ``load`` gives (then cached); one load per key at
        a time, and a lookup waiting for it gets its result."""
        value = self.cached(key)
        if value is not None:
            return value
        lock, holders = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        holders[0] += 1
        try:
            async with lock:
                value = self.cached(key)
                if value is None:
                    value = await load()
                    if value is not None:
                        self.put(key, value)
                return value
        finally:
            holders[0] -= 1
            if not holders[0]:
                del self._locks[key]

    def _trim(self) -> None:
        if not self.limit or len(self._items) <= self.limit:
            return
        excess = len(self._items) - self.limit
        # The newest entry is the one just asked for: never dropped.
        for key, value in list(self._items.items())[:-1]:
            if not excess:
                break
            if self._idle(value):
                del self._items[key]
                self._dropped(key, value)
                excess -= 1


class Directory:
    """Users by Matrix ID (and Teams MRI), portals by key (and room), puppets by MRI (and
    double-puppet Matrix ID)."""

    def __init__(
        self,
        *,
        portal_limit: int = 0,
        puppet_limit: int = 0,
        user_limit: int = 0,
        user_class: type[User],
        portal_class: type[Portal],
        puppet_class: type[Puppet],
        bot_mxid: UserID,
    ) -> None:
        self._user_cls = user_class
        self._portal_cls = portal_class
        self._puppet_cls = puppet_class
        self.bot_mxid = bot_mxid
        self._users: Loader[UserID, User] = Loader(
            limit=user_limit, idle=lambda u: u.is_idle(), dropped=self._user_dropped
        )
        self._user_by_mri: dict[str, User] = {}
        # The other way round: the MRI each user is noted under.
        self._mri_of: dict[UserID, str] = {}
        self._portals: Loader[PortalKey, Portal] = Loader(
            limit=portal_limit, idle=lambda p: p.is_idle(), dropped=self._portal_dropped
        )
        self._portal_by_room: dict[RoomID, PortalKey] = {}
        self._puppets: Loader[str, Puppet] = Loader(
            limit=puppet_limit, idle=lambda p: p.is_idle(), dropped=self._puppet_dropped
        )
        self._puppet_by_custom: dict[UserID, str] = {}

    # -- users -------------------------------------------------------------------------------

    async def user(self, mxid: UserID, *, create: bool = True) -> User | None:
        """The bridge user of a Matrix account (never a ghost or the bot)."""
        if self._puppet_cls.get_mri_from_mxid(mxid) or mxid == self.bot_mxid:
            return None

        async def load() -> User | None:
            user = await self._user_cls.load_by_mxid(mxid)
            if user is None and create:
                user = self._user_cls(mxid)
                await user.insert()
            if user is not None:
                self.note_user_mri(user, user.mri)
            return user

        return await self._users.get(mxid, load)

    async def adopt_user(self, row: User) -> User | None:
        """A user read from the database by other means: the loaded one if there is."""
        user = await self._users.get(row.mxid, _given(row))
        if user is not None:
            self.note_user_mri(user, user.mri)
        return user

    def cached_user(self, mxid: UserID) -> User | None:
        return self._users.cached(mxid)

    def user_by_mri(self, mri: str | None) -> User | None:
        """The loaded bridge user logged in as ``mri``, if any: "is this a bridge user?"."""
        return self._user_by_mri.get(mri) if mri else None

    def note_user_mri(self, user: User, mri: str | None) -> None:
        """Who a user is logged in to Teams as now (None: logged out)."""
        old = self._mri_of.pop(user.mxid, None)
        if old is not None and old != mri and self._user_by_mri.get(old) is user:
            del self._user_by_mri[old]
        if mri:
            self._user_by_mri[mri] = user
            self._mri_of[user.mxid] = mri

    def users(self) -> list[User]:
        return self._users.values()

    def _user_dropped(self, mxid: UserID, user: User) -> None:
        self.note_user_mri(user, None)

    # -- portals -----------------------------------------------------------------------------

    async def portal(self, key: PortalKey, *, create: bool = False) -> Portal | None:
        async def load() -> Portal | None:
            portal = await self._portal_cls.load_by_key(key)
            if portal is None and create:
                portal = self._portal_cls(key.thread_id, key.receiver)
                await portal.insert()
            return portal

        portal = await self._portals.get(key, load)
        if portal is not None and portal.mxid:
            self._portal_by_room[portal.mxid] = key
        return portal

    async def private_chats_with(self, mri: str) -> list[Portal]:
        """The loaded 1:1 portals (with a room) whose other person is ``mri``."""
        found = []
        for row in await self._portal_cls.private_chats_with(mri):
            portal = await self._portals.get(row.key, _given(row))
            if portal is not None:
                found.append(portal)
        return found

    def cached_portal(self, key: PortalKey) -> Portal | None:
        return self._portals.cached(key)

    async def portal_by_mxid(self, room_id: RoomID) -> Portal | None:
        key = self._portal_by_room.get(room_id)
        if key is not None and (portal := self._portals.cached(key)) is not None:
            return portal
        row = await self._portal_cls.load_by_mxid(room_id)
        if row is None:
            return None
        # Cached by its key, so that a room has one portal object (a copy already loaded
        # by its key wins).
        portal = await self._portals.get(row.key, _given(row))
        if portal is not None and portal.mxid:
            self._portal_by_room[portal.mxid] = portal.key
        return portal

    async def portal_for_conversation(
        self, thread_id: str, user_mri: str | None, *, one_to_one: bool, create: bool = False
    ) -> Portal | None:
        """The portal of a Teams conversation for a bridge user (see ``PortalKey``)."""
        keys = PortalKey.candidates(thread_id, user_mri, one_to_one=one_to_one)
        for key in keys:
            if (portal := self._portals.cached(key)) is not None:
                return portal
        for key in keys[1:]:
            if (portal := await self.portal(key)) is not None:
                return portal
        return await self.portal(keys[0], create=create)

    def portal_stored(self, portal: Portal, old_key: PortalKey | None = None) -> None:
        """A portal got its room, or a new key (``make_private``)."""
        if old_key is not None and old_key != portal.key:
            if self._portals.cached(old_key) is portal:
                self._portals.pop(old_key)
        self._portals.put(portal.key, portal)
        if portal.mxid:
            self._portal_by_room[portal.mxid] = portal.key

    def portal_deleted(self, portal: Portal) -> None:
        if self._portals.cached(portal.key) is portal:
            self._portals.pop(portal.key)
        if portal.mxid:
            self._portal_by_room.pop(portal.mxid, None)

    def portals(self) -> list[Portal]:
        return self._portals.values()

    def _portal_dropped(self, key: PortalKey, portal: Portal) -> None:
        if portal.mxid and self._portal_by_room.get(portal.mxid) == key:
            del self._portal_by_room[portal.mxid]

    # -- puppets -----------------------------------------------------------------------------

    async def puppet(self, mri: str, *, create: bool = True) -> Puppet | None:
        async def load() -> Puppet | None:
            puppet = await self._puppet_cls.load_by_mri(mri)
            if puppet is None and create:
                puppet = self._puppet_cls(mri)
                await puppet.insert()
            return puppet

        puppet = await self._puppets.get(mri, load)
        if puppet is not None and puppet.custom_mxid:
            self._puppet_by_custom[puppet.custom_mxid] = mri
        return puppet

    def puppet_saved(self, puppet: Puppet) -> None:
        """A puppet was stored: its double puppet may have come or gone."""
        for mxid, mri in list(self._puppet_by_custom.items()):
            if mri == puppet.mri and mxid != puppet.custom_mxid:
                del self._puppet_by_custom[mxid]
        if puppet.custom_mxid:
            self._puppet_by_custom[puppet.custom_mxid] = puppet.mri

    def cached_puppet(self, mri: str) -> Puppet | None:
        return self._puppets.cached(mri)

    async def puppet_by_mxid(self, mxid: UserID, *, create: bool = True) -> Puppet | None:
        mri = self._puppet_cls.get_mri_from_mxid(mxid)
        return await self.puppet(mri, create=create) if mri else None

    async def puppet_by_custom_mxid(self, mxid: UserID) -> Puppet | None:
        mri = self._puppet_by_custom.get(mxid)
        if mri is not None and (puppet := self._puppets.cached(mri)) is not None:
            return puppet
        row = await self._puppet_cls.load_by_custom_mxid(mxid)
        return await self.adopt_puppet(row) if row is not None else None

    async def adopt_puppet(self, row: Puppet) -> Puppet | None:
        """A puppet read from the database by other means: the loaded one if there is."""
        puppet = await self._puppets.get(row.mri, _given(row))
        if puppet is not None and puppet.custom_mxid:
            self._puppet_by_custom[puppet.custom_mxid] = puppet.mri
        return puppet

    def puppets(self) -> Iterator[Puppet]:
        return iter(self._puppets.values())

    def _puppet_dropped(self, mri: str, puppet: Puppet) -> None:
        if puppet.custom_mxid and self._puppet_by_custom.get(puppet.custom_mxid) == mri:
            del self._puppet_by_custom[puppet.custom_mxid]


def _given(value: V) -> Callable[[], Awaitable[V]]:
    """A load that gives what was already read (the loaded copy wins if there is one)."""

    async def load() -> V:
        return value

    return load
