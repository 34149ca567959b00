"""The bridge as a real subprocess (`python -m teams_bridge -c config.yaml`), for end-to-end tests.

The config is the shipped example config with the test stack's values filled in, so the
tests exercise the same config upgrade path an operator's config goes through.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "teams_bridge" / "example-config.yaml"
READY_LINE = "Startup actions complete"


def build_config(
    *,
    registration: Any,
    homeserver_url: str,
    server_name: str,
    database: str,
    endpoints: dict[str, str],
    log_file: Path,
    permissions: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    yaml = YAML()
    config = yaml.load(EXAMPLE_CONFIG.read_text())
    config["homeserver"]["address"] = homeserver_url
    config["homeserver"]["domain"] = server_name
    appservice = config["appservice"]
    appservice["address"] = registration.url
    appservice["hostname"] = "127.0.0.1"
    appservice["port"] = registration.port
    appservice["database"] = database
    appservice["id"] = registration.id
    appservice["bot_username"] = registration.bot_localpart
    appservice["as_token"] = registration.as_token
    appservice["hs_token"] = registration.hs_token
    config["bridge"]["username_template"] = f"{registration.prefix}_{{userid}}"
    config["bridge"]["permissions"] = permissions or {server_name: "user"}
    config["teams"]["endpoints"] = dict(endpoints)
    config["logging"]["handlers"]["file"]["filename"] = str(log_file)
    config["logging"]["root"]["handlers"] = ["file"]
    for dotted, value in (overrides or {}).items():
        node = config
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return config


@dataclass(frozen=True)
class RunResult:
    returncode: int
    output: str  # stdout and stderr
    log: str  # the bridge's log file


class BridgeProcess:
    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.yaml"
        self.log_path = Path(config["logging"]["handlers"]["file"]["filename"])
        self.output_path = self.workdir / "output.log"
        self.config = config
        self.proc: subprocess.Popen | None = None
        yaml = YAML()
        with self.config_path.open("w") as f:
            yaml.dump(config, f)

    def start(self, timeout: float = 60, ready: str = READY_LINE) -> None:
        """Start it and wait until its log shows `ready` (by default: started)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.output_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "teams_bridge", "-c", str(self.config_path), "-n"],
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"bridge exited with {self.proc.returncode}:\n{self.output_tail()}"
                )
            if self.log_path.exists():
                with self.log_path.open("rb") as f:
                    f.seek(offset)
                    if ready.encode() in f.read():
                        return
            time.sleep(0.1)
        raise TimeoutError(f"bridge did not start in {timeout}s:\n{self.output_tail()}")

    def run_once(self, timeout: float = 60) -> RunResult:
        """Run the bridge to its exit (for a setup it must refuse to start with)."""
        result = subprocess.run(
            [sys.executable, "-m", "teams_bridge", "-c", str(self.config_path), "-n"],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return RunResult(result.returncode, result.stdout + result.stderr, log)

    async def arun_once(self, timeout: float = 60) -> RunResult:
        return await asyncio.to_thread(self.run_once, timeout)

    def stop(self, timeout: float = 20) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # The simulator usually runs in the test's event loop: never block it while waiting.
    async def astart(self, timeout: float = 60, ready: str = READY_LINE) -> None:
        await asyncio.to_thread(self.start, timeout, ready)

    async def astop(self, timeout: float = 20) -> None:
        await asyncio.to_thread(self.stop, timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if self.output_path.exists():
            text += self.output_path.read_text(errors="replace")
        return text

    def output_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
