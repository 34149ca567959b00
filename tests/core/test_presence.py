"""Teams presence -> Matrix presence: the mapping, the coalescing and change detection, and
which of several users sharing a person is that person's source."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from mautrix.types import PresenceState

from teams_bridge.presence import MatrixPresence, PresenceSync, matrix_presence
from teams_bridge.teams import Presence

ONLINE, AWAY, OFFLINE = PresenceState.ONLINE, PresenceState.UNAVAILABLE, PresenceState.OFFLINE


@pytest.mark.parametrize(
    ("availability", "activity", "note", "expected"),
    [
        ("Available", "Available", None, MatrixPresence(ONLINE)),
        ("Busy", "Busy", None, MatrixPresence(ONLINE, "Busy")),
        ("Busy", "InACall", None, MatrixPresence(ONLINE, "In a call")),
        ("Busy", "InAMeeting", None, MatrixPresence(ONLINE, "In a meeting")),
        ("DoNotDisturb", "Presenting", None, MatrixPresence(ONLINE, "Presenting")),
        ("DoNotDisturb", "DoNotDisturb", None, MatrixPresence(ONLINE, "Do not disturb")),
        ("Away", "Away", None, MatrixPresence(AWAY)),
        ("BeRightBack", "BeRightBack", None, MatrixPresence(AWAY, "Be right back")),
        ("AvailableIdle", "Available", None, MatrixPresence(AWAY)),
        ("Offline", "OffWork", None, MatrixPresence(OFFLINE)),
        ("PresenceUnknown", None, None, MatrixPresence(OFFLINE)),
        ("SomethingNew", "InACall", None, MatrixPresence(OFFLINE)),
        ("available", None, "Lunch", MatrixPresence(ONLINE, "Lunch")),
        ("Busy", "InACall", "Lunch", MatrixPresence(ONLINE, "In a call — Lunch")),
        ("Offline", "OffWork", "On leave", MatrixPresence(OFFLINE, "On leave")),
    ],
)
def test_mapping(availability, activity, note, expected):
    got = matrix_presence(Presence("8:orgid:a", availability, activity, note))
    assert got == expected


def test_long_notes_are_cut():
    got = matrix_presence(Presence("8:orgid:a", "Busy", None, "x" * 1000))
    assert got.status is not None and len(got.status) == 200


@dataclass
class FakeClient:
    presence: dict[str, Presence] = field(default_factory=dict)
    subscribed: list[tuple[list[str], list[str], bool]] = field(default_factory=list)
    reads: list[list[str]] = field(default_factory=list)

    async def subscribe_presence(self, surl, add, remove=(), *, purge=False):
        self.subscribed.append((sorted(add), sorted(remove), purge))

    async def get_presence(self, mris):
        self.reads.append(sorted(mris))
        return [self.presence[m] for m in mris if m in self.presence]


@dataclass
class FakeUser:
    mxid: str
    people: set[str]
    client: FakeClient = field(default_factory=FakeClient)
    mri: str = "8:orgid:me"


def make_sync(refresh: float = 0.0):
    sent: list[tuple[str, MatrixPresence]] = []

    async def set_presence(mri, wanted):
        sent.append((mri, wanted))

    async def people(user):
        return set(user.people)

    return PresenceSync(set_presence, people, refresh_seconds=refresh), sent


def busy(mri: str) -> Presence:
    return Presence(mri, "Busy", "InACall")


def free(mri: str) -> Presence:
    return Presence(mri, "Available", "Available")


async def test_coalescing_and_change_detection():
    sync, sent = make_sync()
    alice = FakeUser("@alice:x", {"8:orgid:a", "8:orgid:b"})
    tracker = sync.attach(alice)  # type: ignore[arg-type]
    try:
        await tracker.on_connected("http://t/v4/f/1/")
        # A flood (a snapshot and changes) before the worker runs: only the newest state
        # of each person is sent, once.
        await sync.flush()
        sent.clear()
        sync.applied.clear()
        for _ in range(50):
            tracker.on_presence([busy("8:orgid:a"), free("8:orgid:b")], True)
        tracker.on_presence([free("8:orgid:a")], False)
        assert len(sync.pending) == 2
        assert await sync.flush() == 2
        assert sorted(sent) == [
            ("8:orgid:a", MatrixPresence(ONLINE)),
            ("8:orgid:b", MatrixPresence(ONLINE)),
        ]
        # The same state again (a snapshot after a reconnect) sets nothing.
        tracker.on_presence([free("8:orgid:a"), free("8:orgid:b")], True)
        assert await sync.flush() == 0
        # Busy and Available are both "online" but differ in the status message.
        tracker.on_presence([busy("8:orgid:a")], False)
        assert await sync.flush() == 1
        assert sent[-1] == ("8:orgid:a", MatrixPresence(ONLINE, "In a call"))
        # Someone nobody follows is ignored (memory stays bounded by the people followed).
        tracker.on_presence([busy("8:orgid:stranger")], False)
        assert "8:orgid:stranger" not in sync.pending
    finally:
        await sync.stop()


async def test_the_worker_sends_and_keeps_ghosts_alive():
    sync, sent = make_sync(refresh=0.05)
    alice = FakeUser("@alice:x", {"8:orgid:a", "8:orgid:off"})
    alice.client.presence = {"8:orgid:a": free("8:orgid:a")}
    alice.client.presence["8:orgid:off"] = Presence("8:orgid:off", "Offline", "OffWork")
    tracker = sync.attach(alice)  # type: ignore[arg-type]
    try:
        await tracker.on_connected("http://t/v4/f/1/")
        # Subscribed (purging: the push URL is new) and read once, in one batch.
        assert alice.client.subscribed == [(["8:orgid:a", "8:orgid:off"], [], True)]
        assert alice.client.reads == [["8:orgid:a", "8:orgid:off"]]

        async def refreshed() -> None:
            while sum(1 for m, _ in sent if m == "8:orgid:a") < 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(refreshed(), 10)
        # Only the ghost that is not offline is set again.
        assert sum(1 for m, _ in sent if m == "8:orgid:off") == 1
    finally:
        await sync.stop()


async def test_shared_people_have_one_source():
    sync, sent = make_sync()
    alice = FakeUser("@alice:x", {"8:orgid:a", "8:orgid:shared"})
    bob = FakeUser("@bob:x", {"8:orgid:b", "8:orgid:shared"})
    ta = sync.attach(alice)  # type: ignore[arg-type]
    tb = sync.attach(bob)  # type: ignore[arg-type]
    try:
        await ta.on_connected("http://t/v4/f/a/")
        await tb.on_connected("http://t/v4/f/b/")
        assert sync.owners["8:orgid:shared"] == "@alice:x"
        # Bob neither subscribes to nor reads the shared person.
        assert all("8:orgid:shared" not in add for add, _, _ in bob.client.subscribed)
        # Reports from the user who is not the source do not count: no flip-flopping.
        tb.on_presence([busy("8:orgid:shared")], False)
        ta.on_presence([free("8:orgid:shared")], False)
        tb.on_presence([busy("8:orgid:shared")], False)
        await sync.flush()
        assert sync.applied["8:orgid:shared"] == MatrixPresence(ONLINE)

        # Alice stops sharing a chat with the person: Bob takes over, subscribing and
        # reading, and Alice unsubscribes.
        bob.client.presence["8:orgid:shared"] = busy("8:orgid:shared")
        alice.people = {"8:orgid:a"}
        await ta.refresh()
        assert alice.client.subscribed[-1] == ([], ["8:orgid:shared"], False)
        assert sync.owners["8:orgid:shared"] == "@bob:x"

        async def adopted() -> None:
            while not bob.client.reads or "8:orgid:shared" not in bob.client.reads[-1]:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(adopted(), 10)
        assert (["8:orgid:shared"], [], False) in bob.client.subscribed
        await sync.flush()
        assert sync.applied["8:orgid:shared"] == MatrixPresence(ONLINE, "In a call")

        # Bob logs out: nobody has the shared person any more, so it is forgotten.
        sync.detach(tb)
        assert "8:orgid:shared" not in sync.owners
        assert "8:orgid:shared" not in sync.applied
        assert "8:orgid:b" not in sync.owners
    finally:
        await sync.stop()
