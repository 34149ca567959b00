"""Finished Matrix events are forgotten after a while.

`matrix_event` is a queue. Once an event is done or failed, what it records is needed only
by the timeline check after a homeserver disruption (which must recognise the events it
already stored, back to a minute before the disruption began); where a bridged message came
from is in `message.origin`. So finished events are deleted once they are older than
`bridge.matrix_event_retention_hours`, at start and then every hour, but never one a
disruption check may still look back to. Pending events are never deleted.

The send records of posts (`sent_message`: a clientmessageid, the Matrix event it was
posted for) go by the same cutoff, except those whose event is still pending. A delivered
post is recognised by its mapping in `message`, so its record is needed only while its
echo or a retry can still come.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import db as dbm

if TYPE_CHECKING:
    from ..disruption import Disruptions

log = logging.getLogger("mau.delivery.prune")

# Seconds between two prunings.
PRUNE_INTERVAL = 3600.0
HOUR_MS = 3_600_000


def prune_before(now_ms: int, retention_hours: float, disruptions: Disruptions) -> int | None:
    """Finished events received before this (epoch ms) may go; None: keep every one."""
    if not retention_hours or retention_hours <= 0:
        return None
    cutoff = now_ms - int(retention_hours * HOUR_MS)
    if disruptions.active:
        # Portals may still compare their timelines back to here.
        cutoff = min(cutoff, disruptions.lookback_ms)
    return cutoff


class QueuePruner:
    def __init__(
        self,
        retention_hours: float,
        disruptions: Disruptions,
        *,
        interval: float = PRUNE_INTERVAL,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.retention_hours = float(retention_hours or 0)
        self.disruptions = disruptions
        self.interval = interval
        self.wall_ms = wall_ms
        self._task: asyncio.Task | None = None

    async def prune(self) -> int:
        """Delete what may go now; how many events were deleted."""
        cutoff = prune_before(self.wall_ms(), self.retention_hours, self.disruptions)
        if cutoff is None:
            return 0
        deleted = await dbm.MatrixEvent.prune(cutoff)
        forgotten = await dbm.MatrixEvent.prune_sent(cutoff)
        if deleted or forgotten:
            log.debug("Forgot %d delivered Matrix events, %d send records", deleted, forgotten)
        return deleted

    def start(self) -> None:
        if self.retention_hours > 0 and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception as e:
                log.warning("Could not prune delivered Matrix events: %s", e)
            await asyncio.sleep(self.interval)
