"""The simulator's fault switches, seen from a raw client."""

from __future__ import annotations

import time

import aiohttp

from tests.fake_teams import ControlClient, FakeTeams


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
