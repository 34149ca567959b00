"""Middle tier profile lookup (teams-protocol.md §8).

Enterprise callers present a Bearer spaces token; the consumer path also takes a Skype
token. `consumer_middle_tier="refuse"` answers 403 to personal accounts, as the real
consumer middle tier often does, so clients must fall back to `imdisplayname`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .auth import bearer_value, skype_value
from .context import SimContext, ctx
from .errors import json_error, unauthorized
from .model import User
from .tokens import IssuedToken
from .util import compact_json


def profile_json(user: User, viewer: User) -> dict[str, Any]:
    personal = user.kind == "personal"
    guest = not personal and user.tenant_id != viewer.tenant_id
    return {
        "mri": user.mri,
        "objectId": user.object_id,
        "displayName": user.display_name,
        "givenName": user.given_name,
        "surname": user.surname,
        "email": user.email,
        "userPrincipalName": user.email,
        "jobTitle": "",
        "department": "",
        "userLocation": "",
        "userType": "Guest" if guest else "Member",
        "type": "TFLUser" if personal else ("Federated" if guest else "ADUser"),
        "tenantName": "" if personal else "Contoso",
        "companyName": "",
        "isShortProfile": True,
        "accountEnabled": True,
    }


def _caller(request: web.Request, c: SimContext) -> IssuedToken | None:
    access = c.tokens.valid(bearer_value(request), "access")
    if access is not None:
        return access
    return c.tokens.valid(skype_value(request), "skype")


async def fetch_short_profile(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    viewer = c.world.users[caller.mri]
    if viewer.kind == "personal" and c.options.consumer_middle_tier == "refuse":
        return json_error(403, "Forbidden", "The user is not authorized to call this API.")
    if (
        viewer.kind == "work"
        and caller.kind == "access"
        and caller.audience != "https://api.spaces.skype.com"
    ):
        return json_error(401, "InvalidAudience", "The access token has the wrong audience.")
    try:
        mris = json.loads(await request.text() or "[]")
    except ValueError:
        return json_error(400, "BadRequest", "body must be a JSON array of MRIs")
    if not isinstance(mris, list):
        return json_error(400, "BadRequest", "body must be a JSON array of MRIs")
    found = [c.world.users[m] for m in mris if isinstance(m, str) and m in c.world.users]
    body = {
        "type": "Microsoft.SkypeSpaces.MiddleTier.Models.IUserIdentity",
        c.options.middle_tier_value_key: [profile_json(u, viewer) for u in found],
    }
    return web.Response(text=compact_json(body), content_type="application/json")


def add_routes(app: web.Application) -> None:
    for path in (
        "/api/mt/part/{partition}/beta/users/fetchShortProfile",
        "/api/mt/beta/users/fetchShortProfile",
        "/api/mt/{region}/beta/users/fetchShortProfile",
    ):
        app.router.add_post(path, fetch_short_profile)
