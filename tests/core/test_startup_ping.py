"""The start-up appservice ping: a passing failure of the homeserver's own connection is
tried again, and a ping that reached the bridge counts whatever the homeserver answered."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest

from teams_bridge import startup
from teams_bridge.startup import RetriableStartupError, StartupError


def bridge_with(received: deque[str]) -> SimpleNamespace:
    return SimpleNamespace(az=SimpleNamespace(pings_received=received))


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(startup, "PING_RETRY_SECONDS", 0)


async def test_a_ping_that_arrived_counts_although_the_homeserver_reported_a_failure(
    monkeypatch,
):
    received: deque[str] = deque()
    tries: list[str] = []

    async def once(bridge, txn_id: str) -> None:
        tries.append(txn_id)
        received.append(txn_id)  # the bridge got it ...
        raise RetriableStartupError("M_CONNECTION_FAILED: AlreadyCalled", 16)  # ... but

    monkeypatch.setattr(startup, "_ping_once", once)
    await startup._ping(bridge_with(received))
    assert len(tries) == 1


async def test_a_connection_failure_is_tried_again_then_reported(monkeypatch):
    tries: list[str] = []

    async def once(bridge, txn_id: str) -> None:
        tries.append(txn_id)
        raise RetriableStartupError("the homeserver cannot reach the bridge", 16)

    monkeypatch.setattr(startup, "_ping_once", once)
    with pytest.raises(StartupError, match="cannot reach"):
        await startup._ping(bridge_with(deque()))
    assert len(tries) == startup.PING_ATTEMPTS and len(set(tries)) == len(tries)


async def test_a_wrong_token_is_not_tried_again(monkeypatch):
    tries: list[str] = []

    async def once(bridge, txn_id: str) -> None:
        tries.append(txn_id)
        raise StartupError("the homeserver's hs_token is not appservice.hs_token", 16)

    monkeypatch.setattr(startup, "_ping_once", once)
    with pytest.raises(StartupError, match="hs_token"):
        await startup._ping(bridge_with(deque()))
    assert len(tries) == 1
