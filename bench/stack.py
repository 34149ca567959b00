"""The real stack for one benchmark run, all on 127.0.0.1.

A private PostgreSQL cluster (the bridge's database), one Synapse (SQLite, the test
template) with three appservice registrations written before it starts (the measured
bridge, the scale-test bridge and a no-op listener), the Teams simulator in its own
process, the no-op listener in its own process, and the bridge as `python -m teams_bridge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from tests.e2e.bridge_process import BridgeProcess, build_config
from tests.fake_teams.control import ControlClient
from tests.fake_teams.endpoints import endpoints_for
from tests.harness import (
    AppserviceRegistration,
    PostgresCluster,
    SynapseServer,
    write_registration,
)

from . import procfs

log = logging.getLogger("bench.stack")

SERVER_NAME = "localhost"
REPO = Path(__file__).resolve().parents[1]

# Simulator settings. `seed` makes runs repeatable. `server_heartbeat_interval`: the
# simulator sends `2::` every 30 s by default and echoes every `2::` it receives, and the
# bridge echoes every `2::` too, so 30 s after connecting each Trouter connection turns into
# an endless heartbeat ping-pong that keeps both processes busy (see docs/benchmarks.md).
# The benchmark keeps server heartbeats out of its runs (the bridge's own pings still flow);
# `--sim-set server_heartbeat_interval=30` puts them back.
SIM_OPTIONS: dict[str, Any] = {
    "seed": 20240601,
    "device_code_interval": 1,
    "server_heartbeat_interval": 86400,
}


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark process dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Helper:
    """A helper process (`python -m bench.X`) that prints one JSON line once it listens."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(self.log_path, "wb"),  # noqa: SIM115 (the child keeps it)
            env={**os.environ, **env},
            preexec_fn=_die_with_parent,
        )
        self.info: dict[str, Any] = {}

    def ready(self, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.strip().startswith(b"{"):
                self.info = json.loads(line)
                return self.info
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LongPoll:
    """Follows a helper's `/_bench/...` long-poll route and keeps what it returns."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.session = session
        self.url = url
        self.key = key
        self.items: list[Any] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self.on_item: Any = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"poll {self.url}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                params = {"since": str(len(self.items)), "timeout": "10"}
                async with self.session.get(
                    self.url, params=params, timeout=aiohttp.ClientTimeout(total=30)
                ) as resp:
                    data = await resp.json()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the helper is still there; retry after a pause
                log.debug("long poll %s failed: %s", self.url, e)
                await asyncio.sleep(0.2)
                continue
            new = data[self.key]
            if new:
                for item in new:
                    self.items.append(item)
                    if self.on_item:
                        self.on_item(item)
                async with self._changed:
                    self._changed.notify_all()

    async def wait(self, find: Any, timeout: float, what: str) -> Any:
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while True:
                        found = find()
                        if found is not None and found is not False:
                            return found
                        await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None


class MarkTimes(LongPoll):
    """marker -> first arrival time, from either helper."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        super().__init__(session, url, key)
        self.times: dict[str, float] = {}

    def note(self, marker: str | None, when: float) -> None:
        if marker and marker not in self.times:
            self.times[marker] = when

    async def wait_markers(self, markers: list[str], timeout: float) -> float:
        pending = set(markers)

        def find() -> float | None:
            for m in list(pending):
                if m in self.times:
                    pending.discard(m)
            return None if pending else max(self.times[m] for m in markers)

        try:
            return await self.wait(find, timeout, f"{len(markers)} markers at {self.url}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; {len(pending)} still missing") from None


EPHEMERAL_KEYS = ("de.sorunome.msc2409.push_ephemeral", "receive_ephemeral")
ENCRYPTION_KEYS = ("org.matrix.msc3202", "io.element.msc4190")


def _drop_keys(reg: AppserviceRegistration, keys: tuple[str, ...]) -> None:
    """Rewrite a registration file without these keys."""
    data = reg.as_dict()
    for key in keys:
        data.pop(key, None)
    reg.path.write_text(json.dumps(data, indent=2) + "\n")


@dataclass
class Bridge:
    """One bridge instance: its registration, database URL and process."""

    name: str
    registration: AppserviceRegistration
    database: str
    process: BridgeProcess | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.process and self.process.proc
        return self.process.proc.pid

    def puppet_mxid(self, mri: str) -> str:
        from teams_bridge.mxid import escape_mri

        return self.registration.puppet_mxid(escape_mri(mri))

    def rss_kib(self) -> int:
        return procfs.rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return procfs.cpu_seconds(self.pid)


class Stack:
    def __init__(
        self,
        workdir: Path | None = None,
        keep: bool = False,
        sim_options: dict[str, Any] | None = None,
        default_rate_limits: bool = False,
    ) -> None:
        self.keep = keep
        self.default_rate_limits = default_rate_limits
        self.sim_options = {**SIM_OPTIONS, **(sim_options or {})}
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="teams-bridge-bench-", dir=base))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.postgres: PostgresCluster | None = None
        self.synapse: SynapseServer | None = None
        self.sim: Helper | None = None
        self.noop: Helper | None = None
        self.noop_reg: AppserviceRegistration | None = None
        self.bridges: dict[str, Bridge] = {}
        self.session: aiohttp.ClientSession | None = None
        self.control: ControlClient | None = None
        self.sim_url = ""
        self.noop_url = ""
        self.sim_marks: MarkTimes | None = None
        self.noop_events: MarkTimes | None = None
        self.timings: dict[str, float] = {}
        self.config_notes: set[str] = set()

    # -- start -------------------------------------------------------------------------
    def _write_registrations(self) -> list[Path]:
        regdir = self.workdir / "appservices"
        bench = write_registration(regdir, "bench", "teamsbench", SERVER_NAME)
        scale = write_registration(regdir, "scale", "teamsscale", SERVER_NAME)
        history = write_registration(regdir, "history", "teamshistory", SERVER_NAME)
        standby = write_registration(regdir, "standby", "teamsstandby", SERVER_NAME)
        noop = write_registration(regdir, "noop", "benchnoop", SERVER_NAME)
        # The no-op listener: its ghosts sit in baseline rooms shaped like the portal rooms,
        # and Synapse hands it their events as it hands the bridge a portal's. It is not
        # interested in the portal rooms themselves: Synapse takes transaction ids from one
        # sequence shared by all appservices, and the bridge holds Matrix -> Teams messages
        # that follow a gap in its ids (see docs/benchmarks.md), so the two are kept apart.
        _drop_keys(noop, EPHEMERAL_KEYS + ENCRYPTION_KEYS)
        self.noop_reg = noop
        # The bridges run without encryption: registered as `-g` registers such a bridge
        # (ephemeral events, no appservice encryption). With MSC3202 on, Synapse counts
        # one-time keys for every transaction it sends (two more queries each).
        mine = {"bench": bench, "scale": scale, "history": history, "standby": standby}
        for name, reg in mine.items():
            _drop_keys(reg, ENCRYPTION_KEYS)
            self.bridges[name] = Bridge(name, reg, "")
        return [reg.path for reg in mine.values()] + [noop.path]

    async def start(self) -> None:
        began = time.monotonic()
        # Every process (bridge, simulator) runs the code of the tree this benchmark is in.
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        paths = self._write_registrations()
        assert self.noop_reg is not None
        self.sim = Helper(
            "simulator",
            [
                "bench.sim_server",
                *[f"--set={k}={json.dumps(v)}" for k, v in self.sim_options.items()],
            ],
            self.workdir,
            {},
        )
        self.noop = Helper(
            "noop_as",
            ["bench.noop_as", "--port", str(self.noop_reg.port)],
            self.workdir,
            {"BENCH_NOOP_HS_TOKEN": self.noop_reg.hs_token},
        )
        self.postgres = PostgresCluster()
        self.synapse = SynapseServer(
            self.workdir / "synapse",
            paths,
            server_name=SERVER_NAME,
            log_level="WARNING",
            default_rate_limits=self.default_rate_limits,
        )
        # Synapse's own metrics (on its client listener, loopback only) say what work it did:
        # how often its background processes ran and how many /sync answers it gave.
        self.synapse.write_config()
        config = self.synapse.config_path.read_text()
        assert "names: [client]" in config, "the homeserver template changed"
        config = config.replace("names: [client]", "names: [client, metrics]")
        self.synapse.config_path.write_text(config + "enable_metrics: true\n")
        await asyncio.gather(
            asyncio.to_thread(self.postgres.start), asyncio.to_thread(self.synapse.start)
        )
        self.sim_url = self.sim.ready()["url"]
        self.noop_url = self.noop.ready()["url"]
        for name, bridge in self.bridges.items():
            bridge.database = await asyncio.to_thread(self.postgres.create_database, name)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        self.control = ControlClient(self.sim_url, self.session)
        self.sim_marks = MarkTimes(self.session, f"{self.sim_url}/_bench/marks", "marks")
        self.sim_marks.on_item = lambda item: self.sim_marks.note(item[0], item[1])
        self.noop_events = MarkTimes(self.session, f"{self.noop_url}/_bench/events", "events")
        self.noop_events.on_item = lambda item: self.noop_events.note(item[6], item[0])
        self.sim_marks.start()
        self.noop_events.start()
        self.timings["stack_start_s"] = time.monotonic() - began
        log.info(
            "stack up in %.1fs: synapse %s, simulator %s, postgres on port %s",
            self.timings["stack_start_s"],
            self.synapse.url,
            self.sim_url,
            self.postgres.port,
        )

    # -- bridges -----------------------------------------------------------------------
    def bridge_config(self, bridge: Bridge) -> dict[str, Any]:
        assert self.synapse
        workdir = self.workdir / f"bridge-{bridge.name}"
        overrides = {
            # Production-like logging: INFO to a file (the shipped config logs DEBUG).
            "logging.root.level": "INFO",
            "logging.loggers.mau.level": "INFO",
            "logging.loggers.teams.level": "INFO",
            **bridge.overrides,
        }
        example = (REPO / "teams_bridge" / "example-config.yaml").read_text()
        if "matrix_order_hold_seconds" in example and "homeserver_watch_seconds" not in example:
            # Synapse numbers appservice transactions from one sequence shared by every
            # appservice, so after the no-op listener's turn the bridge sees gaps in its ids
            # that never fill; older bridge versions hold the next message for this long
            # (300 s by default). 0 stops that (see docs/benchmarks.md).
            overrides["bridge.matrix_order_hold_seconds"] = 0
            self.config_notes.add("matrix_order_hold_seconds")
        if "\n    spaces:" in example and "bridge.spaces" not in bridge.overrides:
            # The scenarios count portal invites; a space's invite is not one of them.
            overrides["bridge.spaces"] = False
            self.config_notes.add("spaces")
        return build_config(
            registration=bridge.registration,
            homeserver_url=self.synapse.url,
            server_name=SERVER_NAME,
            database=bridge.database,
            endpoints=endpoints_for(self.sim_url),
            log_file=workdir / "bridge.log",
            permissions={SERVER_NAME: "user"},
            overrides=overrides,
        )

    async def start_bridge(self, name: str, timeout: float = 120) -> Bridge:
        bridge = self.bridges[name]
        if bridge.process is None:
            workdir = self.workdir / f"bridge-{bridge.name}"
            bridge.process = BridgeProcess(workdir, self.bridge_config(bridge))
        await bridge.process.astart(timeout)
        return bridge

    def reconfigure_bridge(self, name: str) -> None:
        """Write a stopped bridge's config again from its (changed) overrides."""
        bridge = self.bridges[name]
        assert bridge.process is not None
        bridge.process.config = self.bridge_config(bridge)
        with bridge.process.config_path.open("w") as f:
            YAML().dump(bridge.process.config, f)

    async def stop_bridge(self, name: str) -> None:
        bridge = self.bridges[name]
        if bridge.process is not None:
            await bridge.process.astop()

    # -- helpers -----------------------------------------------------------------------
    async def registered(self, since: float = 0.0) -> int:
        assert self.session
        async with self.session.get(
            f"{self.sim_url}/_bench/registered", params={"since": repr(since)}
        ) as resp:
            return (await resp.json())["registered"]

    async def db_transactions(self, database: str) -> int:
        """Committed + rolled-back transactions of a bridge database so far (every statement
        outside an explicit transaction counts as one: a round trip's worth of work).
        PostgreSQL publishes these counters with a delay of about a second."""
        assert self.postgres
        out = await asyncio.to_thread(
            self.postgres.psql,
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            f"WHERE datname = '{database}'",
        )
        return int(out.strip() or 0)

    async def synapse_work(self) -> dict[str, float]:
        """Counters of Synapse's work so far: its database transactions (each new event,
        and each time one of its background processes - appservice notifier, user
        directory, stats, federation sender... - wakes up for new events, costs some) and
        its /sync answers. Unlike its CPU, these do not change with how fast the machine
        runs."""
        assert self.synapse and self.session
        async with self.session.get(f"{self.synapse.url}/_synapse/metrics") as resp:
            resp.raise_for_status()
            text = await resp.text()
        out = {"db_transactions": 0.0, "syncs": 0.0}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("synapse_storage_transaction_time_count_total{"):
                out["db_transactions"] += float(value)
            elif name.startswith("synapse_http_server_requests_received_total{") and (
                'servlet="SyncRestServlet"' in name
            ):
                out["syncs"] += float(value)
        return out

    async def settle_synapse(self) -> None:
        """Until Synapse is quiet (its background work after the last load done)."""
        if self.synapse and self.synapse.proc:
            await procfs.settle_cpu(self.synapse.proc.pid)

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds so far of Synapse, the Teams simulator and the PostgreSQL cluster (all
        backends)."""
        out: dict[str, float] = {}
        if self.synapse and self.synapse.proc:
            out["synapse"] = procfs.cpu_seconds(self.synapse.proc.pid)
        if self.sim and self.sim.proc.poll() is None:
            # The Teams side's CPU: busy only in the bridge's phases, on the same cores.
            out["simulator"] = procfs.cpu_seconds(self.sim.proc.pid)
        if self.postgres and self.postgres.running:
            try:
                pid = int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])
                out["postgres"] = procfs.tree_cpu_seconds(pid)
            except (OSError, ValueError):
                pass
        return out

    @staticmethod
    def cpu_per_message(
        before: dict[str, float], after: dict[str, float], messages: int
    ) -> dict[str, float]:
        return {
            f"{k}_cpu_ms_per_msg": round((after[k] - before[k]) * 1000 / messages, 2)
            for k in before
            if k in after
        }

    def noop_api(self) -> Any:
        """The no-op appservice's as_token: acts as any of its ghosts."""
        from .matrix import Api

        assert self.session and self.synapse and self.noop_reg
        return Api(self.session, self.synapse.url, self.noop_reg.as_token)

    def noop_ghost(self, name: str) -> str:
        assert self.noop_reg
        return self.noop_reg.puppet_mxid(name)

    async def register_user(self, localpart: str) -> tuple[str, str]:
        assert self.synapse
        return await self.synapse.register_user(localpart)

    # -- stop --------------------------------------------------------------------------
    async def stop(self) -> None:
        for poll in (self.sim_marks, self.noop_events):
            if poll:
                await poll.stop()
        for bridge in self.bridges.values():
            if bridge.process is not None:
                with contextlib.suppress(Exception):
                    await bridge.process.astop()
        if self.session:
            await self.session.close()
        for helper in (self.sim, self.noop):
            if helper:
                helper.stop()
        if self.synapse:
            self.synapse.stop()
        if self.postgres:
            self.postgres.stop()
        if not self.keep:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)
