"""Device-code login, refresh with rotation, Skype token exchange (against a scripted AAD)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from teams_bridge.teams import (
    AccountKind,
    AuthClient,
    AuthError,
    Credentials,
    Endpoints,
    LoginDeclined,
    LoginExpired,
    ReloginRequired,
)
from teams_bridge.teams.auth import (
    CONSUMER_CLIENT_ID,
    CONSUMER_SPACES_SCOPE,
    ENTERPRISE_CLIENT_ID,
    ENTERPRISE_SPACES_SCOPE,
)
from teams_bridge.teams.authz import parse_authz
from teams_bridge.teams.tokens import TokenManager

from .fakes import FAST_RETRY

MSA = "9188040d-6c67-4c5b-b112-36a304b66dad"
TENANT = "11111111-2222-3333-4444-555555555555"
OID = "0f0f0f0f-1111-2222-3333-444444444444"


def jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def gtms(base: str) -> dict[str, str]:
    return {"chatService": base, "middleTier": f"{base}/mt", "ams": base, "unifiedPresence": base}


class FakeAad:
    """Scripted token endpoint: ``poll_answers`` are served in order while polling."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.poll_answers: list[tuple[int, dict[str, Any]]] = []
        self.refresh_generation = 0
        self.refresh_error: dict[str, Any] | None = None
        self.tid = TENANT
        self.authz_shape = "tokens"
        self.authz_calls = 0
        self.poll_times: list[float] = []
        self.base = ""

    def tokens(self) -> dict[str, Any]:
        self.refresh_generation += 1
        return {
            "token_type": "Bearer",
            "expires_in": "3600",
            "access_token": f"AT{self.refresh_generation}",
            "refresh_token": f"RT{self.refresh_generation}",
            "id_token": jwt(
                {
                    "tid": self.tid,
                    "oid": OID,
                    "name": "Ada Lovelace",
                    "preferred_username": "ada@x.test",
                }
            ),
        }

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        self.requests.append((request.path, {k: str(v) for k, v in form.items()}))
        if request.path.endswith("/devicecode"):
            return web.json_response(
                {
                    "device_code": "DC-secret",
                    "user_code": "ABCD-EFGH",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": "900",
                    "interval": 0,
                    "message": "Go to https://microsoft.com/devicelogin and enter ABCD-EFGH",
                }
            )
        if request.path.endswith("/token"):
            if form.get("grant_type") == "refresh_token":
                if self.refresh_error:
                    return web.json_response(self.refresh_error, status=400)
                return web.json_response(self.tokens())
            self.poll_times.append(time.monotonic())
            if self.poll_answers:
                status, answer = self.poll_answers.pop(0)
                return web.json_response(answer, status=status)
            return web.json_response(self.tokens())
        if "authz" in request.path:
            self.authz_calls += 1
            token = jwt({"skypeid": f"orgid:{OID}", "exp": int(time.time()) + 86400})
            if self.authz_shape == "tokens":
                body: dict[str, Any] = {
                    "tokens": {"skypeToken": token, "expiresIn": 86400, "tokenType": "SkypeToken"},
                    "region": "emea",
                    "regionGtms": gtms(self.base),
                }
            else:
                body = {
                    "skypeToken": {
                        "skypetoken": token,
                        "expiresIn": "86400",
                        "skypeid": "live:.cid.abc",
                    },
                    "regionGtms": gtms(self.base),
                }
            return web.json_response(body)
        return web.json_response({"error": "not_found"}, status=404)


@pytest.fixture
async def aad(aiohttp_server: Any) -> Any:
    fake = FakeAad()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = await aiohttp_server(app)
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as s:
        yield s


def endpoints(base: str) -> Endpoints:
    return Endpoints.from_dict(
        {
            "login": base,
            "authz_enterprise": f"{base}/api/authsvc/v1.0/authz",
            "authz_consumer": f"{base}/api/auth/v1.0/authz/consumer",
        }
    )


async def test_enterprise_device_code_login(aad: FakeAad, session: Any) -> None:
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.ENTERPRISE)
    assert flow.user_code == "ABCD-EFGH"
    assert flow.interval == 0 and flow.expires_in == 900
    assert "DC-secret" not in repr(flow)
    path, form = aad.requests[0]
    assert path == "/organizations/oauth2/v2.0/devicecode"
    assert form["client_id"] == ENTERPRISE_CLIENT_ID
    assert form["scope"] == f"{ENTERPRISE_SPACES_SCOPE} openid profile offline_access"
    aad.poll_answers = [
        (400, {"error": "authorization_pending", "error_description": "AADSTS70016: pending"}),
        (400, {"error": "authorization_pending"}),
    ]
    creds = await client.poll_device_code(flow)
    assert creds.kind is AccountKind.ENTERPRISE
    assert creds.refresh_token == "RT1"
    assert (creds.tenant, creds.client_id, creds.tenant_id) == (
        "organizations",
        ENTERPRISE_CLIENT_ID,
        TENANT,
    )
    assert (creds.user_object_id, creds.display_name, creds.username) == (
        OID,
        "Ada Lovelace",
        "ada@x.test",
    )
    polls = [f for p, f in aad.requests if p.endswith("/token")]
    assert len(polls) == 3
    assert polls[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"
    assert polls[0]["device_code"] == "DC-secret"
    assert "RT1" not in repr(creds)


async def test_personal_device_code_login_uses_consumer_client_and_scope(
    aad: FakeAad, session: Any
) -> None:
    aad.tid = MSA
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.PERSONAL)
    path, form = aad.requests[0]
    assert path == "/consumers/oauth2/v2.0/devicecode"
    assert form["client_id"] == CONSUMER_CLIENT_ID
    assert form["scope"].startswith(CONSUMER_SPACES_SCOPE)
    creds = await client.poll_device_code(flow)
    assert creds.kind is AccountKind.PERSONAL
    assert creds.tenant == "consumers"


async def test_specific_tenant_and_templated_login_url(aad: FakeAad, session: Any) -> None:
    eps = Endpoints.from_dict({"login": f"{aad.base}/{{tenant}}"})
    client = AuthClient(session, eps, policy=FAST_RETRY)
    await client.start_device_code(AccountKind.ENTERPRISE, tenant="contoso.onmicrosoft.com")
    assert aad.requests[0][0] == "/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"


async def test_account_kind_follows_the_id_token_tenant(aad: FakeAad, session: Any) -> None:
    aad.tid = MSA
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.ENTERPRISE, tenant="common")
    creds = await client.poll_device_code(flow)
    assert creds.kind is AccountKind.PERSONAL


async def test_slow_down_adds_five_seconds(aad: FakeAad, session: Any, monkeypatch: Any) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("teams_bridge.teams.auth.asyncio.sleep", fake_sleep)
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.ENTERPRISE)
    aad.poll_answers = [(400, {"error": "slow_down"}), (400, {"error": "authorization_pending"})]
    await client.poll_device_code(flow)
    assert sleeps[0] < 1 and sleeps[1] == 5 and sleeps[2] == 5


@pytest.mark.parametrize(
    ("error", "exc"),
    [
        ("authorization_declined", LoginDeclined),
        ("access_denied", LoginDeclined),
        ("expired_token", LoginExpired),
        ("bad_verification_code", AuthError),
    ],
)
async def test_poll_failures(aad: FakeAad, session: Any, error: str, exc: type[Exception]) -> None:
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.ENTERPRISE)
    aad.poll_answers = [(400, {"error": error, "error_description": "AADSTS: something"})]
    with pytest.raises(exc):
        await client.poll_device_code(flow)


async def test_polling_is_cancellable(aad: FakeAad, session: Any) -> None:
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.ENTERPRISE)
    aad.poll_answers = [(400, {"error": "authorization_pending"})] * 10_000
    task = asyncio.create_task(client.poll_device_code(flow))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_local_expiry_stops_polling(aad: FakeAad, session: Any) -> None:
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    flow = await client.start_device_code(AccountKind.ENTERPRISE)
    from dataclasses import replace

    short = replace(flow, expires_in=0)
    aad.poll_answers = [(400, {"error": "authorization_pending"})] * 100
    with pytest.raises(LoginExpired):
        await client.poll_device_code(short)


async def test_login_with_refresh_token_rotates(aad: FakeAad, session: Any) -> None:
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    creds = await client.login_with_refresh_token("RT-old", AccountKind.ENTERPRISE)
    path, form = aad.requests[-1]
    assert path == "/organizations/oauth2/v2.0/token"
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "RT-old"
    assert form["scope"] == f"{ENTERPRISE_SPACES_SCOPE} openid profile offline_access"
    assert creds.refresh_token == "RT1"


@pytest.mark.parametrize(
    "body",
    [
        {"error": "invalid_grant", "error_description": "AADSTS70000: grant is expired"},
        {"error": "interaction_required", "error_description": "AADSTS50076"},
        {"error": "server_says_no", "error_codes": [700082]},
    ],
)
async def test_revoked_refresh_token_requires_relogin(
    aad: FakeAad, session: Any, body: dict[str, Any]
) -> None:
    aad.refresh_error = body
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    with pytest.raises(ReloginRequired) as info:
        await client.login_with_refresh_token("RT-secret", AccountKind.ENTERPRISE)
    assert info.value.relogin_required
    assert "RT-secret" not in str(info.value)


async def test_other_refresh_errors_are_plain_auth_errors(aad: FakeAad, session: Any) -> None:
    aad.refresh_error = {"error": "temporarily_unavailable"}
    client = AuthClient(session, endpoints(aad.base), policy=FAST_RETRY)
    with pytest.raises(AuthError) as info:
        await client.login_with_refresh_token("RT", AccountKind.ENTERPRISE)
    assert not info.value.relogin_required


@pytest.mark.parametrize("shape", ["tokens", "skypeToken"])
@pytest.mark.parametrize("kind", [AccountKind.ENTERPRISE, AccountKind.PERSONAL])
async def test_token_manager_mints_and_rotates(
    aad: FakeAad, session: Any, shape: str, kind: AccountKind
) -> None:
    aad.authz_shape = shape
    aad.tid = MSA if kind is AccountKind.PERSONAL else TENANT
    rotated: list[Credentials] = []

    async def on_change(creds: Credentials) -> None:
        rotated.append(creds)

    start = Credentials(
        kind=kind, tenant="organizations", client_id=ENTERPRISE_CLIENT_ID, refresh_token="RT0"
    )
    manager = TokenManager(
        session, endpoints(aad.base), start, on_credentials_changed=on_change, policy=FAST_RETRY
    )
    token = await manager.skype_token()
    assert token.count(".") == 2
    assert manager.services.chat == f"{aad.base}/v1"
    assert manager.services.middle_tier == f"{aad.base}/mt"
    assert manager.skype_id in (f"orgid:{OID}", "live:.cid.abc")
    assert [c.refresh_token for c in rotated] == ["RT1"]
    assert manager.credentials.refresh_token == "RT1"
    assert await manager.skype_token() == token
    assert aad.authz_calls == 1
    authz_path = next(p for p, _ in aad.requests if "authz" in p)
    assert ("consumer" in authz_path) == (kind is AccountKind.PERSONAL)
    await manager.invalidate_skype_token(token)
    await manager.skype_token()
    assert aad.authz_calls == 2
    await manager.invalidate_access_token("AT1")
    await manager.access_token()
    assert [c.refresh_token for c in rotated] == ["RT1", "RT2"]


def test_credentials_round_trip_and_hide_the_refresh_token() -> None:
    creds = Credentials(
        kind=AccountKind.PERSONAL,
        tenant="consumers",
        client_id=CONSUMER_CLIENT_ID,
        refresh_token="RT-secret",
        tenant_id=MSA,
        username="a@b",
    )
    data = creds.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert Credentials.from_dict(data) == creds
    assert "RT-secret" not in repr(creds)
    with pytest.raises(ValueError):
        Credentials.from_dict({"kind": "personal"})


def test_account_kind_aliases() -> None:
    assert AccountKind("work") is AccountKind.ENTERPRISE
    assert AccountKind("consumer") is AccountKind.PERSONAL
    assert AccountKind.WORK is AccountKind.ENTERPRISE


def test_authz_accepts_both_shapes_and_computes_refresh_time() -> None:
    base = {"regionGtms": gtms("https://chat.example")}
    a = parse_authz({**base, "tokens": {"skypeToken": "t1", "expiresIn": 1000}}, now=0.0)
    b = parse_authz(
        {**base, "skypeToken": {"skypetoken": "t2", "expiresIn": "1000", "skypeid": "live:x"}},
        now=0.0,
    )
    assert (a.token, b.token, b.skype_id) == ("t1", "t2", "live:x")
    assert a.refresh_at() == 800.0
    short = parse_authz({**base, "tokens": {"skypeToken": "t", "expiresIn": 100}}, now=0.0)
    assert short.refresh_at() == 40.0
    with pytest.raises(AuthError):
        parse_authz({"tokens": {"skypeToken": "t"}})
    with pytest.raises(AuthError):
        parse_authz({**base, "tokens": {}})
    with pytest.raises(AuthError):
        parse_authz(
            {"regionGtms": {"chatService": "javascript:alert(1)"}, "tokens": {"skypeToken": "t"}}
        )


async def test_authz_errors_are_reported_without_tokens(aiohttp_server: Any, session: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        if "authz" in request.path:
            return web.json_response(
                {"errorCode": "GuestUserNotRedeemed", "message": "Guest user OID is missing."},
                status=403,
            )
        return web.json_response(
            {"access_token": "AT-secret", "refresh_token": "RT2", "expires_in": 3600}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    creds = Credentials(
        kind=AccountKind.ENTERPRISE,
        tenant="organizations",
        client_id=ENTERPRISE_CLIENT_ID,
        refresh_token="RT",
    )
    manager = TokenManager(session, endpoints(base), creds, policy=FAST_RETRY)
    with pytest.raises(AuthError) as info:
        await manager.skype_token()
    assert info.value.error_code == "GuestUserNotRedeemed"
    assert "AT-secret" not in str(info.value)
