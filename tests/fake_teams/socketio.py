"""socket.io 0.9 framing as Trouter uses it (teams-protocol.md §5.5)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    type: str
    id: str
    ack: bool
    endpoint: str
    data: str

    @property
    def number(self) -> int | None:
        return int(self.id) if self.id.isdigit() else None

    def json(self) -> Any:
        return json.loads(self.data)


def parse(text: str) -> Frame | None:
    """`<type>:<id>[+]:<endpoint>:<data>`; data may itself contain colons."""
    parts = text.split(":", 3)
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    ident = parts[1]
    ack = ident.endswith("+")
    return Frame(parts[0], ident.rstrip("+"), ack, parts[2], parts[3] if len(parts) > 3 else "")


def event(name: str, args: list[Any], seq: int | None = None) -> str:
    """`5:::{...}` (ephemeral) or `5:<n>+::{...}` (wants an ack)."""
    payload = json.dumps({"name": name, "args": args}, separators=(",", ":"))
    return f"5:{seq}+::{payload}" if seq is not None else f"5:::{payload}"


def ack(seq: int | str, args: list[Any]) -> str:
    return f"6:::{seq}+{json.dumps(args, separators=(',', ':'))}"


def parse_ack(data: str) -> tuple[int | None, Any]:
    """`<n>+[args]` (data of a `6:::` frame)."""
    head, _, rest = data.partition("+")
    try:
        return int(head), json.loads(rest) if rest else []
    except ValueError:
        return None, None
