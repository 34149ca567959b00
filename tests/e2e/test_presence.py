"""Presence: Teams availability of the people in the user's chats becomes their ghosts'
Matrix presence (the first read, then Teams' pushes), and `status` sets and shows the
user's own availability and note."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

STOP_TIMEOUT = 5


async def _presence(mx, user_id: str) -> dict:
    path = f"/_matrix/client/v3/presence/{quote(user_id)}/status"
    return await mx.client.api.request("GET", path)


async def _until_presence(mx, user_id: str, presence: str, status: str | None) -> dict:
    async def matches() -> dict | None:
        got = await _presence(mx, user_id)
        ok = got.get("presence") == presence and got.get("status_msg") == status
        return got if ok else None

    return await wait_for(matches)


@pytest.mark.parametrize("backend", ["pg", "lite"])
async def test_presence_both_ways(backend, synapse, bridge_factory, control, matrix_user):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    await control.create_chat(
        kind="group", members=[me["mri"], ada["mri"], bob["mri"]], topic="Engines"
    )
    # Before the bridge starts: the first read has to bring these.
    await control.set_presence(ada["mri"], "Busy", activity="InACall")
    await control.set_presence(bob["mri"], "Away")

    bridge = bridge_factory(overrides={"bridge.sync_presence": True})
    await bridge.astart()
    dm = await login_through_bot(mx, reg, control, me["mri"])
    # Presence is shown to those who share a room with the ghost.
    await mx.join(await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace"))
    await mx.join(await mx.wait_for_invite(lambda inv: inv.name == "Engines"))
    await mx.wait_for_notice(dm, contains="Your Teams chats are set up")
    ada_ghost = puppet_mxid(reg, ada["mri"])
    bob_ghost = puppet_mxid(reg, bob["mri"])

    await _until_presence(mx, ada_ghost, "online", "In a call")
    await _until_presence(mx, bob_ghost, "unavailable", None)

    # Changes in Teams arrive through the presence subscription's pushes.
    subs = (await control.presence_subscriptions())["subscriptions"]
    assert {ada["mri"], bob["mri"]} <= set(subs[0]["mris"])
    assert me["mri"] not in subs[0]["mris"]
    await control.clear_requests()
    await control.set_presence(ada["mri"], "Available")
    await _until_presence(mx, ada_ghost, "online", None)
    await control.set_presence(bob["mri"], "BeRightBack")
    await _until_presence(mx, bob_ghost, "unavailable", "Be right back")
    await control.set_presence(ada["mri"], "DoNotDisturb", note="Deadline")
    await _until_presence(mx, ada_ghost, "online", "Do not disturb — Deadline")
    await control.set_presence(bob["mri"], "Offline")
    await _until_presence(mx, bob_ghost, "offline", None)
    # Nothing was polled for it.
    assert await control.requests(path_contains="/getpresence") == []

    async def ask(command: str) -> str:
        sent = await mx.send_text(dm, command)
        return (await mx.wait_for_notice(dm, after=sent)).content.body

    # The own status: set, shown, note cleared, bad input.
    answer = await ask("status busy Writing the report")
    assert "Busy" in answer and "Writing the report" in answer
    mine = await control.get_presence(me["mri"])
    assert mine["availability"] == "Busy" and mine["forced"] == "Busy"
    assert mine["note"] == "Writing the report"
    shown = await ask("status")
    assert "**Busy**" in shown and "Note: Writing the report" in shown
    assert "cleared" in await ask("status clear-note")
    assert (await control.get_presence(me["mri"]))["note"] == ""
    assert "Be right back" in await ask("status BRB")
    assert (await control.get_presence(me["mri"]))["availability"] == "BeRightBack"
    assert "No note" in await ask("status")
    for bad in ("status sleeping", "status " + "x" * 50):
        answer = await ask(bad)
        assert "is not a status" in answer and "Usage" in answer
    assert "at most" in await ask("status away " + "y" * 300)
    assert (await control.get_presence(me["mri"]))["availability"] == "BeRightBack"
    assert "**status**" in await ask("help")
    await bridge.astop(timeout=STOP_TIMEOUT)
