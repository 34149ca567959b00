"""A small HTTP/1.1 client for the requests the bridge makes most: one per bridged message.

aiohttp's client spends about 115 µs of CPU on each small request (its URL handling,
headers, tracing, timeouts and stream machinery, all in Python); this client spends about
30 µs on the same request over a kept-alive connection. It does only what those requests
need: a whole request written at once, a whole response read into memory (with
``Content-Length``, chunked, or up to the close), kept-alive connections per origin, TLS
with the default verifying context, and no redirects, cookies, proxies or compression
offered. Everything else goes through aiohttp.

Errors tell whether the request may have reached the server: `NotSent` (no connection
could be made) or `Broken` (the connection failed after the request was written, or
before the response was whole). A request that is safe to repeat (not ``POST``/``PATCH``)
and finds a kept-alive connection closed under it is sent once more on a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from multidict import CIMultiDict

MAX_HEAD_BYTES = 64 * 1024
# A kept-alive connection idle for longer is closed rather than used: servers close idle
# connections after tens of seconds, and a request written onto one that is closing is lost.
IDLE_SECONDS = 10.0
MAX_IDLE_PER_ORIGIN = 32
# Requests in flight to one origin at a time (aiohttp's session allows 100 connections).
MAX_ACTIVE_PER_ORIGIN = 100
_REPEATABLE = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_NO_BODY_STATUS = frozenset({204, 304})


class LeanHttpError(OSError):
    """A request that did not get a whole response."""


class NotSent(LeanHttpError):
    """No connection could be made: the request certainly did not reach the server."""


class Broken(LeanHttpError):
    """The connection failed once the request was (perhaps) written."""


class BodyTooLarge(Exception):
    """The response body is larger than the caller allows."""

    def __init__(self, status: int) -> None:
        super().__init__(f"response body too large (HTTP {status})")
        self.status = status


@dataclass(frozen=True)
class LeanResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes


Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; what arrives is buffered and wakes the reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the peer closed its side, or the connection is gone
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes; the end here means the response was cut short."""
        if self.ended:
            raise Broken("the connection closed before the response was whole")
        await self.more_or_end()

    async def more_or_end(self) -> None:
        """Wait for more bytes or for the end, which here is no error."""
        if self.ended:
            return
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def usable(self, now: float) -> bool:
        transport = self.transport
        return (
            not self.ended
            and not self.buffer
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.abort()


def _origin(url: str) -> tuple[Origin, str, str]:
    """(scheme, host, port), the request target and the Host header of an absolute URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {scheme}://…")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if port != default:
        host_header = f"{host_header}:{port}"
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return (scheme, host, port), target, host_header


def _check(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError("a header name or value holds a line break")
    return text


def request_head(
    method: str, target: str, host: str, headers: Mapping[str, str], length: int | None
) -> bytes:
    """The request line and headers (``Host`` and ``Content-Length`` added)."""
    lines = [f"{_check(method)} {_check(target)} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        lines.append(f"{_check(name)}: {_check(value)}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class _Reader:
    """Reads one response from a connection's buffer."""

    def __init__(self, conn: _Connection, max_body: int) -> None:
        self.conn = conn
        self.max_body = max_body
        self.started = False  # any byte of the response arrived

    async def head(self) -> tuple[int, str, CIMultiDict[str]]:
        conn = self.conn
        while True:
            end = conn.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if conn.buffer:
                self.started = True
            if len(conn.buffer) > MAX_HEAD_BYTES:
                raise Broken("the response head is too large")
            await conn.more()
        self.started = True
        raw = bytes(conn.buffer[:end])
        del conn.buffer[: end + 4]
        if len(raw) > MAX_HEAD_BYTES:
            raise Broken("the response head is too large")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise Broken("not an HTTP/1.x response")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise Broken("a malformed response header")
            headers.add(name, value.strip())
        return int(code), version, headers

    async def exactly(self, count: int) -> bytes:
        conn = self.conn
        while len(conn.buffer) < count:
            await conn.more()
        data = bytes(conn.buffer[:count])
        del conn.buffer[:count]
        return data

    async def line(self) -> bytes:
        conn = self.conn
        while True:
            end = conn.buffer.find(b"\r\n")
            if end >= 0:
                data = bytes(conn.buffer[:end])
                del conn.buffer[: end + 2]
                return data
            if len(conn.buffer) > MAX_HEAD_BYTES:
                raise Broken("a chunk header is too long")
            await conn.more()

    async def chunked(self, status: int) -> bytes:
        parts: list[bytes] = []
        size_so_far = 0
        while True:
            size_text = (await self.line()).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Broken("a malformed chunk size") from None
            if size == 0:
                while await self.line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            size_so_far += size
            if size_so_far > self.max_body:
                raise BodyTooLarge(status)
            parts.append(await self.exactly(size))
            if await self.exactly(2) != b"\r\n":
                raise Broken("a chunk does not end where its size says")

    async def to_close(self, status: int) -> bytes:
        conn = self.conn
        while not conn.ended:
            if len(conn.buffer) > self.max_body:
                raise BodyTooLarge(status)
            await conn.more_or_end()
        if len(conn.buffer) > self.max_body:
            raise BodyTooLarge(status)
        data = bytes(conn.buffer)
        conn.buffer.clear()
        return data


def _decoded(body: bytes, headers: CIMultiDict[str], status: int, max_body: int) -> bytes:
    coding = headers.get("Content-Encoding", "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "deflate"):
        raise Broken(f"a response in an unsupported encoding: {coding[:20]}")
    wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, max_body + 1)
    except zlib.error:
        raise Broken("a compressed response that does not decompress") from None
    if len(out) > max_body:
        raise BodyTooLarge(status)
    return out


class LeanHttp:
    """Kept-alive connections per origin and the requests sent over them."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        default_headers: Mapping[str, str] | None = None,
        on_response: Callable[[str, int | str], None] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._default_headers = dict(default_headers or {})
        self._on_response = on_response
        # Called just before each request goes out (it may stop the process instead).
        self._before_send = before_send
        self._idle: dict[Origin, list[_Connection]] = {}
        self._active: dict[Origin, asyncio.Semaphore] = {}
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def idle_connections(self) -> int:
        return sum(len(conns) for conns in self._idle.values())

    async def _connect(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        scheme, host, port = origin
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise NotSent(f"cannot connect to {host}:{port}: {type(e).__name__}") from e
        return conn

    def _take(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if conn.usable(now):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        if self._closed or conn.ended or conn.buffer:
            conn.close()
            return
        conns = self._idle.setdefault(origin, [])
        if len(conns) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = 60.0,
        connect_timeout: float | None = 15.0,
        max_body: int = 32 * 1024 * 1024,
    ) -> LeanResponse:
        """Send one request and read its whole response (no redirects followed)."""
        if self._closed:
            raise NotSent("the client is closed")
        origin, target, host = _origin(url)
        method = method.upper()
        merged = {**self._default_headers, **(headers or {})}
        has_body = body is not None or method in ("POST", "PUT", "PATCH")
        head = request_head(method, target, host, merged, len(body or b"") if has_body else None)
        data = head + body if body else head
        active = self._active.get(origin)
        if active is None:
            active = self._active[origin] = asyncio.Semaphore(MAX_ACTIVE_PER_ORIGIN)
        try:
            async with asyncio.timeout(timeout), active:
                while True:
                    conn = self._take(origin)
                    reused = conn is not None
                    if conn is None:
                        conn = await self._connect(origin, connect_timeout)
                    reader = _Reader(conn, max_body)
                    if self._before_send is not None:
                        self._before_send()
                    try:
                        response, keep = await self._exchange(conn, reader, method, data)
                    except Broken:
                        conn.close()
                        if reused and not reader.started and method in _REPEATABLE:
                            continue  # the kept-alive connection was closing: once more
                        raise
                    except BaseException:
                        conn.close()
                        raise
                    if keep:
                        self._give_back(origin, conn)
                    else:
                        conn.close()
                    break
        except (LeanHttpError, BodyTooLarge, TimeoutError):
            if self._on_response is not None:
                self._on_response(url, "error")
            raise
        if self._on_response is not None:
            self._on_response(url, response.status)
        return response

    async def _exchange(
        self, conn: _Connection, reader: _Reader, method: str, data: bytes
    ) -> tuple[LeanResponse, bool]:
        transport = conn.transport
        if transport is None or transport.is_closing():
            raise Broken("the connection is closed")
        transport.write(data)
        while True:
            status, version, headers = await reader.head()
            if not 100 <= status < 200:
                break
            if status == 101:
                raise Broken("the server switched protocols")
        keep = _keeps_alive(version, headers)
        if method == "HEAD" or status in _NO_BODY_STATUS:
            body = b""
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            body = await reader.chunked(status)
        elif "Content-Length" in headers:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                raise Broken("a malformed Content-Length") from None
            if length < 0:
                raise Broken("a malformed Content-Length")
            if length > reader.max_body:
                raise BodyTooLarge(status)
            body = await reader.exactly(length)
        else:
            body = await reader.to_close(status)
            keep = False
        body = _decoded(body, headers, status, reader.max_body)
        return LeanResponse(status, headers, body), keep


def _keeps_alive(version: str, headers: CIMultiDict[str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    if "close" in tokens:
        return False
    return version != "HTTP/1.0" or "keep-alive" in tokens
