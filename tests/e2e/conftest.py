"""Fixtures for end-to-end tests: the simulator in-process, the bridge as a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.e2e.bridge_process import BridgeProcess, build_config
from tests.fake_teams import FakeTeams
from tests.fake_teams.control import ControlClient


@pytest.fixture
async def fake_teams() -> AsyncIterator[FakeTeams]:
    sim = FakeTeams(device_code_interval=1)
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def control(fake_teams: FakeTeams) -> AsyncIterator[ControlClient]:
    client = ControlClient(fake_teams.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(params=["pg", "lite"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def bridge_database(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "pg":
        return request.getfixturevalue("postgres_database")
    return request.getfixturevalue("sqlite_database")


@pytest.fixture
async def bridge_factory(
    backend: str, bridge_database: str, synapse, fake_teams: FakeTeams, tmp_path: Path
) -> Callable[..., BridgeProcess]:
    """`make(permissions=None, overrides=None)`: a configured, not yet started bridge.

    Spaces and history are off unless a test turns them on (``{"bridge.spaces": True}``,
    ``{"bridge.backfill.initial_messages": 50}``): their invites and events would otherwise
    be among the ones every test waits for and counts."""
    processes: list[BridgeProcess] = []
    registration = synapse.appservices[backend]

    def make(**kwargs) -> BridgeProcess:
        kwargs["overrides"] = {
            "bridge.spaces": False,
            "bridge.backfill.initial_messages": 0,
            **(kwargs.get("overrides") or {}),
        }
        workdir = tmp_path / f"bridge{len(processes)}"
        config = build_config(
            registration=registration,
            homeserver_url=synapse.url,
            server_name=synapse.server_name,
            database=bridge_database,
            endpoints=fake_teams.endpoints(),
            log_file=workdir / "bridge.log",
            **kwargs,
        )
        process = BridgeProcess(workdir, config)
        processes.append(process)
        return process

    yield make
    for process in processes:
        await process.astop()
