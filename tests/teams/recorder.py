"""Collects Trouter callbacks so simulator tests can wait for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from teams_bridge.teams import EventMessage, Message, TrouterState


class Recorder:
    """Collects Trouter callbacks and lets a test wait for a matching one."""

    def __init__(self) -> None:
        self.events: list[EventMessage] = []
        self.states: list[tuple[TrouterState, str | None]] = []
        self.resyncs = 0
        self._changed = asyncio.Condition()

    async def on_event(self, event: EventMessage) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def on_state(self, state: TrouterState, error: str | None) -> None:
        async with self._changed:
            self.states.append((state, error))
            self._changed.notify_all()

    async def on_resync(self) -> None:
        async with self._changed:
            self.resyncs += 1
            self._changed.notify_all()

    async def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(check(), timeout)

    def messages(self, conv_id: str, resource_type: str | None = None) -> list[Message]:
        """Pushed messages of one conversation, in arrival order."""
        return [
            e.message
            for e in self.events
            if e.message is not None
            and e.message.conversation_id == conv_id
            and (resource_type is None or e.resource_type == resource_type)
        ]

    def message_events(self, conv_id: str) -> list[EventMessage]:
        return [
            e for e in self.events if e.message is not None and e.message.conversation_id == conv_id
        ]
