"""Parse the small XML documents Teams puts in message content, defensively.

Content comes from other users and the service, so: no DTDs (no entity definitions,
hence no entity expansion attacks and no external entities), a size cap, and any
failure is ``None`` rather than an exception. HTML entity names (``&nbsp;``) and bare
ampersands, which the service sometimes lets through, are repaired first.
"""

from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

MAX_XML_CHARS = 256 * 1024
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)?")
_FORBIDDEN_RE = re.compile(r"<!\s*(doctype|entity|element|attlist)", re.IGNORECASE)


def _repair_entity(match: re.Match[str]) -> str:
    ref = match.group(1)
    if ref is None:
        return "&amp;"  # a bare ampersand
    if ref.startswith("#"):
        return match.group(0)
    name = ref[:-1]
    if name in _XML_ENTITIES:
        return match.group(0)
    text = html.entities.html5.get(ref)
    if text is None:
        return "&amp;" + ref
    return "".join(f"&#{ord(ch)};" for ch in text)


def parse_xml(text: object) -> ET.Element | None:
    """The root element of ``text``, or ``None`` if it is not safe, well-formed XML."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text.startswith("<") or len(text) > MAX_XML_CHARS:
        return None
    if _FORBIDDEN_RE.search(text):
        return None
    text = _ENTITY_RE.sub(_repair_entity, text)
    try:
        parser = ET.XMLParser()
        parser.feed(text)
        return parser.close()
    except (ET.ParseError, ValueError, RecursionError):
        return None


def local_name(element: ET.Element) -> str:
    """The tag without a namespace, lower-cased (Teams is not consistent about case)."""
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1].lower()


def children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children called ``name`` (case-insensitive)."""
    for child in element:
        if local_name(child) == name:
            yield child


def child(element: ET.Element, *names: str) -> ET.Element | None:
    """The first direct child with one of ``names``."""
    for name in names:
        for found in children(element, name):
            return found
    return None


def child_text(element: ET.Element, *names: str) -> str | None:
    """The stripped text of the first such child that has text."""
    for name in names:
        for found in children(element, name):
            text = (found.text or "").strip()
            if text:
                return text
    return None


def find_all(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Descendants (and the element itself) called ``name``."""
    for node in element.iter():
        if local_name(node) == name:
            yield node


def attr(element: ET.Element, *names: str) -> str | None:
    """An attribute value by any of ``names`` (case-insensitive), stripped, non-empty."""
    wanted = {n.lower() for n in names}
    for key, value in element.attrib.items():
        if key.rsplit("}", 1)[-1].lower() in wanted and value.strip():
            return value.strip()
    return None
