"""`python -m tests.fake_teams [--port N] [--demo]`: run the simulator standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from typing import Any

from .app import FakeTeams
from .demo import populate
from .options import SimOptions


def _yaml_block(endpoints: dict[str, str]) -> str:
    lines = ["teams:", "    endpoints:"]
    lines += [f"        {key}: {value}" for key, value in endpoints.items()]
    return "\n".join(lines)


def _option(text: str) -> tuple[str, Any]:
    """`key=value`; the value is read as JSON when it parses, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected key=value")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


async def _run(port: int, demo: bool, options: dict[str, Any], as_json: bool) -> None:
    sim = FakeTeams(**options)
    await sim.start(host="127.0.0.1", port=port)
    if as_json:
        data = populate(sim.world) if demo else {}
        print(json.dumps({"url": sim.url, "endpoints": sim.endpoints(), **data}), flush=True)
        await _wait_for_signal()
        await sim.stop()
        return
    print(f"Fake Teams listening on {sim.url}")
    print(f"Sign-in page: {sim.url}/devicelogin   control API: {sim.url}/_control/")
    print("\nPaste into the bridge config:\n")
    print(_yaml_block(sim.endpoints()))
    if demo:
        data = populate(sim.world)
        print("\nUsers:")
        for user in data["users"]:
            print(
                f"  {user['display_name']:<18} {user['kind']:<9} {user['email']:<36} {user['mri']}"
            )
        print("Chats:")
        for chat in data["chats"]:
            print(f"  {chat['kind']:<11} {chat['topic'] or '-':<24} {chat['id']}")
    print("\nCtrl-C to stop.", flush=True)
    await _wait_for_signal()
    await sim.stop()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_teams", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    parser.add_argument("--demo", action="store_true", help="create demo users, chats and messages")
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="a FakeTeams option, e.g. redelivery_timeout=1",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (url, endpoints, demo data) instead of text",
    )
    args = parser.parse_args()
    try:
        SimOptions.from_kwargs(dict(args.options))
    except TypeError as err:
        parser.error(str(err))
    asyncio.run(_run(args.port, args.demo, dict(args.options), args.json))


if __name__ == "__main__":
    main()
