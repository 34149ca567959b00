"""Skype-token exchange: both endpoints, both response shapes, discovery URLs."""

from __future__ import annotations

import pytest

from tests.fake_teams import ControlClient

from .helpers import claims, device_login

MSA_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"


async def _authz(http, url: str, token: str) -> tuple[int, dict | str]:
    async with http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        text = await resp.text()
        return resp.status, (await resp.json(content_type=None)) if text.startswith("{") else text


@pytest.mark.parametrize("sim_options", [{"authz_shapes": "native"}, {"authz_shapes": "swapped"}])
async def test_shapes(sim, http, control: ControlClient, sim_options):
    swapped = sim_options["authz_shapes"] == "swapped"
    ada = await control.create_user("Ada Lovelace", "work")
    alan = await control.create_user("Alan Turing", "personal")

    work = await device_login(sim, http, control, ada["mri"])
    status, body = await _authz(http, sim.endpoints()["authz_enterprise"], work["access_token"])
    assert status == 200
    if swapped:
        token = body["skypeToken"]["skypetoken"]
        assert body["skypeToken"]["skypeid"] == ada["mri"][2:]
    else:
        token = body["tokens"]["skypeToken"]
        assert body["tokens"]["expiresIn"] == 86400 and body["tokens"]["tokenType"] == "SkypeToken"
    assert claims(token)["skypeid"] == "orgid:" + ada["object_id"]
    gtms = body["regionGtms"]
    assert gtms["chatService"] == sim.url
    assert gtms["middleTier"] == f"{sim.url}/api/mt/part/emea-03"
    assert gtms["ams"] == gtms["unifiedPresence"] == sim.url

    personal = await device_login(sim, http, control, alan["mri"], kind="personal")
    status, body = await _authz(http, sim.endpoints()["authz_consumer"], personal["access_token"])
    assert status == 200
    if swapped:
        token = body["tokens"]["skypeToken"]
    else:
        token = body["skypeToken"]["skypetoken"]
        assert body["skypeToken"]["isBusinessTenant"] is False
        assert body["skypeToken"]["signinname"] == alan["email"]
    assert claims(token)["skypeid"] == alan["mri"][2:]
    assert body["regionGtms"]["chatService"] == f"{sim.url}/api/chatsvc/consumer"
    assert body["regionGtms"]["middleTier"] == f"{sim.url}/api/mt"
    assert token in (await control.tokens())["skype"]


async def test_wrong_tokens_are_refused(sim, http, control: ControlClient):
    alan = await control.create_user("Alan Turing", "personal")
    ada = await control.create_user("Ada Lovelace", "work")
    personal = await device_login(sim, http, control, alan["mri"], kind="personal")
    work = await device_login(sim, http, control, ada["mri"])
    status, _ = await _authz(http, sim.endpoints()["authz_enterprise"], personal["access_token"])
    assert status in (401, 403)
    status, _ = await _authz(http, sim.endpoints()["authz_consumer"], work["access_token"])
    assert status == 401
    status, _ = await _authz(http, sim.endpoints()["authz_enterprise"], "garbage")
    assert status == 401
    await control.expire_access_token(ada["mri"])
    status, _ = await _authz(http, sim.endpoints()["authz_enterprise"], work["access_token"])
    assert status == 401
