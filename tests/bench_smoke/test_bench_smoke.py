"""The benchmark harness still works: every scenario at a tiny size, end to end.

About a minute on a busy 2-core machine, nearly all of it the harness's fixed waits
(stack and bridge start-ups, quiet-CPU detection, PostgreSQL publishing its counters).
Nothing here is timed: the run must finish, write its files, and every figure must be
there and make sense (finite; times, rates and sizes above zero). The real benchmark is
`python -m bench` (see docs/benchmarks.md); CI only keeps it from rotting.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

SIZES = {
    "--chats": 1,
    "--latency-samples": 2,
    "--messages": 2,
    "--m2t-latency-samples": 2,
    "--m2t-messages": 2,
    "--scale-users": 2,
    "--scale-chats": 1,
    "--scale-room-users": 1,
    "--profile-messages": 2,
    "--history-chats": 1,
    "--history-messages": 2,
    "--standby-chats": 1,
    "--standby-messages": 1,
}


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# One rerun: in one clean-clone run so far the harness failed before writing anything
# (its output was lost with that run); every figure is still checked on the rerun.
@pytest.mark.flaky(reruns=1)
def test_every_scenario_runs_and_reports(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    doc = tmp_path / "benchmarks.md"
    command = [sys.executable, "-m", "bench", "--quick", "--results", str(results_dir)]
    command += ["--doc", str(doc)]
    for flag, size in SIZES.items():
        command += [flag, str(size)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # (Its ports come from the kernel, not from this pytest-xdist worker's block.)
    env.pop("PYTEST_XDIST_WORKER", None)
    run = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=420,
    )
    output = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, output

    results = json.loads((results_dir / "latest.json").read_text())
    assert results["errors"] == {}, results["errors"]
    s = results["scenarios"]
    assert set(s) >= {
        "t2m_latency",
        "t2m_throughput",
        "m2t_latency",
        "m2t_throughput",
        "scale",
        "cpu_profile",
        "history",
        "standby",
    }
    history = s["history"]
    assert (history["chats"], history["messages_per_chat"]) == (1, 2), history
    assert positive(history["bridge_s"]) and positive(history["baseline_s"]), history
    assert positive(history["ratio"]), history

    for key, samples in (("t2m_latency", 2), ("m2t_latency", 2)):
        latency = s[key]
        assert len(latency["raw_s"]["bridge"]) == len(latency["raw_s"]["baseline"]) == samples
        for side in ("bridge_ms", "baseline_ms"):
            assert all(positive(latency[side][q]) for q in ("p50", "p90", "p99")), latency
        assert all(finite(latency["overhead_ms"][q]) for q in ("p50", "p90", "p99"))

    for key in ("t2m_throughput", "m2t_throughput"):
        tp = s[key]
        assert tp["messages"] == 2, tp
        for field in ("bridge_msgs_per_s", "baseline_msgs_per_s", "ratio"):
            assert positive(tp[field]), (key, field, tp)
        # CPU is counted in clock ticks, which two messages may not reach; PostgreSQL
        # publishes its transaction counters late, so they may not have moved yet.
        for field in ("bridge_cpu_ms_per_msg", "bridge_db_transactions_per_msg"):
            assert finite(tp[field]) and tp[field] >= 0, (key, field, tp)
        # Synapse's and PostgreSQL's CPU: a PostgreSQL backend that exits takes its CPU
        # time out of the sum, which over two messages can leave it below zero.
        for phase in ("bridge_phase", "baseline_phase"):
            assert tp[phase] and all(finite(v) for v in tp[phase].values()), tp
        # Both count Synapse's own work per event, in rounds of each side taken in turn.
        for phase in ("bridge_phase", "baseline_phase"):
            assert positive(tp[phase]["synapse_db_transactions_per_msg"]), tp
        assert {r["side"] for r in tp["rounds"]} == {"bridge", "baseline"}, tp
    # Both directions measure a round alike: the same figures in every round.
    figures = {
        frozenset(r) for key in ("t2m_throughput", "m2t_throughput") for r in s[key]["rounds"]
    }
    assert len(figures) == 1 and "steal_s" in next(iter(figures)), figures
    # Teams -> Matrix throughput also runs its control (the baseline beside a CPU load) to
    # the end.
    control = s["t2m_throughput"]["control"]
    assert [r["side"] for r in control["rounds"]] == ["baseline", "loaded", "loaded", "baseline"]
    assert positive(control["ratio"]) and 0 < control["load_duty"] <= 0.9, control

    # Two processes: every message sent while the bridge was away arrived once, each time.
    standby = s["standby"]
    for case in ("killed", "stopped", "one_process_restart"):
        counts = standby[case]
        assert counts["sent_each_way"] == 1, standby
        assert counts["t2m_arrived"] == counts["m2t_arrived"] == 1, standby
        assert counts["t2m_extra_copies"] == counts["m2t_extra_copies"] == 0, standby
        assert positive(counts["to_started_s"]) and positive(counts["to_all_delivered_s"])
    assert positive(standby["standby_rss_kib"]) and finite(standby["standby_cpu_ms_per_s"])
    assert 0 < standby["killed"]["lease_left_at_kill_s"] <= standby["lease_seconds"], standby

    scale = s["scale"]
    assert scale["users"] == 2 and scale["portals"] == 2, scale
    # One user's chat got a room, through the bridge's normal path.
    assert scale["rooms"] == 1, scale
    for field in (
        "rss_one_user_kib",
        "rss_all_users_kib",
        "rss_with_rooms_kib",
        "rss_with_portals_kib",
        "rss_bounded_kib",
    ):
        assert positive(scale[field]), scale
    # The bridge's own count of what it holds (its metrics).
    loaded = scale["loaded_portals"]
    assert loaded["every_chat_unbounded"] == 2 and loaded["every_chat_default_bound"] == 2, scale
    # Growth over so few users and portals is within noise and can come out negative.
    assert finite(scale["rss_per_user_kib"]) and finite(scale["rss_per_portal_kib"]), scale
    assert positive(scale["startup_all_connected_s"]), scale
    assert positive(scale["startup_caught_up_s"]), scale

    for direction in ("teams_to_matrix", "matrix_to_teams"):
        profile = s["cpu_profile"][direction]
        assert positive(profile["wall_s"]), profile
        if "error" in profile:
            # py-spy needs ptrace rights, which some containers do not grant.
            assert "could not attach" in profile["error"], profile
        else:
            # Two messages may leave no sample at all: the file and the count are enough.
            assert (results_dir / profile["file"]).exists(), profile
            assert isinstance(profile["samples"], int) and profile["samples"] >= 0, profile

    assert (results_dir / "latency.png").stat().st_size > 0
    text = doc.read_text()
    assert "Teams → Matrix latency p50" in text and "Matrix → Teams throughput" in text
    assert "Bridge CPU per message" in text and "RSS per connected user" in text
    assert "Standby process while it waits" in text
