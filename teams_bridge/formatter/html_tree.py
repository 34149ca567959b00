"""A bounded element tree built with :mod:`html.parser`.

Both directions parse untrusted HTML, so the tree caps nesting depth, element count and
text length. Every later walk may then recurse freely. The input is defused first because
``html.parser`` rescans the rest of the buffer for every unterminated construct, which is
quadratic on inputs such as ``"<!--" * n`` or ``"<a" * n``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .limits import ELLIPSIS, MAX_DEPTH, MAX_ELEMENTS, MAX_INPUT_CHARS, MAX_TEXT_CHARS

VOID_TAGS = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)
# Never visible: dropped together with everything inside them.
DROPPED_TAGS = frozenset(
    (
        "script style template head title noscript iframe object frameset svg math textarea select"
    ).split()
)
# Start tags that end an open <p>, as browsers do.
_CLOSES_P = frozenset(
    (
        "address article aside blockquote details div dl fieldset figcaption figure "
        "footer form h1 h2 h3 h4 h5 h6 header hr main nav ol p pre section table ul"
    ).split()
)

HTML_SPACE = " \t\n\r\f"
_SURROGATES = re.compile("[\ud800-\udfff]")
_TAG_OPEN = re.compile(r"</?[A-Za-z]")
_RAW_TEXT_OPEN = re.compile(r"<(script|style)(?=[\t\n\r\f />]|$)", re.IGNORECASE)
_RAW_TEXT_CLOSE = {
    "script": re.compile(r"</script", re.IGNORECASE),
    "style": re.compile(r"</style", re.IGNORECASE),
}


class Node:
    """An element: lowercase tag, attributes (first occurrence wins) and children."""

    __slots__ = ("tag", "attrs", "children")

    def __init__(
        self,
        tag: str,
        attrs: dict[str, str] | None = None,
        children: list[Node | str] | None = None,
    ) -> None:
        self.tag = tag
        self.attrs: dict[str, str] = attrs if attrs is not None else {}
        self.children: list[Node | str] = children if children is not None else []

    def __repr__(self) -> str:
        return f"Node({self.tag!r}, {self.attrs!r}, {self.children!r})"

    def text(self) -> str:
        """The concatenated text inside this element (``<br>`` as a newline)."""
        parts: list[str] = []
        _collect_text(self, parts)
        return "".join(parts)


def _collect_text(node: Node, parts: list[str]) -> None:
    for child in node.children:
        if isinstance(child, str):
            parts.append(child)
        elif child.tag == "br":
            parts.append("\n")
        else:
            _collect_text(child, parts)


def clean_input(text: str, limit: int = MAX_INPUT_CHARS) -> tuple[str, bool]:
    """Cut to ``limit``, normalise newlines, drop NULs and lone surrogates.

    Returns the text and whether it was cut.
    """
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return _SURROGATES.sub("\ufffd", text), cut


def defuse(src: str) -> str:
    """Rewrite ``src`` so that html.parser only meets constructs it can finish quickly.

    Comments, declarations and processing instructions are removed, ``<script>`` and
    ``<style>`` elements are removed with their content, and a ``<`` that does not open a
    tag closed by ``>`` before the next ``<`` becomes ``&lt;``. One pass, linear time.
    """
    out: list[str] = []
    n = len(src)
    start = 0  # first character not yet copied to out
    next_gt = -1  # first ">" after the current "<", reused while still ahead of it
    pos = src.find("<")
    while pos != -1:
        if src.startswith("<!--", pos):
            out.append(src[start:pos])
            end = src.find("-->", pos + 4)
            if end == -1:
                return "".join(out)
            start = end + 3
            pos = src.find("<", start)
            continue
        if src.startswith("<!", pos) or src.startswith("<?", pos):
            out.append(src[start:pos])
            end = src.find(">", pos + 2)
            if end == -1:
                return "".join(out)
            start = end + 1
            pos = src.find("<", start)
            continue
        following = src.find("<", pos + 1)
        if next_gt < pos:
            found = src.find(">", pos + 1)
            next_gt = found if found != -1 else n
        closed = next_gt < n and (following == -1 or next_gt < following)
        if not (closed and _TAG_OPEN.match(src, pos)):
            out.append(src[start:pos])
            out.append("&lt;")
            start = pos + 1
            pos = following
            continue
        raw = _RAW_TEXT_OPEN.match(src, pos)
        if raw:
            out.append(src[start:pos])
            close = _RAW_TEXT_CLOSE[raw.group(1).lower()].search(src, next_gt + 1)
            end = src.find(">", close.end()) if close else -1
            if end == -1:
                return "".join(out)
            start = end + 1
            pos = src.find("<", start)
            continue
        pos = following
    out.append(src[start:])
    return "".join(out)


class _TreeBuilder(HTMLParser):
    """Builds a :class:`Node` tree within the limits; never raises on bad markup."""

    def __init__(self, *, newlines_are_breaks: bool, text_limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.truncated = False
        self._stack: list[Node] = [self.root]
        self._skip_tag: str | None = None
        self._skip_depth = 0
        self._elements = 0
        self._text_left = text_limit
        self._newlines_are_breaks = newlines_are_breaks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth += 1
            return
        if tag in DROPPED_TAGS:
            self._skip_tag, self._skip_depth = tag, 1
            return
        if self._elements >= MAX_ELEMENTS:
            return
        void = tag in VOID_TAGS
        if not void and len(self._stack) > MAX_DEPTH:
            return
        self._close_implied(tag)
        node = Node(tag, _attr_dict(attrs))
        self._elements += 1
        self._stack[-1].children.append(node)
        if not void:
            self._stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        for index in range(len(self._stack) - 1, 0, -1):
            if self._stack[index].tag == tag:
                del self._stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._skip_tag is not None or not data:
            return
        if self._text_left <= 0:
            self.truncated = True
            return
        if len(data) > self._text_left:
            data = data[: self._text_left] + ELLIPSIS
            self.truncated = True
            self._text_left = 0
        else:
            self._text_left -= len(data)
        children = self._stack[-1].children
        if not self._newlines_are_breaks:
            children.append(data)
            return
        for index, line in enumerate(data.split("\n")):
            if index:
                children.append(Node("br"))
            if line:
                children.append(line)

    def _close_implied(self, tag: str) -> None:
        stack = self._stack
        if tag in _CLOSES_P and stack[-1].tag == "p":
            stack.pop()
        if tag == "li":
            for index in range(len(stack) - 1, 0, -1):
                if stack[index].tag in ("ul", "ol"):
                    break
                if stack[index].tag == "li":
                    del stack[index:]
                    break


def _attr_dict(attrs: list[tuple[str, str | None]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in attrs:
        if name not in result:
            result[name] = value or ""
    return result


def parse_html(
    html: str, *, newlines_are_breaks: bool = False, text_limit: int = MAX_TEXT_CHARS
) -> tuple[Node, bool]:
    """Parse untrusted HTML into a bounded tree; returns the root and whether it was cut.

    ``newlines_are_breaks`` is for legacy Skype ``RichText``, where a newline in the text
    is a line break rather than white space.
    """
    text, cut = clean_input(html)
    builder = _TreeBuilder(newlines_are_breaks=newlines_are_breaks, text_limit=text_limit)
    builder.feed(defuse(text))
    builder.close()
    truncated = builder.truncated
    if cut and not truncated:
        builder.root.children.append(ELLIPSIS)
        truncated = True
    return builder.root, truncated
