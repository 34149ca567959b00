"""Presence service (teams-protocol.md §6): availability of many users per request, the own
availability and note, and push subscriptions whose changes travel over Trouter.

Routes sit under `/v1/...` (the `presence.teams.microsoft.com` form, which `regionGtms`
`unifiedPresence` points at) and under `/ups/{region}/v1/...` (the UPS form).

Subscriptions are delivered to the `trouterUri` the subscriber gave (its `surl` plus
`unifiedPresenceService`), on the live connection that `surl` belongs to; the registrar is
not involved. Right after a subscription the subscribed users' current presence is pushed as
one snapshot (`isSnapshot: true`), as the service floods after (re)subscribing; each later
change is pushed alone (`isSnapshot: false`). A push whose connection is gone is dropped:
presence is a state, and a client re-subscribes after reconnecting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from aiohttp import web

from .auth import bearer_value, skype_value
from .context import SimContext, ctx
from .errors import json_error, unauthorized
from .tokens import IssuedToken
from .util import compact_json, iso_ms3, now_ms

if TYPE_CHECKING:
    from .trouter import TrouterHub

# What `forceavailability` accepts (the choices of the Teams status menu).
FORCEABLE = ("Available", "Busy", "DoNotDisturb", "BeRightBack", "Away", "Offline")
# Everything the service reports (§6); the control API may set any of these.
AVAILABILITIES = (
    "Available",
    "AvailableIdle",
    "Away",
    "BeRightBack",
    "Busy",
    "BusyIdle",
    "DoNotDisturb",
    "Offline",
    "PresenceUnknown",
)
# The activity the service reports along with a forced availability.
_ACTIVITY_OF = {
    "Available": "Available",
    "AvailableIdle": "Available",
    "Busy": "Busy",
    "BusyIdle": "Busy",
    "DoNotDisturb": "DoNotDisturb",
    "BeRightBack": "BeRightBack",
    "Away": "Away",
    "Offline": "OffWork",
    "PresenceUnknown": "PresenceUnknown",
}
MAX_GET_BATCH = 650
MAX_SUBSCRIBE_BATCH = 650
FAR_EXPIRY = "9999-12-31T00:00:00.000Z"


@dataclass
class UserPresence:
    availability: str = "Offline"
    activity: str = "OffWork"
    note: str = ""
    note_time: int = 0
    device_type: str = "Desktop"
    last_active: int = field(default_factory=now_ms)
    forced: str | None = None
    version: int = 1

    @property
    def etag(self) -> str:
        return f"A{self.version:010d}"

    def wire(self) -> dict[str, Any]:
        """The `presence` object of a getpresence answer or a push."""
        body: dict[str, Any] = {
            "sourceNetwork": "SameEnterprise",
            "availability": self.availability,
            "activity": self.activity,
            "deviceType": self.device_type,
            "lastActiveTime": iso_ms3(self.last_active),
            "capabilities": [],
        }
        if self.note:
            body["note"] = {
                "message": self.note,
                "publishTime": iso_ms3(self.note_time),
                "expiry": FAR_EXPIRY,
            }
        if self.forced:
            body["forcedAvailability"] = {
                "availability": self.forced,
                "activity": _ACTIVITY_OF.get(self.forced, self.forced),
                "expiry": FAR_EXPIRY,
                "publishTime": iso_ms3(self.last_active),
            }
        return body


@dataclass
class Subscription:
    subscriber: str
    endpoint_id: str
    trouter_uri: str
    mris: set[str] = field(default_factory=set)

    def describe(self) -> dict[str, Any]:
        return {
            "subscriber": self.subscriber,
            "endpoint_id": self.endpoint_id,
            "trouter_uri": self.trouter_uri,
            "mris": sorted(self.mris),
        }


class PresenceService:
    """Everyone's presence, the subscriptions, and the pushes."""

    def __init__(self, c: SimContext) -> None:
        self.c = c
        self.states: dict[str, UserPresence] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.pushes = 0

    def state(self, mri: str) -> UserPresence:
        state = self.states.get(mri)
        if state is None:
            state = self.states[mri] = UserPresence()
        return state

    def entry(self, mri: str) -> dict[str, Any]:
        if mri not in self.c.world.users:
            return {
                "mri": mri,
                "etag": "",
                "etagMatch": False,
                "status": 20000,
                "source": "ups",
                "presence": {"availability": "PresenceUnknown", "activity": "PresenceUnknown"},
            }
        state = self.state(mri)
        return {
            "mri": mri,
            "etag": state.etag,
            "etagMatch": False,
            "status": 20000,
            "source": "ups",
            "presence": state.wire(),
        }

    def change(
        self,
        mri: str,
        *,
        availability: str | None = None,
        activity: str | None = None,
        note: str | None = None,
        device_type: str | None = None,
        forced: bool = False,
    ) -> UserPresence:
        state = self.state(mri)
        if availability is not None:
            if availability not in AVAILABILITIES:
                raise ValueError(f"unknown availability {availability!r}")
            state.availability = availability
            state.activity = activity or _ACTIVITY_OF[availability]
            state.forced = availability if forced else None
        elif activity is not None:
            state.activity = activity
        if note is not None:
            state.note = note
            state.note_time = now_ms()
        if device_type is not None:
            state.device_type = device_type
        state.last_active = now_ms()
        state.version += 1
        self.publish(mri)
        return state

    # -- subscriptions and pushes --------------------------------------------------
    def subscribe(
        self,
        subscriber: str,
        endpoint_id: str,
        trouter_uri: str,
        add: list[str],
        remove: list[str],
        purge: bool,
    ) -> None:
        key = (subscriber, endpoint_id)
        sub = self.subscriptions.get(key)
        if sub is None or purge:
            sub = self.subscriptions[key] = Subscription(subscriber, endpoint_id, trouter_uri)
        sub.trouter_uri = trouter_uri
        sub.mris.difference_update(remove)
        sub.mris.update(add)
        if add:
            # The snapshot covers what this request named, new or not (a re-subscription
            # after a reconnect must bring the current state).
            self._push(sub, [self.entry(m) for m in dict.fromkeys(add)], snapshot=True)

    def publish(self, mri: str) -> None:
        entry = None
        for sub in list(self.subscriptions.values()):
            if mri in sub.mris:
                entry = entry or self.entry(mri)
                self._push(sub, [entry], snapshot=False)

    def _push(self, sub: Subscription, entries: list[dict[str, Any]], snapshot: bool) -> None:
        hub: TrouterHub | None = self.c.trouter
        if hub is None:
            return
        path = urlparse(sub.trouter_uri).path or sub.trouter_uri
        conn = hub.connection_for_path(path)
        if conn is None or conn.mri != sub.subscriber:
            return
        url = path
        absolute = self.c.options.delivery_urls == "absolute" or (
            self.c.options.delivery_urls == "random" and self.c.rng.random() < 0.5
        )
        if absolute:
            url = self.c.base_url + path
        body = compact_json({"presence": entries, "isSnapshot": snapshot})
        self.pushes += 1
        conn.request(url, body, self.c.variant(self.c.options.gzip_bodies))

    def describe(self) -> list[dict[str, Any]]:
        return [sub.describe() for sub in self.subscriptions.values()]


def service_of(c: SimContext) -> PresenceService:
    assert c.presence is not None
    return c.presence


def _caller(request: web.Request, c: SimContext) -> IssuedToken | None:
    """`X-Skypetoken`, or a Bearer access token (a presence, spaces or ic3 token)."""
    skype = c.tokens.valid(skype_value(request), "skype")
    if skype is not None:
        return skype
    return c.tokens.valid(bearer_value(request), "access")


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text() or "null")
    except ValueError:
        return None


def _answer(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=compact_json(value), content_type="application/json")


async def get_presence(request: web.Request) -> web.Response:
    c = ctx(request)
    if _caller(request, c) is None:
        return unauthorized(c.options.error_bodies, c.rng)
    body = await _json_body(request)
    if not isinstance(body, list) or not all(
        isinstance(e, dict) and isinstance(e.get("mri"), str) for e in body
    ):
        return json_error(400, "BadRequest", 'body must be a JSON array of {"mri": …}')
    if len(body) > MAX_GET_BATCH:
        return json_error(400, "BadRequest", f"at most {MAX_GET_BATCH} users per request")
    service = service_of(c)
    out = []
    for wanted in body:
        entry = service.entry(wanted["mri"])
        if entry["etag"] and wanted.get("etag") == entry["etag"]:
            entry = {k: v for k, v in entry.items() if k != "presence"}
            entry["etagMatch"] = True
        out.append(entry)
    return _answer(out)


async def subscribe(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("trouterUri"), str):
        return json_error(400, "BadRequest", "trouterUri is required")
    adds = body.get("subscriptionsToAdd") or []
    removes = body.get("subscriptionsToRemove") or []
    if not isinstance(adds, list) or not isinstance(removes, list):
        return json_error(400, "BadRequest", "subscriptionsToAdd/Remove must be arrays")
    add = [e["mri"] for e in adds if isinstance(e, dict) and isinstance(e.get("mri"), str)]
    remove = [
        e["mri"] if isinstance(e, dict) else e
        for e in removes
        if isinstance(e, str) or (isinstance(e, dict) and isinstance(e.get("mri"), str))
    ]
    if len(add) + len(remove) > MAX_SUBSCRIBE_BATCH:
        return json_error(400, "BadRequest", f"at most {MAX_SUBSCRIBE_BATCH} changes per request")
    service_of(c).subscribe(
        caller.mri,
        request.match_info["epid"],
        body["trouterUri"],
        add,
        remove,
        bool(body.get("shouldPurgePreviousSubscriptions")),
    )
    return _answer({"subscriptionsAdded": len(add), "subscriptionsRemoved": len(remove)})


async def force_availability(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    body = await _json_body(request)
    availability = body.get("availability") if isinstance(body, dict) else None
    if availability not in FORCEABLE:
        return json_error(400, "BadRequest", "availability is not one that can be forced")
    service_of(c).change(caller.mri, availability=availability, forced=True)
    return web.Response(status=200)


async def publish_note(request: web.Request) -> web.Response:
    c = ctx(request)
    caller = _caller(request, c)
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    body = await _json_body(request)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or len(message) > 10_000:
        return json_error(400, "BadRequest", "message must be a string")
    service_of(c).change(caller.mri, note=message)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    for prefix in ("", "/ups/{region}"):
        for slash in ("", "/"):
            app.router.add_post(f"{prefix}/v1/presence/getpresence{slash}", get_presence)
            app.router.add_put(f"{prefix}/v1/me/forceavailability{slash}", force_availability)
            app.router.add_put(f"{prefix}/v1/me/publishnote{slash}", publish_note)
        app.router.add_post(f"{prefix}/v1/pubsub/subscriptions/{{epid}}", subscribe)
