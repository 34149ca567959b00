"""The small HTTP/1.1 client: framing, kept-alive connections, and what its errors say."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from teams_bridge.teams.errors import TeamsError
from teams_bridge.teams.http import Auth, TeamsHttp
from teams_bridge.teams.lean_http import (
    BodyTooLarge,
    Broken,
    LeanHttp,
    NotSent,
    request_head,
)

from .fakes import FAST_RETRY, StaticTokens

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """A loopback server whose every connection runs `script` (with its connection number)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra, "", ""]
    return "\r\n".join(head).encode() + body


async def test_one_connection_carries_many_requests_and_the_request_is_whole() -> None:
    async def script(reader: Any, writer: Any, n: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(answer(b'{"ok":1}', "Content-Type: application/json"))

    async with RawServer(script) as server:
        client = LeanHttp(default_headers={"User-Agent": "ua/1"})
        for i in range(3):
            got = await client.request(
                "POST", f"{server.url}/a/b%2Fc?x=1&y={i}", headers={"X-A": "v"}, body=b"{}"
            )
            assert (got.status, got.body) == (200, b'{"ok":1}')
            assert got.headers["content-type"] == "application/json"
        await client.close()
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("POST /a/b%2Fc?x=1&y=0 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.url.rsplit(':', 1)[1]}\r\n" in first
    assert "User-Agent: ua/1\r\n" in first and "X-A: v\r\n" in first
    assert "Content-Length: 2\r\n" in first and first.endswith("\r\n\r\n{}")


@pytest.mark.parametrize("split", [1, 7, 1000])
async def test_chunked_gzip_and_to_close_bodies_are_read_whole(split: int) -> None:
    """However the bytes are cut into packets, the same bodies come out."""
    big = b"x" * 5000
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
    )
    zipped = gzip.compress(big)
    responses = [
        chunked,
        answer(zipped, "Content-Encoding: gzip"),
        answer(b"", status="204 No Content"),
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"after continue"),
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    ]

    async def script(reader: Any, writer: Any, n: int) -> None:
        for data in responses[n - 1 :]:
            await server.read_request(reader)
            for i in range(0, len(data), split):
                writer.write(data[i : i + split])
                await writer.drain()
                await asyncio.sleep(0)

    async with RawServer(script) as server:
        client = LeanHttp()
        bodies = [(await client.request("GET", f"{server.url}/")).body for _ in responses]
        await client.close()
    assert bodies == [b"hello world", big, b"", b"after continue", b"until the end"]
    # The HTTP/1.0 answer without a length ends its connection; the others kept theirs.
    assert server.connections == 1


async def test_a_head_answer_has_no_body_even_with_a_length() -> None:
    async def script(reader: Any, writer: Any, n: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")

    async with RawServer(script) as server:
        client = LeanHttp()
        assert (await client.request("HEAD", f"{server.url}/")).body == b""
        assert (await client.request("HEAD", f"{server.url}/")).status == 200
        await client.close()
    assert server.connections == 1


async def test_a_kept_connection_closed_under_a_request() -> None:
    """The server drops a kept-alive connection as the next request arrives on it: a
    repeatable request is sent once more on a new connection, a POST is reported as
    broken (it may have been carried out), and neither leaves the connection for reuse."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await server.read_request(reader)
        writer.write(answer(b"first"))
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request: dropped unanswered

    async with RawServer(script) as server:
        client = LeanHttp()
        assert (await client.request("PUT", f"{server.url}/", body=b"1")).body == b"first"
        assert (await client.request("PUT", f"{server.url}/", body=b"2")).body == b"first"
        assert server.connections == 2
        with pytest.raises(Broken):
            await client.request("POST", f"{server.url}/", body=b"3")
        assert client.idle_connections() == 0
        await client.close()


async def test_errors_say_whether_the_request_may_have_arrived() -> None:
    client = LeanHttp()
    with pytest.raises(NotSent):
        await client.request("POST", "http://127.0.0.1:9/x", body=b"")

    async def silent(reader: Any, writer: Any, n: int) -> None:
        await server.read_request(reader)
        await asyncio.Event().wait()

    async with RawServer(silent) as server:
        with pytest.raises(TimeoutError):
            await client.request("GET", f"{server.url}/", timeout=0.2)
        assert client.idle_connections() == 0

    async def garbage(reader: Any, writer: Any, n: int) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    async with RawServer(garbage) as server:
        with pytest.raises(Broken):
            await client.request("GET", f"{server.url}/")

    async def cut(reader: Any, writer: Any, n: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with RawServer(cut) as server:
        with pytest.raises(Broken):
            await client.request("GET", f"{server.url}/")
    await client.close()


async def test_a_body_over_the_limit_is_refused_and_teams_http_says_so() -> None:
    async def script(reader: Any, writer: Any, n: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(answer(b"y" * 100))

    async with RawServer(script) as server:
        client = LeanHttp()
        with pytest.raises(BodyTooLarge):
            await client.request("GET", f"{server.url}/", max_body=99)
        async with aiohttp.ClientSession() as session:
            http = TeamsHttp(session, StaticTokens(), policy=FAST_RETRY, lean=client)
            with pytest.raises(TeamsError) as info:
                await http.request("GET", f"{server.url}/", auth=Auth.NONE, max_body=50)
        assert info.value.error_code == "body_too_large"
        await client.close()


def test_a_line_break_in_a_header_is_refused() -> None:
    with pytest.raises(ValueError):
        request_head("GET", "/", "h", {"X": "a\r\nInjected: 1"}, None)
    with pytest.raises(ValueError):
        request_head("GET", "/ HTTP/1.1\r\nX: y", "h", {}, None)
    head = request_head("GET", "/", "h", {"Content-Length": "5", "Host": "evil"}, 0)
    assert head == b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"


async def test_every_request_is_counted_with_its_outcome() -> None:
    seen: list[tuple[str, int | str]] = []

    async def script(reader: Any, writer: Any, n: int) -> None:
        await server.read_request(reader)
        writer.write(answer(b"", status="404 Not Found"))

    async with RawServer(script) as server:
        client = LeanHttp(on_response=lambda url, status: seen.append((url, status)))
        await client.request("GET", f"{server.url}/a")
        with pytest.raises(NotSent):
            await client.request("GET", "http://127.0.0.1:9/b")
        await client.close()
    assert seen == [(f"{server.url}/a", 404), ("http://127.0.0.1:9/b", "error")]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: Any) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_is_verified(aiohttp_server: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.path_qs}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    server = await aiohttp_server(app, ssl=server_ctx)
    url = f"https://localhost:{server.port}/x?y=1"

    trusting = ssl.create_default_context(cafile=str(cert))
    client = LeanHttp(ssl_context=trusting)
    assert (await client.request("GET", url)).body == b"hello /x?y=1"
    assert (await client.request("GET", url)).body == b"hello /x?y=1"
    assert client.idle_connections() == 1
    await client.close()

    default = LeanHttp()  # the system's trust store does not know this certificate
    with pytest.raises(NotSent):
        await default.request("GET", url)
    await default.close()


async def test_requests_in_flight_to_one_origin_are_capped(monkeypatch: Any) -> None:
    from teams_bridge.teams import lean_http

    monkeypatch.setattr(lean_http, "MAX_ACTIVE_PER_ORIGIN", 2)
    release = asyncio.Event()
    waiting = 0
    most = 0

    async def script(reader: Any, writer: Any, n: int) -> None:
        nonlocal waiting, most
        while True:
            await server.read_request(reader)
            waiting += 1
            most = max(most, waiting)
            await release.wait()
            waiting -= 1
            writer.write(answer(b"ok"))

    async with RawServer(script) as server:
        client = LeanHttp()
        calls = [asyncio.create_task(client.request("GET", f"{server.url}/")) for _ in range(5)]
        while waiting < 2:  # two reached the server; the rest wait in the client
            await asyncio.sleep(0.01)
        assert not any(call.done() for call in calls) and server.connections == 2
        release.set()
        assert [r.body for r in await asyncio.gather(*calls)] == [b"ok"] * 5
        await client.close()
    assert most == 2 and server.connections == 2


async def test_before_send_runs_before_each_request_and_can_stop_it() -> None:
    """The bridge's lease check (cluster.py): once it says stop, nothing goes out."""

    class Stop(Exception):
        pass

    allowed = [True, True, False]
    calls: list[int] = []

    def before_send() -> None:
        calls.append(len(server.requests))
        if not allowed[len(calls) - 1]:
            raise Stop

    async def script(reader: Any, writer: Any, n: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(answer(b"ok"))

    async with RawServer(script) as server:
        client = LeanHttp(before_send=before_send)
        for _ in range(2):
            assert (await client.request("GET", f"{server.url}/")).body == b"ok"
        with pytest.raises(Stop):
            await client.request("POST", f"{server.url}/", body=b"{}")
        await asyncio.sleep(0.05)
        await client.close()
    # Called before each request was sent (none had been when the first call came).
    assert calls == [0, 1, 2]
    assert len(server.requests) == 2
