"""Secrets never reach the logs, even with every logger at DEBUG."""

from __future__ import annotations

import logging
import uuid

import aiohttp
import pytest

from teams_bridge.teams import AccountKind, AuthClient, TrouterState

from .conftest import Sim, logged_in_client
from .fakes import FAST_RETRY
from .recorder import Recorder


async def test_a_full_session_logs_no_token(
    http_session: aiohttp.ClientSession, sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ada = await sim.control.create_user("Ada")
    bob = await sim.control.create_user("Bob")
    declined = await AuthClient(http_session, sim.endpoints, policy=FAST_RETRY).start_device_code(
        AccountKind.ENTERPRISE
    )
    await sim.control.decline_device_code(declined.user_code)
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
    rec = Recorder()
    client.start_trouter(rec.on_event, rec.on_state, rec.on_resync)
    try:
        await rec.wait(lambda: any(s is TrouterState.CONNECTED for s, _ in rec.states))
        await sim.control.wait_for_registration(ada["mri"])
        await sim.control.post_message(group["id"], bob["mri"], "<p>x</p>")
        await client.send_message(
            group["id"],
            "<p>y</p>",
            client_message_id=str(uuid.uuid4().int)[:18],
            display_name="Ada",
        )
        await rec.wait(lambda: len(rec.message_events(group["id"])) >= 2)
        await sim.control.expire_skype_token(ada["mri"])
        await client.get_thread(group["id"])
        await sim.control.disconnect(ada["mri"])
        await rec.wait(lambda: sum(1 for s, _ in rec.states if s is TrouterState.CONNECTED) >= 2)
    finally:
        await client.stop()
    secrets = [v for values in (await sim.control.tokens()).values() for v in values]
    secrets.append(declined.device_code)
    assert secrets
    text = caplog.text
    leaked = [s[:6] + "…" for s in secrets if s and s in text]
    assert not leaked
    assert "teams." in text  # the capture did see our loggers
