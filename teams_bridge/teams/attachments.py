"""Media in Teams messages: typed attachments parsed from incoming messages, and the
content of outgoing media messages (teams-protocol.md §4.13, §4.15, §7).

Everything here is pure: no I/O, no tokens. Parsing never raises; an element that
cannot be understood is skipped and the rest of the message still counts.

Incoming shapes understood:

* ``<img itemtype="http://schema.skype.com/AMSImage" …>`` in ``RichText/Html`` → ``AmsImage``
* ``<video itemtype="http://schema.skype.com/AMSVideo" data-duration="PT2.99S" …>`` → ``AmsVideo``
* ``<URIObject type="Picture.1|File.1|Video.1…|Audio.1…" uri=…>`` in ``RichText/UriObject``,
  ``RichText/Media_GenericFile``, ``Media_Video``, ``Media_AudioMsg``, ``Media_Album`` or inside
  a ``RichText/Html`` body → ``UriObject``
* ``properties.files`` (SharePoint / OneDrive descriptors, JSON in a string) → ``SharePointFile``
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from html.parser import HTMLParser
from typing import Any, ClassVar, NamedTuple

from yarl import URL

log = logging.getLogger("teams.attachments")

AMS_IMAGE_ITEMTYPE = "http://schema.skype.com/AMSImage"
AMS_VIDEO_ITEMTYPE = "http://schema.skype.com/AMSVideo"
SKYPE_DOC_LINK = "https://login.skype.com/login/sso?go=webclient.xmm"

_OBJECT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,254}$")
_VIEW_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_ISO_DURATION_RE = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_LEADING_INT_RE = re.compile(r"^\s*(\d{1,12})")
_MAX_CONTENT = 1024 * 1024  # larger contents are not scanned for media


class MediaKind(Enum):
    """What a piece of media is, which decides the AMS object type and the views."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"


# -- ids and AMS URLs -------------------------------------------------------------------
def is_object_id(value: object) -> bool:
    """Whether ``value`` looks like an AMS object id (``0-weu-d3-<hex>`` and friends)."""
    return isinstance(value, str) and bool(_OBJECT_ID_RE.match(value))


def is_view(value: object) -> bool:
    """Whether ``value`` is a plausible AMS view or content name (``imgo``, ``original``…)."""
    return isinstance(value, str) and bool(_VIEW_RE.match(value))


@dataclass(frozen=True)
class AmsUrl:
    """An AMS object URL split into its parts.

    ``base`` is everything before ``/v1/`` (``https://eu-api.asm.skype.com``);
    ``tenant`` is set for the ``/v1/{tenant}/objects/…`` form (custom emoji).
    """

    base: str
    object_id: str
    view: str | None = None
    tenant: str | None = None

    @property
    def object_url(self) -> str:
        middle = f"/v1/{self.tenant}/objects/" if self.tenant else "/v1/objects/"
        return f"{self.base}{middle}{self.object_id}"

    def view_url(self, view: str) -> str:
        return f"{self.object_url}/views/{view}"

    @property
    def host(self) -> str:
        return (URL(self.base).host or "").lower()


def parse_ams_url(url: object) -> AmsUrl | None:
    """Split ``…/v1/objects/{id}[/views/{view}|/content/{view}]`` (any host); else ``None``."""
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    parts = [p for p in parsed.path.split("/") if p]
    try:
        v1 = parts.index("v1")
    except ValueError:
        return None
    rest = parts[v1 + 1 :]
    tenant: str | None = None
    if len(rest) >= 2 and rest[0] != "objects" and rest[1] == "objects":
        tenant, rest = rest[0], rest[1:]
        if not is_object_id(tenant):
            return None
    if len(rest) < 2 or rest[0] != "objects" or not is_object_id(rest[1]):
        return None
    view: str | None = None
    tail = rest[4:]
    if (
        len(rest) >= 4
        and rest[2] in ("views", "content")
        and is_view(rest[3])
        and (tail == [] or tail == ["status"])
    ):
        view = rest[3]
    elif len(rest) > 2:
        return None
    prefix = "/".join(parts[:v1])
    origin = str(parsed.origin())
    base = f"{origin}/{prefix}" if prefix else origin
    return AmsUrl(base=base, object_id=rest[1], view=view, tenant=tenant)


# -- typed attachments ------------------------------------------------------------------
@dataclass(frozen=True)
class AmsImage:
    """An inline image (``<img itemtype="…/AMSImage">``)."""

    object_id: str
    url: str
    width: int | None = None
    height: int | None = None
    alt: str | None = None
    ams: AmsUrl | None = None

    kind: ClassVar[MediaKind] = MediaKind.IMAGE
    views: ClassVar[tuple[str, ...]] = ("imgo", "imgpsh_fullsize")

    @property
    def filename(self) -> str | None:
        return None

    @property
    def size(self) -> int | None:
        return None

    def view_url(self, view: str) -> str | None:
        return self.ams.view_url(view) if self.ams else None


@dataclass(frozen=True)
class AmsVideo:
    """An inline video (``<video itemtype="…/AMSVideo">``)."""

    object_id: str
    url: str
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    name: str | None = None
    ams: AmsUrl | None = None

    kind: ClassVar[MediaKind] = MediaKind.VIDEO
    views: ClassVar[tuple[str, ...]] = ("video", "original")

    @property
    def filename(self) -> str | None:
        return self.name

    @property
    def size(self) -> int | None:
        return None

    def view_url(self, view: str) -> str | None:
        return self.ams.view_url(view) if self.ams else None


_URIOBJECT_VIEWS = {
    MediaKind.IMAGE: ("imgo", "imgpsh_fullsize", "imgpsh_mobile_save_anim"),
    MediaKind.VIDEO: ("video", "original"),
    MediaKind.AUDIO: ("audio", "original"),
    MediaKind.FILE: ("original",),
}


@dataclass(frozen=True)
class UriObject:
    """A Skype-heritage ``<URIObject>`` (picture, file, video or voice message)."""

    type: str  # as sent: "Picture.1", "File.1", "Video.1/Message.1", "Audio.1/Message.1"
    kind: MediaKind
    uri: str
    object_id: str
    url_thumbnail: str | None = None
    original_name: str | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    title: str | None = None
    description: str | None = None
    ams: AmsUrl | None = None

    @property
    def views(self) -> tuple[str, ...]:
        """Views to try for the full content, best first."""
        return _URIOBJECT_VIEWS[self.kind]

    @property
    def filename(self) -> str | None:
        return self.original_name

    @property
    def size(self) -> int | None:
        return self.file_size

    @property
    def url(self) -> str:
        return self.uri

    def view_url(self, view: str) -> str | None:
        return self.ams.view_url(view) if self.ams else None


@dataclass(frozen=True)
class SharePointFile:
    """A SharePoint / OneDrive file from ``properties.files`` (not hosted on AMS)."""

    file_name: str
    url: str | None
    share_url: str | None = None
    size: int | None = None
    file_type: str | None = None
    item_id: str | None = None
    site_url: str | None = None
    preview_url: str | None = None

    kind: ClassVar[MediaKind] = MediaKind.FILE

    @property
    def filename(self) -> str:
        return self.file_name

    @property
    def link(self) -> str | None:
        """The best link for a human: the share link, else the object URL."""
        return self.share_url or self.url


Attachment = AmsImage | AmsVideo | UriObject | SharePointFile


@dataclass(frozen=True)
class ParsedMedia:
    """The attachments of a message plus the HTML left when they are taken out."""

    attachments: tuple[Attachment, ...]
    caption_html: str | None


# -- small value parsers ----------------------------------------------------------------
def parse_iso_duration_ms(value: object) -> int | None:
    """``PT2.99S`` → 2990; ``PT1M5S`` → 65000; anything else → ``None``."""
    if not isinstance(value, str):
        return None
    match = _ISO_DURATION_RE.match(value.strip())
    if not match or not any(match.groupdict().values()):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    seconds = (
        parts.get("d", 0.0) * 86400
        + parts.get("h", 0.0) * 3600
        + parts.get("m", 0.0) * 60
        + parts.get("s", 0.0)
    )
    return int(round(seconds * 1000))


def format_iso_duration(ms: int) -> str:
    """2990 → ``PT2.99S`` (the AMSVideo ``data-duration`` format)."""
    seconds = max(0, int(ms)) / 1000
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value == value and 0 <= value < 2**63 else None
    if isinstance(value, str):
        match = _LEADING_INT_RE.match(value)
        return int(match.group(1)) if match else None
    return None


def _duration_ms(name: str, value: object) -> int | None:
    """A duration from an attribute or element: ISO-8601, ``…ms`` names in ms, else seconds."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[:1] in ("P", "p"):
        return parse_iso_duration_ms(text)
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number < 0 or number > 10**12:
        return None
    if name.replace("_", "").lower().endswith("ms"):
        return int(number)
    return int(round(number * 1000))


def _text(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _object_id(*candidates: object) -> str | None:
    for candidate in candidates:
        if is_object_id(candidate):
            assert isinstance(candidate, str)
            return candidate
    return None


# -- HTML / XML walk --------------------------------------------------------------------
_DURATION_ELEMENTS = ("duration_ms", "durationms", "duration")


class _UriObjectState:
    def __init__(self, attrs: Mapping[str, str]) -> None:
        self.attrs = dict(attrs)
        self.original_name: str | None = None
        self.file_size: str | None = None
        self.meta_name: str | None = None
        self.title: list[str] | None = None
        self.description: list[str] | None = None
        self.duration: tuple[str, list[str]] | None = None
        self.collect: list[str] | None = None


class _MediaParser(HTMLParser):
    """One pass over the content: media elements become attachments, the rest is kept
    verbatim as the caption."""

    def __init__(self, message_type: str) -> None:
        super().__init__(convert_charrefs=False)
        self.message_type = message_type
        self.attachments: list[Attachment] = []
        self.out: list[str] = []
        self._uri: _UriObjectState | None = None
        self._uri_depth = 0
        self._video: dict[str, str] | None = None
        self._video_text: list[str] = []
        self._video_depth = 0
        self.saw_media = False

    # caption output
    def _emit(self, text: str) -> None:
        if self._uri is None and self._video is None:
            self.out.append(text)

    def _collect_text(self, text: str) -> None:
        if self._uri is not None and self._uri.collect is not None:
            self._uri.collect.append(text)
        elif self._video is not None:
            self._video_text.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> None:
        amap = {k.lower(): (v or "") for k, v in attrs}
        if self._uri is not None:
            self._uri_child(tag, amap, closed)
            return
        if self._video is not None:
            if tag == "video" and not closed:
                self._video_depth += 1
            return
        if tag == "uriobject":
            self.saw_media = True
            if closed:
                self._finish_uri(_UriObjectState(amap))
            else:
                self._uri = _UriObjectState(amap)
                self._uri_depth = 1
            return
        itemtype = amap.get("itemtype", "").strip()
        if tag == "img" and itemtype.lower() == AMS_IMAGE_ITEMTYPE.lower():
            self.saw_media = True
            self._add(self._image(amap))
            return
        if tag == "video" and itemtype.lower() == AMS_VIDEO_ITEMTYPE.lower():
            self.saw_media = True
            if closed:
                self._add(self._make_video(amap, ""))
            else:
                self._video = amap
                self._video_text = []
                self._video_depth = 1
            return
        text = self.get_starttag_text()
        if text:
            self._emit(text)

    def _uri_child(self, tag: str, amap: dict[str, str], closed: bool) -> None:
        state = self._uri
        assert state is not None
        if tag == "uriobject":
            if not closed:
                self._uri_depth += 1
            return
        if tag == "originalname":
            state.original_name = amap.get("v") or state.original_name
        elif tag == "filesize":
            state.file_size = amap.get("v") or state.file_size
        elif tag == "meta":
            state.meta_name = amap.get("originalname") or state.meta_name
        elif tag in ("title", "description") and not closed:
            buf: list[str] = []
            if tag == "title":
                state.title = buf
            else:
                state.description = buf
            state.collect = buf
        elif tag in _DURATION_ELEMENTS:
            if amap.get("v"):
                state.duration = (tag, [amap["v"]])
            elif not closed:
                buf = []
                state.duration = (tag, buf)
                state.collect = buf

    def handle_endtag(self, tag: str) -> None:
        if self._uri is not None:
            if tag == "uriobject":
                self._uri_depth -= 1
                if self._uri_depth <= 0:
                    state, self._uri = self._uri, None
                    self._finish_uri(state)
            elif tag in ("title", "description", *_DURATION_ELEMENTS):
                self._uri.collect = None
            return
        if self._video is not None:
            if tag == "video":
                self._video_depth -= 1
                if self._video_depth <= 0:
                    amap, self._video = self._video, None
                    self._add(self._make_video(amap, "".join(self._video_text)))
            return
        self._emit(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self._collect_text(data)
        self._emit(data)

    def handle_entityref(self, name: str) -> None:
        self._collect_text(f"&{name};")
        self._emit(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self._collect_text(f"&#{name};")
        self._emit(f"&#{name};")

    def close(self) -> None:
        super().close()
        if self._uri is not None:  # never closed: take what we have
            state, self._uri = self._uri, None
            self._finish_uri(state)
        if self._video is not None:
            amap, self._video = self._video, None
            self._add(self._make_video(amap, "".join(self._video_text)))

    # builders of typed attachments (each may return None: skipped)
    def _add(self, attachment: Attachment | None) -> None:
        if attachment is not None:
            self.attachments.append(attachment)

    @staticmethod
    def _image(amap: Mapping[str, str]) -> AmsImage | None:
        src = _text(amap.get("src")) or _text(amap.get("target-src")) or ""
        ams = parse_ams_url(src)
        object_id = _object_id(amap.get("itemid"), amap.get("id"), ams.object_id if ams else None)
        if object_id is None or not src:
            return None
        return AmsImage(
            object_id=object_id,
            url=src,
            width=_int(amap.get("width")),
            height=_int(amap.get("height")),
            alt=_text(amap.get("alt")),
            ams=ams,
        )

    @staticmethod
    def _make_video(amap: Mapping[str, str], text: str) -> AmsVideo | None:
        src = _text(amap.get("src")) or ""
        ams = parse_ams_url(src)
        object_id = _object_id(amap.get("itemid"), ams.object_id if ams else None, amap.get("id"))
        if object_id is None or not src:
            return None
        duration = parse_iso_duration_ms(amap.get("data-duration"))
        if duration is None:
            duration = _duration_ms("duration", amap.get("duration"))
        return AmsVideo(
            object_id=object_id,
            url=src,
            width=_int(amap.get("width")),
            height=_int(amap.get("height")),
            duration_ms=duration,
            name=_text(html.unescape(text)),
            ams=ams,
        )

    def _finish_uri(self, state: _UriObjectState) -> None:
        try:
            self._add(_uri_object(state, self.message_type))
        except Exception:  # noqa: BLE001 - a malformed element is skipped, never fatal
            log.debug("Skipping an unreadable URIObject")


_MESSAGE_TYPE_KINDS = {
    "richtext/uriobject": MediaKind.IMAGE,
    "richtext/media_album": MediaKind.IMAGE,
    "richtext/media_video": MediaKind.VIDEO,
    "richtext/media_audiomsg": MediaKind.AUDIO,
    "richtext/media_genericfile": MediaKind.FILE,
}
_TYPE_KINDS = {
    "picture": MediaKind.IMAGE,
    "image": MediaKind.IMAGE,
    "video": MediaKind.VIDEO,
    "audio": MediaKind.AUDIO,
    "file": MediaKind.FILE,
}


def _uri_kind(raw_type: str, message_type: str) -> MediaKind | None:
    base = raw_type.split("/", 1)[0].split(".", 1)[0].strip().lower()
    if base in _TYPE_KINDS:
        return _TYPE_KINDS[base]
    if base:
        return None  # SWIFT.1 cards, recordings, …: not media the bridge can carry
    return _MESSAGE_TYPE_KINDS.get(message_type.lower())


def _uri_object(state: _UriObjectState, message_type: str) -> UriObject | None:
    attrs = state.attrs
    raw_type = (attrs.get("type") or "").strip()
    kind = _uri_kind(raw_type, message_type)
    if kind is None:
        return None
    uri = _text(attrs.get("uri")) or ""
    ams = parse_ams_url(uri)
    thumb = _text(attrs.get("url_thumbnail"))
    if ams is None and thumb:
        thumb_ams = parse_ams_url(thumb)
        if thumb_ams is not None:
            ams = AmsUrl(thumb_ams.base, thumb_ams.object_id, None, thumb_ams.tenant)
    object_id = _object_id(ams.object_id if ams else None, attrs.get("doc_id"), attrs.get("ams_id"))
    if object_id is None:
        return None
    if not uri:
        if ams is None:
            return None
        uri = ams.object_url
    duration: int | None = None
    for name in ("duration_ms", "durationms", "duration"):
        duration = _duration_ms(name, attrs.get(name))
        if duration is not None:
            break
    if duration is None and state.duration is not None:
        name, buf = state.duration
        duration = _duration_ms(name, html.unescape("".join(buf)))
    return UriObject(
        type=raw_type or kind.value,
        kind=kind,
        uri=uri,
        object_id=object_id,
        url_thumbnail=thumb,
        original_name=_text(state.original_name) or _text(state.meta_name),
        file_size=_int(state.file_size),
        width=_int(attrs.get("width")),
        height=_int(attrs.get("height")),
        duration_ms=duration,
        title=_text(html.unescape("".join(state.title))) if state.title is not None else None,
        description=(
            _text(html.unescape("".join(state.description)))
            if state.description is not None
            else None
        ),
        ams=ams,
    )


_EMPTY_BLOCK_RE = re.compile(
    r"<(p|div|span|readonly)\b[^>]*>(?:\s|&nbsp;|&#160;|<br\s*/?>)*</\1\s*>", re.IGNORECASE
)
_ONLY_BREAKS_RE = re.compile(r"^(?:\s|&nbsp;|&#160;|<br\s*/?>)*$", re.IGNORECASE)


def _clean_caption(text: str) -> str | None:
    previous = None
    while previous != text:
        previous = text
        text = _EMPTY_BLOCK_RE.sub("", text)
    text = text.strip()
    if not text or _ONLY_BREAKS_RE.match(text):
        return None
    return text


# -- SharePoint / OneDrive --------------------------------------------------------------
def _files_property(value: Any) -> list[Any]:
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, list) else []


def _http_url(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = URL(text)
    except (ValueError, TypeError):
        return None
    return text if parsed.scheme in ("http", "https") and parsed.host else None


def _sharepoint_file(raw: object) -> SharePointFile | None:
    if not isinstance(raw, Mapping):
        return None
    info = raw.get("fileInfo")
    info = info if isinstance(info, Mapping) else {}
    preview = raw.get("filePreview")
    preview = preview if isinstance(preview, Mapping) else {}
    name = _text(raw.get("fileName")) or _text(raw.get("title")) or _text(raw.get("name"))
    url = _http_url(raw.get("objectUrl")) or _http_url(info.get("fileUrl"))
    share = _http_url(info.get("shareUrl"))
    if name is None or (url is None and share is None):
        return None
    size = None
    for candidate in (raw.get("fileSize"), raw.get("size"), info.get("size")):
        size = _int(candidate)
        if size is not None:
            break
    return SharePointFile(
        file_name=name,
        url=url,
        share_url=share,
        size=size,
        file_type=_text(raw.get("fileType")) or _text(raw.get("type")),
        item_id=_text(raw.get("itemid")) or _text(raw.get("id")) or _text(info.get("itemId")),
        site_url=_http_url(info.get("siteUrl")) or _http_url(raw.get("baseUrl")),
        preview_url=_http_url(preview.get("previewUrl")),
    )


def sharepoint_files(files: Any) -> list[SharePointFile]:
    """``properties.files`` (a JSON string or a list) → files; bad entries are skipped."""
    result: list[SharePointFile] = []
    for raw in _files_property(files):
        try:
            parsed = _sharepoint_file(raw)
        except Exception:  # noqa: BLE001 - never fatal
            parsed = None
        if parsed is not None:
            result.append(parsed)
    return result


# -- entry points -----------------------------------------------------------------------
# What every file in a message's markup starts with (a start tag of one of these).
_MEDIA_TAG = re.compile(r"<(?:uriobject|img|video)", re.IGNORECASE)


def parse_content(
    message_type: str, content: str, properties: Mapping[str, Any] | None = None
) -> ParsedMedia:
    """Attachments and caption from raw message parts; never raises."""
    attachments: list[Attachment] = []
    caption: str | None = None
    mtype = message_type if isinstance(message_type, str) else ""
    if isinstance(content, str) and mtype.lower().startswith("richtext"):
        if len(content) <= _MAX_CONTENT and not _MEDIA_TAG.search(content):
            # No tag that could be a file (most messages): the parser would find none.
            caption = content if content.strip() else None
        elif len(content) <= _MAX_CONTENT:
            parser = _MediaParser(mtype)
            try:
                parser.feed(content)
                parser.close()
            except Exception:  # noqa: BLE001 - malformed markup must not break the message
                log.debug("Media markup could not be fully parsed")
            attachments.extend(parser.attachments)
            if parser.saw_media:
                caption = _clean_caption("".join(parser.out))
            else:
                caption = content if content.strip() else None
        else:
            caption = content
    elif isinstance(content, str):
        caption = content.strip() or None
    if properties:
        try:
            attachments.extend(sharepoint_files(properties.get("files")))
        except Exception:  # noqa: BLE001
            log.debug("properties.files could not be parsed")
    return ParsedMedia(tuple(attachments), caption)


def parse_media(message: Any) -> ParsedMedia:
    """``parse_content`` for a ``Message`` (anything with ``message_type``, ``content``,
    ``properties``)."""
    props = getattr(message, "properties", None)
    return parse_content(
        getattr(message, "message_type", ""),
        getattr(message, "content", ""),
        props if isinstance(props, Mapping) else None,
    )


def parse_attachments(message: Any) -> list[Attachment]:
    """The typed attachments of a message, in document order (SharePoint files last)."""
    return list(parse_media(message).attachments)


# -- outgoing messages ------------------------------------------------------------------
class MediaMessage(NamedTuple):
    """What to send: ``messagetype``, ``content`` and ``properties``."""

    message_type: str
    content: str
    properties: dict[str, str]


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _caption_block(caption_html: str | None) -> str:
    if caption_html is None or not caption_html.strip():
        return ""
    text = caption_html.strip()
    if re.match(r"^<(p|div|blockquote|pre|ul|ol|h[1-6]|table)\b", text, re.IGNORECASE):
        return text
    return f"<p>{text}</p>"


def _check(ams_base: str, object_id: str) -> str:
    if not is_object_id(object_id):
        raise ValueError("invalid AMS object id")
    base = ams_base.rstrip("/")
    try:
        parsed = URL(base)
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid AMS base URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("invalid AMS base URL")
    return base


def _dims(width: int | None, height: int | None) -> str:
    out = ""
    if width is not None and width > 0:
        out += f' width="{int(width)}"'
    if height is not None and height > 0:
        out += f' height="{int(height)}"'
    return out


def image_message(
    ams_base: str,
    object_id: str,
    *,
    width: int | None = None,
    height: int | None = None,
    alt: str = "image",
    caption_html: str | None = None,
    view: str = "imgo",
) -> MediaMessage:
    """An inline AMS image in a ``RichText/Html`` body, the Teams web client's shape."""
    base = _check(ams_base, object_id)
    if not is_view(view):
        raise ValueError("invalid view")
    src = _attr(f"{base}/v1/objects/{object_id}/views/{view}")
    oid = _attr(object_id)
    img = (
        f'<img itemscope="image" style="vertical-align:bottom" src="{src}" alt="{_attr(alt)}"'
        f' itemtype="{AMS_IMAGE_ITEMTYPE}"{_dims(width, height)} id="{oid}" itemid="{oid}"'
        f' href="{src}" target-src="{src}">'
    )
    return MediaMessage("RichText/Html", f"<p>{img}</p>{_caption_block(caption_html)}", {})


def _uri_object_xml(
    base: str,
    object_id: str,
    *,
    type_: str,
    link: str,
    link_text: str,
    filename: str,
    size: int | None,
    title: str | None,
    thumbnail_view: str,
    width: int | None = None,
    height: int | None = None,
    duration_ms: int | None = None,
) -> str:
    uri = f"{base}/v1/objects/{object_id}"
    attrs = (
        f'type="{_attr(type_)}" uri="{_attr(uri)}"'
        f' url_thumbnail="{_attr(f"{uri}/views/{thumbnail_view}")}" doc_id="{_attr(object_id)}"'
        f"{_dims(width, height)}"
    )
    if duration_ms is not None and duration_ms >= 0:
        attrs += f' duration_ms="{int(duration_ms)}"'
    parts = [f"<URIObject {attrs}>"]
    if title:
        parts.append(f"<Title>{html.escape(title, quote=False)}</Title>")
    parts.append(f'<a href="{_attr(link)}">{html.escape(link_text, quote=False)}</a>')
    parts.append(f'<OriginalName v="{_attr(filename)}"/>')
    if size is not None and size >= 0:
        parts.append(f'<FileSize v="{int(size)}"/>')
    parts.append("</URIObject>")
    return "".join(parts)


def _uri_message(message_type: str, xml: str, caption_html: str | None) -> MediaMessage:
    caption = _caption_block(caption_html)
    if caption:
        # A Skype-style media type carries only the URIObject; with a caption the object
        # goes inside an HTML body instead, as Teams bridges do.
        return MediaMessage("RichText/Html", xml + caption, {})
    return MediaMessage(message_type, xml, {})


def file_message(
    ams_base: str,
    object_id: str,
    *,
    filename: str,
    size: int | None,
    caption_html: str | None = None,
) -> MediaMessage:
    """A file card: ``RichText/Media_GenericFile`` with a ``File.1`` URIObject."""
    base = _check(ams_base, object_id)
    link = f"{SKYPE_DOC_LINK}&docid={object_id}"
    xml = _uri_object_xml(
        base,
        object_id,
        type_="File.1",
        link=link,
        link_text=link,
        filename=filename,
        size=size,
        title=filename,
        thumbnail_view="thumbnail",
    )
    return _uri_message("RichText/Media_GenericFile", xml, caption_html)


def video_message(
    ams_base: str,
    object_id: str,
    *,
    filename: str,
    size: int | None,
    width: int | None = None,
    height: int | None = None,
    duration_ms: int | None = None,
    caption_html: str | None = None,
) -> MediaMessage:
    """A video: ``RichText/Media_Video`` with a ``Video.1/Message.1`` URIObject.

    Chosen over inline ``AMSVideo`` because the object is uploaded as ``sharing/file`` to
    ``content/original``: the URIObject points at the object (any view, the original
    included) and carries the name and size, while ``AMSVideo`` needs the transcoded
    ``video`` view that only a ``sharing/videototranscode`` object gets.
    """
    base = _check(ams_base, object_id)
    link = f"{SKYPE_DOC_LINK}&vim={object_id}"
    xml = _uri_object_xml(
        base,
        object_id,
        type_="Video.1/Message.1",
        link=link,
        link_text=link,
        filename=filename,
        size=size,
        title=filename,
        thumbnail_view="thumbnail",
        width=width,
        height=height,
        duration_ms=duration_ms,
    )
    return _uri_message("RichText/Media_Video", xml, caption_html)


def voice_message(
    ams_base: str,
    object_id: str,
    *,
    filename: str,
    size: int | None,
    duration_ms: int | None,
    caption_html: str | None = None,
) -> MediaMessage:
    """A voice message: ``RichText/Media_AudioMsg`` with an ``Audio.1/Message.1`` URIObject."""
    base = _check(ams_base, object_id)
    xml = _uri_object_xml(
        base,
        object_id,
        type_="Audio.1/Message.1",
        link=f"{SKYPE_DOC_LINK}&am={object_id}",
        link_text="Play",
        filename=filename,
        size=size,
        title="Voice message",
        thumbnail_view="thumbnail",
        duration_ms=duration_ms,
    )
    return _uri_message("RichText/Media_AudioMsg", xml, caption_html)
