"""Scenario 3: Matrix -> Teams latency and throughput.

The Matrix user sends into the portal rooms; the bridge posts each message to the
simulator's chat service, which stamps its arrival. Baseline: the same user sends into
baseline rooms shaped like the portals (the user plus three ghosts of the no-op appservice,
where a portal has the user, the bot and two ghosts), and the no-op appservice stamps the
arrival of each event Synapse pushes to it. Every stamp is taken in its own process.

The baseline runs first, then the bridge, never interleaved: Synapse takes appservice
transaction ids from one sequence shared by every appservice, and the bridge holds a
Matrix -> Teams message that follows a gap in its ids for a few seconds (then reads the
room's timeline) before sending it. Each switch from the no-op listener to the bridge leaves
one such gap per portal, which one warm-up message per portal absorbs before measuring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import procfs
from ..matrix import Api, MatrixError
from .common import Fixture, bounded_gather, marker, overhead_ms, summary_ms

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
    return {"start": t0, "sent": sent, "last": last}


async def _warm(fx: Fixture, rooms: list[str], marks: Any, timeout: float) -> None:
    sent = [await _send(fx, room, "warm-up") for room in rooms]
    await marks.wait_markers([m for m, _ in sent], timeout)


async def run(fx: Fixture, samples: int, messages: int) -> dict[str, Any]:
    sim, noop = fx.stack.sim_marks, fx.stack.noop_events
    assert sim and noop
    portals = [c.room_id for c in fx.chats]
    per_room = max(1, messages // len(portals))
    total = per_room * len(portals)

    t = time.monotonic()
    baseline_rooms = await _baseline_rooms(fx)
    await _warm(fx, baseline_rooms, noop, 60)
    setup_s = time.monotonic() - t

    # Baseline: latency, then throughput.
    base_lat = await _latency(fx, baseline_rooms, samples, noop)
    base0 = fx.stack.cpu_snapshot()
    base_flood = await _flood(fx, baseline_rooms, per_room, noop)
    await procfs.settle_cpu(fx.bridge.pid)
    base1 = fx.stack.cpu_snapshot()
    log.info(
        "M->T baseline: %d messages at the no-op after %.1fs",
        total,
        base_flood["last"] - base_flood["start"],
    )

    # The switch to the bridge: one message per portal takes the transaction-gap wait.
    t = time.monotonic()
    await _warm(fx, portals, sim, 120)
    gap_s = time.monotonic() - t

    bridge_lat = await _latency(fx, portals, samples, sim)
    pid = fx.bridge.pid
    await procfs.settle_cpu(pid)
    await asyncio.sleep(1.5)  # let PostgreSQL publish its counters
    db0 = await fx.stack.db_transactions(fx.bridge.name)
    cpu0 = procfs.cpu_seconds(pid)
    sys0 = procfs.cpu_split(pid)[1]
    others0 = fx.stack.cpu_snapshot()
    bridge_flood = await _flood(fx, portals, per_room, sim)
    cpu1 = await procfs.settle_cpu(pid)
    sys1 = procfs.cpu_split(pid)[1]
    others1 = fx.stack.cpu_snapshot()
    await asyncio.sleep(1.5)
    db1 = await fx.stack.db_transactions(fx.bridge.name)
    bridge_s = bridge_flood["last"] - bridge_flood["start"]
    baseline_s = base_flood["last"] - base_flood["start"]
    log.info("M->T bridge: %d messages at Teams after %.1fs", total, bridge_s)

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
    throughput = {
        "messages": total,
        "chats": len(portals),
        "concurrency": len(portals),
        "bridge_send_s": round(bridge_flood["sent"] - bridge_flood["start"], 3),
        "bridge_s": round(bridge_s, 3),
        "bridge_msgs_per_s": round(total / bridge_s, 2),
        "baseline_send_s": round(base_flood["sent"] - base_flood["start"], 3),
        "baseline_s": round(baseline_s, 3),
        "baseline_msgs_per_s": round(total / baseline_s, 2),
        "ratio": round(baseline_s / bridge_s, 3),
        "bridge_cpu_s": round(cpu1 - cpu0, 3),
        "bridge_cpu_ms_per_msg": round((cpu1 - cpu0) * 1000 / total, 3),
        "bridge_sys_cpu_ms_per_msg": round((sys1 - sys0) * 1000 / total, 3),
        "bridge_db_transactions_per_msg": round((db1 - db0) / total, 2),
        "bridge_phase": fx.stack.cpu_per_message(others0, others1, total),
        "baseline_phase": fx.stack.cpu_per_message(base0, base1, total),
    }
    return {"latency": latency, "throughput": throughput}
