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
from .common import (
    ORDER,
    Fixture,
    marker,
    measure_round,
    of,
    overhead_ms,
    phase,
    rounds_summary,
    run_rounds,
    split,
    summary_ms,
)

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


# The control: the baseline alone, and beside a process using as much CPU as the bridge side's
# processes (bridge, Teams simulator, PostgreSQL) used in their rounds.
CONTROL = ("baseline", "loaded", "loaded", "baseline")


async def throughput(fx: Fixture, messages: int) -> dict[str, Any]:
    assert fx.stack.control
    control = fx.stack.control
    per_chat = max(1, messages // len(fx.chats))
    timeout = 120 + per_chat * len(fx.chats) * 0.5

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

    pid = fx.bridge.pid
    sizes = split(per_chat, ORDER.count("bridge"))  # (a tiny run skips empty rounds)

    async def one_round(side: str, size: int, load_duty: float = 0.0) -> dict[str, Any]:
        """`size` messages into every chat from one side."""

        async def flood() -> dict[str, float]:
            markers, t0, sent = await _flood(fx, size, post if side == "bridge" else as_send)
            last = await fx.me.wait_markers(markers, timeout)
            return {"messages": len(markers), "start": t0, "sent": sent, "last": last}

        return await measure_round(fx, side, flood, "T->M", load_duty)

    # A short unmeasured round of each side first, so that neither meets a cold Synapse.
    warm = max(1, min(5, per_chat // 10))
    for send in (post, as_send):
        await procfs.settle_cpu(pid)
        await fx.stack.settle_synapse()
        markers, _, _ = await _flood(fx, warm, send)
        await fx.me.wait_markers(markers, timeout)

    rounds = await run_rounds(sizes, one_round)

    # The control, with the bridge side's CPU share (of one core) beside the baseline.
    bridge_rounds = [r for r in rounds if r["side"] == "bridge"]
    busy = sum(
        r["bridge_cpu_s"] + r["cpu_s"].get("simulator", 0) + r["cpu_s"].get("postgres", 0)
        for r in bridge_rounds
    )
    share = busy / of(rounds, "bridge", "s")
    # (CPU is counted in clock ticks: a tiny run can measure none, and still runs a load.)
    duty = round(min(0.9, max(0.01, share)), 3)
    control_rounds: list[dict[str, Any]] = []
    for side in CONTROL:
        size = max(1, sizes[-1])
        control_rounds.append(await one_round(side, size, duty if side == "loaded" else 0.0))

    return {
        **rounds_summary(rounds, len(fx.chats)),
        "steal_s": round(sum(r["steal_s"] for r in rounds), 3),
        "control": {
            "bridge_side_cpu_share": round(share, 3),
            "load_duty": duty,
            "order": list(CONTROL),
            "rounds": control_rounds,
            "ratio": round(
                of(control_rounds, "baseline", "s") / of(control_rounds, "loaded", "s"), 3
            ),
            "baseline_phase": phase(control_rounds, "baseline"),
            "loaded_phase": phase(control_rounds, "loaded"),
        },
    }
