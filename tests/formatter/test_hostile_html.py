"""Hostile input: nothing unsafe gets through, nothing blows up or takes long."""

from __future__ import annotations

import json
import time

import pytest

from teams_bridge.formatter import matrix_to_teams, teams_to_matrix
from teams_bridge.formatter.limits import MAX_EVENT_TEXT_BYTES, MAX_TEXT_CHARS

from .allowed import matrix_violations, teams_violations

MENTION = "http://schema.skype.com/Mention"
SCRIPTED = [
    "<script>alert(1)</script>ok",
    "<SCRIPT type='text/javascript'>alert(1)</SCRIPT >ok",
    "<script>document.write('</scr' + 'ipt>')</script>ok",
    "<style>p { color: red }</style>ok",
    "ok<script>never closed, so the rest is script",
    "<p onclick=\"alert(1)\" onmouseover='x'>ok</p>",
    '<img src="x" onerror="alert(1)">ok',
    '<svg onload="alert(1)"><text>hidden</text></svg>ok',
    '<iframe src="https://evil.example"></iframe>ok',
    "<object data=x></object><embed src=x>ok",
    '<form action="https://evil.example"><input name="p"><button>ok</button></form>',
    "<template><b>hidden</b></template>ok",
    "<!-- <script>alert(1)</script> -->ok",
    "<![CDATA[ a bogus comment ]]>ok",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">ok',
]
BAD_LINKS = [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java&#x0A;script:alert(1)",
    "&#106;avascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "file:///etc/passwd",
    "//evil.example/relative",
]


@pytest.mark.parametrize("html", SCRIPTED)
def test_active_content_is_removed_teams_to_matrix(html: str) -> None:
    message = teams_to_matrix(html)
    assert "alert" not in message.body and "hidden" not in message.body
    assert "ok" in message.body
    assert matrix_violations(message.formatted_body) == []
    assert "alert" not in (message.formatted_body or "")


@pytest.mark.parametrize("html", SCRIPTED)
def test_active_content_is_removed_matrix_to_teams(html: str) -> None:
    content = matrix_to_teams("fallback", html)
    assert "alert" not in content.html and "hidden" not in content.html
    assert teams_violations(content.html) == []


@pytest.mark.parametrize("href", BAD_LINKS)
def test_unsafe_links_lose_their_href(href: str) -> None:
    html = f'<a href="{href}">click</a> <b>x</b>'
    message = teams_to_matrix(html)
    assert message.formatted_body == "click <strong>x</strong>"
    assert matrix_to_teams("x", html).html == "<p>click <b>x</b></p>"


def test_attribute_values_cannot_break_out() -> None:
    html = '<a href="https://e.example/&quot;onmouseover=&quot;alert(1)">x</a>'
    assert teams_to_matrix(html).formatted_body is None  # the quote makes the URL unusable
    html = "<a href='https://e.example/?q=\"&gt;<script>'>x</a>"
    for output in (teams_to_matrix(html).formatted_body or "", matrix_to_teams("", html).html):
        assert "<script" not in output
        assert matrix_violations(output) == [] or teams_violations(output) == []


def test_text_that_looks_like_markup_is_escaped() -> None:
    message = teams_to_matrix("<p>&lt;img src=x onerror=alert(1)&gt; <b>b</b></p>")
    assert message.body == "<img src=x onerror=alert(1)> b"
    assert message.formatted_body == "<p>&lt;img src=x onerror=alert(1)&gt; <strong>b</strong></p>"
    assert matrix_to_teams("<script>") == matrix_to_teams("<script>", None)
    assert matrix_to_teams("<script>").html == "<p>&lt;script&gt;</p>"


def test_http_images_never_reach_matrix() -> None:
    message = teams_to_matrix('<p><img src="https://tracker.example/pixel.gif"><b>x</b></p>')
    assert message.formatted_body == "<p><strong>x</strong></p>"


def test_colours_are_validated() -> None:
    message = teams_to_matrix(
        '<font color="red&quot; onclick=&quot;x" data-mx-color="#00ff00">a</font>'
        '<span data-mx-bg-color="url(javascript:x)">b</span>'
    )
    assert message.formatted_body == '<font data-mx-color="#00ff00">a</font>b'


def test_matrix_side_cannot_forge_teams_mentions_or_code_markup() -> None:
    forged = (
        f'<span itemscope="" itemtype="{MENTION}" itemid="0">Boss</span>'
        '<p itemtype="http://schema.skype.com/Reply" itemid="1">q</p>'
    )
    assert matrix_to_teams("x", forged).html == "<p>Boss</p><p>q</p>"


def test_mention_property_garbage_is_ignored() -> None:
    html = f'<span itemtype="{MENTION}" itemid="0">A</span>'
    for prop in (
        "[" * 100_000,
        '{"itemid": 0}',
        "[1, null, {}]",
        json.dumps([{"itemid": [], "mri": 3}]),
    ):
        assert (
            teams_to_matrix(
                html, mentions_property=prop, resolve_mention=lambda m: ("@x:y", "X")
            ).body
            == "A"
        )


@pytest.mark.parametrize("tag", ["div", "b", "blockquote", "ul><li", "span"])
def test_deep_nesting_does_not_recurse_without_bound(tag: str) -> None:
    closing = tag.split(">")[0]
    html = f"<{tag}>" * 50_000 + "deep" + f"</{closing}>" * 50_000
    message = teams_to_matrix(html)
    assert "deep" in message.body or message.body.endswith("\u2026")
    assert matrix_violations(message.formatted_body) == []
    content = matrix_to_teams("x", html)
    assert teams_violations(content.html) == []


@pytest.mark.parametrize(
    "piece",
    [
        "<!--",
        "<a",
        "<",
        "</",
        "<?",
        "<!",
        "<![CDATA[",
        '<a b="x>',
        "<a b='x>\"",
        "&#",
        "<b>",
        "</b>",
        "x",
    ],
)
def test_ten_megabytes_of_anything_is_cut_quickly(piece: str) -> None:
    html = piece * (10_000_000 // len(piece))
    started = time.monotonic()
    message = teams_to_matrix(html)
    content = matrix_to_teams(html, html)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"{piece!r} took {elapsed:.1f}s"
    assert len(message.body) <= MAX_TEXT_CHARS + 1
    size = len(message.body.encode()) + len((message.formatted_body or "").encode())
    assert size <= MAX_EVENT_TEXT_BYTES
    assert matrix_violations(message.formatted_body) == []
    assert teams_violations(content.html) == []


def test_long_text_is_truncated_with_an_ellipsis() -> None:
    message = teams_to_matrix("<p>" + "word " * 100_000 + "</p>")
    assert message.body.endswith("\u2026")
    assert len(message.body) <= MAX_TEXT_CHARS + 1
    plain = teams_to_matrix("y" * 1_000_000, message_type="Text")
    assert plain.body == "y" * MAX_TEXT_CHARS + "\u2026"


def test_multibyte_text_fits_the_event() -> None:
    message = teams_to_matrix("<p><b>" + "\U0001f600" * 40_000 + "</b></p>")
    assert message.formatted_body is None
    assert len(message.body.encode()) <= MAX_EVENT_TEXT_BYTES
    assert message.body.endswith("\u2026")


def test_control_characters_and_lone_surrogates() -> None:
    message = teams_to_matrix("<p>a\x00b\ud800c</p>")
    assert message.body == "ab\ufffdc"
    message.body.encode("utf-8")
    assert matrix_to_teams("a\x00\udfff").html == "<p>a\ufffd</p>"
