"""Error answers in the several shapes the real services use (teams-protocol.md §10)."""

from __future__ import annotations

import random

from aiohttp import web

from .util import compact_json

_TEXT_401 = "The provided 'skypetoken' ticket failed authentication"
_HTML_401 = (
    "<!DOCTYPE html><html><head><title>401 - Unauthorized</title></head><body>"
    "<h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2></body></html>"
)


def json_error(status: int, code: str | int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=compact_json({"errorCode": code, "message": message}),
        content_type="application/json",
    )


def unauthorized(style: str, rng: random.Random) -> web.Response:
    """A 401 whose body is JSON, plain text or an IIS HTML page: clients must not assume JSON."""
    if style == "random":
        style = rng.choice(["json", "text", "html"])
    if style == "json":
        return json_error(401, 911, "Authentication failed.")
    if style == "html":
        return web.Response(status=401, text=_HTML_401, content_type="text/html")
    return web.Response(status=401, text=_TEXT_401, content_type="text/plain")
