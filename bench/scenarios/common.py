"""What scenarios 1-3 and 5 share: one Matrix user logged in to Teams through the bot, with a
set of group chats bridged into portal rooms it has joined."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import procfs
from ..matrix import Api, SyncingUser
from ..stack import Bridge, Stack

log = logging.getLogger("bench.setup")

CODE_RE = re.compile(r"enter the code \*{0,2}([A-Z0-9-]+)\*{0,2}")
_counter = itertools.count()
_run_tag = secrets.token_hex(2)


def marker() -> str:
    """A unique token that survives both formatters (letters and digits only)."""
    return f"BM{_run_tag}{next(_counter):07d}"


@dataclass
class Chat:
    chat_id: str
    topic: str
    sender_mri: str  # a simulated Teams user (not bridged) who posts here
    room_id: str = ""
    puppet: str = ""  # the sender's ghost in the portal room


@dataclass
class Fixture:
    stack: Stack
    bridge: Bridge
    me: SyncingUser
    as_api: Api  # the bridge registration's as_token: acts as any of its ghosts
    me_mri: str
    chats: list[Chat] = field(default_factory=list)
    setup_seconds: dict[str, float] = field(default_factory=dict)


async def bounded_gather(limit: int, coros: list[Any]) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def login_with_bot(
    stack: Stack,
    bridge: Bridge,
    user: SyncingUser,
    mri: str,
    timeout: float = 120,
    on_approve: Any = None,
    on_logged_in: Any = None,
) -> str:
    """Open a DM with the bot, send `login`, approve the device code as `mri`
    (``on_approve`` gets the monotonic time just before the approval, ``on_logged_in``
    the time the bot's confirmation arrived)."""
    assert stack.control
    bot = bridge.registration.bot_mxid
    dm = await user.api.create_room(preset="trusted_private_chat", is_direct=True, invite=[bot])
    await user.wait_message(dm, sender=bot, msgtype="m.notice", timeout=timeout)
    await user.api.send_message(dm, {"msgtype": "m.text", "body": "login"})
    prompt = await user.wait_message(dm, sender=bot, contains="enter the code", timeout=timeout)
    found = CODE_RE.search(prompt.body or "")
    if not found:
        raise RuntimeError("the bot's login prompt has no code")
    if on_approve is not None:
        on_approve(time.monotonic())
    await stack.control.approve_device_code(found.group(1), mri)
    await user.wait_message(dm, sender=bot, contains="Successfully logged in", timeout=timeout)
    if on_logged_in is not None:
        on_logged_in(time.monotonic())
    return dm


async def setup_portals(stack: Stack, chats: int, others: int = 4) -> Fixture:
    """Start the measured bridge, log a Matrix user in and join `chats` portal rooms."""
    assert stack.control and stack.session and stack.synapse
    control = stack.control
    timings: dict[str, float] = {}
    began = time.monotonic()

    me_teams = await control.create_user("Bench Reader", "work")
    pool = [await control.create_user(f"Teams Sender {i}", "work") for i in range(others)]
    chat_list: list[Chat] = []
    for k in range(chats):
        sender = pool[k % others]
        extra = pool[(k + 1) % others]
        topic = f"Bench chat {k:02d}"
        made = await control.create_chat(
            "group", [me_teams["mri"], sender["mri"], extra["mri"]], topic=topic
        )
        chat_list.append(Chat(made["id"], topic, sender["mri"]))

    bridge = stack.bridges["bench"]
    bridge.overrides = {"bridge.initial_chat_sync": max(20, chats)}
    t = time.monotonic()
    await stack.start_bridge("bench")
    timings["bridge_start_s"] = time.monotonic() - t

    user_id, token = await stack.register_user(f"reader_{_run_tag}")
    me = SyncingUser(Api(stack.session, stack.synapse.url, token), user_id)
    await me.start()
    as_api = Api(stack.session, stack.synapse.url, bridge.registration.as_token)
    fixture = Fixture(stack, bridge, me, as_api, me_teams["mri"], chat_list, timings)

    t = time.monotonic()
    await login_with_bot(stack, bridge, me, me_teams["mri"])
    timings["login_s"] = time.monotonic() - t

    # The bridge creates one portal room per chat and invites the user.
    t = time.monotonic()
    invites = await me.wait_invites(chats, timeout=60 + 3 * chats)
    by_topic = {inv.name: inv.room_id for inv in invites}
    for chat in chat_list:
        if chat.topic not in by_topic:
            raise RuntimeError(f"no portal room for {chat.topic}")
        chat.room_id = by_topic[chat.topic]
        chat.puppet = bridge.puppet_mxid(chat.sender_mri)
    timings["portal_rooms_s"] = time.monotonic() - t
    t = time.monotonic()
    await bounded_gather(4, [me.api.join(c.room_id) for c in chat_list])
    for chat in chat_list:
        await me.wait_joined_member(chat.room_id, chat.puppet, timeout=60)
    timings["join_s"] = time.monotonic() - t

    # Warm both paths once per room (first-message costs are not what we measure).
    t = time.monotonic()
    await warm_up(fixture)
    timings["warm_up_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - began
    return fixture


async def warm_up(fx: Fixture) -> None:
    assert fx.stack.control and fx.stack.sim_marks
    markers = []
    for chat in fx.chats:
        m = marker()
        markers.append(m)
        await fx.stack.control.post_message(
            chat.chat_id, sender=chat.sender_mri, content=f"<p>warm-up {m}</p>"
        )
    await fx.me.wait_markers(markers, timeout=120)
    markers = []
    for chat in fx.chats:
        m = marker()
        markers.append(m)
        await fx.as_api.send_message(
            chat.room_id, {"msgtype": "m.text", "body": f"warm-up {m}"}, as_user=chat.puppet
        )
    await fx.me.wait_markers(markers, timeout=120)
    markers = []
    for chat in fx.chats:
        m = marker()
        markers.append(m)
        await fx.me.api.send_message(chat.room_id, {"msgtype": "m.text", "body": f"warm-up {m}"})
    await fx.stack.sim_marks.wait_markers(markers, timeout=120)


# -- statistics ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "mean": round(statistics.fmean(ms), 2),
        "p50": round(percentile(ms, 50), 2),
        "p90": round(percentile(ms, 90), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
    }


def overhead_ms(bridge: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    return {q: round(bridge[q] - baseline[q], 2) for q in ("p50", "p90", "p99")}


# -- rounds of a throughput scenario ------------------------------------------------------

# The order of the measured rounds of a throughput scenario: whatever drifts during it
# (Synapse's caches and database growing, its background work, the machine's neighbours)
# weighs on both sides alike, and one slow stretch counts for an eighth of a side, not half.
ORDER = ("bridge", "baseline", "baseline", "bridge", "baseline", "bridge", "bridge", "baseline")


def split(total: int, parts: int) -> list[int]:
    """`total` cut into `parts` whole sizes that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def of(rounds: list[dict[str, Any]], side: str, key: str) -> float:
    """The sum of one figure over one side's rounds."""
    return sum(r[key] for r in rounds if r["side"] == side)


def phase(rounds: list[dict[str, Any]], side: str) -> dict[str, float]:
    """Per message of one side's rounds: the CPU of each other process, and Synapse's work."""
    n = of(rounds, side, "messages")
    names = {k for r in rounds for k in r["cpu_s"]}
    out = {
        f"{k}_cpu_ms_per_msg": round(
            sum(r["cpu_s"].get(k, 0.0) for r in rounds if r["side"] == side) * 1000 / n, 2
        )
        for k in sorted(names)
    }
    for k in ("db_transactions", "syncs"):
        out[f"synapse_{k}_per_msg"] = round(
            sum(r["synapse_work"][k] for r in rounds if r["side"] == side) / n, 3
        )
    return out


async def measure_round(
    fx: Fixture,
    side: str,
    flood: Callable[[], Awaitable[dict[str, float]]],
    what: str,
    load_duty: float = 0.0,
) -> dict[str, Any]:
    """One round of a throughput scenario from `side`: `flood()` sends it and waits for
    every message to arrive (its `messages`, and the times it `start`ed, had `sent` all and
    saw the `last` arrive). It starts once the bridge and Synapse are quiet (no round starts
    while Synapse still works off the one before it). Measured around it: the bridge's CPU
    (and its database transactions in its own rounds), the other processes' CPU, the
    machine's CPU steal and Synapse's work. `load_duty`: a CPU load of that share of one
    core runs during the round (the control of Teams -> Matrix throughput)."""
    pid = fx.bridge.pid
    await procfs.settle_cpu(pid)
    await fx.stack.settle_synapse()
    load = None
    if load_duty > 0:
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.load", f"--duty={load_duty:.3f}"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert load.stdout is not None
        await asyncio.to_thread(load.stdout.readline)  # its working set is built
    try:
        db0 = 0
        if side == "bridge":
            await asyncio.sleep(1.5)  # let PostgreSQL publish its counters
            db0 = await fx.stack.db_transactions(fx.bridge.name)
        cpu0 = procfs.cpu_split(pid)
        others0 = fx.stack.cpu_snapshot()
        steal0 = procfs.steal_seconds()
        work0 = await fx.stack.synapse_work()
        sent = await flood()
        work1 = await fx.stack.synapse_work()
        steal1 = procfs.steal_seconds()
    finally:
        if load is not None:
            load.kill()
            load.wait()
    cpu1 = await procfs.settle_cpu(pid)
    sys1 = procfs.cpu_split(pid)[1]
    others1 = fx.stack.cpu_snapshot()
    db1 = 0
    if side == "bridge":
        await asyncio.sleep(1.5)
        db1 = await fx.stack.db_transactions(fx.bridge.name)
    s = sent["last"] - sent["start"]
    log.info("%s %s: %d messages arrived after %.1fs", what, side, sent["messages"], s)
    return {
        "side": side,
        "messages": int(sent["messages"]),
        "s": round(s, 3),
        "send_s": round(sent["sent"] - sent["start"], 3),
        "bridge_cpu_s": round(cpu1 - sum(cpu0), 3),
        "bridge_sys_cpu_s": round(sys1 - cpu0[1], 3),
        "db_transactions": db1 - db0,
        "steal_s": round(steal1 - steal0, 3),
        "cpu_s": {k: round(others1[k] - others0[k], 3) for k in others0 if k in others1},
        "synapse_work": {k: work1[k] - work0[k] for k in work0},
    }


async def run_rounds(sizes: list[int], one_round: Any) -> list[dict[str, Any]]:
    """The measured rounds in `ORDER`, each side's taking the next of `sizes` (an empty
    one is skipped): `await one_round(side, size)` gives a round's figures."""
    rounds: list[dict[str, Any]] = []
    taken = {"bridge": 0, "baseline": 0}
    for side in ORDER:
        size = sizes[taken[side]]
        taken[side] += 1
        if size:
            rounds.append(await one_round(side, size))
    return rounds


def rounds_summary(rounds: list[dict[str, Any]], chats: int) -> dict[str, Any]:
    """The figures of a throughput scenario over its rounds: each side's time and rate, the
    ratio (baseline time over bridge time), the bridge's CPU and database transactions per
    message, and the other processes' CPU and Synapse's work per message of each side."""
    total = int(of(rounds, "bridge", "messages"))
    bridge_s, baseline_s = of(rounds, "bridge", "s"), of(rounds, "baseline", "s")
    bridge_cpu = of(rounds, "bridge", "bridge_cpu_s")
    return {
        "messages": total,
        "chats": chats,
        "concurrency": chats,
        "order": list(ORDER),
        "rounds": rounds,
        "bridge_s": round(bridge_s, 3),
        "bridge_send_s": round(of(rounds, "bridge", "send_s"), 3),
        "bridge_msgs_per_s": round(total / bridge_s, 2),
        "baseline_s": round(baseline_s, 3),
        "baseline_send_s": round(of(rounds, "baseline", "send_s"), 3),
        "baseline_msgs_per_s": round(of(rounds, "baseline", "messages") / baseline_s, 2),
        "ratio": round(baseline_s / bridge_s, 3),
        "bridge_cpu_s": round(bridge_cpu, 3),
        "bridge_cpu_ms_per_msg": round(bridge_cpu * 1000 / total, 3),
        "bridge_sys_cpu_ms_per_msg": round(
            of(rounds, "bridge", "bridge_sys_cpu_s") * 1000 / total, 3
        ),
        "bridge_db_transactions_per_msg": round(of(rounds, "bridge", "db_transactions") / total, 2),
        "bridge_phase": phase(rounds, "bridge"),
        "baseline_phase": phase(rounds, "baseline"),
    }
