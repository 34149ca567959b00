"""AMS, the Async Media Service (teams-protocol.md §7): objects, streamed uploads and
streamed, size-capped downloads.

AMS authenticates with ``Authorization: skype_token <token>`` (not the chat service's
``Authentication: skypetoken=…``) and wants client headers that look like an official
client. Bodies are never held whole: uploads stream from an async iterable with a
declared ``Content-Length`` and downloads are read chunk by chunk against ``max_size``.

The token is only ever sent to AMS hosts: the ones ``regionGtms`` named, or HTTPS hosts
under ``asm.skype.com`` / ``asyncgw.teams.microsoft.com``. URLs from message content
pointing anywhere else are refused before any request is made.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .attachments import AmsUrl, MediaKind, is_object_id, is_view, parse_ams_url
from .authz import SkypeToken
from .errors import TeamsError
from .http import Response, RetryPolicy, error_from_response, parse_retry_after, safe_url, send
from .ids import check_id

log = logging.getLogger("teams.media")

DEFAULT_CHUNK_SIZE = 256 * 1024
MAX_REDIRECTS = 3
TRUSTED_AMS_SUFFIXES = ("asm.skype.com", "asyncgw.teams.microsoft.com")

# AMS is reported to refuse requests whose client headers don't look official (§7).
AMS_CLIENT_HEADERS = {
    "User-Agent": "SkypeOfficialClient/0/0.0.0.0",
    "X-Ms-Client-Type": "SkypeSpacesWeb",
    "X-Ms-Client-Version": "1.0.0.0",
    "X-Client-Version": "0/0.0.0.0",
}

OBJECT_TYPES = {
    MediaKind.IMAGE: "pish/image",
    MediaKind.FILE: "sharing/file",
    MediaKind.VIDEO: "sharing/file",
    MediaKind.AUDIO: "sharing/file",
}
UPLOAD_VIEWS = {
    MediaKind.IMAGE: "imgpsh",
    MediaKind.FILE: "original",
    MediaKind.VIDEO: "original",
    MediaKind.AUDIO: "original",
}

_JSON_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15)
_UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=300)
_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60)
_REDIRECTS = (301, 302, 303, 307, 308)
_ERROR_BODY_LIMIT = 4096
_FILENAME_BAD = re.compile(r"[\x00-\x1f\x7f]")


class MediaError(TeamsError):
    """An AMS call failed (HTTP status in ``status`` when there was one)."""


class MediaTooLarge(MediaError):
    """The content is larger than the caller's ``max_size``; nothing past it was read."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        detail = f"{size} bytes" if size is not None else "more bytes"
        super().__init__(None, "media_too_large", f"media has {detail}, the limit is {limit}")
        self.limit = limit
        self.size = size


class AmsTokenSource(Protocol):
    """What the media client needs from the token manager."""

    async def skype(self) -> SkypeToken: ...

    async def invalidate_skype_token(self, token: str) -> None: ...


Source = bytes | bytearray | memoryview | AsyncIterable[bytes]


@dataclass(frozen=True)
class AmsStatus:
    """``GET …/views/{view}/status``."""

    content_state: str | None
    view_state: str | None
    content_length: int | None = None
    content_full_length: int | None = None
    view_length: int | None = None
    view_location: str | None = None
    status_location: str | None = None

    @property
    def ready(self) -> bool:
        return self.view_state == "ready"


@dataclass(frozen=True)
class UploadedMedia:
    """An object created and filled by ``AmsApi.upload``."""

    object_id: str
    kind: MediaKind
    ams_base: str

    @property
    def url(self) -> str:
        return f"{self.ams_base}/v1/objects/{self.object_id}"

    def view_url(self, view: str) -> str:
        return f"{self.url}/views/{view}"


def media_kind(kind: MediaKind | str) -> MediaKind:
    if isinstance(kind, MediaKind):
        return kind
    try:
        return MediaKind(str(kind).lower())
    except ValueError as exc:
        raise ValueError(f"unknown media kind {kind!r}") from exc


def clean_filename(name: str | None, fallback: str = "file") -> str:
    """A display file name: no directories, no control characters, at most 255 chars."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = _FILENAME_BAD.sub("", text).strip()
    return text[:255] or fallback


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _media_error(resp: Response) -> MediaError:
    err = error_from_response(resp)
    return MediaError(err.status, err.error_code, err.message)


async def _small_body(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.content.read(_ERROR_BODY_LIMIT)
    except (aiohttp.ClientError, TimeoutError):
        return b""


def _snapshot(resp: aiohttp.ClientResponse, body: bytes) -> Response:
    return Response(resp.status, CIMultiDictProxy(CIMultiDict(resp.headers)), body)


async def iter_file(
    path: str | os.PathLike[str], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """Read a file in chunks without blocking the event loop (an upload ``source``)."""
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while True:
            chunk = await asyncio.to_thread(handle.read, chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


class _SizedStream:
    """Passes the caller's chunks on and checks they add up to the declared size.

    aiohttp reports failures inside a request body as connection errors; the real cause
    is kept in ``error`` so the caller sees it instead.
    """

    def __init__(self, source: AsyncIterable[bytes], size: int) -> None:
        self.source = source
        self.size = size
        self.sent = 0
        self.error: Exception | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.source:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError("upload sources must yield bytes")
                if not chunk:
                    continue
                self.sent += len(chunk)
                if self.sent > self.size:
                    raise MediaError(
                        None, "size_mismatch", "the source yielded more bytes than declared"
                    )
                yield bytes(chunk) if not isinstance(chunk, bytes) else chunk
            if self.sent != self.size:
                raise MediaError(
                    None, "size_mismatch", "the source yielded fewer bytes than declared"
                )
        except Exception as exc:
            self.error = exc
            raise


class AmsApi:
    """The AMS endpoints (§7) for one login."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: AmsTokenSource,
        *,
        policy: RetryPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.policy = policy or RetryPolicy()
        self.chunk_size = chunk_size

    # -- where AMS is ------------------------------------------------------------------
    async def base(self) -> str:
        """The AMS base URL from ``regionGtms`` (``…/v1/objects`` is appended to it)."""
        services = (await self.tokens.skype()).services
        if not services.ams:
            raise MediaError(None, "no_ams", "the service discovery named no AMS host")
        base = services.ams.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    async def _discovered_origins(self) -> set[str]:
        services = (await self.tokens.skype()).services
        values = [services.ams or ""]
        values += [services.raw.get(k, "") for k in ("ams", "amsV2", "mediaStream")]
        origins: set[str] = set()
        for value in values:
            try:
                parsed = URL(value)
            except (ValueError, TypeError):
                continue
            if parsed.scheme in ("http", "https") and parsed.host:
                origins.add(str(parsed.origin()).lower())
        return origins

    async def is_trusted(self, url: str | URL) -> bool:
        """Whether the Skype token may be sent to ``url``."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            return False
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return False
        if str(parsed.origin()).lower() in await self._discovered_origins():
            return True
        host = parsed.host.lower().rstrip(".")
        return parsed.scheme == "https" and any(
            host == suffix or host.endswith("." + suffix) for suffix in TRUSTED_AMS_SUFFIXES
        )

    async def resolve(self, ref: str, view: str | None = None) -> str:
        """The download URL for an object id or an AMS URL, with ``view`` applied.

        An explicit ``view`` replaces the one in the URL; without either, ``original``.
        """
        if view is not None and not is_view(view):
            raise MediaError(None, "invalid_view", "invalid AMS view name")
        if is_object_id(ref):
            chosen = view or "original"
            target = f"{await self.base()}/v1/objects/{ref}/views/{chosen}"
        else:
            parsed: AmsUrl | None = parse_ams_url(ref)
            if parsed is None:
                raise MediaError(None, "not_ams", "not an AMS object id or URL")
            if not await self.is_trusted(parsed.base):
                raise MediaError(None, "untrusted_host", "refusing to send the token to that host")
            chosen = view or parsed.view or "original"
            target = parsed.view_url(chosen)
        if chosen == "imgpsh":  # uploaded as imgpsh, served as imgpsh_fullsize
            target = target[: -len("imgpsh")] + "imgpsh_fullsize"
        return target

    def _headers(self, token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**AMS_CLIENT_HEADERS, **(extra or {}), "Authorization": f"skype_token {token}"}

    # -- JSON calls ----------------------------------------------------------------------
    async def _call(self, method: str, url: str, json_body: Any = None) -> Response:
        body = None
        extra = {"Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            extra["Content-Type"] = "application/json"
        resp: Response | None = None
        for attempt in range(2):
            token = (await self.tokens.skype()).token
            try:
                resp = await send(
                    self.session,
                    method,
                    url,
                    headers=self._headers(token, extra),
                    body=body,
                    policy=self.policy,
                    timeout=_JSON_TIMEOUT,
                    max_body=1024 * 1024,
                )
            except TeamsError as exc:
                raise MediaError(exc.status, exc.error_code, exc.message) from exc
            if resp.status == 401 and attempt == 0:
                log.info("%s %s -> 401, refreshing the Skype token", method, safe_url(url))
                await self.tokens.invalidate_skype_token(token)
                continue
            break
        assert resp is not None
        if not resp.ok:
            raise _media_error(resp)
        return resp

    async def create_object(
        self,
        kind: MediaKind | str,
        filename: str,
        conversation_id: str,
        *,
        readers: Iterable[str] = (),
    ) -> str:
        """``POST /v1/objects``; readable by the conversation's members (and ``readers``)."""
        media = media_kind(kind)
        permissions = {check_id(conversation_id): ["read"]}
        for mri in readers:
            permissions[check_id(mri)] = ["read"]
        body = {
            "type": OBJECT_TYPES[media],
            "filename": clean_filename(filename),
            "sharingMode": "Inline",
            "permissions": permissions,
        }
        resp = await self._call("POST", f"{await self.base()}/v1/objects", body)
        try:
            data = resp.json()
        except TeamsError as exc:
            raise MediaError(resp.status, "invalid_response", "AMS answer is not JSON") from exc
        object_id = data.get("id") if isinstance(data, dict) else None
        if not is_object_id(object_id):
            raise MediaError(resp.status, "invalid_response", "AMS returned no usable object id")
        assert isinstance(object_id, str)
        return object_id

    async def status(self, object_id: str, view: str) -> AmsStatus:
        """``GET /v1/objects/{id}/views/{view}/status``."""
        if not is_object_id(object_id) or not is_view(view):
            raise MediaError(None, "invalid_id", "invalid AMS object id or view")
        url = f"{await self.base()}/v1/objects/{object_id}/views/{view}/status"
        try:
            data = (await self._call("GET", url)).json()
        except MediaError:
            raise
        except TeamsError as exc:
            raise MediaError(exc.status, "invalid_response", "AMS status is not JSON") from exc
        if not isinstance(data, dict):
            raise MediaError(None, "invalid_response", "AMS status is not an object")
        return AmsStatus(
            content_state=_as_str(data.get("content_state")),
            view_state=_as_str(data.get("view_state")),
            content_length=_as_int(data.get("content_length")),
            content_full_length=_as_int(data.get("content_full_length")),
            view_length=_as_int(data.get("view_length")),
            view_location=_as_str(data.get("view_location")),
            status_location=_as_str(data.get("status_location")),
        )

    # -- upload --------------------------------------------------------------------------
    async def upload_content(
        self,
        object_id: str,
        view: str,
        source: Source,
        size: int,
        content_type: str | None,
    ) -> None:
        """``PUT /v1/objects/{id}/content/{view}``, streaming ``source`` with a fixed length.

        A ``bytes`` source is retried on 401 (after a token refresh), 429 and 5xx; an async
        iterable can be consumed once only, so those end in a ``MediaError`` (the token is
        still refreshed for the next attempt by the caller).
        """
        if not is_object_id(object_id) or not is_view(view):
            raise MediaError(None, "invalid_id", "invalid AMS object id or view")
        if size < 0:
            raise ValueError("size must not be negative")
        replayable = isinstance(source, (bytes, bytearray, memoryview))
        if replayable and len(source) != size:  # type: ignore[arg-type]
            raise ValueError("size does not match the length of the bytes")
        url = f"{await self.base()}/v1/objects/{object_id}/content/{view}"
        extra = {
            "Content-Type": content_type or "application/octet-stream",
            "Content-Length": str(size),
        }
        attempt = 0
        refreshed = False
        while True:
            token = (await self.tokens.skype()).token
            stream: _SizedStream | None = None
            body: Any
            if replayable:
                body = source
            else:
                assert not isinstance(source, (bytes, bytearray, memoryview))
                stream = _SizedStream(source, size)
                body = stream
            status: int | None = None
            try:
                async with self.session.put(
                    url,
                    data=body,
                    headers=self._headers(token, extra),
                    allow_redirects=False,
                    timeout=_UPLOAD_TIMEOUT,
                ) as resp:
                    snapshot = _snapshot(resp, await _small_body(resp))
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                if stream is not None and stream.error is not None:
                    raise stream.error from None
                if replayable and attempt < self.policy.max_retries:
                    await asyncio.sleep(self.policy.backoff(attempt))
                    attempt += 1
                    continue
                raise MediaError(None, "connection_error", type(exc).__name__) from exc
            if stream is not None and stream.error is not None:
                raise stream.error
            log.debug("PUT %s -> %s", safe_url(url), status)
            if snapshot.ok:
                return
            if status == 401:
                await self.tokens.invalidate_skype_token(token)
                if replayable and not refreshed:
                    refreshed = True
                    continue
            elif (status == 429 or snapshot.status >= 500) and replayable:
                if attempt < self.policy.max_retries:
                    retry_after = parse_retry_after(snapshot.headers.get("Retry-After"))
                    delay = (
                        min(retry_after, self.policy.max_retry_after)
                        if retry_after is not None
                        else self.policy.backoff(attempt)
                    )
                    await asyncio.sleep(delay)
                    attempt += 1
                    continue
            raise _media_error(snapshot)

    async def upload(
        self,
        kind: MediaKind | str,
        filename: str,
        conversation_id: str,
        source: Source,
        size: int,
        content_type: str | None,
        *,
        readers: Iterable[str] = (),
    ) -> UploadedMedia:
        """Create an object for ``kind`` and upload its content to the matching view."""
        media = media_kind(kind)
        object_id = await self.create_object(media, filename, conversation_id, readers=readers)
        await self.upload_content(object_id, UPLOAD_VIEWS[media], source, size, content_type)
        return UploadedMedia(object_id, media, await self.base())

    # -- download ------------------------------------------------------------------------
    def download(
        self,
        ref: str,
        view: str | None = None,
        *,
        max_size: int,
        chunk_size: int | None = None,
    ) -> MediaDownload:
        """A streamed download; use as ``async with api.download(…) as dl: async for chunk
        in dl`` (or iterate it directly)."""
        if max_size < 0:
            raise ValueError("max_size must not be negative")
        return MediaDownload(self, ref, view, max_size, chunk_size or self.chunk_size)

    async def _open_get(self, url: str) -> aiohttp.ClientResponse:
        """GET with the token; retries 429/5xx/connection errors, refreshes once on 401 and
        follows redirects only to AMS hosts."""
        attempt = 0
        refreshed = False
        redirects = 0
        extra = {"Accept": "*/*", "Accept-Encoding": "identity"}
        while True:
            if not await self.is_trusted(url):
                raise MediaError(None, "untrusted_host", "refusing to send the token to that host")
            token = (await self.tokens.skype()).token
            try:
                resp = await self.session.get(
                    url,
                    headers=self._headers(token, extra),
                    allow_redirects=False,
                    timeout=_DOWNLOAD_TIMEOUT,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= self.policy.max_retries:
                    raise MediaError(None, "connection_error", type(exc).__name__) from exc
                await asyncio.sleep(self.policy.backoff(attempt))
                attempt += 1
                continue
            status = resp.status
            log.debug("GET %s -> %d", safe_url(url), status)
            if status in _REDIRECTS and resp.headers.get("Location"):
                location = resp.headers["Location"]
                resp.release()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise MediaError(status, "too_many_redirects", "AMS redirected too often")
                try:
                    url = str(URL(url).join(URL(location)))
                except (ValueError, TypeError) as exc:
                    raise MediaError(status, "bad_redirect", "unusable redirect") from exc
                continue
            if status == 401 and not refreshed:
                resp.release()
                refreshed = True
                log.info("GET %s -> 401, refreshing the Skype token", safe_url(url))
                await self.tokens.invalidate_skype_token(token)
                continue
            if (status == 429 or status >= 500) and attempt < self.policy.max_retries:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                resp.release()
                delay = (
                    min(retry_after, self.policy.max_retry_after)
                    if retry_after is not None
                    else self.policy.backoff(attempt)
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            return resp


class MediaDownload:
    """One streamed download, capped at ``max_size`` bytes.

    ``MediaTooLarge`` is raised on open when ``Content-Length`` already exceeds the cap,
    otherwise as soon as one byte more than the cap arrives: the stream is never read
    further than ``max_size + 1`` bytes and the caller never sees more than ``max_size``.
    """

    def __init__(
        self, api: AmsApi, ref: str, view: str | None, max_size: int, chunk_size: int
    ) -> None:
        self._api = api
        self._ref = ref
        self._view = view
        self.max_size = max_size
        self.chunk_size = max(1, chunk_size)
        self._resp: aiohttp.ClientResponse | None = None
        self.url: str | None = None
        self.size: int | None = None
        self.content_type: str | None = None
        self.received = 0
        self._done = False

    async def open(self) -> MediaDownload:
        if self._resp is not None:
            return self
        url = await self._api.resolve(self._ref, self._view)
        resp = await self._api._open_get(url)
        if not 200 <= resp.status < 300:
            snapshot = _snapshot(resp, await _small_body(resp))
            resp.close()
            raise _media_error(snapshot)
        declared = resp.content_length
        if declared is not None and declared > self.max_size:
            resp.close()
            raise MediaTooLarge(self.max_size, declared)
        self._resp = resp
        self.url = url
        self.size = declared
        self.content_type = resp.headers.get("Content-Type")
        return self

    async def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if self._done:
            resp.release()
        else:
            resp.close()  # unread data: don't hand a dirty connection back to the pool

    async def __aenter__(self) -> MediaDownload:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._resp is None:
            return self._auto()
        return self.iter_chunks()

    async def _auto(self) -> AsyncIterator[bytes]:
        await self.open()
        try:
            async for chunk in self.iter_chunks():
                yield chunk
        finally:
            await self.close()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        resp = self._resp
        if resp is None:
            raise RuntimeError("the download is not open")
        while True:
            want = min(self.chunk_size, self.max_size - self.received + 1)
            try:
                chunk = await resp.content.read(want)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise MediaError(None, "connection_error", type(exc).__name__) from exc
            if not chunk:
                break
            self.received += len(chunk)
            if self.received > self.max_size:
                raise MediaTooLarge(self.max_size, self.size)
            yield chunk
        if self.size is not None and self.received != self.size:
            raise MediaError(None, "truncated", "the download ended early")
        self._done = True

    async def read(self) -> bytes:
        """The whole content (at most ``max_size`` bytes, so only for small caps)."""
        chunks = [chunk async for chunk in self]
        return b"".join(chunks)
