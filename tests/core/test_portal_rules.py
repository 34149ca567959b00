"""The portal's decisions, each on its own (teams_bridge/portal/rules.py)."""

from __future__ import annotations

import pytest

from teams_bridge.portal.rules import (
    REACTION_GRACE_MS,
    Edit,
    Incoming,
    Member,
    TeamsEvent,
    channel_room_name,
    edit_action,
    incoming_action,
    reaction_diff,
    room_name,
    teams_event_kind,
    thread_relation,
)
from teams_bridge.portal.updates import edit_fallback_html

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


@pytest.mark.parametrize(
    ("stored", "edit_ms", "is_edited", "from_matrix", "expected"),
    [
        # The same content: a reaction-only update, a redelivery or our own edit's echo.
        (("d1", 100), 200, True, False, Edit.UNCHANGED),
        (("d1", None), None, False, True, Edit.UNCHANGED),
        # An older version than the one bridged.
        (("d0", 300), 200, True, False, Edit.OLDER),
        # Newer, or times unknown on either side: bridged.
        (("d0", 100), 200, True, False, Edit.REPLACE),
        (("d0", None), 200, True, False, Edit.REPLACE),
        (("d0", 300), None, False, False, Edit.REPLACE),
        (("d0", 200), 200, True, False, Edit.REPLACE),
        # Sent from Matrix: told in a notice, as only its sender could replace it.
        (("d0", 100), 200, True, True, Edit.NOTICE),
        # Nothing stored to compare against: only what Teams calls edited.
        (None, 200, False, False, Edit.NOT_EDITED),
        (None, 200, True, False, Edit.REPLACE),
        (None, 200, True, True, Edit.NOTICE),
    ],
)
def test_what_to_do_with_an_update_of_a_message(stored, edit_ms, is_edited, from_matrix, expected):
    action = edit_action(
        stored=stored, digest="d1", edit_ms=edit_ms, is_edited=is_edited, from_matrix=from_matrix
    )
    assert action is expected


A, B, C = ("8:orgid:a", "like"), ("8:orgid:b", "heart"), ("8:orgid:c", "laugh")


def diff(stored, current, update_ms=10_000, removed=None):
    d = reaction_diff(stored=stored, current=current, update_ms=update_ms, removed=removed or {})
    return d.redact, d.send


def test_reactions_follow_the_update():
    # A gone, B kept, C new.
    assert diff({A: None, B: None}, {B: 1, C: 2}) == ([A], [C])
    assert diff({}, {}) == ([], [])
    assert diff({A: None}, {A: 1}) == ([], [])


def test_a_reaction_just_sent_from_matrix_survives_an_update_that_may_predate_it():
    update = 10_000
    within = update - REACTION_GRACE_MS
    assert diff({A: within}, {}, update) == ([], [])
    assert diff({A: update + 1}, {}, update) == ([], [])
    # Sent earlier than the grace allows: the update knows it is gone.
    assert diff({A: within - 1}, {}, update) == ([A], [])
    # From Teams (no send time): gone means gone.
    assert diff({A: None}, {}, update) == ([A], [])
    assert diff({A: 0}, {}, update) == ([A], [])


def test_a_reaction_removed_from_matrix_is_not_revived_by_a_stale_update():
    assert diff({}, {A: 500}, removed={A: 600}) == ([], [])
    assert diff({}, {A: 600}, removed={A: 600}) == ([], [])
    assert diff({}, {A: None}, removed={A: 600}) == ([], [])
    # Made again after it was removed: bridged.
    assert diff({}, {A: 700}, removed={A: 600}) == ([], [A])
    # Another reaction's removal does not matter.
    assert diff({}, {A: 500}, removed={B: 600}) == ([], [A])


@pytest.mark.parametrize(
    ("resource", "mtype", "has_message", "has_thread", "expected"),
    [
        ("NewMessage", "RichText/Html", True, False, TeamsEvent.MESSAGE),
        ("NewMessage", "Text", True, False, TeamsEvent.MESSAGE),
        ("NewMessage", "Event/Call", True, False, TeamsEvent.MESSAGE),
        ("NewMessage", "Control/Typing", True, False, TeamsEvent.TYPING),
        ("NewMessage", "Control/ClearTyping", True, False, TeamsEvent.TYPING),
        ("NewMessage", "Control/LiveState", True, False, None),
        ("NewMessage", "ThreadActivity/AddMember", True, False, TeamsEvent.ACTIVITY),
        ("NewMessage", None, False, False, None),
        ("MessageUpdate", "RichText/Html", True, False, TeamsEvent.UPDATE),
        ("MessageUpdate", None, False, False, None),
        ("ThreadUpdate", None, False, True, TeamsEvent.THREAD),
        ("ThreadUpdate", None, False, False, None),
        ("ConversationUpdate", None, False, False, None),
        ("UserPresence", None, False, False, None),
    ],
)
def test_which_handler_a_teams_event_goes_to(resource, mtype, has_message, has_thread, expected):
    kind = teams_event_kind(resource, mtype, has_message=has_message, has_thread=has_thread)
    assert kind is expected


def test_only_a_conversation_update_with_the_users_read_position_is_handled():
    kind = teams_event_kind(
        "ConversationUpdate", None, has_message=False, has_thread=False, has_own_horizon=True
    )
    assert kind is TeamsEvent.OWN_READ
    assert teams_event_kind("NewMessage", None, has_message=False, has_thread=False,
                            has_own_horizon=True) is None  # fmt: skip


def test_an_edit_fallback_marks_the_text_not_a_line_of_its_own():
    assert edit_fallback_html("<p>first <strong>edit</strong></p>") == (
        "<p>* first <strong>edit</strong></p>"
    )
    assert edit_fallback_html("<P>x</P><p>y</p>") == "<p>* x</P><p>y</p>"
    assert edit_fallback_html("plain <em>text</em>") == "* plain <em>text</em>"
    assert edit_fallback_html("<ul><li>a</li></ul>") == "* <ul><li>a</li></ul>"
