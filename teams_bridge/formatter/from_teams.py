"""Teams message content -> Matrix ``m.text`` content.

The Teams HTML is parsed into a bounded tree and rebuilt from scratch with only the
elements and attributes of the Matrix HTML subset; everything else is reduced to its text.
Teams-specific markup (mentions, reply quotes, emoji, code blocks, GIFs, AMS media) is
interpreted on the way.
"""

from __future__ import annotations

import re
from typing import Literal

from .html_tree import HTML_SPACE, Node, clean_input, parse_html
from .limits import ELLIPSIS, MAX_EVENT_TEXT_BYTES, MAX_TEXT_CHARS
from .models import InlineImage, MatrixMessage, MentionResolver, RoomMentionTest
from .render_html import render_html
from .render_plain import PILL_PREFIX, render_plain
from .teams_markup import ams_object_id, itemtype, parse_mentions_property
from .tidy import element, tidy
from .urls import link_label, safe_href

# Matrix HTML subset elements that are copied without attributes.
_PLAIN_ELEMENTS = frozenset(
    (
        "del h1 h2 h3 h4 h5 h6 blockquote p ul ol sup sub li u strong em strike hr "
        "br div table thead tbody tr th td caption details summary"
    ).split()
)
# Renamed to what every Matrix client styles (some style only <strong>/<em>, not <b>/<i>).
_RENAMED = {
    "b": "strong",
    "i": "em",
    "s": "del",
    "ins": "u",
    "quote": "blockquote",
    "tt": "code",
    "kbd": "code",
    "samp": "code",
}
# Unknown block-level elements keep their line structure as a <div>.
_AS_DIV = frozenset(
    (
        "section article header footer main nav aside figure figcaption address center "
        "dl dt dd fieldset form"
    ).split()
)
_DROPPED = frozenset({"mx-reply", "legacyquote", "video", "audio"})
# Only these mean "this message has formatting"; anything else needs formatted_body.
_UNFORMATTED = frozenset({"p", "div", "br"})
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_NUMBER = re.compile(r"[0-9]{1,9}")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.\-]{1,32}")
_MXC = re.compile(r"mxc://[A-Za-z0-9.\-:\[\]]+/[A-Za-z0-9_\-]+")
_GIF_SUFFIX = re.compile(r"\s*\(GIF Image\)\s*$", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\n\r\f\xa0]+")
_NO_LANGUAGE = frozenset({"was-manually-selected", "plaintext", "none"})
# One paragraph of plain printable ASCII words, single-spaced: most messages. It converts
# to its own text, so the parser is skipped (tests compare the two ways).
_ONE_PLAIN_PARAGRAPH = re.compile(r"<p>([!-%'-;=?-~]+(?: [!-%'-;=?-~]+)*)</p>")


def teams_to_matrix(
    html: str,
    *,
    message_type: str = "RichText/Html",
    mentions_property: str | list | None = None,
    resolve_mention: MentionResolver | None = None,
    is_room_mention: RoomMentionTest | None = None,
) -> MatrixMessage:
    """Convert a Teams message ``content``; never raises on any content.

    ``resolve_mention`` is called once per mentioned MRI; exceptions from it propagate. A
    mention ``is_room_mention`` accepts becomes the text ``@room`` (and ``mentions_room``),
    which is how Matrix says "everyone here".
    """
    kind = (message_type or "").strip().lower()
    if kind == "text":
        return _plain_message(html or "")
    plain = _ONE_PLAIN_PARAGRAPH.fullmatch(html) if html and len(html) < 4096 else None
    if plain is not None:
        return MatrixMessage(body=plain.group(1), formatted_body=None)
    root, truncated = parse_html(html or "", newlines_are_breaks=kind == "richtext")
    converter = _Converter(
        parse_mentions_property(mentions_property), resolve_mention, is_room_mention
    )
    items = tidy("#root", converter.children(root))
    body = render_plain(items)
    formatted: str | None = None
    if _has_formatting(items):
        formatted = render_html(items, _nbsp_to_space)
    body, formatted = _fit_event(body, formatted, truncated)
    return MatrixMessage(
        body=body,
        formatted_body=formatted,
        mentioned_user_ids=converter.mentioned,
        reply_to_message_id=converter.reply_to,
        images=converter.images,
        mentions_room=converter.mentions_room,
    )


def _plain_message(text: str) -> MatrixMessage:
    text, cut = clean_input(text, MAX_TEXT_CHARS)
    body, _ = _fit_event(text, None, cut)
    return MatrixMessage(body=body, formatted_body=None)


def _nbsp_to_space(text: str) -> str:
    return text.replace("\xa0", " ")


def _has_formatting(items: list[Node | str]) -> bool:
    for item in items:
        if isinstance(item, Node) and (
            item.tag not in _UNFORMATTED or _has_formatting(item.children)
        ):
            return True
    return False


def _fit_event(body: str, formatted: str | None, truncated: bool) -> tuple[str, str | None]:
    """Keep the event under the homeserver's size limit: formatting goes first."""
    if truncated and not body.endswith(ELLIPSIS):
        body += ELLIPSIS
    body_bytes = len(body.encode("utf-8"))
    if formatted is not None and body_bytes + len(formatted.encode("utf-8")) > MAX_EVENT_TEXT_BYTES:
        formatted = None
    if body_bytes > MAX_EVENT_TEXT_BYTES:
        cut = body.encode("utf-8")[: MAX_EVENT_TEXT_BYTES - 3].decode("utf-8", "ignore")
        body = cut + ELLIPSIS
    return body, formatted


def _text(node: Node) -> str:
    """Text of an element as one line: white space and no-break spaces collapsed."""
    return _SPACES.sub(" ", node.text()).strip()


class _Converter:
    """One message's conversion; collects mentions, the reply target and AMS media."""

    def __init__(
        self,
        mentions: dict[str, tuple[str, str]],
        resolve: MentionResolver | None,
        is_room: RoomMentionTest | None,
    ) -> None:
        self.mentions = mentions
        self.resolve = resolve
        self.is_room = is_room
        self.mentions_room = False
        self.mentioned: list[str] = []
        self.reply_to: str | None = None
        self.images: list[InlineImage] = []
        self._resolved: dict[str, tuple[str, str] | None] = {}

    def children(self, node: Node, in_link: bool = False) -> list[Node | str]:
        out: list[Node | str] = []
        items = node.children
        index = 0
        while index < len(items):
            item = items[index]
            index += 1
            if isinstance(item, str):
                out.append(item)
                continue
            mri = self._mention_mri(item)
            if mri is None:
                if itemtype(item) == "mention":
                    out.append(_text(item))  # a mention Teams did not describe
                else:
                    out.extend(self.convert(item, in_link))
                continue
            names = [_text(item)]
            # Teams splits one mention into a span per word, each with its own itemid. A span
            # repeating the first word starts a new mention of the same person instead.
            scan = index
            while scan < len(items):
                following = items[scan]
                if isinstance(following, str):
                    if following.strip(HTML_SPACE + "\xa0"):
                        break
                elif self._mention_mri(following) == mri and _text(following) != names[0]:
                    names.append(_text(following))
                    index = scan + 1
                else:
                    break
                scan += 1
            out.extend(self._mention(mri, " ".join(n for n in names if n), in_link))
        return out

    def _mention_mri(self, node: Node) -> str | None:
        if node.tag == "at":
            return node.attrs.get("id", "").strip() or None
        if itemtype(node) == "mention":
            found = self.mentions.get(node.attrs.get("itemid", "").strip())
            return found[0] if found else None
        return None

    def _mention_kind(self, mri: str) -> str:
        return next((kind for m, kind in self.mentions.values() if m == mri), "")

    def _mention(self, mri: str, name: str, in_link: bool) -> list[Node | str]:
        if self.is_room is not None and self.is_room(mri, self._mention_kind(mri)):
            self.mentions_room = True
            return ["@room"]
        if mri not in self._resolved:
            self._resolved[mri] = self.resolve(mri) if self.resolve else None
        found = self._resolved[mri]
        if not found or in_link:
            return [name] if name else []
        user_id, display_name = found
        if user_id not in self.mentioned:
            self.mentioned.append(user_id)
        label = display_name.replace("\x00", "") or name or user_id
        return [Node("a", {"href": PILL_PREFIX + user_id}, [label])]

    def convert(self, node: Node, in_link: bool) -> list[Node | str]:
        tag = node.tag
        kind = itemtype(node)
        if tag in _DROPPED:
            if tag == "video":
                self._media(node, "video")
            return []
        if tag == "blockquote" and kind == "reply":
            item_id = node.attrs.get("itemid", "").strip()
            if item_id and self.reply_to is None:
                self.reply_to = item_id
                return []
        if tag == "p" and kind == "codeblockeditor":
            return []
        if tag == "img":
            return self._image(node, kind, in_link)
        if tag == "readonly" and kind in ("giphy", "sticker"):
            return self._gif(node, kind, in_link)
        if tag == "pre":
            return self._code_block(node)
        if tag == "a":
            return self._link(node, in_link)
        tag = _RENAMED.get(tag, tag)
        if tag == "code":
            text = node.text().replace("\xa0", " ")
            return [Node("code", {}, [text])] if text else []
        if tag in ("span", "font"):
            return self._styled(node, tag, in_link)
        children = self.children(node, in_link)
        if tag in _AS_DIV:
            tag = "div"
        if tag not in _PLAIN_ELEMENTS:
            return children
        attrs: dict[str, str] = {}
        if tag == "ol":
            start = node.attrs.get("start", "").strip()
            if _NUMBER.fullmatch(start) and int(start) != 1:
                attrs["start"] = str(int(start))
        if tag in ("p", "div") and _only_no_break_space(children):
            children = [Node("br")]  # Teams' empty line: keep it visible in Matrix too
        return element(tag, attrs, children)

    def _styled(self, node: Node, tag: str, in_link: bool) -> list[Node | str]:
        attrs: dict[str, str] = {}
        names = ("data-mx-color", "data-mx-bg-color") + (("color",) if tag == "font" else ())
        for name in names:
            value = node.attrs.get(name, "").strip()
            if _COLOR.fullmatch(value):
                attrs[name] = value
        if tag == "span" and "data-mx-spoiler" in node.attrs:
            attrs["data-mx-spoiler"] = node.attrs["data-mx-spoiler"][:200]
        children = self.children(node, in_link)
        return element(tag, attrs, children) if attrs else children

    def _link(self, node: Node, in_link: bool) -> list[Node | str]:
        href = safe_href(node.attrs.get("href"))
        children = self.children(node, in_link=True)
        if in_link or href is None:
            return children
        children = tidy("a", children)
        if not any(isinstance(c, Node) or c.strip(HTML_SPACE + "\xa0") for c in children):
            children = [link_label(href)]
        return [Node("a", {"href": href}, children)]

    def _image(self, node: Node, kind: str, in_link: bool) -> list[Node | str]:
        alt = _SPACES.sub(" ", node.attrs.get("alt", "")).strip()
        if kind == "emoji":
            return [alt or node.attrs.get("title", "").strip()]
        if kind in ("giphy", "sticker"):
            return self._gif_link(kind, node.attrs.get("title") or alt, node, in_link)
        src = node.attrs.get("src", "").strip()
        if kind == "amsimage" or ams_object_id(src):
            self._media(node, "image")
            return []
        if _MXC.fullmatch(src):
            attrs = {"src": src}
            for name in ("alt", "title"):
                if node.attrs.get(name):
                    attrs[name] = node.attrs[name][:500]
            for name in ("width", "height"):
                value = node.attrs.get(name, "").strip()
                if _NUMBER.fullmatch(value) and len(value) < 6:
                    attrs[name] = value
            return [Node("img", attrs)]
        return [alt] if alt else []

    def _media(self, node: Node, kind: Literal["image", "video"]) -> None:
        src = node.attrs.get("src", "").strip()
        if not src:
            return
        item_id = node.attrs.get("itemid") or node.attrs.get("id") or ams_object_id(src)
        alt = node.attrs.get("alt") or (_text(node) if kind == "video" else "") or None
        self.images.append(InlineImage(src=src, item_id=item_id or None, alt=alt, kind=kind))

    def _gif(self, node: Node, kind: str, in_link: bool) -> list[Node | str]:
        image = _first_image(node)
        title = node.attrs.get("title") or (image.attrs.get("alt", "") if image else "")
        return self._gif_link(kind, title, image, in_link)

    def _gif_link(
        self, kind: str, title: str, image: Node | None, in_link: bool
    ) -> list[Node | str]:
        label = "GIF" if kind == "giphy" else "Sticker"
        title = _SPACES.sub(" ", _GIF_SUFFIX.sub("", title)).strip()
        text = f"{label}: {title}" if title else label
        href = safe_href(image.attrs.get("src")) if image else None
        if href is None or in_link:
            return [text]
        return [Node("a", {"href": href}, [text])]

    def _code_block(self, node: Node) -> list[Node | str]:
        code = node.text().replace("\xa0", " ")
        if code.startswith("\n"):
            code = code[1:]  # HTML ignores a newline right after <pre>
        code = code.rstrip("\n")
        if not code.strip():
            return []
        attrs = {}
        language = _language(node)
        if language:
            attrs["class"] = f"language-{language}"
        return [Node("pre", {}, [Node("code", attrs, [code])])]


def _language(pre: Node) -> str | None:
    candidates = [pre] + [c for c in pre.children if isinstance(c, Node) and c.tag == "code"]
    for node in candidates:
        for token in node.attrs.get("class", "").split():
            if not token.startswith("language-"):
                continue
            name = token[len("language-") :]
            if name.lower() not in _NO_LANGUAGE and _LANGUAGE.fullmatch(name):
                return name
    return None


def _first_image(node: Node) -> Node | None:
    for child in node.children:
        if isinstance(child, Node):
            if child.tag == "img":
                return child
            found = _first_image(child)
            if found:
                return found
    return None


def _only_no_break_space(children: list[Node | str]) -> bool:
    text = "".join(c for c in children if isinstance(c, str))
    return (
        len(text) > 0
        and all(isinstance(c, str) for c in children)
        and "\xa0" in text
        and not text.strip(HTML_SPACE + "\xa0")
    )
