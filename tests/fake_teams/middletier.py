"""Middle tier profile lookup and profile pictures (teams-protocol.md §8).

Enterprise callers present a Bearer spaces token; the consumer path also takes a Skype
token. `consumer_middle_tier="refuse"` answers 403 to personal accounts, as the real
consumer middle tier often does, so clients must fall back to `imdisplayname`.

Pictures (`profilepicturev2`) are fetched the way the web client's `<img>` tags fetch them:
the spaces token travels in an `authtoken` cookie, not in a header.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .auth import bearer_value, skype_value
from .context import SimContext, ctx
from .errors import json_error, unauthorized
from .model import User
from .tokens import SPACES_RESOURCE, IssuedToken
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


async def search_users(request: web.Request) -> web.Response:
    """`searchV2`: the body is the raw search text; people of the caller's own kind (and,
    for work accounts, of the caller's own tenant: it searches the directory) whose display
    name or address contains it (case-insensitive), the caller excluded."""
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    viewer = c.world.users[caller.mri]
    if viewer.kind == "personal" and c.options.consumer_middle_tier == "refuse":
        return json_error(403, "Forbidden", "The user is not authorized to call this API.")
    text = (await request.text()).strip().lower()
    if not text:
        return json_error(400, "BadRequest", "the body must be the search text")
    found = [
        u
        for u in c.world.users.values()
        if u.mri != viewer.mri
        and u.kind == viewer.kind
        and (u.kind != "work" or u.tenant_id == viewer.tenant_id)
        and (text in u.display_name.lower() or text in u.email.lower())
    ]
    body = {"value": [profile_json(u, viewer) for u in found]}
    return web.Response(text=compact_json(body), content_type="application/json")


async def search_consumer(request: web.Request) -> web.Response:
    """Consumer `searchUsers`: `{"emails": [...], "phones": [...]}` → each address mapped to
    `{"userProfiles": [...]}` with the personal accounts of exactly that address (§8; a
    single source describes it, so the shape beyond `userProfiles[].mri` is this
    simulator's guess). Work accounts are not found this way."""
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    viewer = c.world.users[caller.mri]
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        return json_error(400, "BadRequest", "the body must be JSON")
    emails = body.get("emails") if isinstance(body, dict) else None
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        return json_error(400, "BadRequest", "emails must be a list of strings")
    answer: dict[str, Any] = {}
    for email in emails:
        found = [
            u
            for u in c.world.users.values()
            if u.kind == "personal" and u.email.lower() == email.strip().lower()
        ]
        answer[email] = {"userProfiles": [profile_json(u, viewer) for u in found]}
    return web.Response(text=compact_json(answer), content_type="application/json")


PICTURE_SIZES = {"HR64x64", "HR96x96", "HR128x128", "HR196x196"}
_AUTHTOKEN_PREFIX = "Bearer="


def cookie_token(request: web.Request) -> str | None:
    """The token in `Cookie: authtoken=Bearer=<token>&Origin=https://teams.microsoft.com`.

    Read by hand: the value holds `=` and `&`, which a strict cookie parser may refuse.
    """
    for header in request.headers.getall("Cookie", []):
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "authtoken" and value.startswith(_AUTHTOKEN_PREFIX):
                token = value[len(_AUTHTOKEN_PREFIX) :].partition("&")[0].strip()
                return token or None
    return None


async def profile_picture(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = c.tokens.valid(cookie_token(request), "access")
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    viewer = c.world.users[caller.mri]
    if viewer.kind == "work" and caller.audience != SPACES_RESOURCE:
        return json_error(401, "InvalidAudience", "The access token has the wrong audience.")
    if request.match_info["oid"] != viewer.object_id:
        return json_error(403, "Forbidden", "The user id in the path is not the caller's.")
    if request.query.get("size", "HR96x96") not in PICTURE_SIZES:
        return json_error(400, "BadRequest", "unknown picture size")
    user = c.world.users.get(request.match_info["mri"])
    if user is None or user.picture is None:
        return json_error(404, "NotFound", "The user has no profile picture.")
    return web.Response(
        body=user.picture,
        content_type=user.picture_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )


def add_routes(app: web.Application) -> None:
    for base in ("/api/mt/part/{partition}/beta", "/api/mt/beta", "/api/mt/{region}/beta"):
        app.router.add_post(f"{base}/users/fetchShortProfile", fetch_short_profile)
        app.router.add_post(f"{base}/users/searchV2", search_users)
        app.router.add_post(f"{base}/users/searchUsers", search_consumer)
        app.router.add_get(f"{base}/users/{{oid}}/profilepicturev2/{{mri}}", profile_picture)
