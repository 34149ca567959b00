"""Fixtures: a running simulator, an HTTP session and a control client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fake_teams import ControlClient, FakeTeams


@pytest.fixture
def sim_options() -> dict[str, object]:
    """Override in a module (or parametrize) to start the simulator differently."""
    return {}


@pytest.fixture
async def sim(sim_options: dict[str, object]) -> AsyncIterator[FakeTeams]:
    fake = FakeTeams(**{"seed": 1, "redelivery_timeout": 0.5, **sim_options})
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def control(sim: FakeTeams, http: aiohttp.ClientSession) -> ControlClient:
    return ControlClient(sim.url, http)
