"""Content with fields of the wrong type is named before any conversion is tried, so it
fails alone and at once; content clients send passes."""

from __future__ import annotations

from typing import Any

import pytest

from teams_bridge.delivery.content_check import content_problem


def _event(**fields: Any) -> dict[str, Any]:
    event = {
        "type": "m.room.message",
        "room_id": "!room:localhost",
        "sender": "@ada:localhost",
        "event_id": "$event",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "hello"},
    }
    for key, value in fields.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return event


@pytest.mark.parametrize(
    "raw, expected",
    [
        (_event(type="m.sticker", content={"msgtype": ["m.text"], "body": "x"}), "'msgtype'"),
        (_event(content={"msgtype": {"a": 1}, "body": "x"}), "'msgtype'"),
        (_event(content={"msgtype": "m.text", "body": 5}), "'body'"),
        (_event(content={"msgtype": "m.text", "body": ["x"]}), "'body'"),
        (_event(content={"msgtype": "m.text", "body": "x", "format": 1}), "'format'"),
        (
            _event(content={"msgtype": "m.text", "body": "x", "formatted_body": {}}),
            "'formatted_body'",
        ),
        (_event(content={"msgtype": "m.text", "body": "x", "m.relates_to": "x"}), "'m.relates_to'"),
        (
            _event(content={"body": "x", "m.relates_to": {"rel_type": ["m.replace"]}}),
            "'m.relates_to.rel_type'",
        ),
        (
            _event(content={"body": "x", "m.relates_to": {"m.in_reply_to": {"event_id": 1}}}),
            "'m.relates_to.m.in_reply_to.event_id'",
        ),
        (_event(content={"body": "x", "m.mentions": []}), "'m.mentions'"),
        (
            _event(content={"body": "x", "m.mentions": {"user_ids": "@a:b"}}),
            "'m.mentions.user_ids'",
        ),
        (_event(content={"body": "x", "m.mentions": {"user_ids": [1]}}), "'m.mentions.user_ids'"),
        (_event(content={"body": "x", "m.new_content": "x"}), "'m.new_content'"),
        (
            _event(content={"body": "x", "m.new_content": {"msgtype": "m.text", "body": 1}}),
            "'m.new_content.body'",
        ),
        (_event(type="m.reaction", content={"m.relates_to": {"key": 1}}), "'m.relates_to.key'"),
        (_event(type="m.room.redaction", redacts=1, content={}), "'redacts'"),
        (_event(type="m.room.redaction", content={"redacts": {}}), "'redacts'"),
        (_event(content="x"), "content"),
        ("x", "not an object"),
    ],
)
def test_content_of_the_wrong_type_is_named(raw, expected):
    problem = content_problem(raw)
    assert problem and expected in problem


def test_content_clients_send_passes():
    for content in (
        {
            "msgtype": "m.text",
            "body": "hi",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>hi</b>",
        },
        {
            "msgtype": "m.emote",
            "body": "waves",
            "m.mentions": {"user_ids": ["@a:b"], "room": False},
        },
        {"msgtype": "m.image", "body": "a.png", "url": "mxc://a/b", "info": {"w": 1}},
        {"msgtype": "m.file", "body": "f", "file": {"url": "mxc://a/b"}, "filename": "f.txt"},
        {
            "msgtype": "m.text",
            "body": "* new",
            "m.new_content": {"msgtype": "m.text", "body": "new"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"},
        },
        {
            "msgtype": "m.text",
            "body": "reply",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$a"}, "is_falling_back": True},
        },
        {"msgtype": "m.text", "body": "x", "formatted_body": None},
    ):
        assert content_problem(_event(content=content)) is None, content
    assert (
        content_problem(_event(type="m.sticker", content={"body": "s", "url": "mxc://a/b"})) is None
    )
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$a", "key": "👍"}}
    assert content_problem(_event(type="m.reaction", content=reaction)) is None
    assert content_problem(_event(type="m.room.redaction", redacts="$a", content={})) is None
