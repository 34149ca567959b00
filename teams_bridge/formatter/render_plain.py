"""Plain text for a clean Matrix tree, keeping its line structure.

Paragraphs and other blocks start new lines, ``<br>`` is a newline, list items become
``- `` / ``1. `` lines (nested ones indented), quotes ``> `` lines, code blocks keep their
lines verbatim and links keep their target when it differs from the text.
"""

from __future__ import annotations

import re

from .html_tree import HTML_SPACE, Node
from .tidy import BLOCK_TAGS
from .urls import link_label

_COLLAPSE = re.compile(r"[ \t\n\r\f]+")
_NUMBER = re.compile(r"[0-9]{1,9}")
PILL_PREFIX = "https://matrix.to/#/"


def render_plain(items: list[Node | str]) -> str:
    lines = _lines_of(items)
    start, end = 0, len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return "\n".join(lines[start:end])


def _collapse(text: str) -> str:
    return _COLLAPSE.sub(" ", text)


def _lines_of(items: list[Node | str]) -> list[str]:
    walker = _Lines()
    walker.walk(items)
    walker.flush()
    return walker.lines


class _Lines:
    """Collects inline text into ``run`` and completed lines into ``lines``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.run: list[str] = []

    def walk(self, items: list[Node | str]) -> None:
        for item in items:
            if isinstance(item, str):
                self.run.append(_collapse(item))
            elif item.tag == "br":
                self.run.append("\n")
            elif item.tag in BLOCK_TAGS:
                self.flush()
                self.lines.extend(_block_lines(item))
            elif item.tag == "img":
                self.run.append(_collapse(item.attrs.get("alt", "")))
            else:
                self.walk(item.children)
                if item.tag == "a":
                    self.run.append(_link_suffix(item))

    def flush(self) -> None:
        text = "".join(self.run)
        self.run.clear()
        if "\n" not in text and not text.strip(HTML_SPACE):
            return
        hard = text.split("\n")
        if len(hard) > 1 and not hard[-1].strip(HTML_SPACE):
            hard.pop()  # a trailing <br> ends the line; it does not start another
        for line in hard:
            self.lines.append(line.strip(HTML_SPACE).replace("\xa0", " ").rstrip(" "))


def _link_suffix(link: Node) -> str:
    href = link.attrs.get("href", "")
    if not href or href.startswith(PILL_PREFIX + "@"):
        return ""
    label = _collapse(link.text()).strip()
    if label in (href, link_label(href)):
        return ""
    return f" ({href})"


def _block_lines(node: Node) -> list[str]:
    tag = node.tag
    if tag == "hr":
        return ["---"]
    if tag == "pre":
        code = node.text().rstrip("\n")
        return code.split("\n") if code else []
    if tag == "blockquote":
        return [f"> {line}" if line else ">" for line in _lines_of(node.children)]
    if tag in ("ul", "ol"):
        return _list_lines(node)
    if tag == "tr":
        cells = [
            " ".join(_lines_of(cell.children)) for cell in node.children if isinstance(cell, Node)
        ]
        return [" | ".join(cells)] if cells else []
    return _lines_of(node.children)


def _list_lines(node: Node) -> list[str]:
    ordered = node.tag == "ol"
    start = node.attrs.get("start", "1")
    number = int(start) if ordered and _NUMBER.fullmatch(start) else 1
    lines: list[str] = []
    for child in node.children:
        if isinstance(child, str):
            if child.strip(HTML_SPACE):
                lines.append(_collapse(child).strip())
            continue
        if child.tag != "li":
            lines.extend(_block_lines(child) if child.tag in BLOCK_TAGS else _lines_of([child]))
            continue
        marker = f"{number}. " if ordered else "- "
        number += 1
        inner = _lines_of(child.children) or [""]
        lines.append((marker + inner[0]).rstrip(" "))
        pad = " " * len(marker)
        lines.extend(pad + line if line else "" for line in inner[1:])
    return lines
