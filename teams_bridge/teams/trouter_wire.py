"""Trouter handshake pieces: the ``/v4/a`` allocation, URLs, and the WebSocket wrapper.

Kept apart from the connection loop so they can be checked on their own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection

from .errors import TeamsError
from .socketio import Frame, serialise_frame

TC_PARAM = json.dumps(
    {"cv": "2024.23.01.2", "ua": "TeamsCDL", "hr": "", "v": "1415/26022704215"},
    separators=(",", ":"),
)
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36 Teams/24000000000"
)
SID_RE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")


class _NoFrameLogs(logging.LoggerAdapter[logging.Logger]):
    """websockets logs handshake headers and every frame at DEBUG; both carry tokens."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


WS_LOG = _NoFrameLogs(logging.getLogger("teams.trouter.websocket"), {})


@dataclass(frozen=True)
class Allocation:
    """What ``/v4/a`` hands out; ``surl`` is the push path we register."""

    socketio: str
    surl: str
    connectparams: Mapping[str, str]
    ccid: str | None


def activity_cv() -> str:
    head = base64.b64encode(os.urandom(16)).decode()[:21]
    return f"{head}{random.choice('AgQw')}.0.1"


def join_query(url: str, params: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def ws_url(socketio: str, sid: str, query: str) -> str:
    """``http→ws``/``https→wss`` for the socket.io host, plus the websocket path."""
    parts = urlsplit(socketio)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    path = parts.path if parts.path.endswith("/") else f"{parts.path}/"
    return urlunsplit((scheme, parts.netloc, f"{path}socket.io/1/websocket/{sid}", query, ""))


def parse_allocation(data: Any) -> Allocation:
    """Validate the ``/v4/a`` answer."""
    if not isinstance(data, Mapping):
        raise TeamsError(None, "invalid_response", "trouter allocation is not an object")
    socketio = data.get("socketio")
    surl = data.get("surl") or data.get("url")
    if not isinstance(socketio, str) or not isinstance(surl, str):
        raise TeamsError(None, "invalid_response", "trouter allocation lacks socketio/surl")
    for value in (socketio, surl):
        if urlsplit(value).scheme.lower() not in ("http", "https", "ws", "wss"):
            raise TeamsError(None, "invalid_response", "trouter allocation has a bad URL")
    raw_params = data.get("connectparams")
    if isinstance(raw_params, str):
        try:
            raw_params = json.loads(raw_params)
        except ValueError:
            raw_params = {}
    params = (
        {str(k): str(v) for k, v in raw_params.items() if isinstance(v, (str, int, float))}
        if isinstance(raw_params, Mapping)
        else {}
    )
    ccid = data.get("ccid")
    return Allocation(
        socketio=socketio if socketio.endswith("/") else f"{socketio}/",
        surl=surl,
        connectparams=params,
        ccid=ccid if isinstance(ccid, str) and ccid else None,
    )


class Socket:
    """One WebSocket with serialised sends and a frame-id counter."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._lock = asyncio.Lock()
        self._next_id = 0

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def send(self, frame: Frame) -> None:
        async with self._lock:
            await self.ws.send(serialise_frame(frame))
