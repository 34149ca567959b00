"""Scenario 5's profile: py-spy samples the bridge during a separate load pass in each
direction, so the profiler never touches the measured figures (the CPU seconds per message
come from the throughput runs of scenarios 2 and 3)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .. import procfs
from ..profile import Profiler, summarise
from .common import Fixture, marker

log = logging.getLogger("bench.cpu")


async def profile(fx: Fixture, messages: int, out_dir: Path) -> dict[str, Any]:
    control, sim_marks = fx.stack.control, fx.stack.sim_marks
    assert control and sim_marks
    per_chat = max(1, messages // len(fx.chats))
    total = per_chat * len(fx.chats)
    results: dict[str, Any] = {"messages_per_direction": total}
    pid = fx.bridge.pid

    async def t2m() -> None:
        markers = [marker() for _ in range(total)]
        for i, m in enumerate(markers):
            chat = fx.chats[i % len(fx.chats)]
            await control.post_message(
                chat.chat_id, sender=chat.sender_mri, content=f"<p>Profile {m}</p>"
            )
        await fx.me.wait_markers(markers, timeout=120 + total)

    async def m2t() -> None:
        markers = [marker() for _ in range(total)]
        for i, m in enumerate(markers):
            chat = fx.chats[i % len(fx.chats)]
            await fx.me.api.send_message(chat.room_id, {"msgtype": "m.text", "body": f"Pr {m}"})
        await sim_marks.wait_markers(markers, timeout=120 + total)

    for name, load in (("teams_to_matrix", t2m), ("matrix_to_teams", m2t)):
        path = out_dir / f"profile-{name}.txt"
        path.unlink(missing_ok=True)
        await procfs.settle_cpu(pid)
        profiler = Profiler(pid, path, rate=1000)
        started = await profiler.start()
        cpu0 = procfs.cpu_seconds(pid)
        t0 = time.monotonic()
        await load()
        cpu1 = await procfs.settle_cpu(pid)
        await profiler.stop()
        entry: dict[str, Any] = {
            "wall_s": round(time.monotonic() - t0, 2),
            "bridge_cpu_ms_per_msg": round((cpu1 - cpu0) * 1000 / total, 3),
        }
        if started and not profiler.error:
            entry["file"] = path.name
            entry.update(summarise(path))
        else:
            entry["error"] = profiler.error
            log.warning("no profile for %s: %s", name, profiler.error)
        results[name] = entry
    return results
