"""Fixtures for the protocol-client tests: an HTTP session and the Teams simulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from teams_bridge.teams import (
    AccountKind,
    AuthClient,
    Credentials,
    Endpoints,
    TeamsClient,
    TrouterConfig,
)

from .fakes import FAST_RETRY


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Sim:
    """A running simulator, its control client and ready-made users."""

    server: Any
    control: Any
    endpoints: Endpoints


SimFactory = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def sim_factory() -> AsyncIterator[SimFactory]:
    """``await make(**options)``: a started simulator with the given ``SimOptions``."""
    fake_teams = pytest.importorskip("tests.fake_teams")
    control_mod = pytest.importorskip("tests.fake_teams.control")
    started: list[Sim] = []

    async def make(**options: Any) -> Sim:
        options.setdefault("device_code_interval", 0)
        server = fake_teams.FakeTeams(**options)
        await server.start(port=0)
        control = control_mod.ControlClient(server.url)
        sim = Sim(server, control, Endpoints.from_dict(server.endpoints()))
        started.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in started:
            await sim.control.close()
            await sim.server.stop()


@pytest.fixture
async def sim(sim_factory: SimFactory) -> Sim:
    return await sim_factory()


FAST_TROUTER = TrouterConfig(
    ping_interval=1.0, pong_timeout=2.0, backoff_initial=0.05, backoff_max=0.2
)


async def device_login(
    session: aiohttp.ClientSession, sim: Sim, mri: str, kind: AccountKind = AccountKind.ENTERPRISE
) -> Credentials:
    """Log ``mri`` in through the device-code flow, approving it via the control API."""
    auth = AuthClient(session, sim.endpoints, policy=FAST_RETRY)
    flow = await auth.start_device_code(kind)
    await sim.control.approve_device_code(flow.user_code, mri)
    return await auth.poll_device_code(flow)


async def logged_in_client(
    session: aiohttp.ClientSession,
    sim: Sim,
    mri: str,
    *,
    kind: AccountKind = AccountKind.ENTERPRISE,
    rotated: list[Credentials] | None = None,
    endpoint_id: str | None = None,
) -> TeamsClient:
    creds = await device_login(session, sim, mri, kind)

    async def remember(new: Credentials) -> None:
        if rotated is not None:
            rotated.append(new)

    return TeamsClient(
        session,
        sim.endpoints,
        creds,
        endpoint_id=endpoint_id or str(uuid.uuid4()),
        on_credentials_changed=remember,
        retry_policy=FAST_RETRY,
        trouter_config=FAST_TROUTER,
    )
