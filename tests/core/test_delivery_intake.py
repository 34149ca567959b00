"""The one rule for which Matrix events are stored for Teams (at the appservice endpoint,
and when the timeline is checked after a disruption)."""

from __future__ import annotations

import json

import pytest

from teams_bridge.db.matrix_event import PENDING
from teams_bridge.delivery.intake import (
    DOUBLE_PUPPET_SOURCE_KEY,
    Intake,
    is_for_teams,
    needs_no_handling,
    queue_row,
    skip_reason,
)
from tests.core.test_matrix_input import MALFORMED, _event

BOT = "@teamsbot:localhost"
RULE = Intake(
    bot_mxid=BOT,
    is_ghost=lambda user_id: user_id.startswith("@teams_"),
    command_prefix="!teams",
    bridge_name="teams-bridge",
)


TAKEN = {
    "text": _event(),
    "notice": _event(content={"msgtype": "m.notice", "body": "n"}),
    "image": _event(content={"msgtype": "m.image", "body": "a.png", "url": "mxc://x/y"}),
    "sticker": _event(type="m.sticker", content={"body": "s", "url": "mxc://x/y"}),
    "reaction": _event(
        type="m.reaction",
        content={"m.relates_to": {"rel_type": "m.annotation", "event_id": "$a", "key": "👍"}},
    ),
    "redaction": _event(type="m.room.redaction", redacts="$a", content={}),
    "edit": _event(
        content={
            "msgtype": "m.text",
            "body": "* fixed",
            "m.new_content": {"msgtype": "m.text", "body": "fixed"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"},
        }
    ),
    # Encrypted: stored as it came, decrypted by the worker.
    "encrypted": _event(
        type="m.room.encrypted",
        content={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "session_id": "s"},
    ),
    # Wrong field types are taken: the delivery fails and tells the sender.
    "body is a number": _event(content={"msgtype": "m.text", "body": 5}),
    "msgtype is a list": _event(type="m.sticker", content={"msgtype": ["m.text"]}),
    # Another bridge's double puppet is a real user's message here.
    "another bridge's puppet": _event(
        content={"msgtype": "m.text", "body": "hi", DOUBLE_PUPPET_SOURCE_KEY: "other-bridge"}
    ),
    # The prefix counts only at the start.
    "mentions the prefix": _event(content={"msgtype": "m.text", "body": "try !teams help"}),
}

LEFT_OUT = {
    "bot": (_event(sender=BOT), "sent by the bridge"),
    "ghost": (_event(sender="@teams_8-orgid-bob:localhost"), "sent by the bridge"),
    "double puppet": (
        _event(
            content={"msgtype": "m.text", "body": "hi", DOUBLE_PUPPET_SOURCE_KEY: "teams-bridge"}
        ),
        "double puppeting",
    ),
    "double-puppeted reaction": (
        _event(
            type="m.reaction",
            content={
                "m.relates_to": {"rel_type": "m.annotation", "event_id": "$a", "key": "👍"},
                DOUBLE_PUPPET_SOURCE_KEY: "teams-bridge",
            },
        ),
        "double puppeting",
    ),
    "double-puppeted redaction": (
        _event(
            type="m.room.redaction",
            redacts="$a",
            content={DOUBLE_PUPPET_SOURCE_KEY: "teams-bridge"},
        ),
        "double puppeting",
    ),
    "double-puppeted encrypted": (
        _event(
            type="m.room.encrypted",
            content={
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "AwgA",
                "session_id": "s",
                DOUBLE_PUPPET_SOURCE_KEY: "teams-bridge",
            },
        ),
        "double puppeting",
    ),
    "encrypted from a ghost": (
        _event(type="m.room.encrypted", sender="@teams_x:localhost", content={}),
        "sent by the bridge",
    ),
    "command": (_event(content={"msgtype": "m.text", "body": "!teams help"}), "command"),
    "state event": (
        _event(type="m.room.name", state_key="", content={"name": "x"}),
        "not bridged",
    ),
    "message type as state": (
        _event(state_key="", content={"msgtype": "m.text", "body": "x"}),
        "a state event",
    ),
    "membership": (
        _event(type="m.room.member", state_key="@ada:localhost", content={"membership": "join"}),
        "not bridged",
    ),
    "call": (_event(type="m.call.invite", content={}), "not bridged"),
    "send status": (_event(type="com.beeper.message_send_status", content={}), "not bridged"),
}


@pytest.mark.parametrize("name", list(TAKEN))
def test_what_is_taken(name):
    assert skip_reason(TAKEN[name], RULE) is None
    assert is_for_teams(TAKEN[name], RULE)


@pytest.mark.parametrize("name", list(LEFT_OUT))
def test_what_is_left_out_and_why(name):
    raw, why = LEFT_OUT[name]
    reason = skip_reason(raw, RULE)
    assert reason is not None and why in reason
    assert not is_for_teams(raw, RULE)


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_events_are_left_out_without_raising(raw):
    reason = skip_reason(raw, RULE)
    assert reason is not None and reason.startswith("malformed event")


def test_the_stored_form_keeps_the_whole_event():
    raw = TAKEN["reaction"]
    row = queue_row(raw, seq=1_700_000, txn_seq=17, now=1234)
    assert (row.event_id, row.room_id, row.sender) == (
        "$event",
        "!room:localhost",
        "@ada:localhost",
    )
    assert (row.seq, row.txn_seq, row.received_at) == (1_700_000, 17, 1234)
    assert (row.event_type, row.status, row.attempts) == ("m.reaction", PENDING, 0)
    assert row.client_message_id is None and row.error is None
    assert json.loads(row.content) == raw


def test_what_mautrix_need_not_read():
    ghost = "@teams_8-orgid-ada:localhost"
    # The bridge's own events, other than state, whether queued or not.
    for sender in (BOT, ghost):
        for raw in (_event(sender=sender), _event(sender=sender, type="m.reaction")):
            assert needs_no_handling(raw, RULE, queued=False)
        member = _event(
            sender=sender, type="m.room.member", state_key=sender, content={"membership": "join"}
        )
        assert not needs_no_handling(member, RULE, queued=False)
    # A user's message in the clear, queued for a worker.
    assert needs_no_handling(TAKEN["text"], RULE, queued=True)
    assert needs_no_handling(TAKEN["reaction"], RULE, queued=True)
    assert needs_no_handling(TAKEN["redaction"], RULE, queued=True)
    # Not queued (no portal, or not for Teams): mautrix decides.
    assert not needs_no_handling(TAKEN["text"], RULE, queued=False)
    # Encrypted: a command may be inside.
    assert not needs_no_handling(TAKEN["encrypted"], RULE, queued=True)
    # The prefix anywhere (a reply quoting a command, say): mautrix reads it.
    assert not needs_no_handling(TAKEN["mentions the prefix"], RULE, queued=True)
