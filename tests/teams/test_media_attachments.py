"""Media attachments: parsing every known shape (tolerantly) and the outgoing builders."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import teams_bridge.teams.attachments as attachments_module
from teams_bridge.teams import (
    AmsImage,
    AmsVideo,
    MediaKind,
    Message,
    SharePointFile,
    UriObject,
    file_message,
    image_message,
    parse_attachments,
    parse_media,
    video_message,
    voice_message,
)
from teams_bridge.teams.attachments import (
    format_iso_duration,
    parse_ams_url,
    parse_content,
    parse_iso_duration_ms,
)

AMS = "https://eu-api.asm.skype.com"
OID = "0-weu-d3-0123456789abcdef0123456789abcdef"


def message(message_type: str, content: str, properties: dict[str, Any] | None = None) -> Message:
    now = datetime.now(UTC)
    return Message(
        id="1700000000000",
        conversation_id="19:abc@thread.v2",
        message_type=message_type,
        content=content,
        sender_mri="8:orgid:00000000-0000-0000-0000-000000000001",
        sender_name="Ada",
        client_message_id="1",
        version=1,
        compose_time=now,
        arrival_time=now,
        edit_time=None,
        delete_time=None,
        properties=properties or {},
    )


# -- builders → parser ------------------------------------------------------------------
@pytest.mark.parametrize("caption", [None, "nice <b>shot</b>", "<p>a</p><p>b</p>"])
def test_image_builder_round_trip(caption: str | None) -> None:
    built = image_message(AMS, OID, width=640, height=480, caption_html=caption)
    assert built.message_type == "RichText/Html" and built.properties == {}
    assert 'itemtype="http://schema.skype.com/AMSImage"' in built.content
    assert f'src="{AMS}/v1/objects/{OID}/views/imgo"' in built.content
    parsed = parse_media(message(*built[:2]))
    (image,) = parsed.attachments
    assert isinstance(image, AmsImage)
    assert (image.object_id, image.width, image.height) == (OID, 640, 480)
    assert image.ams is not None and image.ams.base == AMS and image.ams.view == "imgo"
    assert image.view_url("imgpsh_fullsize") == f"{AMS}/v1/objects/{OID}/views/imgpsh_fullsize"
    if caption is None:
        assert parsed.caption_html is None
    elif caption.startswith("<p>"):
        assert parsed.caption_html == caption
    else:
        assert parsed.caption_html == f"<p>{caption}</p>"


@pytest.mark.parametrize("caption", [None, "the <i>report</i>"])
def test_file_builder_round_trip(caption: str | None) -> None:
    built = file_message(AMS, OID, filename='Q3 "final" <v2>.pdf', size=12345, caption_html=caption)
    expected_type = "RichText/Html" if caption else "RichText/Media_GenericFile"
    assert built.message_type == expected_type
    assert f"docid={OID}" in built.content and "login.skype.com" in built.content
    parsed = parse_media(message(*built[:2]))
    (file_,) = parsed.attachments
    assert isinstance(file_, UriObject) and file_.kind is MediaKind.FILE
    assert file_.type == "File.1" and file_.object_id == OID
    assert file_.original_name == 'Q3 "final" <v2>.pdf' and file_.file_size == 12345
    assert file_.uri == f"{AMS}/v1/objects/{OID}" and file_.views == ("original",)
    assert parsed.caption_html == (f"<p>{caption}</p>" if caption else None)


def test_video_builder_round_trip() -> None:
    built = video_message(
        AMS, OID, filename="clip.mp4", size=999, width=1280, height=720, duration_ms=2990
    )
    assert built.message_type == "RichText/Media_Video"
    (video,) = parse_attachments(message(*built[:2]))
    assert isinstance(video, UriObject) and video.kind is MediaKind.VIDEO
    assert (video.width, video.height, video.duration_ms) == (1280, 720, 2990)
    assert (video.original_name, video.file_size) == ("clip.mp4", 999)
    assert video.views[0] == "video"
    captioned = video_message(AMS, OID, filename="c.mp4", size=1, caption_html="hi")
    parsed = parse_media(message(*captioned[:2]))
    assert captioned.message_type == "RichText/Html" and parsed.caption_html == "<p>hi</p>"
    assert isinstance(parsed.attachments[0], UriObject)


def test_voice_builder_round_trip() -> None:
    built = voice_message(AMS, OID, filename="voice.ogg", size=4321, duration_ms=15_250)
    assert built.message_type == "RichText/Media_AudioMsg"
    assert 'type="Audio.1/Message.1"' in built.content
    (voice,) = parse_attachments(message(*built[:2]))
    assert isinstance(voice, UriObject) and voice.kind is MediaKind.AUDIO
    assert voice.duration_ms == 15_250 and voice.file_size == 4321
    assert voice.views == ("audio", "original") and voice.title == "Voice message"
    captioned = voice_message(
        AMS, OID, filename="v.ogg", size=1, duration_ms=1, caption_html="<p>listen</p>"
    )
    assert parse_media(message(*captioned[:2])).caption_html == "<p>listen</p>"


def test_builders_refuse_bad_input() -> None:
    with pytest.raises(ValueError):
        image_message(AMS, "../etc/passwd")
    with pytest.raises(ValueError):
        file_message("javascript:alert(1)", OID, filename="a", size=1)
    with pytest.raises(ValueError):
        image_message(AMS, OID, view="imgo/../x")


# -- incoming variants ------------------------------------------------------------------
def test_image_variants_are_tolerated() -> None:
    content = (
        "<div><p>Look:</p><p>"
        f"<IMG ItemType=\"http://schema.skype.com/AMSImage\" height=250 src='{AMS}/v1/objects/{OID}/views/imgpsh_fullsize' "
        f'width="300px" itemscope="image" itemid="{OID}" alt="">'
        "</p></div>"
        # an emoji image is not an attachment
        '<span><img itemtype="http://schema.skype.com/Emoji" src="https://statics/x.png" alt="🙂"></span>'
    )
    parsed = parse_media(message("RichText/Html", content))
    (image,) = parsed.attachments
    assert isinstance(image, AmsImage)
    assert (image.width, image.height, image.alt) == (300, 250, None)
    assert parsed.caption_html is not None
    assert "Look:" in parsed.caption_html and "Emoji" in parsed.caption_html
    assert "AMSImage" not in parsed.caption_html


def test_image_id_from_src_when_attributes_are_missing() -> None:
    content = f'<p><img itemtype="http://schema.skype.com/AMSImage" src="{AMS}/v1/objects/{OID}/views/imgo"></p>'
    (image,) = parse_attachments(message("RichText/Html", content))
    assert isinstance(image, AmsImage) and image.object_id == OID
    assert parse_media(message("RichText/Html", content)).caption_html is None


def test_inline_video() -> None:
    content = (
        f'<p><video data-duration="PT1M2.5S" height="360" width="640" itemtype="http://schema.skype.com/AMSVideo" '
        f'src="https://us-prod.asyncgw.teams.microsoft.com/v1/objects/{OID}/views/video" itemscope="">'
        "my &amp; clip.mp4</video></p><p>caption</p>"
    )
    parsed = parse_media(message("RichText/Html", content))
    (video,) = parsed.attachments
    assert isinstance(video, AmsVideo)
    assert video.duration_ms == 62_500 and video.name == "my & clip.mp4"
    assert video.ams is not None and video.ams.host == "us-prod.asyncgw.teams.microsoft.com"
    assert parsed.caption_html == "<p>caption</p>"


def test_uriobject_picture_skype_shape() -> None:
    content = (
        f'<URIObject type="Picture.1" uri="https://api.asm.skype.com/v1/objects/{OID}" '
        f'url_thumbnail="https://api.asm.skype.com/v1/objects/{OID}/views/imgt1" width="800" height="600">'
        'To view this shared photo, go to: <a href="https://login.skype.com/login/sso?go=xmmfallback?pic=x">link</a>'
        '<OriginalName v="photo.jpg"/><FileSize v="54321"/><meta type="photo" originalName="photo.jpg"/></URIObject>'
    )
    parsed = parse_media(message("RichText/UriObject", content))
    (picture,) = parsed.attachments
    assert isinstance(picture, UriObject) and picture.kind is MediaKind.IMAGE
    assert (picture.width, picture.height, picture.file_size) == (800, 600, 54321)
    assert picture.url_thumbnail and picture.url_thumbnail.endswith("/views/imgt1")
    assert parsed.caption_html is None  # the fallback text is not a caption


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('duration_ms="1500"', 1500),
        ('durationMs="1500"', 1500),
        ('duration="PT1.5S"', 1500),
        ('duration="2"', 2000),
    ],
)
def test_duration_attributes(snippet: str, expected: int) -> None:
    content = f'<URIObject type="Audio.1/Message.1" {snippet} uri="{AMS}/v1/objects/{OID}"><Title>x</Title></URIObject>'
    (voice,) = parse_attachments(message("RichText/Media_AudioMsg", content))
    assert isinstance(voice, UriObject) and voice.duration_ms == expected


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ("<DurationMs>2500</DurationMs>", 2500),
        ("<duration_ms>2500</duration_ms>", 2500),
        ('<duration_ms v="2500"/>', 2500),
        ("<Duration>PT2.5S</Duration>", 2500),
    ],
)
def test_duration_elements(element: str, expected: int) -> None:
    content = f'<URIObject uri="{AMS}/v1/objects/{OID}" type="Audio.1">{element}</URIObject>'
    (voice,) = parse_attachments(message("RichText/Media_AudioMsg", content))
    assert isinstance(voice, UriObject) and voice.duration_ms == expected


def test_uriobject_kind_falls_back_to_the_message_type() -> None:
    content = f'<URIObject uri="{AMS}/v1/objects/{OID}"><OriginalName v="a.mp4"/></URIObject>'
    (video,) = parse_attachments(message("RichText/Media_Video", content))
    assert isinstance(video, UriObject) and video.kind is MediaKind.VIDEO


def test_uriobject_id_from_doc_id_or_thumbnail() -> None:
    content = (
        f'<URIObject type="File.1" doc_id="{OID}" uri=""><OriginalName v="a"/></URIObject>'
        f'<URIObject type="File.1" url_thumbnail="{AMS}/v1/objects/{OID}/views/thumbnail"></URIObject>'
    )
    attachments = parse_attachments(message("RichText/Media_GenericFile", content))
    assert len(attachments) == 1  # doc_id alone gives no downloadable URI
    (file_,) = attachments
    assert isinstance(file_, UriObject) and file_.uri == f"{AMS}/v1/objects/{OID}"


def test_album_and_html_wrapped_objects() -> None:
    pictures = "".join(
        f'<URIObject type="Picture.1" uri="{AMS}/v1/objects/0-weu-d1-{i:032x}"></URIObject>'
        for i in range(3)
    )
    assert len(parse_attachments(message("RichText/Media_Album", pictures))) == 3
    wrapped = f"<p>before</p>{pictures}<p>after</p>"
    parsed = parse_media(message("RichText/Html", wrapped))
    assert len(parsed.attachments) == 3
    assert parsed.caption_html == "<p>before</p><p>after</p>"


def test_cards_and_unknown_types_are_skipped() -> None:
    content = (
        '<URIObject type="SWIFT.1" url_thumbnail="https://x/y"><Swift b="e30="/></URIObject>'
        f'<URIObject type="Recording.1" uri="{AMS}/v1/objects/{OID}"></URIObject>'
    )
    assert parse_attachments(message("RichText/Media_Card", content)) == []


def test_custom_emoji_tenant_urls() -> None:
    url = f"https://eu-prod.asyncgw.teams.microsoft.com/v1/2f0c3a1e-1111-2222-3333-444455556666/objects/{OID}/views/imgt2_anim"
    parsed = parse_ams_url(url)
    assert parsed is not None
    assert parsed.tenant == "2f0c3a1e-1111-2222-3333-444455556666" and parsed.view == "imgt2_anim"
    assert parsed.view_url("imgo").endswith(f"/objects/{OID}/views/imgo")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x/v1/objects/0-a",
        f"{AMS}/v2/objects/{OID}",
        f"{AMS}/v1/objects/../{OID}",
        f"{AMS}/v1/objects/{OID}/views/imgo/extra/more",
        f"{AMS}/v1/objects",
        "",
        None,
        42,
    ],
)
def test_not_ams_urls(url: Any) -> None:
    assert parse_ams_url(url) is None


def test_ams_url_with_a_path_prefix() -> None:
    parsed = parse_ams_url(f"http://127.0.0.1:8080/ams/v1/objects/{OID}/content/imgpsh")
    assert parsed is not None and parsed.base == "http://127.0.0.1:8080/ams"
    assert parsed.view == "imgpsh"


def test_sharepoint_files() -> None:
    files = [
        {
            "@type": "http://schema.skype.com/File",
            "fileName": "report.pdf",
            "fileType": "pdf",
            "objectUrl": "https://contoso-my.sharepoint.com/personal/ada/Documents/report.pdf",
            "itemid": "abc",
            "fileInfo": {
                "shareUrl": "https://1drv.ms/b/s!x",
                "siteUrl": "https://contoso-my.sharepoint.com/personal/ada",
            },
            "filePreview": {"previewUrl": "https://contoso/preview.png"},
        },
        {"title": "notes.txt", "fileInfo": {"fileUrl": "https://c/notes.txt", "size": "42"}},
        {"fileName": "no-url.txt"},
        {"fileName": "bad", "objectUrl": "javascript:alert(1)"},
        "garbage",
        7,
    ]
    for value in (json.dumps(files), files):
        attachments = parse_attachments(message("RichText/Html", "<p>see</p>", {"files": value}))
        assert [a.filename for a in attachments] == ["report.pdf", "notes.txt"]
        first, second = attachments
        assert isinstance(first, SharePointFile) and isinstance(second, SharePointFile)
        assert first.link == "https://1drv.ms/b/s!x" and first.file_type == "pdf"
        assert first.item_id == "abc" and first.size is None
        assert second.url == "https://c/notes.txt" and second.size == 42
    for junk in ("", "[]", "{not json", "null", {"a": 1}, None):
        assert parse_attachments(message("RichText/Html", "", {"files": junk})) == []


@pytest.mark.parametrize(
    "content",
    [
        '<URIObject type="File.1" uri="',
        "<URIObject><URIObject><URIObject>",
        "<img itemtype='http://schema.skype.com/AMSImage' src=>",
        "<video itemtype='http://schema.skype.com/AMSVideo'>never closed",
        '<URIObject type="File.1" uri="https://x/v1/objects/0-a"><FileSize v="-3"/><OriginalName v=""/>',
        "<![CDATA[ <URIObject> ]]>",
        "</p></div><p",
        "&#xFFFFFFF; &bogus; <!-- <URIObject -->",
    ],
)
def test_malformed_markup_never_raises(content: str) -> None:
    for mtype in ("RichText/Html", "RichText/Media_GenericFile", "RichText/UriObject"):
        parse_media(message(mtype, content))


def test_non_html_messages() -> None:
    assert parse_media(message("Text", "hello")).caption_html == "hello"
    assert parse_media(message("RichText/Html", "<p>plain</p>")).caption_html == "<p>plain</p>"
    assert parse_media(message("RichText/Html", "  ")).caption_html is None
    assert parse_content("ThreadActivity/AddMember", "<addmember/>", None).attachments == ()
    assert parse_content(None, None, None).attachments == ()  # type: ignore[arg-type]


_TOKENS = [
    "<",
    ">",
    "/",
    "=",
    '"',
    "'",
    " ",
    "&",
    ";",
    "#",
    "p",
    "URIObject",
    "img",
    "video",
    "src",
    "uri",
    "type",
    "itemtype",
    "Picture.1",
    "File.1",
    "Audio.1",
    "OriginalName",
    "FileSize",
    "v",
    "duration_ms",
    "PT2.5S",
    "12",
    "http://schema.skype.com/AMSImage",
    "http://schema.skype.com/AMSVideo",
    f"{AMS}/v1/objects/{OID}",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join),
    st.sampled_from(["RichText/Html", "RichText/UriObject", "RichText/Media_AudioMsg"]),
)
def test_fuzzed_markup_never_raises(content: str, mtype: str) -> None:
    parsed = parse_media(message(mtype, content))
    for attachment in parsed.attachments:
        assert attachment.kind in MediaKind


def test_iso_durations() -> None:
    assert parse_iso_duration_ms("PT2.99S") == 2990
    assert parse_iso_duration_ms("PT1H0M1S") == 3_601_000
    assert parse_iso_duration_ms("P1DT1S") == 86_401_000
    assert parse_iso_duration_ms("pt0.5s") == 500
    for bad in ("PT", "P", "2.99", "PTxS", None, 3):
        assert parse_iso_duration_ms(bad) is None
    assert format_iso_duration(2990) == "PT2.99S"
    assert format_iso_duration(3000) == "PT3S"
    assert parse_iso_duration_ms(format_iso_duration(12_345)) == 12_345


_FRAGMENTS = [
    "<p>",
    "</p>",
    "<b>",
    "</b>",
    "hi",
    " ",
    "\n",
    "<",
    ">",
    "&amp;",
    "<IMG",
    "<img src='x'>",
    f'<img itemtype="http://schema.skype.com/AMSImage" src="{AMS}/v1/objects/{OID}/views/imgo">',
    f'<IMG ItemType="http://schema.skype.com/AMSImage" src="{AMS}/v1/objects/{OID}/views/imgo"/>',
    "<video>",
    "</video>",
    f'<video itemtype="http://schema.skype.com/AMSVideo" src="{AMS}/v1/objects/{OID}">',
    f'<URIObject type="File.1" uri="{AMS}/v1/objects/{OID}"><OriginalName v="a.txt"/>',
    "</URIObject>",
    "<uriobject>",
    "<!-- <img> -->",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=12),
    st.sampled_from(["RichText/Html", "RichText/Media_Video", "Text"]),
)
def test_markup_with_no_file_tag_skips_the_parser_with_the_same_result(parts, mtype):
    # The shortcut (no start tag that can be a file: take the content as the caption) must
    # give what the parser gives, whatever the markup around it.
    content = "".join(parts)
    quick = parse_content(mtype, content)
    saved = attachments_module._MEDIA_TAG
    attachments_module._MEDIA_TAG = re.compile("")  # every content goes to the parser
    try:
        parsed = parse_content(mtype, content)
    finally:
        attachments_module._MEDIA_TAG = saved
    assert quick == parsed
