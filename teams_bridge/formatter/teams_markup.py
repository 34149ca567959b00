"""Teams' own markup: schema itemtypes, the mentions property, the reply quote."""

from __future__ import annotations

import json
import re

from .html_tree import Node

SCHEMA = "http://schema.skype.com/"
MENTION_TYPE = SCHEMA + "Mention"
REPLY_TYPE = SCHEMA + "Reply"
CODE_BLOCK_TYPE = SCHEMA + "CodeBlockEditor"
MAX_MENTIONS_PROPERTY_CHARS = 200_000
_AMS_OBJECT = re.compile(r"/v1/(?:[^/]+/)?objects/([^/?#]+)")


def itemtype(node: Node) -> str:
    """The lowercase name of a ``schema.skype.com`` itemtype (``"mention"``), else ``""``."""
    value = node.attrs.get("itemtype", "").strip().lower()
    if "schema.skype.com/" not in value:
        return ""
    return value.rstrip("/").rsplit("/", 1)[-1]


def ams_object_id(src: str) -> str | None:
    """The AMS object id in an AMS view URL (``…/v1/objects/<id>/views/imgo``), else None."""
    match = _AMS_OBJECT.search(src)
    return match.group(1) if match else None


def parse_mentions_property(value: str | list | None) -> dict[str, tuple[str, str]]:
    """Map each mention ``itemid`` to its MRI and lowercase ``mentionType`` (``""`` when
    absent); tolerant of every malformed shape."""
    if value is None:
        return {}
    if isinstance(value, str):
        if len(value) > MAX_MENTIONS_PROPERTY_CHARS:
            return {}
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return {}
    result: dict[str, tuple[str, str]] = {}
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            continue
        mri = entry.get("mri")
        if not isinstance(mri, str) or not mri.strip():
            continue
        key = entry.get("itemid", index)
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            key = index
        kind = entry.get("mentionType")
        kind = kind.strip().lower() if isinstance(kind, str) else ""
        result.setdefault(str(key).strip(), (mri.strip(), kind))
    return result


def mention_entry(item_id: int, mri: str, display_name: str, mention_type: str = "person") -> dict:
    """One element of ``properties.mentions``."""
    return {
        "@type": MENTION_TYPE,
        "itemid": item_id,
        "mri": mri,
        "mentionType": mention_type,
        "displayName": display_name,
    }


def mention_node(item_id: int, display_name: str) -> Node:
    return Node(
        "span",
        {"itemscope": "", "itemtype": MENTION_TYPE, "itemid": str(item_id)},
        [display_name],
    )
