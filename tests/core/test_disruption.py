"""Homeserver disruptions: when portals must check their timelines before sending on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from teams_bridge.disruption import LOOKBACK_MS, Disruptions, HomeserverWatch


@dataclass
class Row:
    received_at: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_700_000_000_000

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += int(seconds * 1000)


def make(window: float = 300) -> tuple[Disruptions, Clock]:
    clock = Clock()
    return Disruptions(window, clock=clock, wall_ms=clock.ms), clock


def test_nothing_waits_without_a_disruption():
    d, clock = make()
    assert not d.active
    assert not d.must_check(Row(received_at=clock.wall), checked_ms=0)


def test_events_received_after_a_disruption_wait_for_one_check_per_portal():
    d, clock = make()
    before = Row(received_at=clock.wall - 1)
    d.note_trouble()
    started = d.started_ms
    clock.advance(4)
    d.note_recovered()
    after = Row(received_at=clock.wall)
    assert not d.must_check(before, checked_ms=0)  # sent on before the disruption
    assert d.must_check(after, checked_ms=0)
    assert d.portal_is_behind(checked_ms=0)
    # Once the portal checked (after the disruption began), nothing waits.
    assert not d.must_check(after, checked_ms=clock.wall)
    assert not d.portal_is_behind(checked_ms=clock.wall)
    assert d.lookback_ms == started - LOOKBACK_MS


def test_the_window_runs_from_the_return_and_then_closes():
    d, clock = make(window=60)
    d.note_trouble()
    clock.advance(30)
    d.note_trouble()  # still down: the same disruption
    first = d.started_ms
    clock.advance(30)
    d.note_recovered()
    assert d.started_ms == first
    clock.advance(59)
    assert d.active
    clock.advance(2)
    assert not d.active
    assert not d.must_check(Row(received_at=clock.wall), checked_ms=0)
    # A later disruption is a new one.
    d.note_trouble()
    assert d.started_ms > first


def test_recovery_calls_back_once_per_return():
    d, clock = make()
    calls = []
    d.on_recovered.append(lambda: calls.append(clock.now))
    d.note_recovered()  # never down: nothing to do
    assert calls == []
    d.note_trouble()
    d.note_recovered()
    assert len(calls) == 1


def test_zero_window_disables_everything():
    d, clock = make(window=0)
    d.note_trouble()
    assert not d.active
    assert not d.must_check(Row(received_at=clock.wall), checked_ms=0)


def test_transaction_numbers():
    d, clock = make()
    d.record("12", clock.wall)
    d.record("7", clock.wall)  # late: the highest stays
    d.record("not-a-number", clock.wall)
    assert d.last_txn == 12
    assert Disruptions.number("abc") is None
    assert Disruptions.number("1" * 20) is None


async def test_watch_notes_failures_and_the_return():
    d, clock = make()
    returns = []
    d.on_recovered.append(lambda: returns.append(True))
    answers = [True, False, False, True, True]

    async def probe() -> None:
        if not answers.pop(0):
            raise ConnectionRefusedError

    watch = HomeserverWatch(d, probe, interval=0.01, timeout=1)
    assert await watch.check()
    assert not d.active
    assert not await watch.check()
    assert d.active
    assert not await watch.check()
    assert await watch.check()
    assert await watch.check()
    assert returns == [True]


async def test_watch_treats_a_hanging_probe_as_trouble():
    d, _ = make()

    async def probe() -> None:
        await asyncio.sleep(10)

    watch = HomeserverWatch(d, probe, interval=0.01, timeout=0.05)
    assert not await watch.check()
    assert d.active


async def test_watch_runs_in_the_background_and_stops():
    d, _ = make()
    probes = []

    async def probe() -> None:
        probes.append(1)
        raise OSError

    watch = HomeserverWatch(d, probe, interval=0.01, timeout=1)
    watch.start()
    async with asyncio.timeout(30):  # only a failure waits this long
        while len(probes) < 2:
            await asyncio.sleep(0.01)
    await watch.stop()
    assert d.active and watch._task is None
    disabled = HomeserverWatch(d, probe, interval=0, timeout=1)
    disabled.start()
    assert disabled._task is None


def test_a_gap_within_the_window_asks_for_another_check():
    d, clock = make()
    d.record("10", clock.wall)
    d.record("12", clock.wall)  # outside a disruption a gap is another appservice's
    assert d.marks == []
    d.note_trouble()
    clock.advance(2)
    d.note_recovered()
    d.record("13", clock.wall)
    first_check = clock.wall
    clock.advance(1)
    # A transaction created during the homeserver's recovery was never sent: 14 is missing.
    d.record("15", clock.wall)
    gapped = Row(received_at=clock.wall)
    assert d.must_check(gapped, checked_ms=first_check)
    assert d.portal_is_behind(checked_ms=first_check)
    # Events from before the gap do not wait for it.
    assert not d.must_check(Row(received_at=first_check), checked_ms=first_check)
    clock.advance(1)
    assert not d.must_check(gapped, checked_ms=clock.wall)
    # Consecutive numbers add nothing.
    d.record("16", clock.wall)
    assert not d.must_check(Row(received_at=clock.wall), checked_ms=clock.wall)


def test_a_second_failure_in_the_window_asks_for_another_check():
    d, clock = make()
    d.note_trouble()
    clock.advance(5)
    checked = clock.wall
    clock.advance(5)
    d.note_trouble()
    assert d.must_check(Row(received_at=clock.wall), checked_ms=checked)


async def test_watch_sees_a_restart_between_two_probes_by_the_renewed_connection():
    """A homeserver restart quicker than the probe interval closes the probe's connection:
    the next probe answers on a new one, and that is a disruption."""
    d, _ = make()
    connections = [1, 1, 1, 2, 2, None, None]

    async def probe() -> int | None:
        return connections.pop(0)

    watch = HomeserverWatch(d, probe, interval=0.01, timeout=1)
    for _ in range(3):
        assert await watch.check()
    assert not d.active
    assert await watch.check()  # a new connection: the old one was closed
    assert d.active and d.marks
    marks = list(d.marks)
    assert await watch.check()  # the same connection again: nothing new
    assert d.marks == marks
    # A probe that cannot tell its connection never counts as a renewal.
    assert await watch.check() and await watch.check()
    assert d.marks == marks


async def test_watch_does_not_count_the_reconnect_after_a_failure_twice():
    d, _ = make()
    answers: list[object] = [1, OSError(), 2, 2]

    async def probe() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watch = HomeserverWatch(d, probe, interval=0.01, timeout=1)
    assert await watch.check()
    assert not await watch.check()
    marks = list(d.marks)
    assert await watch.check()  # back, on a new connection: the same disruption
    assert d.marks == marks
    assert await watch.check()
    assert d.marks == marks


def test_a_start_is_a_disruption_that_ends_when_the_homeserver_answers():
    d, clock = make(window=60)
    calls = []
    d.on_recovered.append(lambda: calls.append(clock.now))
    before = Row(received_at=clock.wall - 1)  # stored by the process before this one
    d.note_start()
    assert d.active
    clock.advance(1)
    held = Row(received_at=clock.wall)  # a transaction of the homeserver's recovery
    assert not d.must_check(before, checked_ms=0)
    assert d.must_check(held, checked_ms=0)
    d.note_recovered()
    assert len(calls) == 1
    assert d.remaining() == 60
    clock.advance(45)
    assert d.remaining() == 15
    # Just before the window closes: every portal checks once more.
    checked = clock.wall
    assert not d.portal_is_behind(checked_ms=checked)
    clock.advance(1)
    assert d.ask_again()
    assert d.portal_is_behind(checked_ms=checked)
    clock.advance(15)
    assert not d.active
    assert d.remaining() == 0
    assert not d.ask_again()


def test_a_start_checks_nothing_with_the_window_off():
    d, clock = make(window=0)
    d.note_start()
    assert not d.active
    assert not d.must_check(Row(received_at=clock.wall), checked_ms=0)


def test_a_new_connection_holds_what_comes_over_it_for_one_check():
    d, clock = make(window=60)
    calls = []
    d.on_recovered.append(lambda: calls.append(clock.now))
    sent_on = Row(received_at=clock.wall - 1)
    d.note_new_connection()
    # What comes over it waits for its portal's check; what came before does not.
    assert d.active
    came = Row(received_at=clock.wall)
    assert d.must_check(came, checked_ms=0)
    assert not d.must_check(sent_on, checked_ms=0)
    assert not d.must_check(came, checked_ms=clock.wall)
    # Only the portals with events check: no sweep of every portal is started.
    assert calls == []
    # A second new connection in the window: what comes over it is checked again.
    checked = clock.wall
    clock.advance(10)
    d.note_new_connection()
    assert d.must_check(Row(received_at=clock.wall), checked_ms=checked)
    clock.advance(61)
    assert not d.active


def test_a_new_connection_holds_nothing_with_the_window_off():
    d, clock = make(window=0)
    d.note_new_connection()
    assert not d.active
    assert not d.must_check(Row(received_at=clock.wall), checked_ms=0)
