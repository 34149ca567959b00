"""The local sandbox: a real Synapse, the Teams simulator with demo chats, and the bridge,
all on 127.0.0.1 and SQLite. Run it with `bash .ci/sandbox` (or `python -m tests.sandbox`
from the project venv), then use any Matrix client; play the Teams side with
`python -m tests.sandbox.act` (see README.md beside this file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from tests.e2e.bridge_process import BridgeProcess, build_config
from tests.fake_teams import FakeTeams
from tests.fake_teams.demo import populate
from tests.harness import SynapseServer, write_registration

ROOT = Path(__file__).resolve().parents[1]


async def run(state_dir: Path, password: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    registration = write_registration(state_dir / "appservice", "sandbox", prefix="teams")
    synapse = SynapseServer(state_dir / "synapse", [registration.path], server_name="localhost")
    synapse.start()
    sim = FakeTeams(device_code_interval=2)
    await sim.start(host="127.0.0.1", port=0)
    demo = populate(sim.world)
    user_id = synapse.mxid("alice")
    try:
        await synapse.register_user("alice", password)
    except Exception:
        pass  # kept from an earlier run of the sandbox
    config = build_config(
        registration=registration,
        homeserver_url=synapse.url,
        server_name=synapse.server_name,
        database=f"sqlite:{state_dir / 'bridge.db'}",
        endpoints=sim.endpoints(),
        log_file=state_dir / "bridge.log",
    )
    bridge = BridgeProcess(state_dir / "bridge", config)
    bridge.start()
    # Where `python -m tests.sandbox.act` finds the simulator.
    (state_dir / "sandbox.json").write_text(json.dumps({"simulator": sim.url}))

    lines = [
        "",
        "teams-bridge sandbox is running (Ctrl-C stops it).",
        "",
        f"  Matrix homeserver:  {synapse.url}   (server name: localhost)",
        f"  Matrix account:     {user_id}   password: {password}",
        f"  Bridge bot:         {registration.bot_mxid}",
        f"  Teams simulator:    {sim.url}   (control API under {sim.url}/_control/)",
        f"  Bridge log:         {state_dir / 'bridge.log'}",
        "",
        "Log in with a Matrix client, start a direct chat with the bridge bot and send `login`",
        "(or `login personal`). Open the address the bot gives, enter the code and pick a",
        "simulated Teams user. Demo Teams users:",
    ]
    lines += [f"  {u['display_name']:<18} {u['kind']:<9} {u['mri']}" for u in demo["users"]]
    lines += [
        "",
        "Demo chats and channels (history included; a team Contoso with a thread in Design):",
    ]
    lines += [f"  {c['topic'] or c['kind']:<24} {c['id']}" for c in demo["chats"]]
    lines += [
        "",
        "Play a Teams user from another terminal (tests/sandbox/README.md has them all):",
        "  .venv/bin/python -m tests.sandbox.act post Structured Edsger 'Hello from Teams'",
        "  .venv/bin/python -m tests.sandbox.act messages Structured",
        "  .venv/bin/python -m tests.sandbox.act reply Structured Ada <message id> 'Agreed'",
        "  .venv/bin/python -m tests.sandbox.act react Structured Ada <message id> heart",
        "  .venv/bin/python -m tests.sandbox.act image Design Ada picture.png 'A sketch'",
    ]
    print("\n".join(lines), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        (state_dir / "sandbox.json").unlink(missing_ok=True)
        bridge.stop()
        await sim.stop()
        synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".sandbox")
    parser.add_argument("--password", default="sandbox-password")
    args = parser.parse_args()
    asyncio.run(run(args.state_dir, args.password))


if __name__ == "__main__":
    main()
