"""socket.io 0.9 framing as Trouter uses it: ``<type>:<id>[+]:<endpoint>[:<data>]``.

Pure functions so the wire format can be property-tested on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

_ID_RE = re.compile(r"^(\d{1,18})(\+?)$")
_ACK_RE = re.compile(r"^(\d{1,18})(\+?)(.*)$", re.DOTALL)
MAX_FRAME_ID = 10**18 - 1


class FrameError(ValueError):
    """The text is not a socket.io 0.9 frame."""


class FrameType(IntEnum):
    DISCONNECT = 0
    CONNECT = 1
    HEARTBEAT = 2
    MESSAGE = 3
    JSON = 4
    EVENT = 5
    ACK = 6
    ERROR = 7
    NOOP = 8


@dataclass(frozen=True)
class Frame:
    """One frame; ``data`` is ``None`` when the frame has no data part at all."""

    type: FrameType
    id: int | None = None
    ack_data: bool = False  # the "+" after the id: the peer wants the ack to carry data
    endpoint: str = ""
    data: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, FrameType):
            raise FrameError("unknown frame type")
        if self.id is not None and (
            isinstance(self.id, bool)
            or not isinstance(self.id, int)
            or not 0 <= self.id <= MAX_FRAME_ID
        ):
            raise FrameError("frame id must be an integer of at most 18 digits")
        if self.ack_data and self.id is None:
            raise FrameError("'+' needs a frame id")
        if ":" in self.endpoint:
            raise FrameError("endpoint cannot contain ':'")


def parse_frame(text: str) -> Frame:
    """Parse one frame; raises ``FrameError`` on anything malformed."""
    if not isinstance(text, str):
        raise FrameError("frame is not text")
    parts = text.split(":", 3)
    if len(parts) < 3:
        raise FrameError("frame has too few fields")
    raw_type, raw_id, endpoint = parts[0], parts[1], parts[2]
    if len(raw_type) != 1 or raw_type not in "012345678":
        raise FrameError("bad frame type")
    frame_id: int | None = None
    plus = False
    if raw_id:
        match = _ID_RE.match(raw_id)
        if not match:
            raise FrameError("bad frame id")
        frame_id = int(match.group(1))
        plus = bool(match.group(2))
    data = parts[3] if len(parts) == 4 else None
    return Frame(FrameType(int(raw_type)), frame_id, plus, endpoint, data)


def serialise_frame(frame: Frame) -> str:
    """The wire text of a frame (the inverse of ``parse_frame``)."""
    head = f"{int(frame.type)}:{'' if frame.id is None else frame.id}{'+' if frame.ack_data else ''}:{frame.endpoint}"
    return head if frame.data is None else f"{head}:{frame.data}"


def parse_json_data(frame: Frame) -> Any:
    """The JSON payload of a message/event frame; raises ``FrameError``."""
    if not frame.data:
        raise FrameError("frame has no data")
    try:
        return json.loads(frame.data)
    except ValueError as exc:
        raise FrameError("frame data is not JSON") from exc


def parse_ack(frame: Frame) -> tuple[int, Any]:
    """``6:::<n>+[args]`` → ``(n, args)``; raises ``FrameError``."""
    if frame.type is not FrameType.ACK or not frame.data:
        raise FrameError("not an ack frame")
    match = _ACK_RE.match(frame.data)
    if not match:
        raise FrameError("bad ack id")
    rest = match.group(3)
    args: Any = []
    if rest:
        try:
            args = json.loads(rest)
        except ValueError as exc:
            raise FrameError("ack arguments are not JSON") from exc
    return int(match.group(1)), args


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_frame(name: str, args: Any = None, *, frame_id: int | None = None) -> Frame:
    """An event; with ``frame_id`` it asks for an ack (``5:<n>+::``)."""
    payload: dict[str, Any] = {"name": name}
    if args is not None:
        payload["args"] = args
    return Frame(FrameType.EVENT, frame_id, frame_id is not None, "", _dumps(payload))


def ack_frame(frame_id: int, args: Any = None) -> Frame:
    """``6:::<n>+[args]``."""
    return Frame(
        FrameType.ACK, None, False, "", f"{frame_id}+{_dumps(args if args is not None else [])}"
    )


def message_frame(payload: Any) -> Frame:
    """``3:::<json>``, used to answer Trouter's HTTP-over-WS requests."""
    return Frame(FrameType.MESSAGE, None, False, "", _dumps(payload))


HEARTBEAT = Frame(FrameType.HEARTBEAT)
