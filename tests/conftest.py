"""Shared fixtures: a private PostgreSQL cluster, a real Synapse with the bridges'
appservice registrations, and real Matrix clients.

The long-lived servers are synchronous, session-scoped subprocess fixtures, so they work
with any event loop scope; everything async (Matrix clients) is function-scoped.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `tests.harness` also when pytest is started outside the repo
    sys.path.insert(0, str(_ROOT))

from tests.harness import (  # noqa: E402
    AppserviceRegistration,
    MatrixTestClient,
    PostgresCluster,
    SynapseServer,
    write_double_puppet_registration,
    write_registration,
)

# Property tests judge what comes out, not how fast: no per-example deadline (200 ms by
# default), which the first example's warm-up or a busy machine can overrun.
settings.register_profile("teams-bridge", deadline=None)
settings.load_profile("teams-bridge")

SERVER_NAME = "localhost"

# Appservice registrations the session homeserver knows: name -> user prefix. One bridge
# instance can run on PostgreSQL ("pg") and one on SQLite ("lite") against the same Synapse.
# Synapse reads registrations only at start-up, so add names here, not in a test.
APPSERVICES: dict[str, str] = {"pg": "teamspg", "lite": "teamslite"}

_started: dict[str, float] = {}


def write_registrations(
    directory: Path, appservices: dict[str, str], server_name: str = SERVER_NAME
) -> dict[str, AppserviceRegistration]:
    """Write one registration file per name (fresh tokens, a reserved port for each)."""
    return {
        name: write_registration(directory, name, prefix, server_name)
        for name, prefix in appservices.items()
    }


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster per test session."""
    cluster = PostgresCluster()
    cluster.start()
    _started.setdefault("postgres", cluster.start_seconds or 0.0)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_database(postgres: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database for this test; its `postgres://` URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres.create_database(name)
    yield url
    if postgres.running:
        try:
            postgres.drop_database(name)
        except RuntimeError:
            pass


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    """A SQLite database URL in this test's tmp dir, in the form mautrix expects."""
    return f"sqlite:{tmp_path / 'bridge.db'}"


@pytest.fixture(scope="session")
def appservices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AppserviceRegistration]:
    """The session homeserver's appservice registrations, keyed by name ("pg", "lite")."""
    return write_registrations(tmp_path_factory.mktemp("appservices"), APPSERVICES)


@pytest.fixture(scope="session")
def synapse(
    tmp_path_factory: pytest.TempPathFactory, appservices: dict[str, AppserviceRegistration]
) -> Iterator[SynapseServer]:
    """The session's Synapse; `synapse.appservices` are the registrations it loaded."""
    # Lets a bridge log in as the real users (double puppeting, `as_token:` method).
    double_puppet = write_double_puppet_registration(
        tmp_path_factory.mktemp("doublepuppet"), SERVER_NAME
    )
    server = SynapseServer(
        tmp_path_factory.mktemp("synapse"),
        [reg.path for reg in appservices.values()] + [double_puppet.path],
        server_name=SERVER_NAME,
    )
    server.appservices = appservices
    server.double_puppet = double_puppet
    server.start()
    _started.setdefault("synapse", server.start_seconds or 0.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def synapse_factory(tmp_path: Path) -> Iterator[Callable[..., SynapseServer]]:
    """Private homeservers for one test (e.g. with other registrations); stopped after it."""
    servers: list[SynapseServer] = []

    def make(
        appservices: dict[str, str] | None = None,
        server_name: str = SERVER_NAME,
        **kwargs: Any,
    ) -> SynapseServer:
        workdir = tmp_path / f"synapse{len(servers)}"
        regs = write_registrations(workdir / "appservices", appservices or {}, server_name)
        server = SynapseServer(
            workdir, [r.path for r in regs.values()], server_name=server_name, **kwargs
        )
        server.appservices = regs
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
async def matrix_client_factory(
    synapse: SynapseServer,
) -> AsyncIterator[Callable[..., Awaitable[MatrixTestClient]]]:
    """`await make(localpart=None, **kw)`: a registered, logged-in, syncing Matrix user."""
    clients: list[MatrixTestClient] = []

    async def make(
        localpart: str | None = None, *, server: SynapseServer | None = None, **kwargs: Any
    ) -> MatrixTestClient:
        localpart = localpart or f"user_{uuid.uuid4().hex[:10]}"
        client = await MatrixTestClient.create(server or synapse, localpart, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def matrix_user(
    matrix_client_factory: Callable[..., Awaitable[MatrixTestClient]],
) -> MatrixTestClient:
    """A fresh Matrix user (random localpart) on the session Synapse."""
    return await matrix_client_factory()


# With pytest-xdist the servers start in the workers: each hands its times to the controller.
_workers_started: dict[str, dict[str, float]] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["harness_started"] = dict(_started)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    started = getattr(node, "workeroutput", {}).get("harness_started")
    if started:
        _workers_started[node.gateway.id] = started


def pytest_terminal_summary(terminalreporter: Any) -> None:
    runs = dict(_workers_started)
    if _started:
        runs[""] = _started
    for worker, started in sorted(runs.items()):
        parts = ", ".join(f"{name} started in {secs:.2f}s" for name, secs in started.items())
        terminalreporter.write_line(f"harness{f' ({worker})' if worker else ''}: {parts}")


@pytest.fixture(params=["aiohttp", "lean"])
async def lean(request: Any) -> AsyncIterator[Any]:
    """Requests made both ways: through aiohttp's session (None) or through `lean_http`."""
    from teams_bridge.teams.lean_http import LeanHttp

    if request.param == "aiohttp":
        yield None
        return
    client = LeanHttp()
    yield client
    await client.close()
