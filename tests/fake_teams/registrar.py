"""Registrar (teams-protocol.md §5.6): which Trouter paths get a user's pushes, until when."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .auth import bearer_value, skype_value
from .context import SimContext, ctx
from .errors import json_error, unauthorized
from .tokens import IssuedToken
from .trouter import Registration, hub_of, registration_paths

_BEARER_AUDIENCES = ("https://api.spaces.skype.com", "https://ic3.teams.office.com")


def _caller(request: web.Request, c: SimContext) -> IssuedToken | None:
    """X-Skypetoken and/or Bearer (spaces or ic3); either one valid is enough."""
    skype = c.tokens.valid(skype_value(request), "skype")
    if skype is not None:
        return skype
    access = c.tokens.valid(bearer_value(request), "access")
    if access is not None and (
        access.audience in _BEARER_AUDIENCES or c.world.users[access.mri].kind == "personal"
    ):
        return access
    return None


async def register(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    try:
        body = json.loads(await request.text())
    except ValueError:
        return json_error(400, "BadRequest", "body is not JSON")
    if not isinstance(body, dict) or not body.get("registrationId"):
        return json_error(400, "BadRequest", "registrationId is required")
    paths = registration_paths(body)
    if not paths:
        return json_error(400, "BadRequest", "transports.TROUTER[].path is required")
    raw_desc = body.get("clientDescription")
    desc: dict[str, Any] = raw_desc if isinstance(raw_desc, dict) else {}
    hub_of(request).register(
        [
            Registration(
                mri=caller.mri,
                registration_id=str(body["registrationId"]),
                app_id=str(desc.get("appId", "")),
                template_key=str(desc.get("templateKey", "")),
                path=path,
                ttl=ttl,
                expires_at=time.time() + ttl,
            )
            for path, ttl in paths
        ]
    )
    return web.Response(status=202)


async def unregister(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    hub_of(request).unregister(caller.mri, request.match_info["rid"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    for version in ("V2", "v2"):
        app.router.add_post(f"/registrar/prod/{version}/registrations", register)
        app.router.add_delete(f"/registrar/prod/{version}/registrations/{{rid}}", unregister)
