"""Pushed request envelopes: replies and every body encoding."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from teams_bridge.teams.push import PushBodyError, decode_body, parse_request, reply_for

EVENT = {"id": 1, "type": "EventMessage", "resourceType": "NewMessage", "resource": {}}


def b64gzip(value: Any) -> str:
    return base64.b64encode(gzip.compress(json.dumps(value).encode(), mtime=0)).decode()


def request(body: Any, **headers: str) -> Any:
    return parse_request(
        {"id": 7, "method": "POST", "url": "/v4/f/abc/messaging", "headers": headers, "body": body}
    )


def test_reply_echoes_correlation_headers() -> None:
    req = request("{}", **{"MS-CV": "abc+def.1", "trouter-request": '{"id":"x"}'})
    assert reply_for(req) == {
        "id": 7,
        "status": 200,
        "headers": {
            "trouter-client": '{"cd":1}',
            "MS-CV": "abc+def.1.0",
            "trouter-request": '{"id":"x"}',
        },
        "body": "",
    }


@pytest.mark.parametrize(
    ("url", "messaging"),
    [
        ("/v4/f/abc/messaging", True),
        ("https://trouter.example:3443/v4/f/abc/messaging", True),
        ("/v4/f/abc/messaging?x=1", True),
        ("/v4/f/abc/unifiedPresenceService", False),
        ("/v4/f/abc/NGCallManagerWin", False),
        ("", False),
    ],
)
def test_recognises_messaging_urls(url: str, messaging: bool) -> None:
    assert parse_request({"id": 1, "url": url}).is_messaging() is messaging


def test_decodes_plain_json() -> None:
    assert decode_body(request(json.dumps(EVENT))) == EVENT


def test_decodes_gzip_base64_when_flagged() -> None:
    assert (
        decode_body(request(b64gzip(EVENT), **{"X-Microsoft-Skype-Content-Encoding": "gzip"}))
        == EVENT
    )
    assert (
        decode_body(request(b64gzip(EVENT), **{"x-microsoft-skype-content-encoding": "GZIP"}))
        == EVENT
    )


def test_decodes_gzip_even_without_the_header() -> None:
    assert decode_body(request(b64gzip(EVENT))) == EVENT


def test_unwraps_cp_and_gp() -> None:
    assert decode_body(request(json.dumps({"cp": b64gzip(EVENT)}))) == EVENT
    gp = base64.b64encode(json.dumps(EVENT).encode()).decode()
    assert decode_body(request(json.dumps({"gp": gp}))) == EVENT


def test_accepts_an_already_decoded_body() -> None:
    assert decode_body(request(EVENT)) == EVENT


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("", {}),
        (None, {}),
        ("{broken", {}),
        ("not base64 at all!", {"X-Microsoft-Skype-Content-Encoding": "gzip"}),
        (base64.b64encode(b"not gzip").decode(), {"X-Microsoft-Skype-Content-Encoding": "gzip"}),
        (
            base64.b64encode(gzip.compress(b"{nope", mtime=0)).decode(),
            {"X-Microsoft-Skype-Content-Encoding": "gzip"},
        ),
    ],
)
def test_bad_bodies_raise_push_body_error(body: Any, headers: dict[str, str]) -> None:
    with pytest.raises(PushBodyError):
        decode_body(request(body, **headers))


def test_gzip_bombs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("teams_bridge.teams.push.MAX_DECODED_BODY", 1000)
    bomb = base64.b64encode(gzip.compress(b"[" + b"0," * 10000 + b"0]")).decode()
    with pytest.raises(PushBodyError):
        decode_body(request(bomb, **{"X-Microsoft-Skype-Content-Encoding": "gzip"}))


@pytest.mark.parametrize("envelope", [None, [], {}, {"id": None}, {"id": True}, {"id": [1]}])
def test_envelopes_without_a_usable_id_are_rejected(envelope: Any) -> None:
    with pytest.raises(PushBodyError):
        parse_request(envelope)
