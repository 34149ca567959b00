"""Relay mode: in a room where a logged-in user said `set-relay`, messages of Matrix users
without a Teams login are posted through that user's account, attributed with the
configured templates (`bridge.relay.message_formats`, mautrix's format: `$sender_displayname`,
`$sender_username`, `$sender_mxid`, `$message`)."""

from __future__ import annotations

import html
from string import Template
from typing import Any

MEDIA = ("m.image", "m.file", "m.video", "m.audio")


def relay_content(
    content: dict[str, Any], formats: dict[str, str], *, mxid: str, displayname: str
) -> dict[str, Any]:
    """The content to post for a relayed message: its text put into the template for its
    msgtype (as HTML); for a file the template is the caption and the file keeps its name.
    An edit's new content is formatted the same way."""
    out = dict(content)
    if isinstance(out.get("m.new_content"), dict):
        out["m.new_content"] = relay_content(
            out["m.new_content"], formats, mxid=mxid, displayname=displayname
        )
    msgtype = str(out.get("msgtype") or "m.text")
    template = formats.get(msgtype) or formats.get("m.text") or "$sender_displayname: $message"
    if out.get("format") == "org.matrix.custom.html" and isinstance(out.get("formatted_body"), str):
        message = out["formatted_body"]
    else:
        message = html.escape(str(out.get("body") or "")).replace("\n", "<br/>")
    localpart = mxid[1:].split(":", 1)[0] if mxid.startswith("@") else mxid
    values = {
        "sender_displayname": html.escape(displayname),
        "sender_username": html.escape(localpart),
        "sender_mxid": html.escape(mxid),
        "message": message,
    }
    formatted = Template(template).safe_substitute(values)
    if msgtype in MEDIA:
        out.setdefault("filename", out.get("body") or "file")
    out["format"] = "org.matrix.custom.html"
    out["formatted_body"] = formatted
    out["body"] = _plain(formatted)
    return out


def _plain(formatted: str) -> str:
    """A plain text version of a template's HTML (tags dropped)."""
    out, inside = [], False
    for ch in formatted:
        if ch == "<":
            inside = True
        elif ch == ">":
            inside = False
        elif not inside:
            out.append(ch)
    return html.unescape("".join(out))
