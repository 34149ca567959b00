"""socket.io 0.9 framing: parsing, serialising, and robustness against junk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teams_bridge.teams.socketio import (
    MAX_FRAME_ID,
    Frame,
    FrameError,
    FrameType,
    ack_frame,
    event_frame,
    message_frame,
    parse_ack,
    parse_frame,
    parse_json_data,
    serialise_frame,
)
from teams_bridge.teams.trouter import parse_frame as reexported_parse_frame


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1::", Frame(FrameType.CONNECT)),
        ("2::", Frame(FrameType.HEARTBEAT)),
        ("3:::{}", Frame(FrameType.MESSAGE, data="{}")),
        ('5:1+::{"name":"ping"}', Frame(FrameType.EVENT, 1, True, "", '{"name":"ping"}')),
        ('6:::1+["pong"]', Frame(FrameType.ACK, data='1+["pong"]')),
        ('0:::{"reason":"timeout"}', Frame(FrameType.DISCONNECT, data='{"reason":"timeout"}')),
        ("3:::a:b:c", Frame(FrameType.MESSAGE, data="a:b:c")),
        ("5:7::", Frame(FrameType.EVENT, 7, data="")),
        ("5:7:", Frame(FrameType.EVENT, 7)),
        ("8::", Frame(FrameType.NOOP)),
    ],
)
def test_parses_trouter_frames(text: str, expected: Frame) -> None:
    assert parse_frame(text) == expected
    assert serialise_frame(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1:",
        "9::",
        "x::",
        "12::",
        "5:a::{}",
        "5:+::{}",
        "5:-1::{}",
        "5:1++::{}",
        "5:" + "9" * 19 + "::",
    ],
)
def test_rejects_malformed_frames(text: str) -> None:
    with pytest.raises(FrameError):
        parse_frame(text)


def test_trouter_module_reexports_the_parser() -> None:
    assert reexported_parse_frame is parse_frame


def test_builders_produce_the_documented_wire_text() -> None:
    assert serialise_frame(event_frame("ping", frame_id=3)) == '5:3+::{"name":"ping"}'
    assert serialise_frame(event_frame("user.authenticate", [{}])) == (
        '5:::{"name":"user.authenticate","args":[{}]}'
    )
    assert serialise_frame(ack_frame(4, ["pong"])) == '6:::4+["pong"]'
    assert serialise_frame(ack_frame(4)) == "6:::4+[]"
    assert serialise_frame(message_frame({"id": 1, "status": 200})) == '3:::{"id":1,"status":200}'


def test_parses_ack_and_json_payloads() -> None:
    assert parse_ack(parse_frame('6:::12+["pong"]')) == (12, ["pong"])
    assert parse_ack(parse_frame("6:::12")) == (12, [])
    assert parse_json_data(parse_frame('5:::{"name":"x"}')) == {"name": "x"}
    with pytest.raises(FrameError):
        parse_json_data(parse_frame("5:::{nope"))
    with pytest.raises(FrameError):
        parse_ack(parse_frame("6:::x+[]"))
    with pytest.raises(FrameError):
        parse_ack(parse_frame("6:::1+[nope"))


def test_frame_invariants_are_enforced() -> None:
    with pytest.raises(FrameError):
        Frame(FrameType.EVENT, None, True)
    with pytest.raises(FrameError):
        Frame(FrameType.EVENT, endpoint="a:b")
    with pytest.raises(FrameError):
        Frame(FrameType.EVENT, -1)


@st.composite
def valid_frames(draw: st.DrawFn) -> Frame:
    frame_id = draw(st.none() | st.integers(min_value=0, max_value=MAX_FRAME_ID))
    return Frame(
        type=draw(st.sampled_from(list(FrameType))),
        id=frame_id,
        ack_data=draw(st.booleans()) if frame_id is not None else False,
        endpoint=draw(st.text().filter(lambda s: ":" not in s)),
        data=draw(st.none() | st.text()),
    )


@given(valid_frames())
def test_parse_inverts_serialise(frame: Frame) -> None:
    assert parse_frame(serialise_frame(frame)) == frame


@given(st.text())
def test_arbitrary_text_only_raises_frame_error(text: str) -> None:
    try:
        frame = parse_frame(text)
    except FrameError:
        return
    assert serialise_frame(frame) == text or frame.id is not None


@given(st.text(alphabet='0123456789:+{}[]"ab,', max_size=40))
def test_frame_like_text_only_raises_frame_error(text: str) -> None:
    try:
        frame = parse_frame(text)
    except FrameError:
        return
    if frame.type is FrameType.ACK:
        try:
            parse_ack(frame)
        except FrameError:
            pass
