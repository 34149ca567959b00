"""`python -m bench`: start the real stack, run the scenarios, write the results.

Every figure is compared with a baseline measured in the same run on the same Synapse;
nothing here asserts a timing, it only measures and reports.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import procfs, report
from .stack import REPO, Stack

log = logging.getLogger("bench")

SCENARIOS = ("latency", "throughput", "m2t", "scale", "cpu", "history", "standby")
SCENARIO_HELP = {
    "latency": "1: Teams -> Matrix latency",
    "throughput": "2: Teams -> Matrix throughput (+ CPU per message)",
    "m2t": "3: Matrix -> Teams latency and throughput (+ CPU per message)",
    "scale": "4: many users: memory and start-up",
    "cpu": "5: py-spy profile of the bridge in both directions",
    "history": "6: history in new rooms (a fresh bridge, a login with chats of messages)",
    "standby": "7: a standby process taking over (killed, stopped) against one process",
}

# (full, quick)
SIZES: dict[str, tuple[int, int]] = {
    "chats": (20, 2),
    "latency_samples": (200, 4),
    "messages": (1000, 20),
    "m2t_latency_samples": (200, 4),
    "m2t_messages": (1000, 20),
    "scale_users": (1000, 3),
    "scale_chats": (10, 2),
    "scale_room_users": (200, 1),
    "profile_messages": (300, 20),
    "history_chats": (20, 2),
    "history_messages": (50, 5),
    "standby_chats": (5, 1),
    "standby_messages": (10, 2),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark teams-bridge against the homeserver's own ceiling.",
        epilog="Scenarios: " + "; ".join(f"{k} ({v})" for k, v in SCENARIO_HELP.items()),
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small smoke version (sizes shrunk; ~30 s)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="directory for latest.json, latency.png and profiles "
        "(default bench/results, or bench/results/quick with --quick)",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help="Markdown file whose generated section is rewritten "
        "(default docs/benchmarks.md; not written with --quick unless given)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch any Markdown file")
    parser.add_argument("--keep", action="store_true", help="keep the stack's work directory")
    parser.add_argument(
        "--sim-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Teams simulator option (value read as JSON when it parses), e.g. "
        "server_heartbeat_interval=30",
    )
    parser.add_argument(
        "--default-rate-limits",
        action="store_true",
        help="run Synapse with its own rate limits (not the test template's raised ones); "
        "the registrations stay rate_limited: false",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    for name, (full, quick) in SIZES.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=None,
            help=f"default {full} ({quick} with --quick)",
        )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.scenarios = [s for s in SCENARIOS if s in chosen]
    args.sim_options = {}
    for item in args.sim_set:
        key, sep, raw = item.partition("=")
        if not sep:
            parser.error(f"--sim-set wants KEY=VALUE, not {item!r}")
        try:
            args.sim_options[key] = json.loads(raw)
        except ValueError:
            args.sim_options[key] = raw
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.results is None:
        args.results = REPO / "bench" / "results" / ("quick" if args.quick else "")
    if args.doc is None and not args.quick:
        args.doc = REPO / "docs" / "benchmarks.md"
    if args.no_doc:
        args.doc = None
    return args


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "teams_bridge"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + ("+changes" if dirty else "") if head else "unknown"
    except OSError:
        return "unknown"


def _synapse_version() -> str:
    try:
        from tests.harness import synapse_python

        return subprocess.run(
            [str(synapse_python()), "-c", "import synapse; print(synapse.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    except Exception:
        return "?"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from .scenarios import common, cpu, history, matrix_to_teams, scale, standby, teams_to_matrix

    began = time.monotonic()
    load_before = os.getloadavg()
    # Importing Synapse to ask its version takes seconds: done while the stack starts.
    synapse_version = asyncio.create_task(asyncio.to_thread(_synapse_version))
    results: dict[str, Any] = {"scenarios": {}, "notes": [], "setup_s": {}}
    scen = results["scenarios"]
    stack = Stack(
        keep=args.keep, sim_options=args.sim_options, default_rate_limits=args.default_rate_limits
    )
    if args.default_rate_limits:
        results["notes"].append("Synapse ran with its default rate limits.")
    args.results.mkdir(parents=True, exist_ok=True)
    errors: dict[str, str] = {}
    results["errors"] = errors
    fx = None

    async def attempt(name: str, coro: Any) -> Any:
        """Run one scenario; a failure is recorded and the run goes on with the others."""
        try:
            return await coro
        except Exception as e:
            log.exception("%s failed", name)
            errors[name] = f"{type(e).__name__}: {e}"
            return None

    try:
        await stack.start()
        results["setup_s"]["stack"] = round(stack.timings["stack_start_s"], 1)
        wanted = set(args.scenarios)
        if wanted & {"latency", "throughput", "m2t", "cpu"}:
            fx = await attempt("setup", common.setup_portals(stack, args.chats))
        if fx is not None:
            results["setup_s"]["portals"] = {k: round(v, 1) for k, v in fx.setup_seconds.items()}
            steps: list[tuple[str, str, str, Any]] = [
                ("latency", "t2m_latency", "scenario 1: Teams -> Matrix latency",
                 lambda: teams_to_matrix.latency(fx, args.latency_samples)),
                ("throughput", "t2m_throughput", "scenario 2: Teams -> Matrix throughput",
                 lambda: teams_to_matrix.throughput(fx, args.messages)),
                ("m2t", "m2t", "scenario 3: Matrix -> Teams latency and throughput",
                 lambda: matrix_to_teams.run(fx, args.m2t_latency_samples, args.m2t_messages)),
                ("cpu", "cpu_profile", "scenario 5: profiling",
                 lambda: cpu.profile(fx, args.profile_messages, args.results)),
            ]  # fmt: skip
            for scenario, key, label, make in steps:
                if scenario in wanted:
                    log.info(label)
                    result = await attempt(key, make())
                    if result is not None and key == "m2t":
                        scen["m2t_latency"] = result["latency"]
                        scen["m2t_throughput"] = result["throughput"]
                    elif result is not None:
                        scen[key] = result
            results["bridge_rss_after_kib"] = fx.bridge.rss_kib()
            await fx.me.stop()
        await stack.stop_bridge("bench")
        if "history" in wanted:
            # Before scenario 4, whose thousand users and rooms leave this Synapse busy and
            # slower for a while; and once Synapse has gone quiet after the scenarios before.
            assert stack.synapse and stack.synapse.proc
            await procfs.settle_cpu(stack.synapse.proc.pid, quiet=0.1, window=1.0, limit=60)
            log.info("scenario 6: history, %d chats x %d messages", args.history_chats,
                     args.history_messages)  # fmt: skip
            result = await attempt(
                "history", history.run(stack, args.history_chats, args.history_messages)
            )
            if result is not None:
                scen["history"] = result
        if "standby" in wanted:
            assert stack.synapse and stack.synapse.proc
            await procfs.settle_cpu(stack.synapse.proc.pid, quiet=0.1, window=1.0, limit=60)
            log.info("scenario 7: a standby, %d chats", args.standby_chats)
            result = await attempt(
                "standby", standby.run(stack, args.standby_chats, args.standby_messages, args.quick)
            )
            if result is not None:
                scen["standby"] = result
        if "scale" in wanted:
            log.info("scenario 4: %d users x %d chats", args.scale_users, args.scale_chats)
            result = await attempt(
                "scale",
                scale.run(stack, args.scale_users, args.scale_chats, args.scale_room_users),
            )
            if result is not None:
                scen["scale"] = result
                results["notes"].append(
                    f"Scenario 4: the chats of {args.scale_room_users} users get Matrix rooms "
                    "(a message from Teams in each); the others' portals have none (a typing "
                    "notification loads a portal and needs no room)."
                )
    except Exception as e:
        log.exception("the benchmark stack failed")
        errors["stack"] = f"{type(e).__name__}: {e}"
    finally:
        await stack.stop()
    if "m2t_latency" in scen:
        results["notes"].append(
            "Matrix → Teams latency: the baseline's samples first, then the bridge's, not "
            "interleaved (the throughput rounds alternate, one unmeasured message per portal "
            "before each of the bridge's). Synapse takes appservice transaction ids from one "
            "sequence shared by all appservices, and older bridge versions treated a gap in "
            "their ids as a late transaction and held the next message for it, so every "
            "no-op transaction would have delayed the bridge's next message. The first "
            "message per portal after the switch took "
            f"{scen['m2t_latency']['first_message_after_switch_s']:.1f} s for all "
            f"{len(fx.chats) if fx else '?'} portals."
        )
    if "matrix_order_hold_seconds" in stack.config_notes:
        results["notes"].append(
            "`bridge.matrix_order_hold_seconds` is 0 in these runs (an older bridge version), "
            "so a bridge that waits "
            "out the whole hold before reading the room (the default is 300 s) does not stall "
            "on the gap the switch to the bridge leaves."
        )
    if stack.sim_options.get("server_heartbeat_interval", 30) > 600:
        results["notes"].append(
            "The simulator's own `2::` heartbeats are off in these runs: the simulator echoes "
            "every `2::` it receives and the bridge answers every `2::` it gets "
            "(`Trouter._handle`, teams_bridge/teams/trouter.py), so from the first server "
            "heartbeat on (30 s) each connection ping-pongs heartbeats as fast as both "
            "processes can. `--sim-set server_heartbeat_interval=30` measures with them."
        )
    load_after = os.getloadavg()
    if load_before[0] > 1.0:
        results["notes"].append(
            f"The machine was already busy when the run started (load average "
            f"{load_before[0]:.1f}): other processes competed for the CPUs, so the figures "
            "are noisier than on a quiet machine."
        )
    results["meta"] = {
        "mode": "quick" if args.quick else "full",
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "wall_s": round(time.monotonic() - began, 1),
        "machine": procfs.machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "synapse_version": await synapse_version,
        "sizes": {name: getattr(args, name) for name in SIZES},
        "scenarios": args.scenarios,
        "simulator_options": stack.sim_options,
        "command": "python -m bench " + " ".join(sys.argv[1:]),
    }
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("aiohttp", "asyncio", "mau", "bench.matrix"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    results = asyncio.run(run(args))
    out_json = args.results / "latest.json"
    report.write_json(out_json, results)
    written = [out_json]
    png = args.results / "latency.png"
    if report.plot(png, results):
        written.append(png)
    if args.doc:
        report.write_doc(args.doc, results)
        written.append(args.doc)
    print()
    print(report.table(results))
    print()
    print(f"finished in {results['meta']['wall_s']:.0f} s; wrote " + ", ".join(map(str, written)))
    if results["errors"]:
        print("FAILED: " + "; ".join(f"{k}: {v}" for k, v in results["errors"].items()))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
