"""Resolving the caller of a request from the credentials the real clients send (§2.5)."""

from __future__ import annotations

from aiohttp import web

from .tokens import IssuedToken, TokenStore


def bearer_value(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def skype_value(request: web.Request) -> str | None:
    """`Authentication: skypetoken=<t>` or `X-Skypetoken: <t>`; None if neither was sent."""
    direct = request.headers.get("X-Skypetoken")
    if direct:
        return direct.strip()
    header = request.headers.get("Authentication", "")
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "skypetoken" and value:
            return value.strip()
    return None


def skype_sent(request: web.Request) -> bool:
    return "X-Skypetoken" in request.headers or "Authentication" in request.headers


def chat_caller(request: web.Request, tokens: TokenStore) -> IssuedToken | None:
    """Skype token first; the AFD path also takes a Bearer ic3/spaces token alone."""
    if skype_sent(request):
        return tokens.valid(skype_value(request), "skype")
    access = tokens.valid(bearer_value(request), "access")
    if access is not None and access.audience in (
        "https://ic3.teams.office.com",
        "https://api.spaces.skype.com",
    ):
        return access
    return None
