"""`/_control/...`: JSON routes that let a test act as any Teams user and inspect the service.

No authentication: the server only ever listens on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .context import SimContext, ctx
from .endpoints import endpoints_for
from .presence import service_of as presence_service
from .recorder import Fault, Recorder
from .render import message_json, thread_json
from .trouter import hub_of
from .util import compact_json, iso_ms7, now_ms
from .world import SimError

RECORDER: web.AppKey[Recorder] = web.AppKey("fake_teams_recorder", Recorder)
Route = Callable[[web.Request, SimContext, dict[str, Any]], Awaitable[Any]]


def route(fn: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Parse the JSON body, run, and turn the result or a SimError into a JSON answer."""

    async def wrapped(request: web.Request) -> web.Response:
        text = await request.text()
        try:
            body = json.loads(text) if text.strip() else {}
        except ValueError:
            return _json({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "body must be a JSON object"}, 400)
        try:
            result = await fn(request, ctx(request), body)
        except SimError as err:
            return _json({"error": err.message, "code": err.code}, err.status)
        except (KeyError, TypeError, ValueError) as err:
            return _json({"error": f"bad request: {err}"}, 400)
        if isinstance(result, web.Response):
            return result
        return _json(result)

    return wrapped


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=compact_json(value), content_type="application/json")


def _rest_base(c: SimContext) -> str:
    return f"{c.base_url}/v1"


# -- users -----------------------------------------------------------------------------
async def create_user(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    user = c.world.create_user(
        str(body["display_name"]),
        body.get("kind", "work"),
        body.get("email"),
        body.get("tenant_id"),
    )
    return user.public()


async def list_users(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return [u.public() for u in c.world.users.values()]


async def revoke(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    user = c.world.user(request.match_info["mri"])
    return {"revoked": c.tokens.revoke_user(user.mri, "refresh")}


async def expire_skype(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    user = c.world.user(request.match_info["mri"])
    return {"expired": c.tokens.expire_user(user.mri, "skype")}


async def expire_access(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    user = c.world.user(request.match_info["mri"])
    return {"expired": c.tokens.expire_user(user.mri, "access")}


async def set_picture(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Give a user a profile picture, replace it, or (DELETE) take it away."""
    user = c.world.user(request.match_info["mri"])
    if request.method == "DELETE":
        user.picture = None
        return {"mri": user.mri, "sha256": None}
    data = base64.b64decode(str(body["content_b64"]), validate=True)
    if not data:
        raise ValueError("an empty picture")
    user.picture = data
    user.picture_type = str(body.get("content_type") or "image/png")
    return {"mri": user.mri, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


async def user_presence(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Read (GET) or change (PUT) a user's presence as their Teams clients would: a change
    is pushed to everyone subscribed to that user."""
    service = presence_service(c)
    user = c.world.user(request.match_info["mri"])
    if request.method == "PUT":
        note = body.get("note")
        service.change(
            user.mri,
            availability=body.get("availability"),
            activity=body.get("activity"),
            note=str(note) if note is not None else None,
            device_type=body.get("device_type"),
        )
    state = service.state(user.mri)
    return {
        "mri": user.mri,
        "availability": state.availability,
        "activity": state.activity,
        "note": state.note,
        "forced": state.forced,
        "etag": state.etag,
    }


async def presence_subscriptions(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    service = presence_service(c)
    return {"subscriptions": service.describe(), "pushes": service.pushes}


# -- chats -----------------------------------------------------------------------------
def _chat_summary(c: SimContext, chat_id: str) -> dict[str, Any]:
    chat = c.world.chat(chat_id)
    return {
        "id": chat.id,
        "kind": chat.kind,
        "topic": chat.topic,
        "channel_name": chat.channel_name,
        "team_name": chat.team_name,
        "picture": chat.picture,
        "members": [{"mri": m.mri, "role": m.role} for m in chat.members.values()],
        "message_count": len(chat.messages),
    }


async def create_chat(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.create_chat(body["kind"], list(body["members"]), body.get("topic"))
    return _chat_summary(c, chat.id)


def _team_summary(c: SimContext, team_id: str) -> dict[str, Any]:
    team = c.world.teams.get(team_id)
    if team is None:
        raise SimError(404, "NotFound", "unknown team")
    channels = [c.world.chat(cid) for cid in team.channel_ids]
    return {
        "id": team.id,
        "display_name": team.display_name,
        "channels": [
            {"id": ch.id, "name": ch.channel_name, "general": ch.is_general} for ch in channels
        ],
        "members": [{"mri": m.mri, "role": m.role} for m in channels[0].members.values()],
    }


async def create_team(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    team = c.world.create_team(
        str(body["display_name"]),
        [str(m) for m in body["members"]],
        [str(name) for name in body.get("channels") or []],
    )
    return _team_summary(c, team.id)


async def list_teams(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return [_team_summary(c, tid) for tid in c.world.teams]


async def list_chats(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return [_chat_summary(c, cid) for cid in c.world.chats]


async def get_chat(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    summary = _chat_summary(c, request.match_info["cid"])
    summary["thread"] = thread_json(c.world.chat(summary["id"]), c.world.users, _rest_base(c))
    return summary


async def post_message(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    payload = {
        "content": body.get("content", ""),
        "messagetype": body.get("messagetype", "RichText/Html"),
        "contenttype": body.get("contenttype", "text"),
        "clientmessageid": body.get("clientmessageid"),
        "imdisplayname": body.get("imdisplayname"),
        "properties": dict(body.get("properties") or {}),
        "amsreferences": body.get("amsreferences") or [],
    }
    if body.get("mentions"):
        payload["content"], payload["properties"]["mentions"] = _mentions(
            c, str(payload["content"]), list(body["mentions"])
        )
    wire = body.get("wire")
    root = body.get("thread_root")
    msg = c.world.post_message(
        chat_id,
        str(body["sender"]),
        payload,
        wire if isinstance(wire, dict) else None,
        thread_root=None if root is None else int(root),
    )
    return message_json(msg, c.world.chat(msg.conversation_id), _rest_base(c))


MENTION_TYPE = "http://schema.skype.com/Mention"


def _mentions(c: SimContext, content: str, mentions: list[Any]) -> tuple[str, str]:
    """Mention spans for `{mention:N}` placeholders (appended when absent) and the
    `properties.mentions` JSON string. Item ids follow document order; `split` (default
    true) gives each word of the name its own span and itemid, all naming the same MRI,
    as Teams does."""
    specs = [raw if isinstance(raw, dict) else {"mri": str(raw)} for raw in mentions]
    tokens = [f"{{mention:{index}}}" for index in range(len(specs))]
    order = sorted(
        range(len(specs)),
        key=lambda i: (content.find(tokens[i]) if tokens[i] in content else len(content), i),
    )
    entries: list[dict[str, Any]] = []
    for index in order:
        spec = specs[index]
        mri = str(spec["mri"])
        name = str(spec.get("text") or c.world.display_name(mri) or mri)
        words = (name.split() if spec.get("split", True) else [name]) or [name]
        spans = []
        for word in words:
            item_id = len(entries)
            spans.append(
                f'<span itemscope="" itemtype="{MENTION_TYPE}" itemid="{item_id}">'
                f"{html.escape(word)}</span>"
            )
            entry: dict[str, Any] = {
                "@type": MENTION_TYPE,
                "itemid": str(item_id)
                if c.world.variant(c.options.numbers_as_strings)
                else item_id,
                "mri": mri,
                "mentionType": spec.get("mention_type", "person"),
            }
            if spec.get("display_names", True):
                entry["displayName"] = word
            entries.append(entry)
        markup = " ".join(spans)
        token = tokens[index]
        content = content.replace(token, markup) if token in content else content + markup
    return content, json.dumps(entries)


async def typing(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    payload = {"content": "", "messagetype": "Control/Typing", "contenttype": "Application/Message"}
    msg = c.world.post_message(request.match_info["cid"], str(body["sender"]), payload)
    return {"id": str(msg.id)}


async def list_messages(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.chat(request.match_info["cid"])
    return [message_json(m, chat, _rest_base(c)) for m in chat.messages]


def _mid(request: web.Request) -> int:
    try:
        return int(request.match_info["mid"])
    except ValueError as err:
        raise SimError(404, "NotFound", "Message not found") from err


async def edit_message(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    msg = c.world.edit_message(chat_id, _mid(request), str(body["sender"]), body)
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def delete_message(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    sender = str(body.get("sender") or request.query["sender"])
    msg = c.world.delete_message(chat_id, _mid(request), sender)
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def react(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    add = request.method == "POST"
    history = body.get("history")
    msg = c.world.set_emotion(
        chat_id,
        _mid(request),
        str(body["sender"]),
        str(body["key"]),
        add,
        None if history is None else bool(history),
    )
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def patch_message(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    content = body.get("content")
    msg = c.world.patch_message(
        chat_id,
        _mid(request),
        properties=body.get("properties"),
        wire=body.get("wire"),
        content=None if content is None else str(content),
        publish=body.get("publish", "MessageUpdate"),
    )
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def add_member(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    mris = [str(m) for m in body["mris"]] if "mris" in body else [str(body["mri"])]
    chat = c.world.add_members(
        request.match_info["cid"], mris, str(body.get("role", "User")), body.get("by")
    )
    return _chat_summary(c, chat.id)


async def set_role(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.set_role(
        request.match_info["cid"], request.match_info["mri"], str(body["role"]), body.get("by")
    )
    return _chat_summary(c, chat.id)


async def remove_member(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.remove_member(
        request.match_info["cid"], request.match_info["mri"], body.get("by")
    )
    return _chat_summary(c, chat.id)


async def set_topic(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.set_topic(request.match_info["cid"], str(body.get("topic", "")), str(body["by"]))
    return _chat_summary(c, chat.id)


async def set_chat_picture(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Point the chat's picture at an AMS object (uploaded first), or (DELETE) remove it."""
    object_id = None if request.method == "DELETE" else str(body["object_id"])
    url = f"{c.base_url}/v1/objects/{object_id}/views/avatar_fullsize" if object_id else None
    chat = c.world.set_picture(request.match_info["cid"], url, str(body["by"]))
    return _chat_summary(c, chat.id)


async def set_horizon(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    c.world.set_horizon(
        request.match_info["cid"], str(body["mri"]), str(body["consumptionhorizon"])
    )
    return {}


async def post_activity(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    content = body.get("content", "")
    msg = c.world.post_activity(
        chat_id,
        str(body["messagetype"]),
        content if isinstance(content, (str, dict)) else json.dumps(content),
        sender=body.get("sender"),
        store=bool(body.get("store", True)),
        properties=body.get("properties"),
    )
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def post_call(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    duration = body.get("duration")
    msg = c.world.post_call_event(
        chat_id,
        str(body.get("kind", "ended")),
        [str(m) for m in body.get("participants") or []],
        duration=None if duration is None else int(duration),
        by=body.get("by"),
        ended_tag=bool(body.get("ended_tag", False)),
        call_id=body.get("call_id"),
    )
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def post_call_log(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """A call-log entry for the user in the path; fields default to a finished call."""
    mri = request.match_info["mri"]
    end = int(body.get("end_ms") or 0) or None
    log = _call_log(c, mri, body, end)
    log.update(body.get("call_log") or {})
    msg = c.world.post_call_log(mri, log, bool(body.get("as_string", True)))
    return {"id": str(msg.id), "call_log": log}


def _call_log(c: SimContext, mri: str, body: dict[str, Any], end: int | None) -> dict[str, Any]:
    originator = str(body.get("originator") or mri)
    target = str(body.get("target") or mri)
    state = str(body.get("state", "accepted"))
    end = end or now_ms()
    duration = int(body.get("duration", 60))
    start = end - duration * 1000 - 5000
    log: dict[str, Any] = {
        "callId": str(body.get("call_id") or f"call-{end}"),
        "callDirection": "outgoing" if originator == mri else "incoming",
        "callState": state,
        "callType": str(body.get("call_type", "twoParty")),
        "startTime": iso_ms7(start),
        "connectTime": iso_ms7(start + 5000) if state == "accepted" else None,
        "endTime": iso_ms7(end),
        "originator": originator,
        "target": target,
        "originatorParticipant": {
            "type": "default",
            "displayName": c.world.display_name(originator),
        },
        "targetParticipant": {"type": "default", "displayName": c.world.display_name(target)},
    }
    if body.get("thread_id"):
        log["threadId"] = str(body["thread_id"])
    return log


# -- device codes ----------------------------------------------------------------------
async def device_codes(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return [code.public() for code in c.device_codes.pending()]


async def approve(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    user = c.world.user(str(body["mri"]))
    return c.device_codes.approve(str(body["user_code"]), user).public()


async def decline(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return c.device_codes.decline(str(body["user_code"])).public()


# -- inspection and faults -------------------------------------------------------------
async def requests_(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    recorder = request.app[RECORDER]
    if request.method == "DELETE":
        recorder.requests.clear()
        return {}
    return recorder.query(request.query.get("path_contains"), request.query.get("method"))


async def tokens(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return c.tokens.all_values()


async def connections(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return hub_of(request).describe()


async def message_loss(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return {"connections": hub_of(request).message_loss(str(body["mri"]))}


async def disconnect(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    count = await hub_of(request).disconnect(str(body["mri"]), bool(body.get("notice", True)))
    return {"connections": count}


async def pause(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Stop delivering to a user's connections; what is published meanwhile is lost."""
    return {"paused": hub_of(request).pause(str(body["mri"]))}


async def resume(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Deliver again and, unless told otherwise, send trouter.message_loss."""
    hub = hub_of(request)
    return {"connections": hub.resume(str(body["mri"]), bool(body.get("notice", True)))}


async def duplicate(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Deliver every event to a user's connections twice."""
    return {"duplicate": hub_of(request).set_flag("duplicate", str(body["mri"]), body)}


async def silence(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    """Stop answering a user's pings and heartbeats (a socket that looks open but is dead)."""
    return {"silent": hub_of(request).set_flag("silent", str(body["mri"]), body)}


async def faults(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    recorder = request.app[RECORDER]
    if request.method == "DELETE":
        recorder.faults.clear()
        return {}
    retry = body.get("retry_after")
    recorder.faults.append(
        Fault(
            path_contains=str(body["path_contains"]),
            method=body.get("method"),
            status=int(body.get("status", 429)),
            remaining=int(body.get("count", 1)),
            retry_after=None if retry is None else str(retry),
            body=body.get("body"),
            delay=float(body.get("delay", 0.0)),
            body_contains=body.get("body_contains"),
        )
    )
    return {"faults": len(recorder.faults)}


async def policy(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    if request.method == "PUT" and "external_access" in body:
        c.world.external_access = bool(body["external_access"])
    return {"external_access": c.world.external_access}


async def info(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return {
        "url": c.base_url,
        "endpoints": endpoints_for(c.base_url),
        "tenant_id": c.world.tenant_id,
    }


def add_routes(app: web.Application) -> None:
    r = app.router
    p = "/_control"
    table: list[tuple[str, str, Route]] = [
        ("GET", "/info", info),
        ("GET", "/policy", policy),
        ("PUT", "/policy", policy),
        ("POST", "/users", create_user),
        ("GET", "/users", list_users),
        ("POST", "/users/{mri}/revoke", revoke),
        ("POST", "/users/{mri}/expire_skype_token", expire_skype),
        ("POST", "/trouter/pause", pause),
        ("POST", "/trouter/resume", resume),
        ("POST", "/trouter/duplicate", duplicate),
        ("POST", "/trouter/silence", silence),
        ("POST", "/users/{mri}/expire_access_token", expire_access),
        ("PUT", "/users/{mri}/picture", set_picture),
        ("GET", "/users/{mri}/presence", user_presence),
        ("PUT", "/users/{mri}/presence", user_presence),
        ("GET", "/presence/subscriptions", presence_subscriptions),
        ("DELETE", "/users/{mri}/picture", set_picture),
        ("POST", "/chats", create_chat),
        ("GET", "/chats", list_chats),
        ("GET", "/chats/{cid}", get_chat),
        ("POST", "/teams", create_team),
        ("GET", "/teams", list_teams),
        ("POST", "/chats/{cid}/messages", post_message),
        ("GET", "/chats/{cid}/messages", list_messages),
        ("PUT", "/chats/{cid}/messages/{mid}", edit_message),
        ("DELETE", "/chats/{cid}/messages/{mid}", delete_message),
        ("PATCH", "/chats/{cid}/messages/{mid}", patch_message),
        ("POST", "/chats/{cid}/messages/{mid}/reactions", react),
        ("DELETE", "/chats/{cid}/messages/{mid}/reactions", react),
        ("POST", "/chats/{cid}/typing", typing),
        ("POST", "/chats/{cid}/members", add_member),
        ("DELETE", "/chats/{cid}/members/{mri}", remove_member),
        ("PUT", "/chats/{cid}/topic", set_topic),
        ("PUT", "/chats/{cid}/picture", set_chat_picture),
        ("DELETE", "/chats/{cid}/picture", set_chat_picture),
        ("PUT", "/chats/{cid}/horizon", set_horizon),
        ("PUT", "/chats/{cid}/members/{mri}/role", set_role),
        ("POST", "/chats/{cid}/activity", post_activity),
        ("POST", "/chats/{cid}/calls", post_call),
        ("POST", "/users/{mri}/call_logs", post_call_log),
        ("GET", "/device_codes", device_codes),
        ("POST", "/device_codes/approve", approve),
        ("POST", "/device_codes/decline", decline),
        ("GET", "/requests", requests_),
        ("DELETE", "/requests", requests_),
        ("GET", "/tokens", tokens),
        ("GET", "/connections", connections),
        ("POST", "/trouter/message_loss", message_loss),
        ("POST", "/trouter/disconnect", disconnect),
        ("POST", "/faults", faults),
        ("DELETE", "/faults", faults),
    ]
    for method, path, fn in table:
        r.add_route(method, p + path, route(fn))
