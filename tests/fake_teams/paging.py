"""Opaque `syncState` cursors for `_metadata.backwardLink` / `syncState` links."""

from __future__ import annotations

import json
from typing import Any

from .util import b64url, b64url_decode


def encode_state(state: dict[str, Any]) -> str:
    return b64url(json.dumps(state, separators=(",", ":")).encode())


def decode_state(value: str | None) -> dict[str, Any]:
    """An unreadable cursor counts as none: the caller then gets the first page."""
    if not value:
        return {}
    try:
        state = json.loads(b64url_decode(value))
    except (ValueError, UnicodeDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def int_param(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default
