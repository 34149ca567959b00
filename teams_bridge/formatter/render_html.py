"""Serialise a clean tree; every text and attribute value is escaped here."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from .html_tree import VOID_TAGS, Node


def render_html(items: list[Node | str], text_filter: Callable[[str], str] | None = None) -> str:
    """HTML for ``items``; ``text_filter`` post-processes escaped text (e.g. for &nbsp;)."""
    out: list[str] = []
    _emit(items, out, text_filter)
    return "".join(out)


def _emit(
    items: list[Node | str], out: list[str], text_filter: Callable[[str], str] | None
) -> None:
    for item in items:
        if isinstance(item, str):
            text = escape(item, quote=False)
            out.append(text_filter(text) if text_filter else text)
            continue
        out.append("<" + item.tag)
        for name, value in item.attrs.items():
            out.append(f' {name}="{escape(value, quote=True)}"')
        out.append(">")
        if item.tag in VOID_TAGS:
            continue
        _emit(item.children, out, text_filter)
        out.append(f"</{item.tag}>")
