"""The directory of loaded users, portals and puppets (teams_bridge/directory.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from teams_bridge.directory import Directory, Loader
from teams_bridge.portal.key import PortalKey

BOT = "@teamsbot:example.org"


@dataclass(eq=False)
class FakePortal:
    thread_id: str
    receiver: str = ""
    mxid: str | None = None
    busy: bool = False
    inserted: bool = False

    @property
    def key(self) -> PortalKey:
        return PortalKey(self.thread_id, self.receiver)

    def is_idle(self) -> bool:
        return not self.busy

    async def insert(self) -> None:
        self.inserted = True
        STORE.portals[self.key] = (self.thread_id, self.receiver, self.mxid)

    @classmethod
    async def load_by_key(cls, key: PortalKey) -> FakePortal | None:
        STORE.loads.append(("portal", key))
        await STORE.gate.wait()
        row = STORE.portals.get(key)
        return cls(*row) if row else None

    @classmethod
    async def load_by_mxid(cls, mxid: str) -> FakePortal | None:
        for row in STORE.portals.values():
            if row[2] == mxid:
                return cls(*row)
        return None


@dataclass(eq=False)
class FakePuppet:
    mri: str
    custom_mxid: str | None = None
    busy: bool = False

    def is_idle(self) -> bool:
        return not self.busy and not self.custom_mxid

    async def insert(self) -> None:
        STORE.puppets[self.mri] = self.custom_mxid

    @staticmethod
    def get_mri_from_mxid(mxid: str) -> str | None:
        return "8:" + mxid[len("@teams_") :].split(":")[0] if mxid.startswith("@teams_") else None

    @classmethod
    async def load_by_mri(cls, mri: str) -> FakePuppet | None:
        STORE.loads.append(("puppet", mri))
        await STORE.gate.wait()
        return cls(mri, STORE.puppets[mri]) if mri in STORE.puppets else None

    @classmethod
    async def load_by_custom_mxid(cls, mxid: str) -> FakePuppet | None:
        for mri, custom in STORE.puppets.items():
            if custom == mxid:
                return cls(mri, custom)
        return None


@dataclass(eq=False)
class FakeUser:
    mxid: str
    mri: str | None = None

    def is_idle(self) -> bool:
        return self.mri is None  # (as the bridge's: one logged in stays)

    async def insert(self) -> None:
        STORE.users[self.mxid] = self.mri

    @classmethod
    async def load_by_mxid(cls, mxid: str) -> FakeUser | None:
        STORE.loads.append(("user", mxid))
        await STORE.gate.wait()
        return cls(mxid, STORE.users[mxid]) if mxid in STORE.users else None


class Store:
    def __init__(self) -> None:
        self.portals: dict = {}
        self.puppets: dict = {}
        self.users: dict = {}
        self.loads: list = []
        self.gate = asyncio.Event()
        self.gate.set()


STORE = Store()


def directory(portals: int = 0, puppets: int = 0, users: int = 0) -> Directory:
    global STORE
    STORE = Store()
    return Directory(
        portal_limit=portals,
        puppet_limit=puppets,
        user_limit=users,
        user_class=FakeUser,  # type: ignore[arg-type]
        portal_class=FakePortal,  # type: ignore[arg-type]
        puppet_class=FakePuppet,  # type: ignore[arg-type]
        bot_mxid=BOT,  # type: ignore[arg-type]
    )


def key(n: int) -> PortalKey:
    return PortalKey(f"19:{n}@thread.v2", "")


async def test_concurrent_lookups_load_once_and_share_the_object():
    d = directory()
    STORE.puppets["8:a"] = None
    STORE.users["@ada:example.org"] = "8:ada"
    STORE.gate.clear()  # every load waits until all lookups are in
    puppets = [asyncio.create_task(d.puppet("8:a")) for _ in range(10)]
    users = [asyncio.create_task(d.user("@ada:example.org")) for _ in range(10)]
    created = [asyncio.create_task(d.portal(key(1), create=True)) for _ in range(10)]
    await asyncio.sleep(0)
    STORE.gate.set()
    puppet_results = await asyncio.gather(*puppets)
    user_results = await asyncio.gather(*users)
    portal_results = await asyncio.gather(*created)
    assert STORE.loads.count(("puppet", "8:a")) == 1
    assert STORE.loads.count(("user", "@ada:example.org")) == 1
    assert STORE.loads.count(("portal", key(1))) == 1
    assert len({id(p) for p in puppet_results}) == 1
    assert len({id(u) for u in user_results}) == 1
    assert len({id(p) for p in portal_results}) == 1 and portal_results[0].inserted
    # Cached from then on.
    assert await d.puppet("8:a") is puppet_results[0]
    assert STORE.loads.count(("puppet", "8:a")) == 1
    # Nothing is created unless asked for, and nothing missing is cached.
    assert await d.puppet("8:none", create=False) is None
    assert await d.portal(key(2)) is None
    assert await d.portal(key(2)) is None
    assert STORE.loads.count(("portal", key(2))) == 2


async def test_users_by_mri_and_who_is_not_a_user():
    d = directory()
    STORE.users["@ada:example.org"] = "8:ada"
    ada = await d.user("@ada:example.org")
    assert d.user_by_mri("8:ada") is ada
    assert d.user_by_mri(None) is None
    # Ghosts and the bot are never bridge users.
    assert await d.user("@teams_x:example.org") is None
    assert await d.user(BOT) is None
    d.note_user_mri(ada, "8:other")
    assert d.user_by_mri("8:ada") is None and d.user_by_mri("8:other") is ada
    d.note_user_mri(ada, None)
    assert d.user_by_mri("8:other") is None
    assert d.users() == [ada]


async def test_a_room_has_one_portal_object_by_key_and_by_room():
    d = directory()
    STORE.portals[key(1)] = (key(1).thread_id, "", "!room:example.org")
    by_room = await d.portal_by_mxid("!room:example.org")
    assert by_room is not None
    assert await d.portal(key(1)) is by_room
    assert await d.portal_by_mxid("!room:example.org") is by_room
    assert await d.portal_by_mxid("!other:example.org") is None
    # Re-keyed (made private): found under the new key only.
    by_room.receiver = "8:ada"
    d.portal_stored(by_room, key(1))
    assert d.cached_portal(key(1)) is None
    assert d.cached_portal(by_room.key) is by_room
    d.portal_deleted(by_room)
    assert d.portals() == []
    STORE.portals.clear()
    assert await d.portal_by_mxid("!room:example.org") is None


async def test_the_least_recently_used_idle_portals_go_first_and_busy_ones_never():
    d = directory(portals=2)
    for n in range(1, 6):
        STORE.portals[key(n)] = (key(n).thread_id, "", f"!r{n}:example.org")
    one = await d.portal(key(1))
    one.busy = True  # e.g. its queue worker runs
    two = await d.portal(key(2))
    await d.portal(key(1))  # used again: now two is the oldest
    three = await d.portal(key(3))
    assert d.cached_portal(key(2)) is None
    assert d.cached_portal(key(1)) is one and d.cached_portal(key(3)) is three
    # Dropped from the room index too; loaded again as a new object when asked for.
    again = await d.portal_by_mxid("!r2:example.org")
    assert again is not None and again is not two
    # Now one (busy) is the oldest: it stays, three goes.
    assert d.cached_portal(key(3)) is None
    assert d.cached_portal(key(1)) is one
    # All busy: over the bound rather than drop any.
    again.busy = True
    four = await d.portal(key(4))
    four.busy = True
    await d.portal(key(5))
    assert {p.thread_id for p in d.portals()} >= {key(n).thread_id for n in (1, 2, 4)}
    assert all(p.busy for p in d.portals()[:-1])


async def test_puppets_are_bounded_but_double_puppets_stay():
    d = directory(puppets=1)
    STORE.puppets.update({"8:a": "@ada:example.org", "8:b": None, "8:c": None})
    ada = await d.puppet_by_custom_mxid("@ada:example.org")
    assert ada is not None and ada.mri == "8:a"
    b = await d.puppet("8:b")
    c = await d.puppet_by_mxid("@teams_c:example.org")
    assert c is not None and c.mri == "8:c"
    assert d.cached_puppet("8:b") is None  # idle and older: dropped
    assert d.cached_puppet("8:a") is ada  # a double puppet: kept
    assert await d.puppet_by_custom_mxid("@ada:example.org") is ada
    assert await d.puppet("8:b") is not b


async def test_users_are_bounded_but_logged_in_ones_stay():
    d = directory(users=2)
    STORE.users.update({f"@u{n}:example.org": None for n in range(5)})
    STORE.users["@ada:example.org"] = "8:ada"
    ada = await d.user("@ada:example.org")
    assert d.user_by_mri("8:ada") is ada
    loaded = [await d.user(f"@u{n}:example.org") for n in range(5)]
    assert len(d.users()) == 2
    assert d.cached_user("@ada:example.org") is ada  # logged in: kept
    assert d.user_by_mri("8:ada") is ada
    assert d.cached_user("@u4:example.org") is loaded[4]  # the newest
    assert d.cached_user("@u0:example.org") is None  # idle and older: dropped
    assert await d.user("@u0:example.org") is not loaded[0]  # loaded again


async def test_loader_without_a_limit_keeps_everything():
    loader: Loader[int, str] = Loader()
    for n in range(100):

        async def load(n: int = n) -> str:
            return str(n)

        assert await loader.get(n, load) == str(n)
    assert len(loader) == 100


async def test_a_user_read_by_other_means_is_adopted_once():
    d = directory()
    STORE.users["@ada:example.org"] = "8:ada"
    row = FakeUser("@ada:example.org", "8:ada")
    adopted = await d.adopt_user(row)
    assert adopted is row and d.user_by_mri("8:ada") is row
    assert STORE.loads == []  # not read again
    # Another copy of the row: the loaded one wins.
    assert await d.adopt_user(FakeUser("@ada:example.org", "8:ada")) is row
    assert await d.user("@ada:example.org") is row
    # Noted under a new MRI, the old one is forgotten.
    d.note_user_mri(row, "8:ada2")
    assert d.user_by_mri("8:ada") is None and d.user_by_mri("8:ada2") is row
    d.note_user_mri(row, None)
    assert d.user_by_mri("8:ada2") is None
