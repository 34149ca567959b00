"""A restart while the homeserver holds events for the bridge.

When a transaction cannot be delivered, Synapse marks the appservice down and retries on a
timer. The bridge's start-up ping tells it to retry at once; a second ping while that
recovery runs fails on Synapse's side (HTTP 502), and mautrix's own connection check would
then wait 4 s before trying again. So the bridge pings once per start, and the events held
for it arrive.
"""

from __future__ import annotations

from tests.e2e.helpers import login_through_bot, wait_for

PING_LINE = "Received ping from homeserver"


def _text_after(path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


async def test_restart_while_homeserver_retries_pings_once(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Held")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Held")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)

    await bridge.astop()
    homeserver_offset = synapse.log_path.stat().st_size
    await matrix_user.send_text(room, "sent while the bridge was down")

    # Synapse could not deliver it and has put the appservice in recovery.
    async def in_recovery() -> bool:
        return f"Scheduling retries on {reg.id}" in _text_after(synapse.log_path, homeserver_offset)

    await wait_for(in_recovery)

    bridge_offset = bridge.log_path.stat().st_size
    await bridge.astart()

    async def delivered() -> bool:
        return any(
            "sent while the bridge was down" in m.get("content", "")
            for m in await control.list_messages(chat["id"])
        )

    await wait_for(delivered)
    text = _text_after(bridge.log_path, bridge_offset)
    assert text.count(PING_LINE) == 1, text
    assert "failed with HTTP 502" not in text
