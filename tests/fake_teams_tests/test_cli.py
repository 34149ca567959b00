"""`python -m tests.fake_teams` starts, reports its endpoints and serves the control API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.fake_teams import ControlClient

ROOT = Path(__file__).resolve().parents[2]


async def test_standalone_json_demo():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fake_teams",
        "--json",
        "--demo",
        "--set",
        "gzip_bodies=never",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        data = json.loads(line)
        assert set(data["endpoints"]) == {
            "login",
            "authz_enterprise",
            "authz_consumer",
            "trouter_enterprise",
            "trouter_consumer",
            "registrar_enterprise",
            "registrar_consumer",
        }
        assert {u["kind"] for u in data["users"]} == {"work", "personal"}
        async with ControlClient(data["url"]) as control:
            chats = await control.list_chats()
            assert {c["kind"] for c in chats} == {"one_to_one", "group", "channel"}
            assert any(c["topic"] for c in chats) and any(
                c["kind"] == "group" and not c["topic"] for c in chats
            )
            assert all(c["message_count"] > 0 for c in chats)
    finally:
        proc.terminate()
        await proc.wait()
