"""The simulator's fault switches, seen from a raw client."""

from __future__ import annotations

import json
import time

import aiohttp

from tests.fake_teams import ControlClient, FakeTeams

from .helpers import login


async def test_slow_fault_passes_the_request_through_late():
    async with FakeTeams() as sim:
        control = ControlClient(sim.url)
        await control.add_fault(path_contains="/v1/users/ME/properties", status=0, delay=0.5)
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.get(f"{sim.url}/v1/users/ME/properties") as resp:
                # No token: the request reached the real handler after the stall.
                assert resp.status == 401
            assert time.monotonic() - started >= 0.5
        await control.close()


async def test_switches_are_reported_per_user():
    async with FakeTeams() as sim:
        control = ControlClient(sim.url)
        user = await control.create_user(display_name="Ada", kind="work")
        assert (await control.pause_delivery(user["mri"]))["paused"] is True
        assert (await control.resume_delivery(user["mri"]))["connections"] == 0
        assert (await control.duplicate_deliveries(user["mri"]))["duplicate"] is True
        assert (await control.duplicate_deliveries(user["mri"], False))["duplicate"] is False
        assert (await control.silence(user["mri"]))["silent"] is False  # no sockets yet
        await control.close()


async def test_a_body_filter_aims_a_fault_at_one_request(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    bob = await control.create_user("Bob Babbage")
    me = await login(sim, http, control, ada["mri"])
    url = f"{me.authz['regionGtms']['middleTier']}/beta/users/fetchShortProfile"

    async def lookup(mris: list[str]) -> int:
        body = json.dumps(mris, separators=(",", ":"))
        headers = {"Authorization": f"Bearer {me.access_token}", "Content-Type": "application/json"}
        async with http.post(url, data=body, headers=headers) as resp:
            return resp.status

    # Aimed at Ada's lookup alone: neither another user's nor a batch naming her takes it.
    only_ada = json.dumps([ada["mri"]], separators=(",", ":"))
    await control.add_fault("fetchShortProfile", status=403, count=1, body_contains=only_ada)
    assert await lookup([bob["mri"]]) == 200
    assert await lookup([bob["mri"], ada["mri"]]) == 200
    assert await lookup([ada["mri"], bob["mri"]]) == 200
    assert await lookup([ada["mri"]]) == 403
    assert await lookup([ada["mri"]]) == 200  # used up
    # A GET has no body: a body filter never matches it.
    await control.add_fault("/users/ME/properties", status=500, body_contains="x")
    async with http.get(f"{sim.url}/v1/users/ME/properties") as resp:
        assert resp.status == 401
