"""The request helper: auth headers, 401 refresh, 429/5xx retries, error bodies."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from teams_bridge.teams.errors import AuthError, TeamsError
from teams_bridge.teams.http import (
    Auth,
    Response,
    TeamsHttp,
    error_from_response,
    parse_retry_after,
    safe_url,
)

from .fakes import FAST_RETRY, StaticTokens

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


async def serve(
    aiohttp_server: Any, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url(""))


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as s:
        yield s


def resp(status: int, body: bytes) -> Response:
    return Response(status, CIMultiDictProxy(CIMultiDict()), body)


async def test_sends_the_auth_header_each_service_expects(
    aiohttp_server: Any, session: Any, lean: Any
) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({})

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    for auth in (Auth.CHAT, Auth.SKYPE, Auth.SKYPE_BEARER, Auth.NONE):
        await http.request("GET", f"{base}/x", auth=auth)
    assert seen[0]["Authentication"] == "skypetoken=skype-1"
    assert seen[1]["X-Skypetoken"] == "skype-1" and "Authorization" not in seen[1]
    assert seen[2]["X-Skypetoken"] == "skype-1"
    assert seen[2]["Authorization"] == "Bearer access-1"
    assert not {"Authentication", "X-Skypetoken", "Authorization"} & set(seen[3])


async def test_401_refreshes_once_and_retries_once(
    aiohttp_server: Any, session: Any, lean: Any
) -> None:
    tokens = StaticTokens()

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authentication") == "skypetoken=skype-1":
            return web.Response(
                status=401, text="The provided 'skypetoken' ticket failed authentication"
            )
        return web.json_response({"ok": True})

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, tokens, policy=FAST_RETRY, lean=lean)
    result = await http.request("GET", f"{base}/x", auth=Auth.CHAT)
    assert result.json() == {"ok": True}
    assert tokens.invalidated == ["skype-1"]


async def test_second_401_is_an_auth_error(aiohttp_server: Any, session: Any, lean: Any) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"errorCode": 911, "message": "Authentication failed"}, status=401)

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    with pytest.raises(AuthError) as info:
        await http.request("GET", f"{base}/x", auth=Auth.SKYPE_BEARER)
    assert calls == 2
    assert info.value.status == 401
    assert info.value.error_code == "911"
    assert "skype-" not in str(info.value) and "access-" not in str(info.value)


async def test_429_honours_retry_after(aiohttp_server: Any, session: Any, lean: Any) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response(
                {"errorCode": 429, "message": "API calls quota exceeded!"},
                status=429,
                headers={"Retry-After": "0"},
            )
        if calls == 2:
            date = email.utils.formatdate(0, usegmt=True)  # in the past: no wait
            return web.Response(status=429, headers={"Retry-After": date})
        return web.json_response({"n": calls})

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    assert (await http.request("GET", f"{base}/x", auth=Auth.CHAT)).json() == {"n": 3}


async def test_5xx_backs_off_and_gives_up(aiohttp_server: Any, session: Any, lean: Any) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(
            status=503, text="<html><body><h1>Service Unavailable</h1></body></html>"
        )

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    with pytest.raises(TeamsError) as info:
        await http.request("POST", f"{base}/x", auth=Auth.CHAT, json_body={"a": 1})
    assert calls == FAST_RETRY.max_retries + 1
    assert info.value.status == 503
    assert info.value.message == "Service Unavailable"


async def test_5xx_then_success(aiohttp_server: Any, session: Any, lean: Any) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=502) if calls < 3 else web.json_response([1])

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    assert (await http.request("GET", f"{base}/x", auth=Auth.NONE)).json() == [1]


async def test_connection_errors_are_retried_then_reported(session: Any, lean: Any) -> None:
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    with pytest.raises(TeamsError) as info:
        await http.request("GET", "http://127.0.0.1:9/x", auth=Auth.CHAT)
    assert info.value.status is None
    assert info.value.error_code == "connection_error"


async def test_redirects_are_not_followed(aiohttp_server: Any, session: Any, lean: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path == "/x":
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        return web.json_response({})

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    with pytest.raises(TeamsError) as info:
        await http.request("GET", f"{base}/x", auth=Auth.CHAT)
    assert info.value.status == 302


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            b'{"errorCode":803,"message":"Login Rate limit exceeded"}',
            "803",
            "Login Rate limit exceeded",
        ),
        (b'{"errorCode":"GuestUserNotRedeemed","message":"nope"}', "GuestUserNotRedeemed", "nope"),
        (
            b'{"status":{"code":40120,"text":"Authentication failed."}}',
            "40120",
            "Authentication failed.",
        ),
        (
            b'{"error":"invalid_grant","error_description":"AADSTS70000"}',
            "invalid_grant",
            "AADSTS70000",
        ),
        (b'{"error":{"code":"Forbidden","message":"no"}}', "Forbidden", "no"),
        (b"SkypeTokenRevoked", None, "SkypeTokenRevoked"),
        (
            b"<html><head><title>IIS</title></head><body>401 - Unauthorized</body></html>",
            None,
            "IIS 401 - Unauthorized",
        ),
        (b"", None, "HTTP 500"),
        (b"\xff\xfe", None, "\ufffd\ufffd"),
    ],
)
def test_error_bodies_need_not_be_json(body: bytes, code: str | None, message: str) -> None:
    err = error_from_response(resp(500, body))
    assert err.status == 500
    assert err.error_code == code
    assert err.message == message


def test_non_json_success_body_raises_teams_error() -> None:
    with pytest.raises(TeamsError):
        resp(200, b"<html>").json()
    assert resp(200, b"").json() is None


def test_retry_after_parsing() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1000.0, usegmt=True)
    assert parse_retry_after(date, now=990.0) == 10.0


def test_safe_url_drops_queries() -> None:
    assert safe_url("https://h/socket.io/1/?sig=SECRET&x=1") == "https://h/socket.io/1/"


async def test_a_body_is_labelled_as_aiohttp_labelled_it(
    aiohttp_server: Any, session: Any, lean: Any
) -> None:
    """Both transports send the same Content-Type: the caller's, else aiohttp's default for
    bytes (the Trouter allocation posts an empty body with none of its own)."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Content-Type"))
        return web.json_response({})

    base = await serve(aiohttp_server, handler)
    http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=lean)
    await http.request("POST", f"{base}/a", auth=Auth.SKYPE, data=b"")
    await http.request("POST", f"{base}/b", auth=Auth.CHAT, json_body={"a": 1})
    await http.request(
        "POST", f"{base}/c", auth=Auth.CHAT, data=b"x", headers={"content-type": "text/plain"}
    )
    await http.request("GET", f"{base}/d", auth=Auth.CHAT)
    assert seen == ["application/octet-stream", "application/json", "text/plain", None]
