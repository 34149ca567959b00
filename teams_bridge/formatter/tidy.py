"""Clean-up shared by both directions once a tree holds only allowed elements."""

from __future__ import annotations

from .html_tree import HTML_SPACE, Node

BLOCK_TAGS = frozenset(
    (
        "p div h1 h2 h3 h4 h5 h6 blockquote ul ol li pre hr table thead tbody tr th td "
        "caption details summary"
    ).split()
)
# Containers where text between children is never shown.
_STRUCTURAL = frozenset({"ul", "ol", "table", "thead", "tbody", "tr"})
# Elements that mean something even with no content.
_KEEP_EMPTY = frozenset({"br", "hr", "img", "li", "td", "th"})


def is_blank(text: str) -> bool:
    """Only collapsible white space (a no-break space is content)."""
    return not text.strip(HTML_SPACE)


def is_block(item: Node | str | None) -> bool:
    return isinstance(item, Node) and item.tag in BLOCK_TAGS


def tidy(tag: str, children: list[Node | str]) -> list[Node | str]:
    """Merge adjacent text and drop white space that no renderer would show.

    Without this, the newlines Teams puts between ``</p>`` and ``<p>`` would travel into
    Matrix HTML and into list and table markup.
    """
    merged: list[Node | str] = []
    for child in children:
        if isinstance(child, str):
            if not child:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += child
                continue
        merged.append(child)
    if tag in _STRUCTURAL:
        return [c for c in merged if not (isinstance(c, str) and is_blank(c))]
    block_container = tag == "#root" or tag in BLOCK_TAGS
    result: list[Node | str] = []
    last = len(merged) - 1
    for index, child in enumerate(merged):
        if isinstance(child, str) and is_blank(child):
            before = merged[index - 1] if index > 0 else None
            after = merged[index + 1] if index < last else None
            at_edge = before is None or after is None
            if (block_container and at_edge) or is_block(before) or is_block(after):
                continue
        result.append(child)
    return result


def element(tag: str, attrs: dict[str, str], children: list[Node | str]) -> list[Node | str]:
    """Build a tidied element, or nothing when it would be empty and meaningless."""
    kept = tidy(tag, children)
    if not kept and tag not in _KEEP_EMPTY:
        return []
    return [Node(tag, attrs, kept)]


def has_visible_text(items: list[Node | str]) -> bool:
    for item in items:
        if isinstance(item, str):
            if item.strip(HTML_SPACE + "\xa0"):
                return True
        elif item.tag == "img" or has_visible_text(item.children):
            return True
    return False
