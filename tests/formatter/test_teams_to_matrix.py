"""Teams content -> Matrix: the exact output for each construct Teams sends."""

from __future__ import annotations

import json

import pytest

from teams_bridge.formatter import InlineImage, MatrixMessage, teams_to_matrix

ADA = "8:orgid:11111111-1111-1111-1111-111111111111"
BOB = "8:orgid:22222222-2222-2222-2222-222222222222"
STRANGER = "8:orgid:33333333-3333-3333-3333-333333333333"
USERS = {ADA: ("@teams_ada:example.org", "Ada Lovelace"), BOB: ("@teams_bob:example.org", "Bob")}
MENTION = "http://schema.skype.com/Mention"


def resolve(mri: str) -> tuple[str, str] | None:
    return USERS.get(mri)


def mentions(*mris: str) -> str:
    return json.dumps(
        [
            {"@type": MENTION, "itemid": i, "mri": mri, "mentionType": "person", "displayName": "x"}
            for i, mri in enumerate(mris)
        ]
    )


def convert(html: str, **kwargs: object) -> MatrixMessage:
    return teams_to_matrix(html, resolve_mention=resolve, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("html", "body", "formatted"),
    [
        ("<p>Hello <b>world</b></p>", "Hello world", "<p>Hello <strong>world</strong></p>"),
        (
            "<p><strong>a</strong> <em>b</em> <i>c</i></p>",
            "a b c",
            "<p><strong>a</strong> <em>b</em> <em>c</em></p>",
        ),
        ("<p><u>under</u></p>", "under", "<p><u>under</u></p>"),
        (
            "<p><s>gone</s> <strike>old</strike> <del>x</del></p>",
            "gone old x",
            "<p><del>gone</del> <strike>old</strike> <del>x</del></p>",
        ),
        ("<p>run <code>ls -l</code></p>", "run ls -l", "<p>run <code>ls -l</code></p>"),
        ("<h1>Title</h1><h3>Sub</h3>", "Title\nSub", "<h1>Title</h1><h3>Sub</h3>"),
        ("<p>a<sup>2</sup> b<sub>i</sub></p>", "a2 bi", "<p>a<sup>2</sup> b<sub>i</sub></p>"),
        ("<hr>", "---", "<hr>"),
    ],
)
def test_inline_and_block_formatting(html: str, body: str, formatted: str) -> None:
    assert convert(html) == MatrixMessage(body=body, formatted_body=formatted)


def test_plain_paragraphs_need_no_formatted_body() -> None:
    message = convert("<p>hello</p>\r\n<p>there</p>")
    assert message == MatrixMessage(body="hello\nthere", formatted_body=None)


def test_line_breaks_and_empty_paragraphs_keep_the_lines() -> None:
    message = convert("<p>one<br>two</p><p>&nbsp;</p><p>three<br></p>")
    assert message.body == "one\ntwo\n\nthree"
    assert message.formatted_body is None


def test_empty_paragraph_stays_visible_in_formatted_body() -> None:
    message = convert("<p><b>one</b></p><p>&nbsp;</p><p>two</p>")
    assert message.body == "one\n\ntwo"
    assert message.formatted_body == "<p><strong>one</strong></p><p><br></p><p>two</p>"


def test_no_break_spaces_become_spaces() -> None:
    message = convert("<p>a&nbsp;&nbsp;b&nbsp;<b>c</b></p>")
    assert message.body == "a  b c"
    assert message.formatted_body == "<p>a  b <strong>c</strong></p>"


def test_links_keep_only_href() -> None:
    html = '<p>see <a href="https://example.org/x?a=1&amp;b=2" rel="noreferrer noopener" target="_blank" title="t">the docs</a></p>'
    message = convert(html)
    assert message.body == "see the docs (https://example.org/x?a=1&b=2)"
    assert (
        message.formatted_body
        == '<p>see <a href="https://example.org/x?a=1&amp;b=2">the docs</a></p>'
    )


def test_link_whose_text_is_its_url_is_not_repeated_in_body() -> None:
    message = convert('<p><a href="https://example.org">https://example.org</a></p>')
    assert message.body == "https://example.org"
    assert message.formatted_body == '<p><a href="https://example.org">https://example.org</a></p>'


def test_mailto_link() -> None:
    message = convert('<p><a href="mailto:ada@example.org">ada@example.org</a></p>')
    assert message.body == "ada@example.org"
    assert message.formatted_body == '<p><a href="mailto:ada@example.org">ada@example.org</a></p>'


def test_nested_lists() -> None:
    html = (
        "<ul><li>fruit<ul><li>apple</li><li>pear<ol><li>green</li></ol></li></ul></li>"
        '<li>veg</li></ul><ol start="3"><li>three</li><li>four</li></ol>'
    )
    message = convert(html)
    assert message.body == "- fruit\n  - apple\n  - pear\n    1. green\n- veg\n3. three\n4. four"
    assert message.formatted_body == (
        "<ul><li>fruit<ul><li>apple</li><li>pear<ol><li>green</li></ol></li></ul></li>"
        '<li>veg</li></ul><ol start="3"><li>three</li><li>four</li></ol>'
    )


def test_list_with_whitespace_between_items() -> None:
    message = convert("<ul>\r\n<li>a</li>\r\n<li><p>b</p></li>\r\n</ul>")
    assert message.body == "- a\n- b"
    assert message.formatted_body == "<ul><li>a</li><li><p>b</p></li></ul>"


def test_block_quote() -> None:
    message = convert("<blockquote><p>quoted</p><p>two</p></blockquote><p>reply</p>")
    assert message.body == "> quoted\n> two\nreply"
    assert message.formatted_body == "<blockquote><p>quoted</p><p>two</p></blockquote><p>reply</p>"


def test_code_block_editor_with_language() -> None:
    html = (
        "<p>It's just this&nbsp;</p>\r\n"
        '<p itemtype="http://schema.skype.com/CodeBlockEditor" id="x_codeBlockEditor-a70b39d9">\r\n&nbsp;</p>\r\n'
        '<pre class="language-python skipProofing" itemid="codeBlockEditor-a70b39d9" spellcheck="false">'
        '<code><span class="hljs-keyword">def</span>&nbsp;f():<br>&nbsp;&nbsp;&nbsp;&nbsp;'
        '<span class="hljs-keyword">return</span>&nbsp;<span class="hljs-string">&quot;&lt;x&gt;&quot;</span></code></pre>'
    )
    message = convert(html)
    assert message.body == 'It\'s just this\ndef f():\n    return "<x>"'
    assert message.formatted_body == (
        "<p>It's just this </p>"
        '<pre><code class="language-python">def f():\n    return "&lt;x&gt;"</code></pre>'
    )


def test_code_block_language_on_code_element_and_plaintext_dropped() -> None:
    assert convert('<pre><code class="language-rust">fn main() {}</code></pre>').formatted_body == (
        '<pre><code class="language-rust">fn main() {}</code></pre>'
    )
    assert convert('<pre class="language-plaintext"><code>a\nb</code></pre>').formatted_body == (
        "<pre><code>a\nb</code></pre>"
    )


def test_emoji_becomes_its_unicode_alt() -> None:
    html = (
        '<p>ok <span class="animated-emoticon-20-smile" title="Smiley" type="(smile)">'
        '<img itemid="smile" itemscope="" itemtype="http://schema.skype.com/Emoji" '
        'src="https://statics.teams.cdn.office.net/evergreen-assets/skype/v2/smile/20.png" '
        'alt="🙂" style="width:20px; height:20px"></span></p>'
    )
    assert convert(html) == MatrixMessage(body="ok 🙂", formatted_body=None)


def test_giphy_becomes_a_link_to_the_gif() -> None:
    html = (
        '<readonly title="Happy Cat (GIF Image)" itemtype="http://schema.skype.com/Giphy" '
        'contenteditable="false"><img alt="Happy Cat" src="https://media4.giphy.com/media/abc/giphy.gif" '
        'itemtype="http://schema.skype.com/Giphy"></readonly>'
    )
    message = convert(html)
    assert message.body == "GIF: Happy Cat (https://media4.giphy.com/media/abc/giphy.gif)"
    assert message.formatted_body == (
        '<a href="https://media4.giphy.com/media/abc/giphy.gif">GIF: Happy Cat</a>'
    )


def test_sticker_becomes_a_link() -> None:
    html = '<readonly itemtype="http://schema.skype.com/Sticker"><img src="https://s.example/st.png" alt="Wave"></readonly>'
    assert convert(html).formatted_body == '<a href="https://s.example/st.png">Sticker: Wave</a>'


def test_mention_becomes_a_pill() -> None:
    html = f'<p>Hi <span itemscope="" itemtype="{MENTION}" itemid="0">Ada</span>!</p>'
    message = convert(html, mentions_property=mentions(ADA))
    assert message == MatrixMessage(
        body="Hi Ada Lovelace!",
        formatted_body='<p>Hi <a href="https://matrix.to/#/@teams_ada:example.org">Ada Lovelace</a>!</p>',
        mentioned_user_ids=["@teams_ada:example.org"],
    )


def test_split_mention_spans_are_merged_into_one_pill() -> None:
    html = (
        f'<p><span itemid="0" itemtype="{MENTION}" itemscope="">Ada</span>&nbsp;'
        f'<span itemscope="" itemid="1" itemtype="{MENTION}">Lovelace</span> and '
        f'<span itemtype="{MENTION}" itemscope="" itemid="2">Bob</span></p>'
    )
    message = convert(html, mentions_property=mentions(ADA, ADA, BOB))
    assert message.body == "Ada Lovelace and Bob"
    assert message.formatted_body == (
        '<p><a href="https://matrix.to/#/@teams_ada:example.org">Ada Lovelace</a> and '
        '<a href="https://matrix.to/#/@teams_bob:example.org">Bob</a></p>'
    )
    assert message.mentioned_user_ids == ["@teams_ada:example.org", "@teams_bob:example.org"]


def test_split_spans_of_an_unknown_user_are_merged_as_text() -> None:
    html = (
        f'<p><span itemtype="{MENTION}" itemid="0">Carl</span> '
        f'<span itemtype="{MENTION}" itemid="1">Sagan</span>: hi</p>'
    )
    message = convert(html, mentions_property=mentions(STRANGER, STRANGER))
    assert message == MatrixMessage(body="Carl Sagan: hi", formatted_body=None)


def test_mentions_property_may_be_a_list() -> None:
    html = f'<p><span itemtype="{MENTION}" itemid="0">Bob</span></p>'
    message = convert(html, mentions_property=[{"itemid": "0", "mri": BOB}])
    assert message.mentioned_user_ids == ["@teams_bob:example.org"]


def test_mention_without_property_is_text() -> None:
    html = f'<p><span itemtype="{MENTION}" itemid="0">Bob</span></p>'
    assert convert(html, mentions_property="not json") == MatrixMessage(
        body="Bob", formatted_body=None
    )


def test_legacy_at_mention() -> None:
    message = convert(f'<at id="{BOB}">Bob</at> and <at id="8:live:nobody">Nobody</at>')
    assert message.body == "Bob and Nobody"
    assert (
        message.formatted_body
        == '<a href="https://matrix.to/#/@teams_bob:example.org">Bob</a> and Nobody'
    )
    assert message.mentioned_user_ids == ["@teams_bob:example.org"]


def test_reply_quote_is_removed_and_reported() -> None:
    html = (
        '<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" itemid="1715842456893">\r\n'
        '<strong itemprop="mri" itemid="8:orgid:x">Ada Lovelace</strong>'
        '<span itemprop="time" itemid="1715842456893"></span>'
        '<p itemprop="preview">first 200 chars</p></blockquote><p>my <b>answer</b></p>'
    )
    assert convert(html) == MatrixMessage(
        body="my answer",
        formatted_body="<p>my <strong>answer</strong></p>",
        reply_to_message_id="1715842456893",
    )


def test_ams_image_is_collected_not_rendered() -> None:
    html = (
        '<p>look</p><p><img itemscope="image" style="vertical-align:bottom" '
        'src="https://as-prod.asyncgw.teams.microsoft.com/v1/objects/0-weu-d1-abc/views/imgo" '
        'alt="image" itemtype="http://schema.skype.com/AMSImage" height="250" '
        'id="0-weu-d1-abc" itemid="0-weu-d1-abc"></p>'
    )
    message = convert(html)
    assert message.body == "look"
    assert message.formatted_body is None
    assert message.images == [
        InlineImage(
            src="https://as-prod.asyncgw.teams.microsoft.com/v1/objects/0-weu-d1-abc/views/imgo",
            item_id="0-weu-d1-abc",
            alt="image",
            kind="image",
        )
    ]


def test_ams_video_is_collected() -> None:
    html = (
        '<video src="https://eu-api.asm.skype.com/v1/objects/0-weu-d2-f00/views/video" '
        'itemscope="" itemtype="http://schema.skype.com/AMSVideo" data-duration="PT2.99S">clip.mp4</video>'
    )
    message = convert(html)
    assert message.body == ""
    assert message.images == [
        InlineImage(
            src="https://eu-api.asm.skype.com/v1/objects/0-weu-d2-f00/views/video",
            item_id="0-weu-d2-f00",
            alt="clip.mp4",
            kind="video",
        )
    ]


def test_external_image_becomes_its_alt_text() -> None:
    assert convert('<p><img src="https://example.org/a.png" alt="a chart"></p>') == MatrixMessage(
        body="a chart", formatted_body=None
    )


def test_table() -> None:
    html = '<table style="x"><tbody><tr><th>k</th><th>v</th></tr><tr><td>a</td><td colspan="2">1</td></tr></tbody></table>'
    message = convert(html)
    assert message.body == "k | v\na | 1"
    assert message.formatted_body == (
        "<table><tbody><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></tbody></table>"
    )


def test_text_message_type_is_not_html() -> None:
    message = teams_to_matrix("a <b>b</b> &amp;\r\nc", message_type="Text")
    assert message == MatrixMessage(body="a <b>b</b> &amp;\nc", formatted_body=None)


def test_legacy_rich_text_newlines_are_line_breaks() -> None:
    message = teams_to_matrix("<b>bold</b>\nnext &lt;3", message_type="RichText")
    assert message.body == "bold\nnext <3"
    assert message.formatted_body == "<strong>bold</strong><br>next &lt;3"


def test_legacy_skype_quote() -> None:
    html = (
        '<quote author="8:x" authorname="X" timestamp="1"><legacyquote>[1] X: </legacyquote>'
        "old<legacyquote>\n\n&lt;&lt;&lt; </legacyquote></quote>new"
    )
    message = teams_to_matrix(html, message_type="RichText")
    assert message.body == "> old\nnew"
    assert message.formatted_body == "<blockquote>old</blockquote>new"


def test_unknown_tags_reduce_to_text_and_blocks_keep_lines() -> None:
    message = convert("<section><custom-x>one</custom-x></section><article>two</article>")
    assert message == MatrixMessage(body="one\ntwo", formatted_body=None)


def test_unclosed_paragraphs_and_items() -> None:
    message = convert("<p>a<p>b<ul><li>x<li>y</ul>")
    assert message.body == "a\nb\n- x\n- y"
    assert message.formatted_body == "<p>a</p><p>b</p><ul><li>x</li><li>y</li></ul>"


def test_empty_content() -> None:
    assert convert("") == MatrixMessage(body="", formatted_body=None)


def test_conversation_mention_becomes_at_room_when_it_means_this_room() -> None:
    chat = "19:group@thread.v2"
    html = (
        f'<p><span itemtype="{MENTION}" itemid="0">Everyone</span>, ask '
        f'<span itemtype="{MENTION}" itemid="1">Ada</span> or see '
        f'<span itemtype="{MENTION}" itemid="2">Design</span></p>'
    )
    entries = json.dumps(
        [
            {"itemid": 0, "mri": chat, "mentionType": "chat", "displayName": "Everyone"},
            {"itemid": 1, "mri": ADA, "mentionType": "person", "displayName": "Ada"},
            {"itemid": 2, "mri": "19:other@thread.tacv2", "mentionType": "channel"},
        ]
    )
    seen: list[tuple[str, str]] = []

    def this_room(mri: str, kind: str) -> bool:
        seen.append((mri, kind))
        return mri == chat

    message = convert(html, mentions_property=entries, is_room_mention=this_room)
    assert message.body == "@room, ask Ada Lovelace or see Design"
    assert message.mentions_room
    assert message.mentioned_user_ids == ["@teams_ada:example.org"]
    assert (chat, "chat") in seen and ("19:other@thread.tacv2", "channel") in seen
    # Without the room test a conversation mention is just its text.
    plain = convert(html, mentions_property=entries)
    assert plain.body == "Everyone, ask Ada Lovelace or see Design"
    assert not plain.mentions_room


def test_split_spans_of_a_channel_mention_make_one_at_room() -> None:
    channel = "19:chan@thread.tacv2"
    html = (
        f'<p><span itemtype="{MENTION}" itemid="0">Design</span> '
        f'<span itemtype="{MENTION}" itemid="1">Crew</span> hi</p>'
    )
    entries = [
        {"itemid": 0, "mri": channel, "mentionType": "channel"},
        {"itemid": 1, "mri": channel, "mentionType": "channel"},
    ]
    message = convert(
        html, mentions_property=entries, is_room_mention=lambda mri, kind: kind == "channel"
    )
    assert message == MatrixMessage(body="@room hi", formatted_body=None, mentions_room=True)
