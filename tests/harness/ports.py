"""Free loopback ports, never handed out twice at once, also across pytest-xdist workers."""

from __future__ import annotations

import functools
import os
import socket
import threading

_handed_out: set[int] = set()
_lock = threading.Lock()

# Where the workers of a parallel run take their ports from: below the kernel's ephemeral
# range (which `bind(0)` and outgoing connections use), one block per worker.
_BLOCKS_FROM = 20000
_BLOCKS_TO = 32000
_next: int | None = None


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@functools.cache  # (a worker's block does not change while it runs)
def _worker_block() -> range | None:
    """This worker's ports, when pytest-xdist runs the tests in several processes: a port a
    worker reserved (e.g. written into a registration before its server runs) is not
    bound yet, so another process's `bind(0)` could be given it too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return None
    index = int(worker[2:])
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    top = min(_BLOCKS_TO, _ephemeral_start())
    span = (top - _BLOCKS_FROM) // count
    if span < 100:
        return None
    start = _BLOCKS_FROM + index * span
    return range(start, start + span)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _from_block(block: range) -> int:
    global _next
    for _ in range(2 * len(block)):
        if _next is None or _next not in block:
            if _next is not None:
                # Round the block again: what was handed out a whole block ago is done.
                _handed_out.clear()
            _next = block.start
        port = _next
        _next += 1
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {block.start}-{block.stop - 1}")


def free_port() -> int:
    """A port that nothing on 127.0.0.1 listens on now and that no earlier call returned
    (in a pytest-xdist worker: none since its block was last walked round, thousands of
    calls ago).

    Ports are reserved in advance (e.g. for appservice URLs written before the bridge runs),
    so remembering what we handed out keeps two servers from being given the same one.
    """
    block = _worker_block()
    if block is not None:
        with _lock:
            return _from_block(block)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with _lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
