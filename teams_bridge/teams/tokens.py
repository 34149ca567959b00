"""Keeps the short-lived tokens of one login fresh.

Access and Skype tokens are minted lazily and refreshed before they expire;
every refresh rotates the refresh token, which is handed to the rotation
callback at once so the core can persist it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from .auth import AccessToken, AuthClient, spaces_scope
from .authz import SkypeToken, fetch_skype_token
from .credentials import Credentials
from .endpoints import Endpoints, ServiceUrls
from .errors import AuthError
from .http import RetryPolicy

log = logging.getLogger("teams.tokens")

CredentialsCallback = Callable[[Credentials], Awaitable[None] | None]

_ACCESS_MARGIN = 300.0


class TokenManager:
    """Mints and caches the spaces access token and the Skype token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        on_credentials_changed: CredentialsCallback | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.policy = policy or RetryPolicy()
        self._auth = AuthClient(session, endpoints, policy=policy)
        self._credentials = credentials
        self._on_credentials_changed = on_credentials_changed
        self._access: AccessToken | None = None
        self._skype: SkypeToken | None = None
        self._refresh_lock = asyncio.Lock()
        self._skype_lock = asyncio.Lock()

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    @property
    def services(self) -> ServiceUrls:
        if self._skype is None:
            raise AuthError("not connected: no Skype token minted yet")
        return self._skype.services

    @property
    def skype_id(self) -> str | None:
        return self._skype.skype_id if self._skype else None

    def _access_valid(self, token: AccessToken | None) -> bool:
        if token is None:
            return False
        margin = min(_ACCESS_MARGIN, token.expires_in * 0.2)
        return time.monotonic() < token.obtained_at + token.expires_in - margin

    async def access_token(self) -> str:
        """The spaces access token (Bearer for middle tier, registrar, Trouter, authz)."""
        current = self._access
        if current is not None and self._access_valid(current):
            return current.token
        async with self._refresh_lock:
            if self._access is not None and self._access_valid(self._access):
                return self._access.token
            creds = self._credentials
            access, rotated = await self._auth.refresh(
                creds, spaces_scope(creds.client_id, creds.kind)
            )
            self._access = access
            await self._store(rotated)
            return access.token

    async def _store(self, credentials: Credentials) -> None:
        self._credentials = credentials
        callback = self._on_credentials_changed
        if callback is None:
            return
        try:
            result = callback(credentials)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("The credentials-changed callback failed")

    async def skype_token(self) -> str:
        """The Skype token, re-minted at 80 % of its lifetime (or 60 s before expiry)."""
        return (await self.skype()).token

    async def skype(self) -> SkypeToken:
        current = self._skype
        if current is not None and time.monotonic() < current.refresh_at():
            return current
        async with self._skype_lock:
            current = self._skype
            if current is not None and time.monotonic() < current.refresh_at():
                return current
            access = await self.access_token()
            try:
                minted = await fetch_skype_token(
                    self.session, self.endpoints, self._credentials.kind, access, policy=self.policy
                )
            except AuthError as exc:
                if exc.status == 401:
                    # The access token may have been revoked early; mint a new one once.
                    await self.invalidate_access_token(access)
                    access = await self.access_token()
                    minted = await fetch_skype_token(
                        self.session,
                        self.endpoints,
                        self._credentials.kind,
                        access,
                        policy=self.policy,
                    )
                else:
                    raise
            self._skype = minted
            return minted

    async def invalidate_skype_token(self, token: str) -> None:
        """Forget the Skype token if it is still the one a server refused."""
        if self._skype is not None and self._skype.token == token:
            log.info("Skype token refused, it will be re-minted")
            self._skype = None

    async def invalidate_access_token(self, token: str) -> None:
        """Forget the access token if it is still the one a server refused."""
        if self._access is not None and self._access.token == token:
            log.info("Access token refused, it will be refreshed")
            self._access = None
