"""Hostile and malformed input from Matrix never stops bridging: not a large transaction, not
a transaction holding a malformed event, not an event the bridge cannot convert. After each,
messages still cross both ways and none is lost.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import aiohttp
import pytest
from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, send_status_about, wait_for

# Synapse sends up to 100 events a transaction, each up to 64 KiB: 20 of 60 kB are 1.15 MiB.
LONG = 60_000


async def _setup(synapse, backend, bridge_factory, control, matrix_user, topic: str, **kwargs):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic=topic)
    bridge = bridge_factory(**kwargs)
    await bridge.astart()
    dm = await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == topic)
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    return reg, me, ada, chat, room, bridge, dm


async def _in_teams(control, chat_id: str, *texts: str, timeout: float = 60) -> None:
    """Wait until every one of `texts` is in some message of the Teams chat."""

    async def all_there():
        contents = [m.get("content", "") for m in await control.list_messages(chat_id)]
        return all(any(text in c for c in contents) for text in texts)

    await wait_for(all_there, timeout=timeout)


async def _both_ways(matrix_user, control, reg, room, chat, ada, tag: str) -> str:
    """A message each way; the Matrix one's event id."""
    event_id = await matrix_user.send_text(room, f"mx says {tag}")
    await _in_teams(control, chat["id"], f"mx says {tag}")
    await control.post_message(chat["id"], sender=ada["mri"], content=f"<p>teams says {tag}</p>")
    await matrix_user.wait_for_message(
        room, sender=puppet_mxid(reg, ada["mri"]), body=f"teams says {tag}", timeout=60
    )
    return event_id


async def _put_transaction(reg, events: list[Any]) -> int:
    """A transaction sent to the bridge as the homeserver would (with the hs_token)."""
    url = f"{reg.url}/_matrix/app/v1/transactions/forged-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {reg.hs_token}"}
    async with aiohttp.ClientSession() as session:
        async with session.put(url, json={"events": events}, headers=headers) as resp:
            return resp.status


def _event(room: str, sender: str, content: Any, event_type: str = "m.room.message") -> dict:
    return {
        "type": event_type,
        "room_id": room,
        "sender": sender,
        "event_id": f"$forged-{uuid.uuid4().hex}",
        "origin_server_ts": int(time.time() * 1000),
        "content": content,
        "unsigned": {"age": 1},
    }


def _text(room: str, sender: str, body: str) -> dict:
    return _event(room, sender, {"msgtype": "m.text", "body": body})


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
async def test_large_and_malformed_transactions_do_not_stop_bridging(
    backend, synapse, bridge_factory, control, matrix_user
):
    # A config from before the limit was raised (the config upgrade keeps its value).
    old_config = {"appservice.max_body_size": 1}
    reg, me, ada, chat, room, bridge, dm = await _setup(
        synapse, backend, bridge_factory, control, matrix_user, "Big", overrides=old_config
    )
    assert "max_body_size is 1 MiB" in bridge.log_text()
    user = matrix_user.user_id

    # A transaction of 20 long messages (1.15 MiB) is accepted and every message delivered.
    big = [_text(room, user, f"big{i:02d} " + "x" * LONG) for i in range(20)]
    assert await _put_transaction(reg, big) == 200
    await _in_teams(control, chat["id"], *(f"big{i:02d} " for i in range(20)))
    await _both_ways(matrix_user, control, reg, room, chat, ada, "after a big transaction")

    # The same through the homeserver: while the bridge is paused, long messages queue up in
    # the homeserver, which sends them in one transaction once the bridge answers again.
    assert bridge.proc is not None
    pid = bridge.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(24):
            await matrix_user.send_text(room, f"burst{i:02d} " + "y" * LONG)
    finally:
        os.kill(pid, signal.SIGCONT)
    await _in_teams(control, chat["id"], *(f"burst{i:02d} " for i in range(24)))
    await _both_ways(matrix_user, control, reg, room, chat, ada, "after a burst")

    # One transaction: malformed events of every shape around a valid message and a valid
    # command. The valid ones are handled; the transaction is not refused.
    bad_content = _event(room, user, "just a string")
    malformed: list[Any] = [
        bad_content,
        _event(room, user, ["a", "list"]),
        _event(room, user, None),
        {k: v for k, v in _text(room, user, "no type").items() if k != "type"},
        {k: v for k, v in _text(room, user, "no room").items() if k != "room_id"},
        {k: v for k, v in _text(room, user, "no id").items() if k != "event_id"},
        {k: v for k, v in _text(room, user, "no sender").items() if k != "sender"},
        {**_text(room, user, "numeric sender"), "sender": 42},
        {**_text(room, user, "list id"), "event_id": ["$x"]},
        {**_text(room, user, "object type"), "type": {"m.room.message": 1}},
        {**_text(room, user, "odd state key"), "state_key": 5},
        {**_text(room, user, "odd unsigned"), "unsigned": "yesterday"},
        {**_text(room, user, "long id"), "event_id": "$" + "x" * 5000},
        {**_text(room, user, "nul id"), "event_id": "$bad\x00id"},
        {**_text(room, user, "surrogate id"), "event_id": "$bad\ud800id"},
        _event(dm, user, 7, "m.room.member") | {"state_key": user},
        # Passes the endpoint's checks, but mautrix's reader raises on it.
        _event(dm, user, {"membership": "join"}, "m.room.member")
        | {"state_key": user, "unsigned": {"prev_content": 5}},
        "not an event",
        None,
        42,
    ]
    valid = _text(room, user, "valid among the malformed")
    ping = _text(dm, user, "ping")
    events = malformed[:9] + [valid] + malformed[9:] + [ping]
    assert await _put_transaction(reg, events) == 200
    await _in_teams(control, chat["id"], "valid among the malformed")
    await matrix_user.wait_for_notice(dm, contains="Real-time connection", timeout=60)
    assert bad_content["event_id"] in bridge.log_text()
    await _both_ways(matrix_user, control, reg, room, chat, ada, "after malformed events")

    # Nothing was lost or sent twice on the way.
    contents = [m.get("content", "") for m in await control.list_messages(chat["id"])]
    for prefix in [f"big{i:02d} " for i in range(20)] + [f"burst{i:02d} " for i in range(24)]:
        assert sum(prefix in c for c in contents) == 1, prefix
    assert bridge.proc is not None and bridge.proc.poll() is None


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_an_event_that_cannot_be_converted_fails_alone(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg, me, ada, chat, room, bridge, dm = await _setup(
        synapse, backend, bridge_factory, control, matrix_user, "Poison",
        overrides={"bridge.message_status_events": True},
    )  # fmt: skip
    # The homeserver takes a sticker whose msgtype is a list.
    poison = await matrix_user.client.send_message_event(
        room,
        EventType.find("m.sticker", EventType.Class.MESSAGE),
        {"msgtype": ["m.text"], "body": "poison", "url": "mxc://localhost/poison", "info": {}},
    )
    # It fails for good, with a status and a notice, and the room's queue moves on; what is
    # delivered gets a SUCCESS status.
    after = await _both_ways(matrix_user, control, reg, room, chat, ada, "after the bad sticker")
    evt = await matrix_user.wait_for_event(room, lambda e: send_status_about(e, poison))
    status = send_status_about(evt, poison)
    assert status["status"] == "FAIL_PERMANENT"
    assert "msgtype" in status["error"]
    await matrix_user.wait_for_notice(room, contains="could not be delivered")
    evt = await matrix_user.wait_for_event(room, lambda e: send_status_about(e, after))
    assert send_status_about(evt, after)["status"] == "SUCCESS"
    assert evt.sender == reg.bot_mxid

    # An encrypted message, while the bridge has no encryption: stored like any other, it
    # fails with that reason (one status, one notice) instead of vanishing.
    secret = await matrix_user.client.send_message_event(
        room,
        EventType.ROOM_ENCRYPTED,
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "session_id": "s1"},
    )
    evt = await matrix_user.wait_for_event(room, lambda e: send_status_about(e, secret))
    status = send_status_about(evt, secret)
    assert status["status"] == "FAIL_PERMANENT"
    assert "encryption is not enabled on this bridge" in status["error"]
    await matrix_user.wait_for_notice(room, contains="encryption is not enabled", after=after)

    # And after a restart too: the failure was stored, the event is not tried again.
    await bridge.astop()
    await bridge.astart()
    await control.wait_for_registration(me["mri"], timeout=60)
    await _both_ways(matrix_user, control, reg, room, chat, ada, "after a restart")
    contents = [m.get("content", "") for m in await control.list_messages(chat["id"])]
    assert not any("poison" in c for c in contents)
    statuses = [e for e in matrix_user.timeline[room] if send_status_about(e, poison)]
    assert len(statuses) == 1
    assert len([e for e in matrix_user.timeline[room] if send_status_about(e, secret)]) == 1
    bodies = [
        getattr(e.content, "body", "")
        for e in matrix_user.timeline[room]
        if e.type == EventType.ROOM_MESSAGE
    ]
    assert len([b for b in bodies if "encryption" in b]) == 1, bodies
