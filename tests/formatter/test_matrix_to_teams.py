"""Matrix -> Teams: the exact output for each construct Matrix clients send."""

from __future__ import annotations

import json
import re

import pytest

from teams_bridge.formatter import (
    RoomMention,
    TeamsContent,
    build_reply_quote,
    matrix_to_teams,
    teams_to_matrix,
)

ADA_MRI = "8:orgid:11111111-1111-1111-1111-111111111111"
TEAMS_USERS = {"@teams_ada:example.org": (ADA_MRI, "Ada Lovelace")}
MENTION = "http://schema.skype.com/Mention"


def resolve(user_id: str) -> tuple[str, str] | None:
    return TEAMS_USERS.get(user_id)


def convert(formatted: str, body: str = "fallback", **kwargs: object) -> TeamsContent:
    return matrix_to_teams(body, formatted, resolve_user=resolve, **kwargs)  # type: ignore[arg-type]


def test_plain_body_is_escaped_with_line_breaks() -> None:
    content = matrix_to_teams("a < b & c\nnext line\n\nafter a gap")
    assert content == TeamsContent(
        html="<p>a &lt; b &amp; c<br>next line<br><br>after a gap</p>", mentions=[]
    )


def test_plain_body_keeps_indentation() -> None:
    assert matrix_to_teams("  two  spaces").html == "<p>&nbsp;&nbsp;two&nbsp; spaces</p>"


def test_empty_message() -> None:
    assert matrix_to_teams("", None) == TeamsContent(html="", mentions=[])


@pytest.mark.parametrize(
    ("formatted", "html"),
    [
        ("<b>bold</b> <strong>strong</strong>", "<p><b>bold</b> <strong>strong</strong></p>"),
        ("<i>i</i> <em>em</em> <u>u</u>", "<p><i>i</i> <em>em</em> <u>u</u></p>"),
        ("<del>a</del><s>b</s><strike>c</strike>", "<p><s>a</s><s>b</s><s>c</s></p>"),
        ("use <code>x &lt; y</code>", "<p>use <code>x &lt; y</code></p>"),
        ("<p>one</p><p>two</p>", "<p>one</p><p>two</p>"),
        ("line<br>next", "<p>line<br>next</p>"),
        ("<h2>Head</h2>text", "<h2>Head</h2><p>text</p>"),
        ("<blockquote><p>q</p></blockquote><p>a</p>", "<blockquote><p>q</p></blockquote><p>a</p>"),
        (
            '<ul><li>a<ol start="4"><li>b</li></ol></li></ul>',
            "<ul><li>a<ol><li>b</li></ol></li></ul>",
        ),
        (
            '<a href="https://example.org/?a=1&amp;b=2" data-x="y">link</a>',
            '<p><a href="https://example.org/?a=1&amp;b=2">link</a></p>',
        ),
        ('<font color="#ff0000" data-mx-color="#ff0000">red</font>', "<p>red</p>"),
        ('<span data-mx-spoiler="">secret</span>', "<p>secret</p>"),
        ('<img src="mxc://example.org/abc" alt=":party:">', "<p>:party:</p>"),
        ("a<hr>b", "<p>a</p><hr><p>b</p>"),
    ],
)
def test_formatting(formatted: str, html: str) -> None:
    assert convert(formatted) == TeamsContent(html=html, mentions=[])


def test_reply_fallback_is_stripped() -> None:
    formatted = (
        '<mx-reply><blockquote><a href="https://matrix.to/#/!room:example.org/$event">In reply to</a> '
        '<a href="https://matrix.to/#/@bob:example.org">@bob</a><br>earlier</blockquote></mx-reply>'
        "answer"
    )
    assert convert(formatted).html == "<p>answer</p>"


def test_code_block_uses_teams_code_block_markup() -> None:
    content = convert(
        '<pre><code class="language-python">def f():\n    return "&lt;"\n</code></pre>'
    )
    match = re.fullmatch(
        r'<p itemtype="http://schema.skype.com/CodeBlockEditor" id="x_(codeBlockEditor-[0-9a-f-]{36})">&nbsp;</p>'
        r'<pre class="language-python" itemid="(codeBlockEditor-[0-9a-f-]{36})">'
        r"<code>def f\(\):<br>&nbsp;&nbsp;&nbsp;&nbsp;return \"&lt;\"</code></pre>",
        content.html,
    )
    assert match is not None, content.html
    assert match.group(1) == match.group(2)


def test_code_block_without_language_is_plaintext_and_ids_are_stable() -> None:
    first = convert("<pre><code>x</code></pre>").html
    assert 'class="language-plaintext"' in first
    assert convert("<pre><code>x</code></pre>").html == first


def test_code_block_round_trips_to_matrix() -> None:
    formatted = '<pre><code class="language-js">if (a) {\n  b();\n}</code></pre>'
    back = teams_to_matrix(convert(formatted).html)
    assert back.formatted_body == formatted
    assert back.body == "if (a) {\n  b();\n}"


def test_pill_to_teams_user_becomes_mention() -> None:
    content = convert(
        'Hi <a href="https://matrix.to/#/@teams_ada:example.org">Ada (Teams)</a>, '
        'and <a href="https://matrix.to/#/@alice:example.org">Alice</a>'
    )
    assert content == TeamsContent(
        html=(
            f'<p>Hi <span itemscope="" itemtype="{MENTION}" itemid="0">Ada Lovelace</span>, '
            "and Alice</p>"
        ),
        mentions=[
            {
                "@type": MENTION,
                "itemid": 0,
                "mri": ADA_MRI,
                "mentionType": "person",
                "displayName": "Ada Lovelace",
            }
        ],
    )


def test_each_pill_gets_its_own_itemid() -> None:
    pill = '<a href="https://matrix.to/#/%40teams_ada%3Aexample.org">Ada</a>'
    content = convert(f"{pill} {pill}")
    assert [m["itemid"] for m in content.mentions] == [0, 1]
    assert 'itemid="1">Ada Lovelace</span>' in content.html


def test_pill_left_out_of_m_mentions_does_not_notify() -> None:
    pill = '<a href="https://matrix.to/#/@teams_ada:example.org">Ada</a>'
    assert convert(pill, mentioned_user_ids=[]) == TeamsContent(html="<p>Ada</p>", mentions=[])
    assert len(convert(pill, mentioned_user_ids=["@teams_ada:example.org"]).mentions) == 1


def test_m_mentions_without_pill_adds_nothing() -> None:
    content = convert("hello", mentioned_user_ids=["@teams_ada:example.org"])
    assert content == TeamsContent(html="<p>hello</p>", mentions=[])


def test_mention_roundtrip_through_teams() -> None:
    content = convert('Hi <a href="https://matrix.to/#/@teams_ada:example.org">Ada</a>')
    back = teams_to_matrix(
        content.html,
        mentions_property=content.mentions,
        resolve_mention=lambda mri: (
            ("@teams_ada:example.org", "Ada Lovelace") if mri == ADA_MRI else None
        ),
    )
    assert back.body == "Hi Ada Lovelace"
    assert back.mentioned_user_ids == ["@teams_ada:example.org"]


def test_formatted_body_without_visible_text_falls_back_to_body() -> None:
    assert convert('<img src="mxc://example.org/x">', body="photo.png").html == "<p>photo.png</p>"


def test_build_reply_quote() -> None:
    quote = build_reply_quote("1715842456893", ADA_MRI, "Ada <L>", "  first\n line &  " + "x" * 300)
    assert quote == (
        '<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" itemid="1715842456893">'
        f'<strong itemprop="mri" itemid="{ADA_MRI}">Ada &lt;L&gt;</strong>'
        '<span itemprop="time" itemid="1715842456893"></span>'
        f'<p itemprop="preview">first line &amp; {"x" * 187}\u2026</p></blockquote>'
    )


def test_reply_quote_round_trip() -> None:
    html = build_reply_quote("42", ADA_MRI, "Ada", "earlier") + convert("<b>now</b>").html
    back = teams_to_matrix(html)
    assert back.reply_to_message_id == "42"
    assert back.body == "now"
    assert back.formatted_body == "<p><strong>now</strong></p>"


ROOM = RoomMention("19:chan@thread.tacv2", "channel", "Design Crew")


def _room_entry(item_id: int) -> dict:
    return {
        "@type": MENTION,
        "itemid": item_id,
        "mri": "19:chan@thread.tacv2",
        "mentionType": "channel",
        "displayName": "Design Crew",
    }


def test_at_room_becomes_the_conversation_mention() -> None:
    content = convert(
        '<b>@room</b>: ask <a href="https://matrix.to/#/@teams_ada:example.org">Ada</a>, '
        "not <code>@room</code> or me@room.org",
        room_mention=ROOM,
    )
    assert content.html == (
        f'<p><b><span itemscope="" itemtype="{MENTION}" itemid="0">Design Crew</span></b>: ask '
        f'<span itemscope="" itemtype="{MENTION}" itemid="1">Ada Lovelace</span>, not '
        "<code>@room</code> or me@room.org</p>"
    )
    assert content.mentions[0] == _room_entry(0)
    assert content.mentions[1]["mentionType"] == "person"


def test_room_mention_without_at_room_goes_first() -> None:
    assert matrix_to_teams("lunch?\nnow", room_mention=ROOM) == TeamsContent(
        html=f'<p><span itemscope="" itemtype="{MENTION}" itemid="0">Design Crew</span> '
        "lunch?<br>now</p>",
        mentions=[_room_entry(0)],
    )


def test_at_room_is_text_unless_the_caller_asks_for_the_mention() -> None:
    assert matrix_to_teams("@room hi") == TeamsContent(html="<p>@room hi</p>", mentions=[])


def test_room_mention_round_trips_to_at_room() -> None:
    content = matrix_to_teams("@room lunch", room_mention=ROOM)
    message = teams_to_matrix(
        content.html,
        mentions_property=json.dumps(content.mentions),
        is_room_mention=lambda mri, kind: mri == ROOM.mri and kind == "channel",
    )
    assert message.body == "@room lunch" and message.mentions_room
