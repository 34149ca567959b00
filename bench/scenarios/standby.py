"""Scenario 7: two processes on one PostgreSQL database, an active one and a standby
(`bridge.cluster`), against one process.

What a standby costs (its memory and CPU while it waits), and how long the bridge is away:
- killed: from SIGKILL of the active process until the standby has started and every
  message sent in between, both ways, has arrived (the lease has to run out first; how
  much of it was left is read from the database at the kill);
- stopped: from SIGTERM of the active process until the same, the standby starting when
  the lease is released;
- one process (the baseline): from SIGTERM until the same process, started again at once
  (as a supervisor would, with no delay), serves again.

The log is watched for the start while those messages are being sent (sending them, one
request at a time, takes seconds), so the time to start is not the time to send; the
time until all are delivered includes sending them.

Every message sent while the bridge was away is counted on the other side: each must
arrive exactly once. Throughput is not compared: only one process works at a time.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from pathlib import Path
from typing import Any

import asyncpg

from tests.e2e.bridge_process import BridgeProcess

from .. import procfs
from ..matrix import Api, SyncingUser
from ..stack import Stack
from .common import bounded_gather, login_with_bot, marker

log = logging.getLogger("bench.standby")

# (full, quick): the lease, its renewal, and how long the waiting standby is watched.
LEASE_S = (10.0, 4.0)
RENEW_S = (2.0, 1.0)
IDLE_WINDOW_S = (10.0, 2.0)
STARTED = "Startup actions complete"
STANDING_BY = "Standing by: process"


def _log_size(process: BridgeProcess) -> int:
    return process.log_path.stat().st_size if process.log_path.exists() else 0


async def _wait_log(process: BridgeProcess, line: str, offset: int, timeout: float) -> float:
    """Until `line` shows in the log after `offset`; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.log_path.exists():
            with process.log_path.open("rb") as f:
                f.seek(offset)
                if line.encode() in f.read():
                    return time.monotonic()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{line!r} not in {process.log_path} after {timeout}s")


class Gap:
    """Messages sent both ways while the bridge is away, and their counts afterwards."""

    def __init__(self, stack: Stack, me: SyncingUser, chats: list[dict[str, Any]]) -> None:
        self.stack, self.me, self.chats = stack, me, chats
        self.t2m: list[str] = []
        self.m2t: list[str] = []
        self.sending_s = 0.0

    async def send(self, per_chat: int) -> None:
        assert self.stack.control
        started = time.monotonic()
        for chat in self.chats:
            for _ in range(per_chat):
                m = marker()
                self.t2m.append(m)
                await self.stack.control.post_message(
                    chat["id"], sender=chat["sender"], content=f"<p>Gap {m}</p>"
                )
                m = marker()
                self.m2t.append(m)
                await self.me.api.send_message(chat["room"], {"msgtype": "m.text", "body": m})
        self.sending_s = time.monotonic() - started

    async def arrived(self, timeout: float) -> float:
        assert self.stack.sim_marks
        t2m = await self.me.wait_markers(self.t2m, timeout)
        m2t = await self.stack.sim_marks.wait_markers(self.m2t, timeout)
        return max(t2m, m2t)

    async def counts(self) -> dict[str, int]:
        """How many of the markers arrived once, and how many copies too many."""
        assert self.stack.control
        in_matrix: dict[str, int] = {}
        for chat in self.chats:
            for seen in self.me.timeline.get(chat["room"], []):
                for m in self.t2m:
                    if seen.body and m in seen.body:
                        in_matrix[m] = in_matrix.get(m, 0) + 1
        in_teams: dict[str, int] = {}
        for chat in self.chats:
            for message in await self.stack.control.list_messages(chat["id"]):
                for m in self.m2t:
                    if m in (message.get("content") or ""):
                        in_teams[m] = in_teams.get(m, 0) + 1
        return {
            "sent_each_way": len(self.t2m),
            "sending_s": round(self.sending_s, 2),
            "t2m_arrived": len(in_matrix),
            "t2m_extra_copies": sum(n - 1 for n in in_matrix.values()),
            "m2t_arrived": len(in_teams),
            "m2t_extra_copies": sum(n - 1 for n in in_teams.values()),
        }


async def run(stack: Stack, chats: int, per_chat: int, quick: bool = False) -> dict[str, Any]:
    assert stack.control and stack.session and stack.synapse
    lease_s, renew_s, idle_s = (x[1 if quick else 0] for x in (LEASE_S, RENEW_S, IDLE_WINDOW_S))
    control = stack.control
    me_teams = await control.create_user("Standby Reader", "work")
    sender = await control.create_user("Standby Sender", "work")
    made = []
    for k in range(chats):
        chat = await control.create_chat(
            "group", [me_teams["mri"], sender["mri"]], topic=f"Standby {k:02d}"
        )
        made.append({"id": chat["id"], "sender": sender["mri"], "topic": f"Standby {k:02d}"})

    bridge = stack.bridges["standby"]
    bridge.overrides = {
        "bridge.initial_chat_sync": chats,
        "bridge.cluster.enabled": True,
        "bridge.cluster.lease_seconds": lease_s,
        "bridge.cluster.renew_seconds": renew_s,
    }
    await stack.start_bridge("standby")
    first = bridge.process
    assert first is not None
    config = copy.deepcopy(first.config)
    second_dir = Path(first.workdir).parent / "bridge-standby-2"
    config["logging"]["handlers"]["file"]["filename"] = str(second_dir / "bridge.log")
    second = BridgeProcess(second_dir, config)
    await second.astart(ready=STANDING_BY)

    user_id, token = await stack.register_user(f"standby_{marker().lower()}")
    me = SyncingUser(Api(stack.session, stack.synapse.url, token), user_id)
    await me.start()
    results: dict[str, Any] = {
        "lease_seconds": lease_s,
        "renew_seconds": renew_s,
        "chats": chats,
        "messages_per_chat_each_way": per_chat,
    }
    try:
        await login_with_bot(stack, bridge, me, me_teams["mri"])
        invites = await me.wait_invites(chats, timeout=60 + 3 * chats)
        rooms = {inv.name: inv.room_id for inv in invites}
        for chat in made:
            chat["room"] = rooms[chat["topic"]]
        await bounded_gather(4, [me.api.join(c["room"]) for c in made])
        puppet = bridge.puppet_mxid(sender["mri"])
        for chat in made:
            await me.wait_joined_member(chat["room"], puppet, timeout=60)
        warm = Gap(stack, me, made)
        await warm.send(1)
        await warm.arrived(120)

        # What the standby costs while it waits.
        assert second.proc is not None
        cpu0 = procfs.cpu_seconds(second.proc.pid)
        t = time.monotonic()
        await asyncio.sleep(idle_s)
        waited = time.monotonic() - t
        results["standby_cpu_ms_per_s"] = round(
            (procfs.cpu_seconds(second.proc.pid) - cpu0) * 1000 / waited, 2
        )
        results["standby_rss_kib"] = procfs.rss_kib(second.proc.pid)
        results["active_rss_kib"] = bridge.rss_kib()

        # Killed: the standby waits out the lease.
        conn = await asyncpg.connect(bridge.database)
        try:
            offset = _log_size(second)
            t0 = time.monotonic()
            first.kill()
            left = await conn.fetchval(
                "SELECT EXTRACT(EPOCH FROM expires_at - now())::float8 FROM bridge_lease"
            )
        finally:
            await conn.close()
        watch = asyncio.create_task(_wait_log(second, STARTED, offset, 120 + lease_s))
        gap = Gap(stack, me, made)
        await gap.send(per_chat)
        serving = await watch
        done = await gap.arrived(120)
        results["killed"] = {
            "lease_left_at_kill_s": round(left, 2),
            "to_started_s": round(serving - t0, 2),
            "started_after_lease_ran_out_s": round(serving - t0 - left, 2),
            "to_all_delivered_s": round(_mono(done) - t0, 2),
            **await gap.counts(),
        }
        log.info("standby: killed -> serving in %.1fs", serving - t0)

        # Stopped: the lease is released, the old active process (started again) takes over.
        await first.astart(ready=STANDING_BY)
        offset = _log_size(first)
        t0 = time.monotonic()
        stopping = asyncio.create_task(second.astop())
        watch = asyncio.create_task(_wait_log(first, STARTED, offset, 120))
        gap = Gap(stack, me, made)
        await gap.send(per_chat)
        serving = await watch
        done = await gap.arrived(120)
        await stopping
        results["stopped"] = {
            "to_started_s": round(serving - t0, 2),
            "to_all_delivered_s": round(_mono(done) - t0, 2),
            **await gap.counts(),
        }

        # One process: stopped and started again at once.
        offset = _log_size(first)
        t0 = time.monotonic()
        await first.astop()
        starting = asyncio.create_task(first.astart())
        watch = asyncio.create_task(_wait_log(first, STARTED, offset, 120))
        gap = Gap(stack, me, made)
        await gap.send(per_chat)
        await starting
        serving = await watch
        done = await gap.arrived(120)
        results["one_process_restart"] = {
            "to_started_s": round(serving - t0, 2),
            "to_all_delivered_s": round(_mono(done) - t0, 2),
            **await gap.counts(),
        }
    finally:
        await me.stop()
        await second.astop()
        await stack.stop_bridge("standby")
    return results


def _mono(wall: float) -> float:
    """A wall-clock arrival time (what the sync loop and the simulator note) as monotonic."""
    return wall - time.time() + time.monotonic()
