"""Scenarios 1 and 2: Teams -> Matrix latency and throughput, against the appservice API.

Bridge path: the simulator's control API posts as a Teams user; the simulator stores the
message and pushes it over Trouter; the bridge turns it into a Matrix event; our client
sees it in /sync. Baseline path: the same ghost sends the same text straight through the
appservice API (the bridge registration's as_token with `?user_id=`) into the same room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from teams_bridge.formatter.from_teams import teams_to_matrix

from .. import procfs
from .common import Fixture, marker, overhead_ms, summary_ms

log = logging.getLogger("bench.t2m")

GAP = 0.05  # pause between samples so one message's tail never overlaps the next


async def _via_bridge(fx: Fixture, chat_index: int, text: str) -> float:
    assert fx.stack.control
    chat = fx.chats[chat_index]
    m = marker()
    t0 = time.time()
    await fx.stack.control.post_message(
        chat.chat_id, sender=chat.sender_mri, content=f"<p>{text} {m}</p>"
    )
    return await fx.me.wait_marker(m, timeout=60) - t0


def same_as_bridged(html: str) -> dict[str, Any]:
    """The content the bridge sends for this Teams HTML, so the baseline sends the same event.

    That includes `m.mentions` (empty here): the bridge always says whom a message mentions,
    so that homeservers do not guess from the body, and Synapse's check of that field costs
    it a few milliseconds per event either way.
    """
    converted = teams_to_matrix(html)
    content: dict[str, Any] = {"msgtype": "m.text", "body": converted.body}
    if converted.formatted_body is not None:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = converted.formatted_body
    content["m.mentions"] = {"user_ids": []}
    return content


async def _via_appservice(fx: Fixture, chat_index: int, text: str) -> float:
    chat = fx.chats[chat_index]
    m = marker()
    content = same_as_bridged(f"<p>{text} {m}</p>")
    t0 = time.time()
    await fx.as_api.send_message(chat.room_id, content, as_user=chat.puppet)
    return await fx.me.wait_marker(m, timeout=60) - t0


async def latency(fx: Fixture, samples: int) -> dict[str, Any]:
    """One message at a time, bridge and baseline interleaved (alternating which goes first)."""
    bridge: list[float] = []
    baseline: list[float] = []
    for i in range(samples):
        k = i % len(fx.chats)
        order = (_via_bridge, _via_appservice) if i % 2 == 0 else (_via_appservice, _via_bridge)
        for fn in order:
            value = await fn(fx, k, "Latency probe")
            (bridge if fn is _via_bridge else baseline).append(value)
            await asyncio.sleep(GAP)
    b, a = summary_ms(bridge), summary_ms(baseline)
    paired = summary_ms([x - y for x, y in zip(bridge, baseline, strict=True)])
    return {
        "samples": samples,
        "bridge_ms": b,
        "baseline_ms": a,
        "overhead_ms": overhead_ms(b, a),
        "paired_difference_ms": paired,
        "raw_s": {"bridge": bridge, "baseline": baseline},
    }


async def _flood(fx: Fixture, per_chat: int, send: Any) -> tuple[list[str], float, float]:
    """`per_chat` messages into every chat, one sender task per chat (sequential inside a
    chat, all chats at once); returns the markers, the start time and when sending ended."""
    markers: list[list[str]] = [[marker() for _ in range(per_chat)] for _ in fx.chats]

    async def one_chat(k: int) -> None:
        for m in markers[k]:
            await send(k, m)

    t0 = time.time()
    await asyncio.gather(*(one_chat(k) for k in range(len(fx.chats))))
    return [m for ms in markers for m in ms], t0, time.time()


async def throughput(fx: Fixture, messages: int) -> dict[str, Any]:
    assert fx.stack.control
    control = fx.stack.control
    per_chat = max(1, messages // len(fx.chats))
    total = per_chat * len(fx.chats)
    timeout = 120 + total * 0.5

    async def post(k: int, m: str) -> None:
        chat = fx.chats[k]
        await control.post_message(
            chat.chat_id, sender=chat.sender_mri, content=f"<p>Throughput {m}</p>"
        )

    async def as_send(k: int, m: str) -> None:
        chat = fx.chats[k]
        await fx.as_api.send_message(
            chat.room_id,
            same_as_bridged(f"<p>Throughput {m}</p>"),
            as_user=chat.puppet,
        )

    # Half the messages each time, in the order bridge, baseline, baseline, bridge: whatever
    # drifts during the scenario (Synapse's caches and database growing, its background
    # work) weighs on both sides alike. Each half starts once the bridge is quiet again.
    pid = fx.bridge.pid
    half = max(1, per_chat // 2)
    rounds: list[dict[str, Any]] = []
    for side in ("bridge", "baseline", "baseline", "bridge"):
        await procfs.settle_cpu(pid)
        db0 = 0
        if side == "bridge":
            await asyncio.sleep(1.5)  # let PostgreSQL publish its counters
            db0 = await fx.stack.db_transactions(fx.bridge.name)
        cpu0 = procfs.cpu_split(pid)
        others0 = fx.stack.cpu_snapshot()
        markers, t0, sent = await _flood(fx, half, post if side == "bridge" else as_send)
        last = await fx.me.wait_markers(markers, timeout)
        cpu1 = await procfs.settle_cpu(pid)
        sys1 = procfs.cpu_split(pid)[1]
        others1 = fx.stack.cpu_snapshot()
        db1 = 0
        if side == "bridge":
            await asyncio.sleep(1.5)
            db1 = await fx.stack.db_transactions(fx.bridge.name)
        rounds.append(
            {
                "side": side,
                "messages": len(markers),
                "s": round(last - t0, 3),
                "send_s": round(sent - t0, 3),
                "bridge_cpu_s": round(cpu1 - sum(cpu0), 3),
                "bridge_sys_cpu_s": round(sys1 - cpu0[1], 3),
                "db_transactions": db1 - db0,
                "cpu_s": {k: others1[k] - others0[k] for k in others0 if k in others1},
            }
        )
        log.info("T->M %s: %d messages visible after %.1fs", side, len(markers), last - t0)

    def total_of(side: str, key: str) -> float:
        return sum(r[key] for r in rounds if r["side"] == side)

    def phase(side: str) -> dict[str, float]:
        n = total_of(side, "messages")
        keys = {k for r in rounds for k in r["cpu_s"]}
        return {
            f"{k}_cpu_ms_per_msg": round(
                sum(r["cpu_s"].get(k, 0.0) for r in rounds if r["side"] == side) * 1000 / n, 2
            )
            for k in sorted(keys)
        }

    total = int(total_of("bridge", "messages"))
    bridge_s = total_of("bridge", "s")
    baseline_s = total_of("baseline", "s")
    bridge_cpu = total_of("bridge", "bridge_cpu_s")
    return {
        "messages": total,
        "chats": len(fx.chats),
        "concurrency": len(fx.chats),
        "order": [r["side"] for r in rounds],
        "rounds": rounds,
        "bridge_s": round(bridge_s, 3),
        "bridge_inject_s": round(total_of("bridge", "send_s"), 3),
        "bridge_msgs_per_s": round(total / bridge_s, 2),
        "baseline_s": round(baseline_s, 3),
        "baseline_send_s": round(total_of("baseline", "send_s"), 3),
        "baseline_msgs_per_s": round(total_of("baseline", "messages") / baseline_s, 2),
        "ratio": round(baseline_s / bridge_s, 3),
        "bridge_cpu_s": round(bridge_cpu, 3),
        "bridge_cpu_ms_per_msg": round(bridge_cpu * 1000 / total, 3),
        "bridge_sys_cpu_ms_per_msg": round(
            total_of("bridge", "bridge_sys_cpu_s") * 1000 / total, 3
        ),
        "bridge_db_transactions_per_msg": round(total_of("bridge", "db_transactions") / total, 2),
        "bridge_phase": phase("bridge"),
        "baseline_phase": phase("baseline"),
    }
