"""AAD device-code login and per-resource refresh with rotation.

Refresh tokens rotate on every use, so each refresh hands back new
``Credentials`` that the caller must persist at once; using an old refresh token
later can fail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from .credentials import Credentials, DeviceCodeFlow
from .endpoints import Endpoints
from .errors import (
    AuthError,
    LoginBlocked,
    LoginDeclined,
    LoginExpired,
    ReloginRequired,
    TeamsError,
)
from .http import Response, RetryPolicy, send
from .ids import MSA_TENANT_ID
from .jwt import unverified_claims
from .kinds import AccountKind

log = logging.getLogger("teams.auth")

ENTERPRISE_CLIENT_ID = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
CONSUMER_CLIENT_ID = "4b3e8f46-56d3-427f-b1e2-d239b2ea6bca"
ENTERPRISE_SPACES_SCOPE = "https://api.spaces.skype.com/.default"
CONSUMER_SPACES_SCOPE = "service::api.fl.spaces.skype.com::MBI_SSL"
OIDC_SCOPES = "openid profile offline_access"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# Where each client's sign-in lands (the address the user pastes back).
ENTERPRISE_REDIRECT = "https://login.microsoftonline.com/common/oauth2/nativeclient"
CONSUMER_REDIRECT = "https://teams.live.com/v2"
# Conditional access refusals (blocked location, device, or sign-in method).
_BLOCKED_AADSTS = frozenset({53000, 53001, 53002, 53003, 53004})

_MIN_POLL_INTERVAL = 0.05
_RELOGIN_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})
_RELOGIN_AADSTS = frozenset({700082, 50173, 70000, 700084, 50076, 50079, 70043})


def spaces_scope(client_id: str, kind: AccountKind) -> str:
    """The resource scope for the Skype/spaces token (MSA clients reject ``.default``)."""
    if client_id == CONSUMER_CLIENT_ID or (
        client_id != ENTERPRISE_CLIENT_ID and kind is AccountKind.PERSONAL
    ):
        return CONSUMER_SPACES_SCOPE
    return ENTERPRISE_SPACES_SCOPE


def default_client(kind: AccountKind, tenant: str | None) -> tuple[str, str]:
    """The (client id, tenant) a login of this kind uses."""
    if kind is AccountKind.PERSONAL:
        return CONSUMER_CLIENT_ID, tenant or "consumers"
    return ENTERPRISE_CLIENT_ID, tenant or "organizations"


@dataclass(frozen=True)
class AuthCodeFlow:
    """A browser sign-in under way: its address, and the PKCE verifier and state that
    finishing it needs (never shown)."""

    kind: AccountKind
    tenant: str
    client_id: str
    redirect_uri: str
    verifier: str = field(repr=False)
    state: str = field(repr=False)
    url: str = field(repr=False)


class PastedAddressError(AuthError):
    """The pasted address is not the end of this sign-in (or tells of a failure)."""


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_redirect(pasted: str, flow: AuthCodeFlow) -> str:
    """The authorization code in the address a browser sign-in ended on, checked against
    the sign-in it belongs to; ``PastedAddressError`` saying what is wrong otherwise."""
    url = urlsplit(pasted.strip().strip("<>"))
    params: dict[str, str] = {}
    for part in (url.query, url.fragment):
        for key, values in parse_qs(part, keep_blank_values=True).items():
            params.setdefault(key, values[0])
    if url.scheme not in ("http", "https") or not url.netloc:
        raise PastedAddressError("that is not a web address: paste the whole address")
    if "error" in params:
        description = params.get("error_description") or params["error"]
        raise PastedAddressError(f"Microsoft refused the sign-in: {description.splitlines()[0]}")
    if params.get("state") != flow.state:
        raise PastedAddressError(
            "that address is from another sign-in: use the link of your latest `login-browser`"
        )
    code = params.get("code")
    if not code:
        raise PastedAddressError("the address has no code: did the sign-in finish?")
    return code


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class AccessToken:
    """An AAD access token for one resource."""

    token: str = field(repr=False)
    expires_in: float
    obtained_at: float


@dataclass(frozen=True)
class TokenResult:
    """A successful token-endpoint answer."""

    access: AccessToken
    refresh_token: str | None = field(repr=False)
    id_claims: dict[str, Any] = field(repr=False)


def _as_int(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _first_line(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    return text.strip().splitlines()[0][:300]


def _aad_error(resp: Response) -> tuple[str, str, list[int]]:
    data: Any
    try:
        data = resp.json()
    except TeamsError:
        data = None
    if not isinstance(data, dict):
        return "http_error", f"HTTP {resp.status}", []
    error = data.get("error")
    codes = data.get("error_codes")
    code_list = [c for c in codes if isinstance(c, int)] if isinstance(codes, list) else []
    return (
        str(error) if isinstance(error, str) else "unknown_error",
        _first_line(data.get("error_description")) or str(error or f"HTTP {resp.status}"),
        code_list,
    )


def credentials_from(
    result: TokenResult,
    *,
    kind: AccountKind,
    tenant: str,
    client_id: str,
    previous: Credentials | None = None,
) -> Credentials:
    """Merge a token answer (and its id_token claims) into credentials."""
    claims = result.id_claims
    refresh = result.refresh_token or (previous.refresh_token if previous else None)
    if not refresh:
        raise AuthError("the token endpoint returned no refresh token")

    def claim(*names: str) -> str | None:
        for name in names:
            value = claims.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    tid = claim("tid") or (previous.tenant_id if previous else None)
    if tid:
        kind = AccountKind.PERSONAL if tid.lower() == MSA_TENANT_ID else AccountKind.ENTERPRISE
    return Credentials(
        kind=kind,
        tenant=tenant,
        client_id=client_id,
        refresh_token=refresh,
        tenant_id=tid,
        user_object_id=claim("oid") or (previous.user_object_id if previous else None),
        display_name=claim("name") or (previous.display_name if previous else None),
        username=claim("preferred_username", "upn", "email", "unique_name")
        or (previous.username if previous else None),
    )


class AuthClient:
    """Talks to the AAD v2 endpoints under ``endpoints.login``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Endpoints,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.policy = policy or RetryPolicy()

    async def _post_form(self, url: str, form: dict[str, str]) -> Response:
        return await send(
            self.session,
            "POST",
            url,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            body=urlencode(form).encode(),
            policy=self.policy,
        )

    async def start_device_code(
        self, kind: AccountKind, tenant: str | None = None
    ) -> DeviceCodeFlow:
        """Ask for a device code; the user enters ``user_code`` at ``verification_uri``."""
        kind = AccountKind(kind)
        client_id, tenant = default_client(kind, tenant)
        scope = f"{spaces_scope(client_id, kind)} {OIDC_SCOPES}"
        resp = await self._post_form(
            self.endpoints.login_url(tenant, "devicecode"),
            {"client_id": client_id, "scope": scope},
        )
        if not resp.ok:
            error, message, _codes = _aad_error(resp)
            raise AuthError(
                f"could not start the device-code login: {message}",
                status=resp.status,
                error_code=error,
            )
        data = resp.json()
        if not isinstance(data, dict):
            raise AuthError("device-code answer is not an object", status=resp.status)
        device_code = data.get("device_code")
        user_code = data.get("user_code")
        uri = data.get("verification_uri") or data.get("verification_url")
        if not (
            isinstance(device_code, str)
            and device_code
            and isinstance(user_code, str)
            and user_code
            and isinstance(uri, str)
            and uri
        ):
            raise AuthError("device-code answer is missing fields", status=resp.status)
        expires_in = _as_int(data.get("expires_in"), 900)
        interval = max(0, _as_int(data.get("interval"), 5))
        prompt = data.get("message")
        if not isinstance(prompt, str) or not prompt:
            prompt = f"To sign in, open {uri} and enter the code {user_code}."
        log.info("Started a %s device-code login (tenant %s)", kind.value, tenant)
        return DeviceCodeFlow(
            user_code=user_code,
            verification_uri=uri,
            expires_in=expires_in,
            interval=interval,
            message=prompt,
            device_code=device_code,
            client_id=client_id,
            tenant=tenant,
            kind=kind,
        )

    async def poll_device_code(self, flow: DeviceCodeFlow) -> Credentials:
        """Poll until the user finishes; raises ``LoginDeclined``/``LoginExpired``."""
        deadline = time.monotonic() + flow.expires_in
        interval = float(flow.interval)
        url = self.endpoints.login_url(flow.tenant, "token")
        while True:
            await asyncio.sleep(max(interval, _MIN_POLL_INTERVAL))
            if time.monotonic() > deadline:
                raise LoginExpired()
            resp = await self._post_form(
                url,
                {
                    "grant_type": DEVICE_CODE_GRANT,
                    "client_id": flow.client_id,
                    "device_code": flow.device_code,
                },
            )
            if resp.ok:
                result = self._token_result(resp)
                log.info("Device-code login completed")
                return credentials_from(
                    result, kind=flow.kind, tenant=flow.tenant, client_id=flow.client_id
                )
            error, message, _codes = _aad_error(resp)
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5
                continue
            if error in ("expired_token", "code_expired"):
                raise LoginExpired()
            if _BLOCKED_AADSTS.intersection(_codes):
                raise LoginBlocked(
                    f"conditional access refused the device-code sign-in: {message}",
                    status=resp.status,
                    error_code=error,
                )
            if error in ("authorization_declined", "access_denied"):
                raise LoginDeclined()
            raise AuthError(
                f"device-code login failed: {message}", status=resp.status, error_code=error
            )

    # -- authorization code with PKCE (a browser sign-in whose address is pasted back) -----

    def start_auth_code(self, kind: AccountKind, tenant: str | None = None) -> AuthCodeFlow:
        """The sign-in address for a browser, and what finishing needs (its PKCE verifier
        and state stay here)."""
        kind = AccountKind(kind)
        client_id, tenant = default_client(kind, tenant)
        redirect = CONSUMER_REDIRECT if kind is AccountKind.PERSONAL else ENTERPRISE_REDIRECT
        verifier = secrets.token_urlsafe(64)
        state = secrets.token_urlsafe(16)
        params = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect,
            "scope": f"{spaces_scope(client_id, kind)} {OIDC_SCOPES}",
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "state": state,
        }
        if kind is AccountKind.PERSONAL:
            params["response_mode"] = "fragment"
        url = f"{self.endpoints.login_url(tenant, 'authorize')}?{urlencode(params)}"
        return AuthCodeFlow(kind, tenant, client_id, redirect, verifier, state, url)

    async def finish_auth_code(self, flow: AuthCodeFlow, pasted: str) -> Credentials:
        """Redeem the code in the address the browser ended on (``pasted``)."""
        answer = parse_redirect(pasted, flow)
        headers = (
            {"Origin": _origin(flow.redirect_uri)} if flow.kind is AccountKind.PERSONAL else {}
        )
        resp = await send(
            self.session,
            "POST",
            self.endpoints.login_url(flow.tenant, "token"),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                **headers,
            },
            body=urlencode(
                {
                    "grant_type": "authorization_code",
                    "client_id": flow.client_id,
                    "code": answer,
                    "redirect_uri": flow.redirect_uri,
                    "code_verifier": flow.verifier,
                    "scope": f"{spaces_scope(flow.client_id, flow.kind)} {OIDC_SCOPES}",
                }
            ).encode(),
            policy=self.policy,
        )
        if not resp.ok:
            error, message, codes = _aad_error(resp)
            if _BLOCKED_AADSTS.intersection(codes):
                raise LoginBlocked(
                    f"conditional access refused the sign-in: {message}",
                    status=resp.status,
                    error_code=error,
                )
            raise AuthError(f"the sign-in failed: {message}", status=resp.status, error_code=error)
        result = self._token_result(resp)
        log.info("Browser login completed")
        return credentials_from(
            result, kind=flow.kind, tenant=flow.tenant, client_id=flow.client_id
        )

    async def refresh(
        self, credentials: Credentials, scope: str
    ) -> tuple[AccessToken, Credentials]:
        """Redeem the refresh token for ``scope``; returns the token and rotated credentials."""
        resp = await self._post_form(
            self.endpoints.login_url(credentials.tenant, "token"),
            {
                "grant_type": "refresh_token",
                "client_id": credentials.client_id,
                "refresh_token": credentials.refresh_token,
                "scope": f"{scope} {OIDC_SCOPES}",
            },
        )
        if not resp.ok:
            error, message, codes = _aad_error(resp)
            if error in _RELOGIN_ERRORS or _RELOGIN_AADSTS.intersection(codes):
                raise ReloginRequired(
                    f"the refresh token was rejected ({error}); log in again",
                    status=resp.status,
                    error_code=error,
                )
            raise AuthError(
                f"token refresh failed: {message}", status=resp.status, error_code=error
            )
        result = self._token_result(resp)
        creds = credentials_from(
            result,
            kind=credentials.kind,
            tenant=credentials.tenant,
            client_id=credentials.client_id,
            previous=credentials,
        )
        return result.access, creds

    async def login_with_refresh_token(
        self, refresh_token: str, kind: AccountKind, tenant: str | None = None
    ) -> Credentials:
        """Log in with a refresh token obtained elsewhere (it is rotated at once)."""
        kind = AccountKind(kind)
        client_id, tenant = default_client(kind, tenant)
        seed = Credentials(
            kind=kind, tenant=tenant, client_id=client_id, refresh_token=refresh_token
        )
        _access, creds = await self.refresh(seed, spaces_scope(client_id, kind))
        return creds

    @staticmethod
    def _token_result(resp: Response) -> TokenResult:
        data = resp.json()
        if not isinstance(data, dict):
            raise AuthError("token answer is not an object", status=resp.status)
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError("token answer has no access token", status=resp.status)
        refresh = data.get("refresh_token")
        return TokenResult(
            access=AccessToken(
                token=access,
                expires_in=float(_as_int(data.get("expires_in"), 3600)),
                obtained_at=time.monotonic(),
            ),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_claims=unverified_claims(data.get("id_token")),
        )
