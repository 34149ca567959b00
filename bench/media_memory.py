"""How much memory the bridge needs to move a large file: run by hand, not in CI.

    python -m bench.media_memory [--size-mb 200] [--encrypted] [--keep]

Starts a private stack on 127.0.0.1 (PostgreSQL, Synapse with a raised upload limit, the
Teams simulator in its own process, the bridge as ``python -m teams_bridge``), logs a Matrix
user in, then moves one file of ``--size-mb`` MiB Teams -> Matrix and one Matrix -> Teams,
checking size and sha256 on arrival. A thread samples the bridge's VmRSS from
``/proc/<pid>/status`` every 50 ms and the script prints the idle RSS, the peak RSS and
peak minus idle per direction (target: at most 60 MB), plus the time each transfer took.
With ``--encrypted`` the room is encrypted (end-to-bridge encryption in appservice mode, the
user an E2EE client): the bridge then also encrypts and decrypts each file as it streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mautrix.types import EventType

from teams_bridge.media_crypto import Encryptor, decrypt_stream
from tests.e2e.bridge_process import BridgeProcess, build_config
from tests.e2e.helpers import encryption_overrides, login_through_bot, puppet_mxid, wait_for
from tests.fake_teams.control import ControlClient
from tests.harness import MatrixTestClient, PostgresCluster, SynapseServer, write_registration
from tests.harness.e2ee_client import E2EEClient

REPO = Path(__file__).resolve().parents[1]
SERVER_NAME = "localhost"
SAMPLE_INTERVAL = 0.05
CHUNK = 1024 * 1024
TARGET_MB = 60


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class RssSampler:
    """Samples VmRSS every 50 ms in a thread, so a busy event loop cannot skew it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            self._stop.wait(SAMPLE_INTERVAL)

    def window(self, start: float, end: float) -> list[int]:
        return [kib for when, kib in self.samples if start <= when <= end]


class Simulator:
    """``python -m tests.fake_teams --json`` in its own process."""

    def __init__(self, workdir: Path) -> None:
        self.log = open(workdir / "simulator.log", "wb")  # noqa: SIM115 - the child keeps it
        args = [
            sys.executable, "-m", "tests.fake_teams", "--json",
            "--set", "device_code_interval=1", "--set", "server_heartbeat_interval=86400",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().startswith(b"{"):
            raise RuntimeError("the simulator did not start")
        self.info: dict[str, Any] = json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def _seeded(size: int, seed: int, digest: Any) -> AsyncIterator[bytes]:
    rng = random.Random(seed)
    left = size
    while left > 0:
        chunk = rng.randbytes(min(CHUNK, left))
        left -= len(chunk)
        digest.update(chunk)
        yield chunk
        await asyncio.sleep(0)


async def _matrix_sha256(
    user: MatrixTestClient, mxc: str, file: dict[str, Any] | None = None
) -> tuple[str, int]:
    """The sha256 and size of a file on the homeserver (decrypted first when ``file``
    describes its encryption)."""
    api = user.client.api
    url = api.get_download_url(mxc, authenticated=True)
    digest = hashlib.sha256()
    size = 0
    async with api.session.get(url, headers={"Authorization": f"Bearer {api.token}"}) as resp:
        resp.raise_for_status()
        chunks: AsyncIterator[bytes] = resp.content.iter_chunked(CHUNK)
        if file is not None:
            chunks = decrypt_stream(chunks, file)
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


async def run(size_mb: int, keep: bool, encrypted: bool = False) -> int:
    size = size_mb * 1024 * 1024
    workdir = Path(tempfile.mkdtemp(prefix="teams-bridge-media-bench-"))
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    reg = write_registration(workdir / "appservices", "media", "teamsmedia", SERVER_NAME)
    postgres = PostgresCluster()
    synapse = SynapseServer(
        workdir / "synapse",
        [reg.path],
        server_name=SERVER_NAME,
        log_level="WARNING",
        extra_config={"max_upload_size": f"{size_mb * 2 + 50}M"},
    )
    sim: Simulator | None = None
    bridge: BridgeProcess | None = None
    user: MatrixTestClient | None = None
    control: ControlClient | None = None
    sampler: RssSampler | None = None
    try:
        await asyncio.gather(asyncio.to_thread(postgres.start), asyncio.to_thread(synapse.start))
        sim = Simulator(workdir)
        database = await asyncio.to_thread(postgres.create_database, "media")
        config = build_config(
            registration=reg,
            homeserver_url=synapse.url,
            server_name=SERVER_NAME,
            database=database,
            endpoints=sim.info["endpoints"],
            log_file=workdir / "bridge" / "bridge.log",
            permissions={SERVER_NAME: "user"},
            overrides={
                "logging.root.level": "INFO",
                "logging.loggers.mau.level": "INFO",
                "logging.loggers.teams.level": "INFO",
                "bridge.max_file_size": size + 64 * 1024 * 1024,
                **(encryption_overrides() if encrypted else {}),
            },
        )
        bridge = BridgeProcess(workdir / "bridge", config)
        await bridge.astart(120)
        assert bridge.proc is not None
        pid = bridge.proc.pid
        sampler = RssSampler(pid)
        sampler.start()

        control = ControlClient(sim.info["url"])
        me = await control.create_user(display_name="Grace Hopper", kind="work")
        ada = await control.create_user(display_name="Ada Lovelace", kind="work")
        chat = await control.create_chat(
            kind="group", members=[me["mri"], ada["mri"]], topic="Big files"
        )
        user = await (E2EEClient if encrypted else MatrixTestClient).create(synapse, "bench")
        await login_through_bot(user, reg, control, me["mri"])
        room = await user.wait_for_invite(lambda inv: inv.name == "Big files")
        await user.join(room)
        await control.wait_for_registration(me["mri"], timeout=60)
        # One small message each way, so every code path and connection is warm.
        await control.post_message(chat["id"], sender=ada["mri"], content="<p>warm up</p>")
        ada_puppet = puppet_mxid(reg, ada["mri"])
        await user.wait_for_message(room, sender=ada_puppet, body="warm up")
        await asyncio.sleep(3)
        idle_start = time.monotonic()
        await asyncio.sleep(2)
        idle = statistics.median(sampler.window(idle_start, time.monotonic()))

        results: dict[str, dict[str, float]] = {}

        # Teams -> Matrix: the simulator makes the file (seeded bytes) and posts a file card.
        start = time.monotonic()
        posted = await control.post_media(
            chat["id"], ada["mri"], "file", size=size, seed=7, filename="big-t2m.bin"
        )
        sent_at = time.monotonic()
        evt = await user.wait_for_message(room, sender=ada_puppet, body="big-t2m.bin", timeout=600)
        arrived = time.monotonic()
        obj = await control.ams_object(posted["object_id"], include_bytes=False)
        expected = obj["contents"]["original"]["sha256"]
        arrived_content = evt.content.serialize()
        file = arrived_content.get("file")
        if encrypted and not file:
            raise RuntimeError("Teams -> Matrix: the file arrived unencrypted")
        got_sha, got_size = await _matrix_sha256(
            user, file["url"] if file else arrived_content["url"], file
        )
        if (got_sha, got_size) != (expected, size):
            raise RuntimeError("Teams -> Matrix: the file arrived changed")
        peak = max(sampler.window(start, arrived))
        results["Teams -> Matrix"] = {"peak": peak, "seconds": arrived - sent_at}
        await asyncio.sleep(2)

        # Matrix -> Teams: the user uploads (streamed) and sends an m.file.
        digest = hashlib.sha256()
        start = time.monotonic()
        encryptor = Encryptor() if encrypted else None
        source = _seeded(size, 11, digest)
        mxc = await user.client.upload_media(
            encryptor.stream(source) if encryptor else source,
            mime_type="application/octet-stream",
            filename=None if encryptor else "big-m2t.bin",
            size=size,
        )
        content: dict[str, Any] = {
            "msgtype": "m.file",
            "body": "big-m2t.bin",
            "filename": "big-m2t.bin",
            "info": {"mimetype": "application/octet-stream", "size": size},
        }
        if encryptor is not None:
            content["file"] = encryptor.file(mxc).serialize()
        else:
            content["url"] = mxc
        sent_at = time.monotonic()
        await user.client.send_message_event(room, EventType.ROOM_MESSAGE, content)

        async def teams_has_it() -> dict[str, Any] | None:
            for o in await control.ams_objects():
                if o["owner"] == me["mri"] and o["filename"] == "big-m2t.bin":
                    for m in await control.list_messages(chat["id"]):
                        if o["id"] in (m.get("content") or ""):
                            return o
            return None

        found = await wait_for(teams_has_it, timeout=600, interval=0.25)
        arrived = time.monotonic()
        stored = (await control.ams_object(found["id"], include_bytes=False))["contents"]
        if (stored["original"]["sha256"], stored["original"]["size"]) != (
            digest.hexdigest(),
            size,
        ):
            raise RuntimeError("Matrix -> Teams: the file arrived changed")
        peak = max(sampler.window(sent_at, arrived))
        results["Matrix -> Teams"] = {"peak": peak, "seconds": arrived - sent_at}
        sampler.stop()

        room_kind = "an encrypted" if encrypted else "a plain"
        print(
            f"\nbridge memory moving a {size_mb} MiB file in {room_kind} room "
            "(VmRSS sampled every 50 ms)"
        )
        print(f"  idle RSS: {_mb(idle)}")
        worst = 0.0
        for direction, r in results.items():
            delta = r["peak"] - idle
            worst = max(worst, delta)
            print(
                f"  {direction}: peak {_mb(r['peak'])}, peak - idle {_mb(delta)}, "
                f"{r['seconds']:.1f} s ({size_mb / r['seconds']:.0f} MiB/s), bytes verified"
            )
        ok = worst / 1024 <= TARGET_MB
        print(
            f"  worst peak - idle: {_mb(worst)} (target <= {TARGET_MB} MB): {'OK' if ok else 'OVER'}"
        )
        return 0 if ok else 1
    finally:
        if sampler is not None:
            sampler.stop()
        if user is not None:
            await user.close()
        if control is not None:
            await control.close()
        if bridge is not None:
            await bridge.astop()
        if sim is not None:
            sim.stop()
        synapse.stop()
        postgres.stop()
        if keep:
            print(f"  kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_memory", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200, help="file size in MiB")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--encrypted", action="store_true", help="in an encrypted room (end-to-bridge encryption)"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.size_mb, args.keep, args.encrypted)))


if __name__ == "__main__":
    main()
