"""The portal's decisions, each on its own (teams_bridge/portal/rules.py)."""

from __future__ import annotations

import pytest

from teams_bridge.portal.rules import (
    Incoming,
    Member,
    channel_room_name,
    incoming_action,
    room_name,
    thread_relation,
)

ME = "8:orgid:me"


def name(kind="group", topic=None, team=None, members=(), private=True):
    return room_name(
        kind=kind,
        topic=topic,
        team=team,
        members=[Member(*m) for m in members],
        own_mri=ME,
        private_chat_meta=private,
    )


def test_a_channel_is_named_with_its_team():
    assert channel_room_name("Design", "Contoso") == "Design (Contoso)"
    assert channel_room_name("General", "General") == "General"
    assert channel_room_name(None, "Contoso") == "Contoso"
    assert name(kind="channel", topic="Design", team="Contoso") == "Design (Contoso)"


def test_a_chat_with_a_topic_is_named_by_it():
    assert name(topic="Engines", members=[("8:orgid:a", "Ada")]) == "Engines"


def test_a_one_to_one_room_is_named_after_the_other_person_only_when_configured():
    members = [(ME, "Me"), ("8:orgid:a", "Ada")]
    assert name(kind="one_to_one", members=members) == "Ada"
    assert name(kind="one_to_one", members=members, private=False) is None
    assert name(kind="one_to_one", members=[(ME, "Me")]) is None


def test_an_unnamed_group_is_named_after_its_other_members_sorted_and_capped():
    members = [(ME, "Me"), ("8:orgid:b", "Bob"), ("8:orgid:a", "Ada"), ("8:orgid:x", None)]
    assert name(members=members) == "8:orgid:x, Ada, Bob"
    many = [(f"8:orgid:{i}", f"P{i}") for i in range(8)]
    assert name(members=many) == "P0, P1, P2, P3, P4 and 3 others"
    assert name(members=[(ME, "Me")]) is None


def test_room_names_are_cleaned_and_fit():
    assert name(topic="a\u202egnp.exe\x00") == "agnp.exe"
    long = name(topic="x" * 1000)
    assert long is not None and len(long.encode()) <= 255


KEY = ("19:abc@thread.v2", "")


@pytest.mark.parametrize(
    ("bridged", "has_state", "sent_from", "expected"),
    [
        (True, True, None, Incoming.SEEN),
        (True, False, KEY, Incoming.NOTE_STATE),
        (False, False, KEY, Incoming.CLAIM_ECHO),
        # Sent from another bridge user's own room of the same 1:1 chat: new here.
        (False, False, ("19:abc@thread.v2", "8:orgid:other"), Incoming.BRIDGE),
        (False, False, None, Incoming.BRIDGE),
    ],
)
def test_what_to_do_with_an_incoming_message(bridged, has_state, sent_from, expected):
    action = incoming_action(
        bridged=bridged, has_state=has_state, sent_from=sent_from, portal_key=KEY
    )
    assert action is expected


def test_the_thread_a_matrix_message_belongs_to():
    thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    assert thread_relation(thread) == ("$root", True)
    fallback = {
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": "$root",
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": "$last"},
        }
    }
    assert thread_relation(fallback) == ("$root", True)
    reply = {"m.relates_to": {"m.in_reply_to": {"event_id": "$msg"}}}
    assert thread_relation(reply) == ("$msg", False)
    assert thread_relation({"body": "x"}) == (None, False)
    assert thread_relation({"m.relates_to": {"rel_type": "m.thread", "event_id": ""}}) == (
        None,
        False,
    )
    assert thread_relation({"m.relates_to": "garbage"}) == (None, False)
