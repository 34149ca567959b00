"""Free loopback ports, never handed out twice in one process."""

from __future__ import annotations

import socket
import threading

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    """A port that nothing on 127.0.0.1 listens on now and that no earlier call returned.

    Ports are reserved in advance (e.g. for appservice URLs written before the bridge runs),
    so remembering what we handed out keeps two servers from being given the same one.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with _lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
