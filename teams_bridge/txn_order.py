"""Keeps Matrix -> Teams in room order when the homeserver delivers transactions out of order.

Synapse numbers appservice transactions 1, 2, 3, … and retries a failed one later from a
recovery loop, while newer transactions keep flowing; after a homeserver restart a lost
transaction can arrive tens of seconds after its successors. Events of a transaction are
therefore held until every lower-numbered transaction has arrived (or `hold_seconds` has
passed, when the gap is given up on and logged). Homeservers whose transaction ids are not
numbers are not held.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from .db import KeyValue

if TYPE_CHECKING:
    from .db import MatrixEvent

log = logging.getLogger("mau.txn_order")
WATERMARK_KEY = "appservice_txn_watermark"


class Waiter(Protocol):
    def wake_outbound(self) -> None: ...


class TransactionOrder:
    def __init__(self, hold_seconds: float) -> None:
        self.hold_ms = int(hold_seconds * 1000)
        # Every transaction up to and including this number has arrived.
        self.watermark: int | None = None
        # Without a stored watermark (a new database) the first transactions can be stale
        # resends meant for an earlier installation: re-baseline until numbering is seen
        # advancing by one.
        self._fresh = False
        self._seen: set[int] = set()
        # Portals waiting for a gap to fill, by identity (portals are not hashable).
        self.waiters: dict[int, Waiter] = {}

    async def load(self) -> None:
        value = await KeyValue.get(WATERMARK_KEY)
        self.watermark = int(value) if value else None
        self._fresh = self.watermark is None

    @staticmethod
    def number(txn_id: str) -> int | None:
        return int(txn_id) if txn_id.isdigit() and len(txn_id) < 18 else None

    async def record(self, txn_id: str) -> None:
        """Note a stored transaction; release what it unblocks."""
        number = self.number(txn_id)
        if number is None:
            return
        if self.watermark is None or (self._fresh and number > self.watermark + 1):
            self.watermark = number - 1
        elif self._fresh and number == self.watermark + 1:
            self._fresh = False
        if number <= self.watermark:
            return
        self._seen.add(number)
        await self._advance()

    async def _advance(self) -> None:
        assert self.watermark is not None
        start = self.watermark
        while self.watermark + 1 in self._seen:
            self._seen.discard(self.watermark + 1)
            self.watermark += 1
        if self.watermark != start:
            await KeyValue.set(WATERMARK_KEY, str(self.watermark))
            self._wake()

    def add_waiter(self, waiter: Waiter) -> None:
        self.waiters[id(waiter)] = waiter

    def remove_waiter(self, waiter: Waiter) -> None:
        self.waiters.pop(id(waiter), None)

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, {}
        for waiter in waiters.values():
            waiter.wake_outbound()

    def is_held(self, row: MatrixEvent, floor: int = 0) -> bool:
        """Whether a transaction numbered at least `floor` and below this event's is missing."""
        if row.txn_seq is None or self.watermark is None or row.txn_seq <= self.watermark:
            return False
        start = max(self.watermark + 1, floor)
        return any(n not in self._seen for n in range(start, row.txn_seq))

    def hold_remaining(self, row: MatrixEvent) -> float:
        """Seconds this event must still wait for earlier transactions (0: deliver now)."""
        if row.txn_seq is None or self.watermark is None or row.txn_seq <= self.watermark:
            return 0.0
        waited = int(time.time() * 1000) - row.received_at
        return max(0.0, (self.hold_ms - waited) / 1000)
