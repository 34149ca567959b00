"""Matrix ``m.text`` content -> Teams ``RichText/Html`` content.

Sync on purpose: the conversion is pure CPU work on one small event, and the only lookup
(``resolve_user``) is injected by the caller, who can pre-fetch what it needs.
"""

from __future__ import annotations

import re
import uuid

from mautrix.types import MatrixURI

from .html_tree import HTML_SPACE, Node, clean_input, parse_html
from .limits import ELLIPSIS, MAX_TEXT_CHARS
from .models import RoomMention, TeamsContent, UserResolver
from .render_html import render_html
from .teams_markup import CODE_BLOCK_TYPE, REPLY_TYPE, mention_entry, mention_node
from .tidy import element, has_visible_text, is_block, tidy
from .urls import link_label, safe_href

_SAME = frozenset(
    (
        "b strong i em u s sup sub p div blockquote ul ol li h1 h2 h3 h4 h5 h6 hr br "
        "table thead tbody tr th td"
    ).split()
)
_RENAMED = {"del": "s", "strike": "s", "ins": "u", "details": "div", "summary": "p"}
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.\-]{1,32}")
_SPACE_RUN = re.compile(r" {2,}")
_SPACES = re.compile(r"[ \t\n\r\f\xa0]+")
_CODE_BLOCK_IDS = uuid.UUID("6f0d3c52-5d1e-4f57-9a43-6c1b7e0e2a10")
_AT_ROOM = re.compile(r"(?<![\w@.])@room(?![\w-])")
PREVIEW_CHARS = 200


def matrix_to_teams(
    body: str,
    formatted_body: str | None = None,
    *,
    resolve_user: UserResolver | None = None,
    mentioned_user_ids: list[str] | None = None,
    room_mention: RoomMention | None = None,
) -> TeamsContent:
    """Convert a Matrix message to Teams HTML plus its ``properties.mentions`` entries.

    A pill becomes a Teams mention when ``resolve_user`` maps its user to an MRI and, if
    ``mentioned_user_ids`` (the event's ``m.mentions``) is given, the user is listed there:
    a pill left out of ``m.mentions`` is not meant to notify anyone. With ``room_mention``
    (the caller decided the message mentions the whole room) each ``@room`` becomes that
    conversation-wide Teams mention; without any ``@room`` in the text, one goes first.
    """
    converter = _Converter(resolve_user, mentioned_user_ids, room_mention)
    if formatted_body and formatted_body.strip(HTML_SPACE):
        root, _ = parse_html(formatted_body)
        items = _wrap_inline_runs(tidy("#root", converter.children(root)))
        if has_visible_text(items):
            return converter.finish(items)
        converter = _Converter(resolve_user, mentioned_user_ids, room_mention)
    text, cut = clean_input(body or "", MAX_TEXT_CHARS)
    if cut:
        text += ELLIPSIS
    if not text.strip(HTML_SPACE) and room_mention is None:
        return TeamsContent(html="", mentions=[])
    lines: list[Node | str] = []
    for item in _lines_with_breaks(text.split("\n")):
        lines.extend(converter.text(item) if isinstance(item, str) else [item])
    return converter.finish([Node("p", {}, lines)])


def build_reply_quote(message_id: str, sender_mri: str, sender_name: str, preview_text: str) -> str:
    """The quote block Teams shows above a reply in a chat; prepend it to the content."""
    preview = _SPACES.sub(" ", clean_input(preview_text or "", 10 * PREVIEW_CHARS)[0]).strip()
    if len(preview) > PREVIEW_CHARS:
        preview = preview[:PREVIEW_CHARS].rstrip() + ELLIPSIS
    quote = Node(
        "blockquote",
        {"itemscope": "", "itemtype": REPLY_TYPE, "itemid": message_id},
        [
            Node("strong", {"itemprop": "mri", "itemid": sender_mri}, [sender_name]),
            Node("span", {"itemprop": "time", "itemid": message_id}),
            Node("p", {"itemprop": "preview"}, [preview]),
        ],
    )
    return render_html([quote])


def _nbsp_entity(text: str) -> str:
    return text.replace("\xa0", "&nbsp;")


def _keep_spaces(line: str) -> str:
    """Protect indentation and runs of spaces, which Teams would collapse, with &nbsp;."""
    line = line.expandtabs(4)
    rest = line.lstrip(" ")
    indent = "\xa0" * (len(line) - len(rest))
    return indent + _SPACE_RUN.sub(lambda m: "\xa0" * (len(m.group()) - 1) + " ", rest)


def _lines_with_breaks(lines: list[str]) -> list[Node | str]:
    children: list[Node | str] = []
    for index, line in enumerate(lines):
        if index:
            children.append(Node("br"))
        if line:
            children.append(_keep_spaces(line))
    return children


def _wrap_inline_runs(items: list[Node | str]) -> list[Node | str]:
    """Top-level text and inline elements go into paragraphs, as the Teams editor does."""
    result: list[Node | str] = []
    run: list[Node | str] = []
    for item in items:
        if is_block(item):
            result.extend(_paragraph(run))
            run = []
            result.append(item)
        else:
            run.append(item)
    result.extend(_paragraph(run))
    return result


def _paragraph(run: list[Node | str]) -> list[Node | str]:
    if has_visible_text(run) or any(isinstance(item, Node) for item in run):
        return element("p", {}, run)
    return []


def _matrix_user(href: str) -> str | None:
    if not (href.startswith("https://matrix.to/") or href.startswith("matrix:")):
        return None
    try:
        uri = MatrixURI.try_parse(href)
    except Exception:  # yarl may reject hostile URLs with errors other than ValueError
        return None
    return str(uri.user_id) if uri and uri.user_id else None


class _Converter:
    """One event's conversion; numbers the Teams mentions it creates."""

    def __init__(
        self,
        resolve: UserResolver | None,
        mentioned: list[str] | None,
        room: RoomMention | None = None,
    ) -> None:
        self.resolve = resolve
        self.allowed = set(mentioned) if mentioned is not None else None
        self.room = room
        self.room_mentioned = False
        self.mentions: list[dict] = []
        self._code_blocks = 0

    def children(self, node: Node, in_link: bool = False) -> list[Node | str]:
        out: list[Node | str] = []
        for child in node.children:
            if isinstance(child, str):
                out.extend([child] if in_link else self.text(child))
            else:
                out.extend(self.convert(child, in_link))
        return out

    def text(self, text: str) -> list[Node | str]:
        """Running text, with each ``@room`` made the conversation-wide mention."""
        if self.room is None or "@room" not in text:
            return [text]
        out: list[Node | str] = []
        parts = _AT_ROOM.split(text)
        for index, part in enumerate(parts):
            if index:
                out.append(self._room_node())
            if part:
                out.append(part)
        return out

    def _room_node(self) -> Node:
        assert self.room is not None
        self.room_mentioned = True
        item_id = len(self.mentions)
        name = self.room.display_name
        self.mentions.append(mention_entry(item_id, self.room.mri, name, self.room.mention_type))
        return mention_node(item_id, name)

    def finish(self, items: list[Node | str]) -> TeamsContent:
        """The converted message; a room mention with no ``@room`` in the text goes first."""
        if self.room is not None and not self.room_mentioned:
            lead: list[Node | str] = [self._room_node(), " "]
            first = items[0] if items else None
            if isinstance(first, Node) and first.tag == "p":
                first.children[:0] = lead
            else:
                items = element("p", {}, lead) + items
        return TeamsContent(render_html(items, _nbsp_entity), self.mentions)

    def convert(self, node: Node, in_link: bool) -> list[Node | str]:
        tag = node.tag
        if tag == "mx-reply":
            return []
        if tag == "a":
            return self._link(node, in_link)
        if tag == "pre":
            return self._code_block(node)
        if tag == "code":
            text = node.text()
            return [Node("code", {}, [text])] if text else []
        if tag == "img":
            label = node.attrs.get("alt") or node.attrs.get("title") or ""
            return [_SPACES.sub(" ", label).strip()] if label.strip() else []
        children = self.children(node, in_link)
        tag = _RENAMED.get(tag, tag)
        if tag in _SAME:
            return element(tag, {}, children)
        return children

    def _link(self, node: Node, in_link: bool) -> list[Node | str]:
        href = node.attrs.get("href", "").strip()
        user_id = _matrix_user(href)
        if user_id is not None:
            return self._pill(user_id, node, in_link)
        safe = safe_href(href)
        children = self.children(node, in_link=True)
        if in_link or safe is None:
            return children
        children = tidy("a", children)
        if not has_visible_text(children):
            children = [link_label(safe)]
        return [Node("a", {"href": safe}, children)]

    def _pill(self, user_id: str, node: Node, in_link: bool) -> list[Node | str]:
        text = _SPACES.sub(" ", node.text()).strip()
        wanted = self.allowed is None or user_id in self.allowed
        found = self.resolve(user_id) if self.resolve and wanted and not in_link else None
        if not found:
            return [text or user_id]
        mri, name = found
        name = _SPACES.sub(" ", name.replace("\x00", "")).strip() or text or mri
        item_id = len(self.mentions)
        self.mentions.append(mention_entry(item_id, mri, name))
        return [mention_node(item_id, name)]

    def _code_block(self, node: Node) -> list[Node | str]:
        code = node.text()
        if code.startswith("\n"):
            code = code[1:]  # HTML ignores a newline right after <pre>
        code = code.rstrip("\n")
        if not code.strip(HTML_SPACE):
            return []
        language = _language(node) or "plaintext"
        self._code_blocks += 1
        # Teams pairs the marker paragraph and the <pre> by id; derive it from the content
        # so the same message always converts to the same HTML.
        key = f"{self._code_blocks}:{language}:{code}"
        block_id = f"codeBlockEditor-{uuid.uuid5(_CODE_BLOCK_IDS, key)}"
        marker = Node("p", {"itemtype": CODE_BLOCK_TYPE, "id": f"x_{block_id}"}, ["\xa0"])
        pre = Node(
            "pre",
            {"class": f"language-{language}", "itemid": block_id},
            [Node("code", {}, _lines_with_breaks(code.split("\n")))],
        )
        return [marker, pre]


def _language(pre: Node) -> str | None:
    candidates = [c for c in pre.children if isinstance(c, Node) and c.tag == "code"] + [pre]
    for node in candidates:
        for token in node.attrs.get("class", "").split():
            if token.startswith("language-") and _LANGUAGE.fullmatch(token[9:]):
                return token[9:]
    return None
