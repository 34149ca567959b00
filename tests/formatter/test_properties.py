"""Property tests: any input converts without raising into allowed markup only, and simple
formatted Matrix messages keep their plain text through Teams and back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from teams_bridge.formatter import matrix_to_teams, teams_to_matrix

from .allowed import matrix_violations, teams_violations

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

ADA_ID, ADA_MRI, ADA_NAME = "@teams_ada:example.org", "8:orgid:ada", "Ada Lovelace"


def resolve_mention(mri: str) -> tuple[str, str] | None:
    return (ADA_ID, ADA_NAME) if mri == ADA_MRI else None


def resolve_user(user_id: str) -> tuple[str, str] | None:
    return (ADA_MRI, ADA_NAME) if user_id == ADA_ID else None


MENTIONS = json.dumps([{"itemid": 0, "mri": ADA_MRI}, {"itemid": 1, "mri": ADA_MRI}])

# --- arbitrary HTML -------------------------------------------------------------------

TAGS = (
    "p b i u s strong em del strike code pre a ul ol li blockquote h1 h3 div span font br hr "
    "img table tbody tr td th script style iframe svg readonly at mx-reply video x-custom "
    "quote legacyquote sup details summary section"
).split()
ATTRIBUTE_NAMES = (
    "href src onclick onerror style class itemtype itemid itemscope id title alt start color "
    "data-mx-color data-mx-bg-color data-mx-spoiler width rel"
).split()
ATTRIBUTE_VALUES = st.one_of(
    st.sampled_from(
        [
            "javascript:alert(1)",
            "java\tscript:alert(1)",
            "https://example.org/a?b=1&c=2",
            "mailto:a@example.org",
            "mxc://example.org/abc",
            "data:text/html,x",
            "http://schema.skype.com/Mention",
            "http://schema.skype.com/Reply",
            "http://schema.skype.com/Giphy",
            "http://schema.skype.com/Emoji",
            "http://schema.skype.com/AMSImage",
            "http://schema.skype.com/CodeBlockEditor",
            "language-python",
            "0",
            "1",
            "-3",
            "#ff0000",
            "https://matrix.to/#/@teams_ada:example.org",
            "https://matrix.to/#/@other:example.org",
            "https://as-prod.asyncgw.teams.microsoft.com/v1/objects/0-x/views/imgo",
            '"><script>alert(1)</script>',
        ]
    ),
    st.text(max_size=10),
)
TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        [
            "&nbsp;",
            "&amp;",
            "&lt;",
            "<",
            ">",
            "&",
            "\n",
            "<!--",
            "-->",
            "</b>",
            "<a href='",
            "&#0;",
            "&#x110000;",
            "&#xd800;",
            "\u00a0",
            "]]>",
            "<![CDATA[",
            "<?x",
            "</",
        ]
    ),
)


def _attributes(items: list[tuple[str, str, bool]]) -> str:
    return "".join(
        f' {name}="{escape(value)}"' if quoted else f" {name}={value}"
        for name, value, quoted in items
    )


ATTRIBUTES = st.lists(
    st.tuples(st.sampled_from(ATTRIBUTE_NAMES), ATTRIBUTE_VALUES, st.booleans()), max_size=3
).map(_attributes)
START_TAG = st.builds(lambda tag, attrs: f"<{tag}{attrs}>", st.sampled_from(TAGS), ATTRIBUTES)
END_TAG = st.sampled_from(TAGS).map(lambda tag: f"</{tag}>")
# Tag soup: a flat token stream nests, mis-nests and leaves elements open at random.
HTML_DOCUMENTS = st.lists(st.one_of(START_TAG, START_TAG, END_TAG, TEXT), max_size=40).map("".join)


@SETTINGS
@given(
    html=HTML_DOCUMENTS,
    message_type=st.sampled_from(["RichText/Html", "RichText", "Text", "Weird/Type"]),
)
def test_teams_to_matrix_output_is_always_allowed(html: str, message_type: str) -> None:
    message = teams_to_matrix(
        html,
        message_type=message_type,
        mentions_property=MENTIONS,
        resolve_mention=resolve_mention,
    )
    assert matrix_violations(message.formatted_body) == []
    (message.body + (message.formatted_body or "")).encode("utf-8")
    assert set(message.mentioned_user_ids) <= {ADA_ID}
    if message.formatted_body is not None:
        assert message.formatted_body.strip()


@SETTINGS
@given(html=HTML_DOCUMENTS, body=st.text(max_size=20))
def test_matrix_to_teams_output_is_always_allowed(html: str, body: str) -> None:
    content = matrix_to_teams(body, html, resolve_user=resolve_user)
    assert teams_violations(content.html) == []
    content.html.encode("utf-8")
    for mention in content.mentions:
        assert f'itemid="{mention["itemid"]}">' in content.html
        assert mention["mri"] == ADA_MRI


@SETTINGS
@given(text=st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    for message_type in ("RichText/Html", "Text", "RichText"):
        message = teams_to_matrix(text, message_type=message_type, mentions_property=text)
        assert matrix_violations(message.formatted_body) == []
    content = matrix_to_teams(text, text, mentioned_user_ids=[text])
    assert teams_violations(content.html) == []


# --- round trip -----------------------------------------------------------------------

WORD = st.text(alphabet="abcxyzABC0129<>&\"'.,!?-", min_size=1, max_size=8)
PHRASE = st.lists(WORD, min_size=1, max_size=4).map(" ".join)
INLINE = ("b", "i", "u", "strong", "em", "del", "s", "code")


@dataclass
class Fragment:
    html: str
    text: str


@st.composite
def runs(draw: st.DrawFn) -> Fragment:
    """Text with inline formatting, links and pills; the plain text a reader would see."""
    html, text = [], []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("plain", "link", "pill") + INLINE))
        phrase = draw(PHRASE)
        if kind == "plain":
            html.append(escape(phrase, quote=False))
            text.append(phrase)
        elif kind == "link":
            url = "https://example.org/" + draw(st.sampled_from(["", "a", "b?c=1&d=2"]))
            html.append(f'<a href="{escape(url)}">{escape(phrase, quote=False)}</a>')
            text.append(f"{phrase} ({url})" if phrase != url else phrase)
        elif kind == "pill":
            html.append(f'<a href="https://matrix.to/#/{ADA_ID}">{escape(phrase, quote=False)}</a>')
            text.append(ADA_NAME)
        else:
            html.append(f"<{kind}>{escape(phrase, quote=False)}</{kind}>")
            text.append(phrase)
    return Fragment(" ".join(html), " ".join(text))


CODE_LINE = st.from_regex(r"[ ]{0,4}[a-z<>&=(){}]{1,6}( {1,3}[a-z0-9]{1,3}){0,2} ?", fullmatch=True)


@st.composite
def blocks(draw: st.DrawFn) -> Fragment:
    kind = draw(st.sampled_from(["p", "h2", "blockquote", "ul", "ol", "pre"]))
    if kind == "pre":
        lines = draw(st.lists(CODE_LINE, min_size=1, max_size=4))
        language = draw(st.sampled_from(["", ' class="language-python"']))
        code = escape("\n".join(lines), quote=False)
        return Fragment(f"<pre><code{language}>{code}\n</code></pre>", "\n".join(lines))
    if kind in ("ul", "ol"):
        items = draw(st.lists(runs(), min_size=1, max_size=3))
        html = "".join(f"<li>{item.html}</li>" for item in items)
        markers = [f"{n}. " if kind == "ol" else "- " for n in range(1, len(items) + 1)]
        text = "\n".join(marker + item.text for marker, item in zip(markers, items, strict=True))
        return Fragment(f"<{kind}>{html}</{kind}>", text)
    inner = draw(runs())
    if kind == "blockquote":
        return Fragment(f"<blockquote>{inner.html}</blockquote>", "> " + inner.text)
    return Fragment(f"<{kind}>{inner.html}</{kind}>", inner.text)


@SETTINGS
@given(message=st.lists(blocks(), min_size=1, max_size=4))
def test_round_trip_keeps_plain_text(message: list[Fragment]) -> None:
    formatted = "".join(block.html for block in message)
    expected = "\n".join(block.text for block in message)
    content = matrix_to_teams(expected, formatted, resolve_user=resolve_user)
    back = teams_to_matrix(
        content.html,
        mentions_property=json.dumps(content.mentions),
        resolve_mention=resolve_mention,
    )
    assert back.body == expected
    assert matrix_violations(back.formatted_body) == []


@SETTINGS
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_round_trip_of_plain_body(text: str) -> None:
    back = teams_to_matrix(matrix_to_teams(text).html)
    expected = "\n".join(line.strip(" \t\n\r\f") for line in text.split("\n")).strip("\n")
    # Teams and Matrix both collapse runs of white space other than spaces.
    assert back.body == expected or back.body.split() == expected.split()


# --- the shortcut for one plain paragraph ----------------------------------------------

PRINTABLE_ASCII = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@SETTINGS
@given(text=st.one_of(PRINTABLE_ASCII, st.sampled_from(["a  b", " a", "a ", "&amp;", "@room"])))
def test_one_plain_paragraph_converts_as_the_parser_would_convert_it(text: str):
    from teams_bridge.formatter import from_teams

    html = f"<p>{text}</p>"
    shortcut = teams_to_matrix(html)
    if from_teams._ONE_PLAIN_PARAGRAPH.fullmatch(html) is None:
        return  # (not one the shortcut takes)
    original = from_teams._ONE_PLAIN_PARAGRAPH
    from_teams._ONE_PLAIN_PARAGRAPH = _NEVER
    try:
        parsed = teams_to_matrix(html)
    finally:
        from_teams._ONE_PLAIN_PARAGRAPH = original
    assert shortcut == parsed


def test_the_plain_paragraph_shortcut_takes_plain_words_only():
    from teams_bridge.formatter import from_teams

    takes = from_teams._ONE_PLAIN_PARAGRAPH.fullmatch
    assert takes("<p>Hello there, how are you? 100% (ok)</p>")
    for html in ("<p>a  b</p>", "<p> a</p>", "<p>a&amp;b</p>", "<p>a<b>c</b></p>", "<p></p>"):
        assert not takes(html), html
    assert teams_to_matrix("<p>Hello there</p>").body == "Hello there"


class _Never:
    def fullmatch(self, _: str) -> None:
        return None


_NEVER = _Never()
