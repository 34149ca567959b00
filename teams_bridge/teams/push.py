"""Trouter's HTTP-over-WebSocket requests (``3:::`` frames): the reply and the body.

The reply has to go out before the body is even looked at, so a slow or broken
consumer never makes the service think the delivery failed.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_DECODED_BODY = 64 * 1024 * 1024


class PushBodyError(ValueError):
    """A pushed body could not be decoded."""


@dataclass(frozen=True)
class PushRequest:
    """The envelope of a ``3:::`` frame."""

    id: Any
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def path(self) -> str:
        """The URL path; ``url`` may be relative or absolute."""
        try:
            return urlsplit(self.url).path if "://" in self.url else self.url.split("?")[0]
        except ValueError:
            return ""

    def is_messaging(self) -> bool:
        return self.path.rstrip("/").endswith("/messaging")


def parse_request(payload: Any) -> PushRequest:
    """Validate an envelope; raises ``PushBodyError``."""
    if not isinstance(payload, Mapping) or "id" not in payload:
        raise PushBodyError("request envelope has no id")
    req_id = payload["id"]
    if not isinstance(req_id, (int, str)) or isinstance(req_id, bool):
        raise PushBodyError("request id has an unexpected type")
    raw_headers = payload.get("headers")
    headers = (
        {str(k): str(v) for k, v in raw_headers.items() if isinstance(v, (str, int, float))}
        if isinstance(raw_headers, Mapping)
        else {}
    )
    url = payload.get("url")
    method = payload.get("method")
    return PushRequest(
        id=req_id,
        method=method if isinstance(method, str) else "POST",
        url=url if isinstance(url, str) else "",
        headers=headers,
        body=payload.get("body"),
    )


def reply_for(request: PushRequest) -> dict[str, Any]:
    """The ``3:::`` answer: status 200, echoing the correlation headers."""
    headers: dict[str, str] = {"trouter-client": '{"cd":1}'}
    cv = request.header("MS-CV")
    if cv:
        headers["MS-CV"] = f"{cv}.0"
    echo = request.header("trouter-request")
    if echo:
        headers["trouter-request"] = echo
    return {"id": request.id, "status": 200, "headers": headers, "body": ""}


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_DECODED_BODY)
    except zlib.error as exc:
        raise PushBodyError("body is not valid gzip") from exc
    if inflater.unconsumed_tail:
        raise PushBodyError("decoded body exceeds the size limit")
    return out


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise PushBodyError("body is not valid base64") from exc


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PushBodyError("body is not valid JSON") from exc


def _unwrap(value: Any) -> Any:
    """Strip the ``{"cp": b64(gzip(json))}`` / ``{"gp": b64(json)}`` wrappers."""
    if isinstance(value, Mapping) and len(value) == 1:
        if isinstance(value.get("cp"), str):
            return _json(_gunzip(_b64(value["cp"])))
        if isinstance(value.get("gp"), str):
            return _json(_b64(value["gp"]))
    return value


def decode_body(request: PushRequest) -> Any:
    """JSON, or base64(gzip(JSON)) when ``X-Microsoft-Skype-Content-Encoding: gzip``."""
    body = request.body
    if isinstance(body, (Mapping, list)):
        return _unwrap(body)
    if not isinstance(body, str) or not body.strip():
        raise PushBodyError("request has no body")
    encoding = (request.header("X-Microsoft-Skype-Content-Encoding") or "").lower()
    if "gzip" in encoding:
        return _unwrap(_json(_gunzip(_b64(body))))
    try:
        return _unwrap(_json(body))
    except PushBodyError:
        if body.lstrip().startswith("H4sI"):  # base64 of the gzip magic, header missing
            return _unwrap(_json(_gunzip(_b64(body))))
        raise
