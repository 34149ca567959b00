"""A real Synapse homeserver as a subprocess, on 127.0.0.1, with a SQLite database.

Synapse lives in its own virtualenv (see `.ci/run`), found at
`${TEAMS_BRIDGE_CACHE:-~/.cache/teams-bridge}/synapse-venv` or via `$SYNAPSE_PYTHON`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import string
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .ports import free_port

TEMPLATE = Path(__file__).with_name("homeserver.template.yaml")

LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {log_file}
    encoding: utf8
root:
  level: {level}
  handlers: [file]
loggers:
  synapse.storage.SQL:
    level: WARNING
  twisted:
    level: WARNING
disable_existing_loggers: false
"""


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the test process dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def cache_dir() -> Path:
    env = os.environ.get("TEAMS_BRIDGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "teams-bridge"


def synapse_python() -> Path:
    """The interpreter of Synapse's own virtualenv."""
    env = os.environ.get("SYNAPSE_PYTHON")
    python = Path(env) if env else cache_dir() / "synapse-venv" / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"Synapse's virtualenv is missing ({python}); run .ci/run to create it")
    return python


def registration_mac(shared_secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """HMAC-SHA1 for /_synapse/admin/v1/register."""
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + user.encode() + b"\x00" + password.encode() + b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


class SynapseServer:
    """One Synapse: `start()`, `stop()`, `restart()` (same port and data), `kill()`."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        appservice_registration_files: Iterable[str | os.PathLike[str]] = (),
        server_name: str = "localhost",
        *,
        port: int | None = None,
        log_level: str = "INFO",
        extra_config: dict[str, Any] | None = None,
        default_rate_limits: bool = False,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.server_name = server_name
        self.appservice_registration_files = [
            str(Path(p).resolve()) for p in appservice_registration_files
        ]
        self.port = port or free_port()
        self.log_level = log_level
        self.extra_config = extra_config or {}
        # Synapse's own rate limits instead of the template's raised ones.
        self.default_rate_limits = default_rate_limits
        self.registration_shared_secret = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        # Registrations this server loaded, by name (filled in by whoever wrote them).
        self.appservices: dict[str, Any] = {}
        self.double_puppet: Any = None
        self._configured = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "homeserver.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "stderr.log"

    def mxid(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # configuration
    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "media_store").mkdir(exist_ok=True)
        values = {
            "server_name": self.server_name,
            "port": str(self.port),
            "workdir": str(self.workdir),
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            "registration_shared_secret": self.registration_shared_secret,
            "app_service_config_files": json.dumps(self.appservice_registration_files),
        }
        text = string.Template(TEMPLATE.read_text()).substitute(values)
        if self.default_rate_limits:
            text = _without_rate_limits(text)
        if self.extra_config:
            # JSON is YAML; later top-level keys replace earlier ones in Synapse's loader,
            # but drop the template's copy anyway so the file stays unambiguous.
            kept = [
                line
                for line in text.splitlines()
                if not any(line.startswith(f"{key}:") for key in self.extra_config)
            ]
            text = "\n".join(kept) + "\n"
            for key, value in self.extra_config.items():
                text += f"{key}: {json.dumps(value)}\n"
        self.config_path.write_text(text)
        self.config_path.chmod(0o600)
        (self.workdir / "log.config").write_text(
            LOG_CONFIG.format(log_file=self.log_path, level=self.log_level)
        )
        key_path = self.workdir / "signing.key"
        if not key_path.exists():
            seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
            key_path.write_text(f"ed25519 a_{secrets.token_hex(2)} {seed}\n")
            key_path.chmod(0o600)
        self._configured = True

    # lifecycle
    def start(self, timeout: float = 90) -> SynapseServer:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("Synapse is already running")
        if not self._configured:
            self.write_config()
        began = time.monotonic()
        stderr = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    str(synapse_python()),
                    "-m",
                    "synapse.app.homeserver",
                    "-c",
                    str(self.config_path),
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            stderr.close()
        self._wait_ready(timeout)
        self.start_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Synapse exited with {self.proc.returncode} while starting\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"Synapse did not answer within {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20) -> None:
        """Graceful stop (SIGTERM); SIGKILL if it does not exit in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash it: SIGKILL, no shutdown."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, timeout: float = 90) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        out = []
        for path in (self.stderr_path, self.log_path):
            if path.exists():
                out.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def __enter__(self) -> SynapseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # users
    async def register_user(
        self, localpart: str, password: str | None = None, admin: bool = False
    ) -> tuple[str, str]:
        """Create a user through the shared-secret admin API; returns (user_id, access_token)."""
        import aiohttp

        password = password or secrets.token_urlsafe(16)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as session:
            async with session.get(endpoint) as resp:
                resp.raise_for_status()
                nonce = (await resp.json())["nonce"]
            body = self._register_body(nonce, localpart, password, admin)
            async with session.post(endpoint, json=body) as resp:
                data = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"registering {localpart} failed: {resp.status} {data}")
        return data["user_id"], data["access_token"]

    def register_user_sync(
        self, localpart: str, password: str | None = None, admin: bool = False
    ) -> tuple[str, str]:
        """`register_user` for synchronous fixtures."""
        password = password or secrets.token_urlsafe(16)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        with urllib.request.urlopen(endpoint, timeout=30) as resp:
            nonce = json.load(resp)["nonce"]
        body = json.dumps(self._register_body(nonce, localpart, password, admin)).encode()
        req = urllib.request.Request(
            endpoint, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                data = json.load(resp)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"registering {localpart} failed: {e.code} {e.read()!r}") from e
        return data["user_id"], data["access_token"]

    def _register_body(self, nonce: str, localpart: str, password: str, admin: bool) -> dict:
        return {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": registration_mac(
                self.registration_shared_secret, nonce, localpart, password, admin
            ),
        }

    def __repr__(self) -> str:
        return f"SynapseServer(url={self.url!r}, server_name={self.server_name!r})"


def _without_rate_limits(text: str) -> str:
    """The config without its top-level ``rc_*`` settings (and their nested lines)."""
    kept, dropping = [], False
    for line in text.splitlines():
        if line and not line[0].isspace():
            dropping = line.startswith("rc_")
        if not dropping:
            kept.append(line)
    return "\n".join(kept) + "\n"
