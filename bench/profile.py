"""Sampling the bridge with py-spy (`py-spy record --gil` on its pid) and boiling the
collapsed stacks down to the hottest functions.

`--gil` keeps only samples in which the bridge's thread holds the GIL, i.e. runs Python:
time blocked in a syscall (socket writes, epoll) would otherwise pass for work. The sampled
process is paused for each sample, which is why the profile has its own load pass."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.profile")

# Frames every sample passes through (the entry point and the event loop): not informative.
_SCAFFOLD = re.compile(
    r"\((<frozen runpy>|teams_bridge/__main__\.py|mautrix/util/program\.py|"
    r"asyncio/base_events\.py|asyncio/events\.py)\)$"
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).with_name("py-spy")
    if here.exists():
        return str(here)
    return shutil.which("py-spy")


class Profiler:
    """`await start()`, run the load, `await stop()`; collapsed stacks land in `path`."""

    def __init__(self, pid: int, path: Path, rate: int = 100) -> None:
        self.pid = pid
        self.path = path
        self.rate = rate
        self.proc: asyncio.subprocess.Process | None = None
        self.error: str | None = None

    async def start(self) -> bool:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--gil",
            "--format", "raw", "--output", str(self.path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        # py-spy needs a moment to attach; if it cannot (no ptrace rights), it exits.
        try:
            await asyncio.wait_for(self.proc.wait(), 1.0)
        except TimeoutError:
            return True
        out = (await self.proc.stdout.read()).decode(errors="replace") if self.proc.stdout else ""
        self.error = f"py-spy could not attach: {out.strip().splitlines()[0] if out else '?'}"
        self.proc = None
        return False

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if not self.path.exists():
            out = (
                (await self.proc.stdout.read()).decode(errors="replace") if self.proc.stdout else ""
            )
            self.error = f"py-spy wrote no profile: {out.strip()[-300:]}"


def _short_file(path: str) -> str:
    """py-spy names files relative to their sys.path entry (`asyncpg/pool.py`,
    `traceback.py`); absolute paths (scripts) are cut down the same way when possible."""
    if not path.startswith("/"):
        return path
    for anchor in ("/site-packages/", "/lib/python3."):
        idx = path.rfind(anchor)
        if idx >= 0:
            rest = path[idx + len(anchor) :]
            return rest.split("/", 1)[1] if anchor == "/lib/python3." and "/" in rest else rest
    idx = path.rfind("teams_bridge/")
    return path[idx:] if idx >= 0 else os.path.basename(path)


def _package(short: str) -> str:
    """`asyncpg/pool.py` -> asyncpg, `traceback.py` -> traceback."""
    head = short.split("/", 1)[0]
    return head[:-3] if head.endswith(".py") else head


def _frame(raw: str) -> tuple[str, str]:
    """`func (file:line)` -> (`func (file)`, file)."""
    match = _FRAME.match(raw.strip())
    if not match:
        return raw.strip(), ""
    short = _short_file(match.group("file"))
    return f"{match.group('func')} ({short})", short


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares; `ours` are frames in teams_bridge/."""
    if not path.exists():
        return {}
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";") if f]
        # py-spy puts the thread name first when it can: skip frames without a file.
        frames = [f for f in frames if f[1]]
        if not frames:
            continue
        leaf_label, leaf_file = frames[-1]
        self_samples[leaf_label] += n
        by_package[_package(leaf_file)] += n
        seen: set[str] = set()
        for label, short in frames:
            if label in seen or _SCAFFOLD.search(label):
                continue
            seen.add(label)
            inclusive[label] += n
            if short.startswith("teams_bridge/"):
                ours[label] += n
    if total == 0:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": label, "share": round(n / total, 4), "samples": n}
            for label, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "self": share(self_samples),
        "inclusive": share(inclusive),
        "inclusive_teams_bridge": share(ours),
        "self_by_package": share(by_package),
    }
