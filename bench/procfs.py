"""Memory and CPU of a process, read from /proc (Linux)."""

from __future__ import annotations

import os
import platform
import time

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (its own threads, not its children)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds the process has used. System time includes the kernel's
    work for loopback sockets: the receiving side's TCP processing runs in the sender."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its direct children (PostgreSQL's postmaster and its
    backends). Children that exited in between are not counted."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def steal_seconds() -> float:
    """CPU time the hypervisor gave to someone else, summed over this machine's CPUs (the
    `steal` column of /proc/stat; 0 on bare metal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / _TICKS if len(fields) > 8 else 0.0


async def settle_cpu(pid: int, quiet: float = 0.02, window: float = 0.5, limit: float = 10.0):
    """Wait until the process uses less than `quiet` CPU seconds per `window` (at most `limit`
    seconds); returns the CPU seconds at that point."""
    import asyncio

    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(window)
        now = cpu_seconds(pid)
        if now - last < quiet:
            return now
        last = now
    return cpu_seconds(pid)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
                    break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
