"""Scenario 3: Matrix -> Teams latency and throughput.

The Matrix user sends into the portal rooms; the bridge posts each message to the
simulator's chat service, which stamps its arrival. Baseline: the same user sends into
baseline rooms shaped like the portals (the user plus three ghosts of the no-op appservice,
where a portal has the user, the bot and two ghosts), and the no-op appservice stamps the
arrival of each event Synapse pushes to it. Every stamp is taken in its own process.

Latency: the baseline's samples first, then the bridge's. Throughput: rounds of each side in
the order the Teams -> Matrix throughput uses, so that whatever drifts weighs on both alike.
Synapse takes appservice transaction ids from one sequence shared by every appservice, and
the bridge, for a while after a disruption (its start), holds a Matrix -> Teams message that
follows a gap in its ids until it has read the room's timeline. Each switch from the no-op
listener to the bridge leaves one such gap per portal, which one unmeasured message per
portal absorbs before the bridge's latency samples and before each of its throughput rounds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..matrix import Api, MatrixError
from .common import (
    ORDER,
    Fixture,
    bounded_gather,
    marker,
    measure_round,
    overhead_ms,
    rounds_summary,
    run_rounds,
    split,
    summary_ms,
)

log = logging.getLogger("bench.m2t")

GAP = 0.05
GHOSTS = ("bot", "alpha", "beta")


async def _baseline_rooms(fx: Fixture) -> list[str]:
    stack = fx.stack
    noop: Api = stack.noop_api()
    ghosts = [stack.noop_ghost(name) for name in GHOSTS]
    for ghost in ghosts:
        localpart = ghost[1:].split(":", 1)[0]
        try:
            await noop.call(
                "POST",
                "/_matrix/client/v3/register",
                {"type": "m.login.application_service", "username": localpart},
            )
        except MatrixError as e:
            if e.status != 400:  # M_USER_IN_USE: already there
                raise

    async def one(k: int) -> str:
        room = await fx.me.api.create_room(
            preset="private_chat", name=f"Baseline {k:02d}", invite=ghosts
        )
        for ghost in ghosts:
            await noop.join(room, as_user=ghost)
        return room

    return await bounded_gather(4, [one(k) for k in range(len(fx.chats))])


async def _send(fx: Fixture, room: str, text: str) -> tuple[str, float]:
    m = marker()
    t0 = time.time()
    await fx.me.api.send_message(room, {"msgtype": "m.text", "body": f"{text} {m}"})
    return m, t0


async def _latency(fx: Fixture, rooms: list[str], samples: int, marks: Any) -> list[float]:
    out = []
    for i in range(samples):
        m, t0 = await _send(fx, rooms[i % len(rooms)], "Reply")
        out.append(await marks.wait_markers([m], timeout=60) - t0)
        await asyncio.sleep(GAP)
    return out


async def _flood(fx: Fixture, rooms: list[str], per_room: int, marks: Any) -> dict[str, float]:
    markers = [[marker() for _ in range(per_room)] for _ in rooms]

    async def one_room(k: int) -> None:
        for m in markers[k]:
            await fx.me.api.send_message(rooms[k], {"msgtype": "m.text", "body": f"Load {m}"})

    t0 = time.time()
    await asyncio.gather(*(one_room(k) for k in range(len(rooms))))
    sent = time.time()
    total = per_room * len(rooms)
    last = await marks.wait_markers([m for ms in markers for m in ms], 120 + total * 0.5)
    return {"messages": total, "start": t0, "sent": sent, "last": last}


async def _warm(fx: Fixture, rooms: list[str], marks: Any, timeout: float) -> None:
    sent = [await _send(fx, room, "warm-up") for room in rooms]
    await marks.wait_markers([m for m, _ in sent], timeout)


async def _throughput(fx: Fixture, baseline_rooms: list[str], per_room: int) -> dict[str, Any]:
    """Rounds of messages into every room, from the bridge's side and the baseline's in
    `ORDER`; before each bridge round one unmeasured message per portal takes whatever
    transaction-gap wait the baseline rounds left."""
    sim, noop = fx.stack.sim_marks, fx.stack.noop_events
    portals = [c.room_id for c in fx.chats]
    sizes = split(per_room, ORDER.count("bridge"))  # (a tiny run skips empty rounds)

    async def one_round(side: str, size: int) -> dict[str, Any]:
        if side == "bridge":
            await _warm(fx, portals, sim, 120)
            return await measure_round(fx, side, lambda: _flood(fx, portals, size, sim), "M->T")
        return await measure_round(fx, side, lambda: _flood(fx, baseline_rooms, size, noop), "M->T")

    return rounds_summary(await run_rounds(sizes, one_round), len(portals))


async def run(fx: Fixture, samples: int, messages: int) -> dict[str, Any]:
    sim, noop = fx.stack.sim_marks, fx.stack.noop_events
    assert sim and noop
    portals = [c.room_id for c in fx.chats]

    t = time.monotonic()
    baseline_rooms = await _baseline_rooms(fx)
    await _warm(fx, baseline_rooms, noop, 60)
    setup_s = time.monotonic() - t
    base_lat = await _latency(fx, baseline_rooms, samples, noop)

    # The switch to the bridge: one message per portal takes the transaction-gap wait.
    t = time.monotonic()
    await _warm(fx, portals, sim, 120)
    gap_s = time.monotonic() - t
    bridge_lat = await _latency(fx, portals, samples, sim)

    b, a = summary_ms(bridge_lat), summary_ms(base_lat)
    latency = {
        "samples": samples,
        "bridge_ms": b,
        "baseline_ms": a,
        "overhead_ms": overhead_ms(b, a),
        "raw_s": {"bridge": bridge_lat, "baseline": base_lat},
        "baseline_rooms_setup_s": round(setup_s, 1),
        "first_message_after_switch_s": round(gap_s, 1),
    }
    throughput = await _throughput(fx, baseline_rooms, max(1, messages // len(portals)))
    return {"latency": latency, "throughput": throughput}
