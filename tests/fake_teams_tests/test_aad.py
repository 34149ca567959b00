"""Device-code login, refresh-token rotation and AAD error answers."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import aiohttp
import pytest

from tests.fake_teams import ControlClient, FakeTeams

from .helpers import (
    DEVICE_GRANT,
    PERSONAL_CLIENT,
    PERSONAL_SCOPE,
    WORK_CLIENT,
    WORK_SCOPE,
    claims,
    device_login,
)

MSA_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"


async def _start(
    http: aiohttp.ClientSession, sim: FakeTeams, tenant: str, client: str, scope: str
) -> tuple[int, dict]:
    async with http.post(
        f"{sim.url}/{tenant}/oauth2/v2.0/devicecode", data={"client_id": client, "scope": scope}
    ) as resp:
        return resp.status, await resp.json()


async def _poll(
    http: aiohttp.ClientSession, sim: FakeTeams, tenant: str, client: str, device_code: str
) -> tuple[int, dict]:
    async with http.post(
        f"{sim.url}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": DEVICE_GRANT,
            "client_id": client,
            "device_code": device_code,
        },
    ) as resp:
        return resp.status, await resp.json()


async def _refresh(
    http: aiohttp.ClientSession,
    sim: FakeTeams,
    token: str,
    scope: str = WORK_SCOPE,
    client: str = WORK_CLIENT,
    tenant: str = "organizations",
) -> tuple[int, dict]:
    async with http.post(
        f"{sim.url}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": client,
            "refresh_token": token,
            "scope": scope,
        },
    ) as resp:
        return resp.status, await resp.json()


async def test_device_code_pending_then_approved_gives_tokens(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace", "work")
    status, flow = await _start(http, sim, "organizations", WORK_CLIENT, WORK_SCOPE)
    assert status == 200
    assert flow["verification_uri"] == f"{sim.url}/devicelogin"
    assert flow["interval"] == 1 and flow["user_code"] in flow["message"]

    status, body = await _poll(http, sim, "organizations", WORK_CLIENT, flow["device_code"])
    assert (status, body["error"]) == (400, "authorization_pending")

    pending = await control.device_codes()
    assert [(c["user_code"], c["kind"]) for c in pending] == [(flow["user_code"], "work")]
    await control.approve_device_code(flow["user_code"], ada["mri"])
    await asyncio.sleep(1)
    status, tokens = await _poll(http, sim, "organizations", WORK_CLIENT, flow["device_code"])
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    access = claims(tokens["access_token"])
    assert access["aud"] == "https://api.spaces.skype.com"
    assert access["oid"] == ada["object_id"] and access["tid"] == ada["tenant_id"]
    ident = claims(tokens["id_token"])
    assert ident["name"] == "Ada Lovelace" and ident["oid"] == ada["object_id"]
    assert ident["preferred_username"] == ada["email"] and ident["tid"] == ada["tenant_id"]
    issued = await control.tokens()
    assert tokens["refresh_token"] in issued["refresh"]
    assert tokens["access_token"] in issued["access"]

    status, body = await _poll(http, sim, "organizations", WORK_CLIENT, flow["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_personal_code_needs_a_personal_account(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace", "work")
    alan = await control.create_user("Alan Turing", "personal")
    assert alan["mri"].startswith("8:live:.cid.") and alan["tenant_id"] == MSA_TID
    status, flow = await _start(http, sim, "consumers", PERSONAL_CLIENT, PERSONAL_SCOPE)
    assert status == 200
    with pytest.raises(Exception, match="400"):
        await control.approve_device_code(flow["user_code"], ada["mri"])
    await control.approve_device_code(flow["user_code"], alan["mri"])
    status, tokens = await _poll(http, sim, "consumers", PERSONAL_CLIENT, flow["device_code"])
    assert status == 200, tokens
    assert tokens["access_token"].startswith("EwA")
    assert claims(tokens["id_token"])["tid"] == MSA_TID


async def test_consumer_client_rejects_default_scope(sim, http):
    status, body = await _start(
        http,
        sim,
        "consumers",
        PERSONAL_CLIENT,
        "https://api.spaces.skype.com/.default offline_access",
    )
    assert (status, body["error"]) == (400, "invalid_scope")
    assert "AADSTS70011" in body["error_description"]


async def test_declined_and_too_fast_polls(sim, http, control: ControlClient):
    status, flow = await _start(http, sim, "common", WORK_CLIENT, WORK_SCOPE)
    await _poll(http, sim, "common", WORK_CLIENT, flow["device_code"])
    status, body = await _poll(http, sim, "common", WORK_CLIENT, flow["device_code"])
    assert body["error"] == "slow_down"
    await control.decline_device_code(flow["user_code"])
    status, body = await _poll(http, sim, "common", WORK_CLIENT, flow["device_code"])
    assert (status, body["error"]) == (400, "authorization_declined")


@pytest.mark.parametrize("sim_options", [{"device_code_lifetime": 0}])
async def test_expired_device_code(sim, http):
    status, flow = await _start(http, sim, "organizations", WORK_CLIENT, WORK_SCOPE)
    status, body = await _poll(http, sim, "organizations", WORK_CLIENT, flow["device_code"])
    assert (status, body["error"]) == (400, "expired_token")


async def test_refresh_tokens_rotate(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace", "work")
    first = await device_login(sim, http, control, ada["mri"])
    ic3 = "https://ic3.teams.office.com/.default openid profile offline_access"
    status, second = await _refresh(http, sim, first["refresh_token"], ic3)
    assert status == 200
    assert claims(second["access_token"])["aud"] == "https://ic3.teams.office.com"
    assert second["refresh_token"] != first["refresh_token"]

    status, body = await _refresh(http, sim, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "AADSTS700082" in body["error_description"]

    status, third = await _refresh(http, sim, second["refresh_token"])
    assert status == 200 and claims(third["access_token"])["aud"] == "https://api.spaces.skype.com"

    await control.revoke(ada["mri"])
    status, body = await _refresh(http, sim, third["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_personal_refresh(sim, http, control: ControlClient):
    alan = await control.create_user("Alan Turing", "personal")
    first = await device_login(sim, http, control, alan["mri"], kind="personal")
    status, second = await _refresh(
        http, sim, first["refresh_token"], PERSONAL_SCOPE, PERSONAL_CLIENT, "consumers"
    )
    assert status == 200 and second["access_token"].startswith("EwA")
    status, body = await _refresh(
        http, sim, second["refresh_token"], PERSONAL_SCOPE, WORK_CLIENT, "organizations"
    )
    assert body["error"] == "invalid_grant"


async def test_device_login_page_approves(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace", "work")
    _, flow = await _start(http, sim, "organizations", WORK_CLIENT, WORK_SCOPE)
    async with http.get(f"{sim.url}/devicelogin") as resp:
        assert resp.status == 200 and "Ada Lovelace" in await resp.text()
    async with http.post(
        f"{sim.url}/devicelogin",
        data={
            "user_code": flow["user_code"].lower(),
            "mri": ada["mri"],
            "action": "approve",
        },
    ) as resp:
        assert resp.status == 200 and "Signed in as Ada Lovelace" in await resp.text()
    status, tokens = await _poll(http, sim, "organizations", WORK_CLIENT, flow["device_code"])
    assert status == 200


async def test_authorization_code_with_pkce(sim, http, control: ControlClient):
    me = await control.create_user("Grace Hopper", "work")
    verifier = "v" * 50
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    redirect = "https://login.microsoftonline.com/common/oauth2/nativeclient"
    params = {
        "client_id": WORK_CLIENT,
        "response_type": "code",
        "redirect_uri": redirect,
        "scope": WORK_SCOPE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s1",
    }
    url = f"{sim.url}/organizations/oauth2/v2.0/authorize"
    # Without PKCE, or with another redirect address: refused.
    async with http.post(url, data={**params, "code_challenge_method": "plain", "mri": me["mri"]},
                         allow_redirects=False) as resp:  # fmt: skip
        assert "error=invalid_request" in resp.headers["Location"]
    async with http.post(url, data={**params, "redirect_uri": "https://evil.example/"}) as resp:
        assert resp.status == 400 and "50011" in (await resp.json())["error_description"]
    async with http.post(url, data={**params, "mri": me["mri"]}, allow_redirects=False) as resp:
        landed = resp.headers["Location"]
    assert landed.startswith(redirect + "?") and "state=s1" in landed
    code = landed.split("code=")[1].split("&")[0]

    async def redeem(**extra: str) -> tuple[int, dict]:
        form = {
            "grant_type": "authorization_code",
            "client_id": WORK_CLIENT,
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "scope": WORK_SCOPE,
            **extra,
        }
        async with http.post(f"{sim.url}/organizations/oauth2/v2.0/token", data=form) as resp:
            return resp.status, await resp.json()

    status, body = await redeem(code_verifier="w" * 50)
    assert status == 400 and body["error_codes"] == [501481]
    status, body = await redeem()
    assert status == 200 and body["refresh_token"] and claims(body["id_token"])["name"]
    status, body = await redeem()
    assert status == 400 and body["error_codes"] == [54005]
