"""The one place HTTP requests are made: auth headers, 401/429/5xx handling, errors.

Every service call goes through ``TeamsHttp.request`` so token refresh, retry
budgets and token hygiene (no redirects that would carry tokens elsewhere, no
URLs with query strings in logs) are handled once.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import AuthError, TeamsError
from .lean_http import BodyTooLarge, LeanHttp, LeanHttpError, NotSent

log = logging.getLogger("teams.http")

MAX_BODY_BYTES = 32 * 1024 * 1024
_DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15)


class Auth(Enum):
    """How a request authenticates."""

    NONE = "none"
    CHAT = "chat"  # chat service: Authentication: skypetoken=…
    SKYPE = "skype"  # trouter: X-Skypetoken
    SKYPE_BEARER = "skype_bearer"  # registrar / middle tier: X-Skypetoken + Bearer spaces token
    MT_COOKIE = "mt_cookie"  # middle-tier pictures: the spaces token in an `authtoken` cookie


TEAMS_ORIGIN = "https://teams.microsoft.com"
_AUTHTOKEN_PREFIX = "authtoken=Bearer="


class TokenSource(Protocol):
    """What the HTTP layer needs from the token manager."""

    async def skype_token(self) -> str: ...

    async def access_token(self) -> str: ...

    async def invalidate_skype_token(self, token: str) -> None: ...

    async def invalidate_access_token(self, token: str) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for 429, 5xx and connection errors."""

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter (half to full of the exponential step)."""
        step = min(self.max_delay, self.base_delay * (2**attempt))
        return step * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Response:
    """A fully read response; bodies are bytes because errors are not always JSON."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """Decode the body as JSON; an empty body is ``None``."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TeamsError(self.status, "invalid_json", "response body is not JSON") from exc


def safe_url(url: str | URL) -> str:
    """The URL without query or fragment, for logs (queries can hold signatures)."""
    try:
        parsed = URL(str(url), encoded=True)
        return str(parsed.with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<unparsable url>"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
        seconds = (when - current).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


_TAG_RE = re.compile(r"<[^>]*>")
_WS_RE = re.compile(r"\s+")


def _short_text(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace")
    text = _WS_RE.sub(" ", _TAG_RE.sub(" ", text)).strip()
    return text[:limit]


def error_from_response(resp: Response) -> TeamsError:
    """Build a ``TeamsError`` from JSON, Skype-style, AAD-style or HTML/text bodies."""
    code: str | None = None
    message: str | None = None
    data: Any = None
    try:
        data = json.loads(resp.body) if resp.body.strip() else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        raw_code = data.get("errorCode", data.get("code"))
        raw_message = (
            data.get("message") or data.get("errorMessage") or data.get("error_description")
        )
        err = data.get("error")
        if isinstance(err, dict):
            raw_code = raw_code if raw_code is not None else err.get("code")
            raw_message = raw_message or err.get("message")
        elif isinstance(err, str) and raw_code is None:
            raw_code = err
        status_obj = data.get("status")
        if isinstance(status_obj, dict):
            raw_code = raw_code if raw_code is not None else status_obj.get("code")
            raw_message = raw_message or status_obj.get("text")
        if raw_code is not None and not isinstance(raw_code, (dict, list)):
            code = str(raw_code)
        if isinstance(raw_message, str):
            message = raw_message[:300]
    if message is None:
        message = _short_text(resp.body) or f"HTTP {resp.status}"
    return TeamsError(resp.status, code, message)


async def _read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise TeamsError(resp.status, "body_too_large", "response body exceeds the size limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    policy: RetryPolicy | None = None,
    timeout: aiohttp.ClientTimeout = _DEFAULT_TIMEOUT,
    max_body: int = MAX_BODY_BYTES,
    lean: LeanHttp | None = None,
) -> Response:
    """Send with retries for 429/5xx/connection errors; other statuses are returned.

    With ``lean``, the request goes through that small client instead of the session."""
    policy = policy or RetryPolicy()
    attempt = 0
    while True:
        try:
            if lean is not None:
                resp = await _send_lean(lean, method, url, headers, body, timeout, max_body)
            else:
                resp = await _send_aiohttp(session, method, url, headers, body, timeout, max_body)
        except (aiohttp.ClientError, LeanHttpError, TimeoutError) as exc:
            # A POST that failed after it was sent may have been carried out: retrying it
            # here could post twice. Only the caller can check (by clientmessageid).
            never_sent = isinstance(exc, aiohttp.ClientConnectorError | NotSent)
            if attempt >= policy.max_retries or (method.upper() == "POST" and not never_sent):
                raise TeamsError(None, "connection_error", type(exc).__name__) from exc
            delay = policy.backoff(attempt)
            log.debug(
                "%s %s failed (%s), retrying in %.1fs",
                method,
                safe_url(url),
                type(exc).__name__,
                delay,
            )
        else:
            log.debug("%s %s -> %d", method, safe_url(url), resp.status)
            if resp.status == 429 or resp.status >= 500:
                if attempt >= policy.max_retries:
                    return resp
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None:
                    delay = min(retry_after, policy.max_retry_after)
                else:
                    delay = policy.backoff(attempt)
                log.info(
                    "%s %s -> %d, retrying in %.1fs", method, safe_url(url), resp.status, delay
                )
            else:
                return resp
        attempt += 1
        await asyncio.sleep(delay)


async def _send_lean(
    lean: LeanHttp,
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    timeout: aiohttp.ClientTimeout,
    max_body: int,
) -> Response:
    if body is not None and not any(k.lower() == "content-type" for k in headers or {}):
        # What aiohttp labelled a body of bytes with; the services saw it so far.
        headers = {**(headers or {}), "Content-Type": "application/octet-stream"}
    try:
        raw = await lean.request(
            method,
            url,
            headers=headers,
            body=body,
            timeout=timeout.total,
            connect_timeout=timeout.sock_connect or timeout.connect,
            max_body=max_body,
        )
    except BodyTooLarge as e:
        raise TeamsError(e.status, "body_too_large", "response body exceeds the size limit") from e
    return Response(raw.status, CIMultiDictProxy(raw.headers), raw.body)


async def _send_aiohttp(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    timeout: aiohttp.ClientTimeout,
    max_body: int,
) -> Response:
    async with session.request(
        method,
        URL(url, encoded=True),
        headers=dict(headers or {}),
        data=body,
        allow_redirects=False,
        timeout=timeout,
    ) as raw:
        payload = await _read_body(raw, max_body)
        return Response(raw.status, CIMultiDictProxy(CIMultiDict(raw.headers)), payload)


class TeamsHttp:
    """Authenticated requests against the Teams services."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: TokenSource,
        *,
        policy: RetryPolicy | None = None,
        timeout: aiohttp.ClientTimeout = _DEFAULT_TIMEOUT,
        lean: LeanHttp | None = None,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        # The small client for these requests (`lean_http`); aiohttp's session without it.
        self.lean = lean

    async def _auth_headers(self, auth: Auth) -> dict[str, str]:
        if auth is Auth.CHAT:
            return {"Authentication": f"skypetoken={await self.tokens.skype_token()}"}
        if auth is Auth.SKYPE:
            return {"X-Skypetoken": await self.tokens.skype_token()}
        if auth is Auth.SKYPE_BEARER:
            return {
                "X-Skypetoken": await self.tokens.skype_token(),
                "Authorization": f"Bearer {await self.tokens.access_token()}",
            }
        if auth is Auth.MT_COOKIE:
            # The web client's form (§8): the cookie value itself holds `=` and `&`.
            token = await self.tokens.access_token()
            return {
                "Cookie": f"{_AUTHTOKEN_PREFIX}{token}&Origin={TEAMS_ORIGIN}",
                "Referer": f"{TEAMS_ORIGIN}/",
            }
        return {}

    async def _invalidate(self, auth: Auth, sent: Mapping[str, str]) -> None:
        skype = sent.get("X-Skypetoken")
        chat = sent.get("Authentication", "")
        if chat.startswith("skypetoken="):
            skype = chat[len("skypetoken=") :]
        if skype:
            await self.tokens.invalidate_skype_token(skype)
        bearer = sent.get("Authorization", "")
        if bearer.startswith("Bearer "):
            await self.tokens.invalidate_access_token(bearer[len("Bearer ") :])
        cookie = sent.get("Cookie", "")
        if cookie.startswith(_AUTHTOKEN_PREFIX):
            token = cookie[len(_AUTHTOKEN_PREFIX) :].partition("&")[0]
            await self.tokens.invalidate_access_token(token)

    async def request(
        self,
        method: str,
        url: str,
        *,
        auth: Auth,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
        max_body: int = MAX_BODY_BYTES,
    ) -> Response:
        """Send a request; 401 refreshes the tokens once and retries once."""
        body = data
        base_headers: dict[str, str] = {"Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            base_headers["Content-Type"] = "application/json"
        if headers:
            base_headers.update(headers)
        resp: Response | None = None
        for attempt in range(2):
            auth_headers = await self._auth_headers(auth)
            all_headers = {**base_headers, **auth_headers}
            resp = await send(
                self.session,
                method,
                url,
                headers=all_headers,
                body=body,
                policy=self.policy,
                timeout=self.timeout,
                max_body=max_body,
                lean=self.lean,
            )
            if resp.status != 401 or auth is Auth.NONE:
                break
            if attempt == 0:
                log.info("%s %s -> 401, refreshing tokens and retrying once", method, safe_url(url))
                await self._invalidate(auth, auth_headers)
            else:
                err = error_from_response(resp)
                raise AuthError(
                    f"still unauthorised after a token refresh: {err.message}",
                    status=401,
                    error_code=err.error_code,
                )
        assert resp is not None
        if raise_for_status and not resp.ok:
            raise error_from_response(resp)
        return resp
