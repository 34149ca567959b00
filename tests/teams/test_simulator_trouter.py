"""Trouter behaviour against the simulator: acks, loss, reconnects, registration, order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import aiohttp
import pytest

from teams_bridge.teams import TeamsClient, TrouterState

from .conftest import FAST_TROUTER, Sim, SimFactory, logged_in_client
from .recorder import Recorder

T = TypeVar("T")


async def connected(
    session: aiohttp.ClientSession, sim: Sim, **kwargs: Any
) -> tuple[TeamsClient, Recorder, dict[str, Any], dict[str, Any]]:
    ada = await sim.control.create_user("Ada Lovelace")
    bob = await sim.control.create_user("Bob Builder")
    client = await logged_in_client(session, sim, ada["mri"], **kwargs)
    await client.connect()
    rec = Recorder()
    client.start_trouter(rec.on_event, rec.on_state, rec.on_resync)
    await rec.wait(lambda: any(s is TrouterState.CONNECTED for s, _ in rec.states))
    await sim.control.wait_for_registration(ada["mri"])
    return client, rec, ada, bob


def connected_count(rec: Recorder) -> int:
    return sum(1 for s, _ in rec.states if s is TrouterState.CONNECTED)


def dropped(rec: Recorder) -> bool:
    return any(s is TrouterState.DISCONNECTED for s, _ in rec.states)


async def until(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Poll `fetch()` until `done` says yes; generous bound, only a failure waits for it."""
    async with asyncio.timeout(30):
        while not done(value := await fetch()):
            await asyncio.sleep(0.05)
    return value


async def test_uses_the_persisted_endpoint_id_everywhere(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    epid = "0a0b0c0d-1111-2222-3333-444455556666"
    client, _rec, ada, _bob = await connected(http_session, sim, endpoint_id=epid)
    try:
        allocs = await sim.control.requests(path_contains="/v4/a")
        assert allocs[-1]["query"]["epid"] == epid
        assert "X-Skypetoken" in allocs[-1]["headers"]
        regs = await sim.control.requests(path_contains="/registrar/")
        body = json.loads(regs[-1]["body"])
        assert body["registrationId"] == epid
        assert body["clientDescription"]["appId"] == "TeamsCDLWebWorker"
        assert body["transports"]["TROUTER"][0]["ttl"] == 86400
        assert regs[-1]["headers"]["Authorization"].startswith("Bearer ")
        state = (await sim.control.connections())[ada["mri"]]
        assert state["connections"][0]["authenticated"]
        frames = state["connections"][0]["recent_client_frames"]
        assert any('"user.activity"' in f for f in frames)
    finally:
        await client.stop()


async def test_message_loss_is_acked_and_triggers_resync(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    client, rec, ada, _bob = await connected(http_session, sim)
    try:
        await rec.wait(lambda: rec.resyncs >= 1)
        before = rec.resyncs
        await sim.control.message_loss(ada["mri"])
        await rec.wait(lambda: rec.resyncs > before)

        async def frames() -> list[str]:
            state = (await sim.control.connections())[ada["mri"]]
            return state["connections"][0]["recent_client_frames"]

        # The ack went out before the resync began; the simulator reads it on its own time.
        await until(frames, lambda got: any(f.startswith("6:::") for f in got))
    finally:
        await client.stop()


@pytest.mark.parametrize("notice", [True, False])
async def test_reconnects_after_a_drop_and_keeps_receiving(
    http_session: aiohttp.ClientSession, sim: Sim, notice: bool
) -> None:
    client, rec, ada, bob = await connected(http_session, sim)
    try:
        group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
        allocations = len(await sim.control.requests(path_contains="/v4/a"))
        resyncs = rec.resyncs
        await sim.control.disconnect(ada["mri"], notice=notice)
        await rec.wait(lambda: connected_count(rec) >= 2)
        assert any(s is TrouterState.DISCONNECTED for s, _ in rec.states)
        assert len(await sim.control.requests(path_contains="/v4/a")) > allocations
        await rec.wait(lambda: rec.resyncs > resyncs)
        await sim.control.wait_for_registration(ada["mri"])
        await sim.control.post_message(group["id"], bob["mri"], "<p>after</p>")
        await rec.wait(lambda: any(m.content == "<p>after</p>" for m in rec.messages(group["id"])))
    finally:
        await client.stop()


@pytest.mark.parametrize(
    "options",
    [
        {"gzip_bodies": "always", "delivery_urls": "absolute"},
        {"gzip_bodies": "never", "delivery_urls": "relative"},
    ],
)
async def test_decodes_every_body_and_url_variant(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory, options: dict[str, Any]
) -> None:
    sim = await sim_factory(**options)
    client, rec, ada, bob = await connected(http_session, sim)
    try:
        group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
        await sim.control.post_message(group["id"], bob["mri"], "<p>variant</p>")
        await rec.wait(
            lambda: any(m.content == "<p>variant</p>" for m in rec.messages(group["id"]))
        )
    finally:
        await client.stop()


async def test_slow_consumer_gets_every_event_in_order(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    client, rec, ada, bob = await connected(http_session, sim)
    original = rec.on_event

    async def slow(event: Any) -> None:
        await asyncio.sleep(0.02)
        await original(event)

    await client.stop()
    client.start_trouter(slow, rec.on_state, rec.on_resync)
    try:
        await rec.wait(lambda: connected_count(rec) >= 2)
        await sim.control.wait_for_registration(ada["mri"])
        group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
        for n in range(30):
            await sim.control.post_message(group["id"], bob["mri"], f"<p>{n}</p>")
        expected = [f"<p>{n}</p>" for n in range(30)]

        def received() -> list[str]:
            return [
                m.content
                for m in rec.messages(group["id"], "NewMessage")
                if m.content.startswith("<p>")
            ]

        await rec.wait(lambda: len(received()) >= 30)
        assert received() == expected
    finally:
        await client.stop()


async def test_reregisters_before_the_ttl_runs_out(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada = await sim.control.create_user("Ada")
    client = await logged_in_client(http_session, sim, ada["mri"])
    # Every second, with a second's margin before the registration lapses.
    client.trouter_config = replace(FAST_TROUTER, registration_ttl=2, reregister_fraction=0.5)
    await client.connect()
    rec = Recorder()
    client.start_trouter(rec.on_event, rec.on_state)
    try:
        await rec.wait(lambda: connected_count(rec) >= 1)

        async def registrations() -> list[float]:
            found = await sim.control.requests(path_contains="/registrar/", method="POST")
            return [r["time"] for r in found]

        times = await until(registrations, lambda t: len(t) >= 3 or dropped(rec))
        assert connected_count(rec) == 1 and not dropped(rec)  # all on one connection
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert all(gap < 2 for gap in gaps), gaps
    finally:
        await client.stop()


async def test_pings_are_answered_so_the_socket_stays_up(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    client, rec, ada, _bob = await connected(http_session, sim)
    try:

        async def pings() -> int:
            connections = (await sim.control.connections())[ada["mri"]]["connections"]
            frames = connections[0]["recent_client_frames"] if connections else []
            return sum('"name":"ping"' in f for f in frames)

        # Four pings span four seconds: unanswered, the first would have killed the socket
        # (after its pong timeout) before the last.
        await until(pings, lambda n: n >= 4 or dropped(rec))
        assert not dropped(rec)
        assert connected_count(rec) == 1
    finally:
        await client.stop()


async def test_a_revoked_login_stops_trouter_with_the_reason(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    client, rec, ada, _bob = await connected(http_session, sim)
    try:
        await sim.control.revoke(ada["mri"])
        await sim.control.expire_skype_token(ada["mri"])
        await sim.control.expire_access_token(ada["mri"])
        await sim.control.disconnect(ada["mri"])
        await rec.wait(lambda: rec.states[-1][0] is TrouterState.STOPPED)
        state, error = rec.states[-1]
        assert error is not None and "log in again" in error
    finally:
        await client.stop()
    assert sum(1 for s, _ in rec.states if s is TrouterState.STOPPED) == 1
