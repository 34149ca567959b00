"""Homeserver disruptions, and what Matrix -> Teams does about them.

A healthy Synapse sends an appservice every event, in order, and retries a failed
transaction before anything newer. Around a disruption that breaks down: after a homeserver
restart a transaction in flight can arrive long after its successors, and events sent in the
first moments after start-up can be skipped; after the appservice failed a transaction (e.g.
its database was restarting), Synapse's recovery can leave a transaction created during it
unsent. Transaction numbers alone cannot tell: they come from one sequence shared by every
appservice on the homeserver, so gaps are normal.

So the bridge notes disruptions: the homeserver not answering its probes
(`HomeserverWatch`), a transaction over a new connection (a restarted homeserver's first
one can come before a probe notices the restart), the bridge failing to store a
transaction, or the bridge starting (the homeserver then resends what it kept while no
process answered, and the end of that recovery can strand a transaction just as after a
failed one). For `window_seconds` afterwards, each portal compares its room's timeline with
what it has stored before sending anything received since the disruption began, and stores
the user's events it never got, in timeline order (`Portal.reconcile`); within the window, a gap in the transaction numbers asks
for another such check before anything newer is sent. Portals with nothing new check shortly
after the disruption ends, and once more just before the window closes (a recovery with much
to resend ends, and can strand a transaction, well after it began). Outside the window
nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .db import MatrixEvent

log = logging.getLogger("mau.disruption")

# Events older than the disruption's start by more than this cannot have been lost in it.
LOOKBACK_MS = 60_000


class Disruptions:
    def __init__(
        self,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.window = float(window_seconds)
        self.clock = clock
        self.wall_ms = wall_ms
        # Wall-clock ms when the current (or last) disruption began.
        self.started_ms: int | None = None
        # Wall-clock ms of each reason to check the timeline in the current window (the
        # disruption, then every gap in transaction numbers), ascending.
        self.marks: list[int] = []
        # When the homeserver was last seen failing or coming back (clock seconds).
        self._last_change: float | None = None
        # The highest transaction number stored so far.
        self.last_txn: int | None = None
        self.on_recovered: list[Callable[[], object]] = []

    @staticmethod
    def number(txn_id: str) -> int | None:
        """A transaction id as a number, when the homeserver numbers them."""
        return int(txn_id) if txn_id.isdigit() and len(txn_id) < 18 else None

    def record(self, txn_id: str, received_ms: int) -> None:
        """Note a stored transaction whose events were stamped `received_ms`."""
        number = self.number(txn_id)
        if number is None:
            return
        if self.last_txn is not None and number > self.last_txn + 1 and self.active:
            # A transaction below this one may be lost: look again before sending on.
            self._mark(received_ms)
        if self.last_txn is None or number > self.last_txn:
            self.last_txn = number

    def _mark(self, ms: int) -> None:
        if not self.marks or ms > self.marks[-1]:
            self.marks.append(ms)

    @property
    def active(self) -> bool:
        if self._last_change is None or self.window <= 0:
            return False
        return self.clock() - self._last_change < self.window

    def note_trouble(self) -> None:
        """The homeserver did not answer, or a transaction could not be stored."""
        self._disrupted("Disruption: portals will check their room timelines before sending on")

    def note_new_connection(self) -> None:
        """A transaction came over a connection the homeserver had not used before.

        A restarted homeserver's first transaction does, and can come before the watch
        notices the restart (it probes every few seconds), carrying events sent after the
        restart while events sent just before it were lost with it. Those events wait for
        their portal's check, as after any disruption, so nothing newer passes the lost
        ones. A connection closed while idle and opened again looks the same: the cost is
        one page of the timeline per portal with new events (no sweep of every portal).
        """
        self._disrupted(
            "The homeserver opened a new connection: portals check their timelines before "
            "sending what came over it",
            level=logging.DEBUG,
        )

    def _disrupted(self, begins: str, level: int = logging.INFO) -> None:
        """A disruption begins now (logged with `begins`), or the current one goes on."""
        if self.window <= 0:
            return
        now = self.wall_ms()
        if not self.active:
            self.started_ms = now
            self.marks = []
            log.log(level, begins)
        # Events received from now on need a check made after this moment.
        self._mark(now)
        self._last_change = self.clock()

    def note_start(self) -> None:
        """This process is starting. While no process answered, the homeserver kept what it
        could not deliver and sends it once the bridge answers, and a transaction it creates
        while that recovery ends can be left unsent (Synapse). So a start is a disruption
        that begins now; `note_recovered` once the homeserver answers."""
        self._disrupted("Starting: portals check their room timelines once before sending on")

    def ask_again(self) -> bool:
        """Every portal checks its timeline once more, if the window is open (whether it is)."""
        if not self.active:
            return False
        self._mark(self.wall_ms())
        return True

    def remaining(self) -> float:
        """Seconds until the window closes (0 when it is not open)."""
        if not self.active:
            return 0.0
        assert self._last_change is not None  # (an open window has one)
        return max(0.0, self.window - (self.clock() - self._last_change))

    def note_recovered(self) -> None:
        """The homeserver answers again; the window runs from now."""
        if self.started_ms is None or not self.active:
            return
        self._last_change = self.clock()
        for callback in self.on_recovered:
            callback()

    @property
    def lookback_ms(self) -> int:
        """Timeline events older than this (wall ms) were not lost in the disruption."""
        return (self.started_ms or 0) - LOOKBACK_MS

    def must_check(self, row: MatrixEvent, checked_ms: int) -> bool:
        """Whether `row` waits for its portal to check the timeline (last done at `checked_ms`)."""
        if not self.active:
            return False
        # The latest reason to check that the event is not older than.
        mark = next((m for m in reversed(self.marks) if m <= row.received_at), None)
        return mark is not None and checked_ms < mark

    def portal_is_behind(self, checked_ms: int) -> bool:
        return self.active and bool(self.marks) and checked_ms < self.marks[-1]


# A probe answers which connection it used (any value; None: it cannot tell).
Probe = Callable[[], Awaitable[object]]


class HomeserverWatch:
    """Probes the homeserver every `interval` seconds; a failed probe is a disruption.

    A homeserver restart takes seconds, but a quick one can fall between two probes. So the
    probe also says which connection it used: it keeps one open, and a restarted server has
    closed it, so a probe that had to open a new connection is a disruption too.
    """

    def __init__(
        self, disruptions: Disruptions, probe: Probe, interval: float, timeout: float
    ) -> None:
        self.disruptions = disruptions
        self.probe = probe
        self.interval = interval
        self.timeout = timeout
        self._task: asyncio.Task | None = None
        self._down = False
        self._connection: object = None

    def start(self) -> None:
        if self.interval > 0 and self.disruptions.window > 0 and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def check(self) -> bool:
        """Probe once and note the result. Whether the homeserver answered."""
        try:
            connection = await asyncio.wait_for(self.probe(), timeout=self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.disruptions.note_trouble()
            if not self._down:
                log.warning("The homeserver does not answer: %s", type(e).__name__)
            self._down = True
            self._connection = None
            return False
        renewed = (
            not self._down
            and connection is not None
            and self._connection is not None
            and connection != self._connection
        )
        self._connection = connection
        if renewed:
            log.info("The homeserver closed the probe's connection (a restart?)")
            self.disruptions.note_trouble()
            self.disruptions.note_recovered()
        elif self._down:
            log.info("The homeserver answers again")
            self.disruptions.note_recovered()
        self._down = False
        return True

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
