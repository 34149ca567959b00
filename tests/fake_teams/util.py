"""Small helpers shared by the simulator modules: clocks, encodings, unsigned JWTs."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import secrets
import time
from typing import Any


def now_ms() -> int:
    """Wall-clock milliseconds, the unit Teams uses for ids and versions."""
    return int(time.time() * 1000)


def iso_ms7(ms: int) -> str:
    """ISO-8601 with 7 fractional digits, as `originalarrivaltime` is rendered."""
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}0000Z"


def iso_ms3(ms: int) -> str:
    """ISO-8601 with 3 fractional digits (the other variant Teams uses)."""
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An `alg: none` JWT: clients only ever decode the payload, never verify it."""
    header = {"typ": "JWT", "alg": "none"}
    claims = {**claims, "jti": secrets.token_hex(8)}
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}."


def jwt_claims(token: str) -> dict[str, Any]:
    """Decode the payload of a JWT without checking anything."""
    parts = token.split(".")
    if len(parts) < 2:
        raise ValueError("not a JWT")
    return json.loads(b64url_decode(parts[1]))


def random_b64(nbytes: int) -> str:
    """URL-safe random text, for opaque tokens and ids."""
    return b64url(secrets.token_bytes(nbytes))


def gzip_b64(text: str) -> str:
    """base64(gzip(text)): the Trouter body encoding flagged by a header."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"))).decode("ascii")


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
