"""Azure AD v2 device-code, authorization-code (PKCE) and refresh-token grants
(teams-protocol.md §2.1-2.3).

Refresh tokens rotate strictly: a refresh token works once, the answer carries its
successor, and reusing the old one gets `invalid_grant`, so a client that fails to
persist the new token is caught.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .context import SimContext, ctx
from .devicecodes import DeviceCode
from .ids import MSA_TENANT_ID, PERSONAL_CLIENT_ID, WORK_CLIENT_ID
from .model import User, UserKind
from .util import compact_json

CLIENT_KINDS: dict[str, UserKind] = {WORK_CLIENT_ID: "work", PERSONAL_CLIENT_ID: "personal"}
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
GRAPH = "https://graph.microsoft.com"
DEVICE_GRANTS = {"urn:ietf:params:oauth:grant-type:device_code", "device_code"}


def aad_error(error: str, code: int, description: str, status: int = 400) -> web.Response:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {corr}\r\nTimestamp: {now}"
        ),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return web.Response(status=status, text=compact_json(body), content_type="application/json")


def tenant_allowed(kind: UserKind, tenant: str, work_tenant: str) -> bool:
    tenant = tenant.lower()
    if kind == "personal":
        return tenant in ("consumers", "common", MSA_TENANT_ID)
    if tenant in ("organizations", "common") or tenant.endswith(".onmicrosoft.com"):
        return True
    try:
        uuid.UUID(tenant)
    except ValueError:
        return False
    return tenant != MSA_TENANT_ID


def scope_audience(scope: str, kind: UserKind) -> str | web.Response:
    """The single resource a scope string asks for, or the AAD error for it."""
    resources: set[str] = set()
    for part in scope.split():
        if part in OIDC_SCOPES:
            continue
        if part.startswith("service::"):
            if kind != "personal":
                return aad_error(
                    "invalid_scope", 70011, f"The provided value for scope {part} is not valid."
                )
            resources.add(part)
        elif part.endswith("/.default"):
            if kind == "personal":
                return aad_error(
                    "invalid_scope",
                    70011,
                    f"The provided value for scope {part} is not valid. "
                    ".default scopes are not supported for this client.",
                )
            resources.add(part[: -len("/.default")])
        elif "://" in part:
            resources.add(part.rsplit("/", 1)[0])
        else:
            resources.add(GRAPH)
    if len(resources) > 1:
        return aad_error(
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more than one resource.",
        )
    return resources.pop() if resources else GRAPH


def token_answer(
    c: SimContext, user: User, client_id: str, scope: str, audience: str, *, refresh: bool
) -> web.Response:
    parts = scope.split()
    resource_scopes = " ".join(p for p in parts if p not in OIDC_SCOPES) or f"{GRAPH}/User.Read"
    access = c.tokens.issue_access(user, client_id, audience, "user_impersonation")
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": resource_scopes,
        "expires_in": c.options.access_token_lifetime,
        "ext_expires_in": c.options.access_token_lifetime,
        "access_token": access.value,
    }
    if refresh or "offline_access" in parts:
        body["refresh_token"] = c.tokens.issue_refresh(user, client_id).value
    if refresh or "openid" in parts:
        body["id_token"] = c.tokens.issue_id(user, client_id).value
    return web.Response(text=compact_json(body), content_type="application/json")


async def devicecode(request: web.Request) -> web.Response:
    c = ctx(request)
    form = await request.post()
    client_id = str(form.get("client_id", ""))
    tenant = request.match_info["tenant"]
    kind = CLIENT_KINDS.get(client_id)
    if kind is None:
        return aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory.",
        )
    if not tenant_allowed(kind, tenant, c.world.tenant_id):
        return aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    scope = str(form.get("scope", ""))
    audience = scope_audience(scope, kind)
    if isinstance(audience, web.Response):
        return audience
    lifetime = c.options.device_code_lifetime
    value = c.tokens.issue_device_code(lifetime).value
    code = DeviceCode(
        device_code=value,
        user_code=c.device_codes.new_user_code(),
        kind=kind,
        client_id=client_id,
        tenant=tenant,
        scope=scope,
        interval=c.options.device_code_interval,
        expires_at=time.time() + lifetime,
    )
    c.device_codes.add(code)
    uri = f"{c.base_url}/devicelogin"
    body = {
        "user_code": code.user_code,
        "device_code": code.device_code,
        "verification_uri": uri,
        "expires_in": lifetime,
        "interval": code.interval,
        "message": (
            f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{code.user_code} to authenticate."
        ),
    }
    return web.Response(text=compact_json(body), content_type="application/json")


async def token(request: web.Request) -> web.Response:
    c = ctx(request)
    form = await request.post()
    grant = str(form.get("grant_type", ""))
    client_id = str(form.get("client_id", ""))
    kind = CLIENT_KINDS.get(client_id)
    if kind is None:
        return aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory.",
        )
    if not tenant_allowed(kind, request.match_info["tenant"], c.world.tenant_id):
        return aad_error(
            "invalid_request",
            50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        )
    if grant == "authorization_code":
        return _code_grant(c, form, client_id)
    if grant in DEVICE_GRANTS:
        return _device_grant(c, str(form.get("device_code") or form.get("code") or ""), client_id)
    if grant == "refresh_token":
        return _refresh_grant(
            c, str(form.get("refresh_token", "")), client_id, str(form.get("scope", "")), kind
        )
    if not grant:
        return aad_error(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    return aad_error(
        "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
    )


def _device_grant(c: SimContext, device_code: str, client_id: str) -> web.Response:
    code = c.device_codes.by_device.get(device_code)
    if code is None or code.client_id != client_id:
        return aad_error(
            "invalid_grant",
            70000,
            "The provided value for the input parameter 'device_code' is not valid.",
        )
    if code.status == "redeemed":
        return aad_error(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        )
    if code.status == "declined":
        return aad_error(
            "authorization_declined", 70000, "The user declined the authentication request."
        )
    if code.expired:
        return aad_error(
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        )
    now = time.monotonic()
    too_fast = code.last_poll is not None and now - code.last_poll < code.interval - 0.25
    code.last_poll = now
    if too_fast and c.options.enforce_poll_interval:
        return aad_error(
            "slow_down", 70016, "OAuth 2.0 device flow error. Polling too frequently, slow down."
        )
    if code.status == "pending":
        return aad_error(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )
    if c.options.conditional_access == "block_device_code":
        code.status = "redeemed"
        return aad_error(
            "invalid_grant",
            53003,
            "Access has been blocked by Conditional Access policies. The access policy does "
            "not allow token issuance.",
        )
    user = c.world.users[str(code.mri)]
    code.status = "redeemed"
    audience = scope_audience(code.scope, code.kind)
    assert isinstance(audience, str)
    return token_answer(c, user, client_id, code.scope, audience, refresh=False)


def _refresh_grant(
    c: SimContext, value: str, client_id: str, scope: str, kind: UserKind
) -> web.Response:
    old = c.tokens.find(value, "refresh")
    if old is None or not old.valid:
        return aad_error(
            "invalid_grant",
            700082,
            "The refresh token has expired or was revoked (it may already have been used: refresh tokens rotate).",
        )
    if old.client_id != client_id:
        return aad_error(
            "invalid_grant", 70000, "The refresh token was issued to a different client."
        )
    audience = scope_audience(scope, kind)
    if isinstance(audience, web.Response):
        return audience
    user = c.world.users[old.mri]
    answer = token_answer(c, user, client_id, scope, audience, refresh=True)
    c.tokens.rotate(old)
    return answer


# Where each client's browser sign-in may land (§2.1): the address the user pastes back.
REDIRECTS: dict[str, str] = {
    WORK_CLIENT_ID: "https://login.microsoftonline.com/common/oauth2/nativeclient",
    PERSONAL_CLIENT_ID: "https://teams.live.com/v2",
}


async def authorize(request: web.Request) -> web.Response:
    """The browser sign-in (authorization code with PKCE). GET: a page to pick a simulated
    user; POST (the page's form, field ``mri``): the redirect to ``redirect_uri`` with the
    code and state, in the query or (``response_mode=fragment``) the fragment. Errors about
    the client or redirect address are shown, not redirected, as AAD does; others go back
    in the redirect as ``error``/``error_description``."""
    c = ctx(request)
    params = dict(request.query)
    if request.method == "POST":
        params.update({k: str(v) for k, v in (await request.post()).items()})
    client_id = params.get("client_id", "")
    kind = CLIENT_KINDS.get(client_id)
    if kind is None:
        return aad_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory.",
        )
    redirect = params.get("redirect_uri", "")
    if redirect != REDIRECTS[client_id]:
        return aad_error(
            "invalid_request",
            50011,
            f"The redirect URI '{redirect}' specified in the request does not match the "
            "redirect URIs configured for the application.",
        )
    fragment = params.get("response_mode") == "fragment"

    def back(**answer: str) -> web.Response:
        if "state" in params:
            answer["state"] = params["state"]
        sep = "#" if fragment else "?"
        raise web.HTTPFound(f"{redirect}{sep}{urlencode(answer)}")

    if not tenant_allowed(kind, request.match_info["tenant"], c.world.tenant_id):
        return back(error="invalid_request", error_description="AADSTS90002: Tenant not found.")
    if params.get("response_type") != "code":
        return back(
            error="unsupported_response_type",
            error_description="AADSTS70005: response_type 'token' is not enabled for the application.",
        )
    if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        return back(
            error="invalid_request",
            error_description="AADSTS9002325: Proof Key for Code Exchange is required for "
            "cross-origin authorization code redemption.",
        )
    audience = scope_audience(params.get("scope", ""), kind)
    if isinstance(audience, web.Response):
        return back(error="invalid_scope", error_description="AADSTS70011: invalid scope")
    if request.method == "GET":
        users = [u for u in c.world.users.values() if u.kind == kind]
        buttons = "".join(
            f'<button name="mri" value="{html.escape(u.mri)}">{html.escape(u.display_name)}</button>'
            for u in users
        )
        page = f'<html><body><h1>Sign in</h1><form method="post">{buttons}</form></body></html>'
        return web.Response(text=page, content_type="text/html")
    mri = params.get("mri", "")
    if mri == "decline":
        return back(
            error="access_denied",
            error_description="AADSTS65004: User declined to consent to access the app.",
        )
    user = c.world.users.get(mri)
    if user is None or user.kind != kind:
        return web.Response(status=400, text="no such user")
    code = c.tokens.issue_device_code(c.options.auth_code_lifetime).value
    c.auth_codes[code] = {
        "mri": mri,
        "client_id": client_id,
        "redirect_uri": redirect,
        "challenge": params["code_challenge"],
        "scope": params.get("scope", ""),
        "kind": kind,
        "expires_at": time.time() + c.options.auth_code_lifetime,
        "redeemed": False,
    }
    return back(code=code)


def _code_grant(c: SimContext, form: Any, client_id: str) -> web.Response:
    issued = c.auth_codes.get(str(form.get("code", "")))
    if issued is None or issued["client_id"] != client_id:
        return aad_error(
            "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
        )
    if issued["redeemed"]:
        return aad_error(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        )
    if time.time() > issued["expires_at"]:
        return aad_error(
            "invalid_grant", 70008, "The provided authorization code or refresh token has expired."
        )
    if str(form.get("redirect_uri", "")) != issued["redirect_uri"]:
        return aad_error(
            "invalid_grant",
            50148,
            "The redirect_uri in the token request does not match the authorization request.",
        )
    verifier = str(form.get("code_verifier", ""))
    digest = hashlib.sha256(verifier.encode()).digest()
    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued["challenge"]:
        return aad_error(
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        )
    issued["redeemed"] = True
    scope = str(form.get("scope", "")) or issued["scope"]
    audience = scope_audience(scope, issued["kind"])
    if isinstance(audience, web.Response):
        return audience
    return token_answer(c, c.world.users[issued["mri"]], client_id, scope, audience, refresh=True)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", devicecode)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.router.add_get("/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_post("/{tenant}/oauth2/v2.0/authorize", authorize)
