"""Skype-token exchange (teams-protocol.md §2.4): enterprise and consumer response shapes.

With `authz_shapes="swapped"` each endpoint answers with the other one's shape, because
both shapes have been seen on both endpoints.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .auth import bearer_value
from .context import SimContext, ctx
from .errors import json_error
from .ids import skype_id
from .model import User
from .tokens import CONSUMER_SPACES_SCOPE, SPACES_RESOURCE
from .util import compact_json


def region_gtms(base: str, personal: bool) -> dict[str, str]:
    """Service discovery: every URL points back at this server."""
    if personal:
        return {
            "chatService": f"{base}/api/chatsvc/consumer",
            "chatServiceAfd": f"{base}/api/chatsvc/consumer",
            "middleTier": f"{base}/api/mt",
            "ams": base,
            "amsV2": base,
            "unifiedPresence": base,
            "search": f"{base}/search",
        }
    return {
        "chatService": base,
        "chatServiceAfd": f"{base}/api/chatsvc/emea",
        "chatSvcAggAfd": f"{base}/api/csa/emea",
        "chatServiceAggregator": f"{base}/api/csa/emea",
        "middleTier": f"{base}/api/mt/part/emea-03",
        "ams": base,
        "amsV2": base,
        "mediaStream": base,
        "unifiedPresence": base,
        "userProfileService": f"{base}/api/ups/emea",
        "teamsAndChannelsService": f"{base}/api/tcs/emea",
        "search": f"{base}/search",
        "urlp": f"{base}/urlp",
    }


def enterprise_shape(c: SimContext, user: User, token: str) -> dict[str, Any]:
    return {
        "tokens": {
            "skypeToken": token,
            "expiresIn": c.options.skype_token_lifetime,
            "tokenType": "SkypeToken",
        },
        "region": "emea",
        "partition": "emea03",
        "userRegion": "emea",
        "userPartition": "emea03",
        "regionGtms": region_gtms(c.base_url, user.kind == "personal"),
        "regionSettings": {
            "isUnifiedPresenceEnabled": True,
            "isOutOfOfficeIntegrationEnabled": True,
        },
        "licenseDetails": {
            "isFreemium": user.kind == "personal",
            "isTrial": False,
            "isAdvComms": False,
        },
    }


def consumer_shape(c: SimContext, user: User, token: str) -> dict[str, Any]:
    return {
        "skypeToken": {
            "skypetoken": token,
            "expiresIn": c.options.skype_token_lifetime,
            "skypeid": skype_id(user.mri),
            "signinname": user.email,
            "isBusinessTenant": user.kind == "work",
        },
        "regionGtms": region_gtms(c.base_url, user.kind == "personal"),
    }


def _answer(c: SimContext, user: User, native_enterprise: bool) -> web.Response:
    token = c.tokens.issue_skype(user).value
    enterprise = native_enterprise != (c.options.authz_shapes == "swapped")
    body = enterprise_shape(c, user, token) if enterprise else consumer_shape(c, user, token)
    return web.Response(text=compact_json(body), content_type="application/json")


async def enterprise(request: web.Request) -> web.Response:
    c = ctx(request)
    access = c.tokens.valid(bearer_value(request), "access")
    if access is None:
        return json_error(
            401,
            "InvalidAuthenticationToken",
            "Authentication failed: the access token is missing, invalid or expired.",
        )
    user = c.world.users[access.mri]
    if user.kind != "work":
        return json_error(
            403, "GuestUserNotRedeemed", "Guest user OID is missing. User is not redeemed."
        )
    if access.audience != SPACES_RESOURCE:
        return json_error(
            401, "InvalidAudience", "The access token has the wrong audience for this service."
        )
    return _answer(c, user, native_enterprise=True)


async def consumer(request: web.Request) -> web.Response:
    c = ctx(request)
    access = c.tokens.valid(bearer_value(request), "access")
    if access is None:
        return json_error(
            401,
            "InvalidAuthenticationToken",
            "Authentication failed: the access token is missing, invalid or expired.",
        )
    user = c.world.users[access.mri]
    if user.kind != "personal" or access.audience != CONSUMER_SPACES_SCOPE:
        return json_error(
            401, "InvalidAudience", "This token cannot be exchanged for a consumer Skype token."
        )
    return _answer(c, user, native_enterprise=False)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/authsvc/v1.0/authz", enterprise)
    app.router.add_post("/api/auth/v1.0/authz/consumer", consumer)
