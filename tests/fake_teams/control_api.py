"""`/_control/...`: JSON routes that let a test act as any Teams user and inspect the service.

No authentication: the server only ever listens on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .context import SimContext, ctx
from .endpoints import endpoints_for
from .recorder import Fault, Recorder
from .render import message_json, thread_json
from .trouter import hub_of
from .util import compact_json
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


# -- chats -----------------------------------------------------------------------------
def _chat_summary(c: SimContext, chat_id: str) -> dict[str, Any]:
    chat = c.world.chat(chat_id)
    return {
        "id": chat.id,
        "kind": chat.kind,
        "topic": chat.topic,
        "members": [{"mri": m.mri, "role": m.role} for m in chat.members.values()],
        "message_count": len(chat.messages),
    }


async def create_chat(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.create_chat(body["kind"], list(body["members"]), body.get("topic"))
    return _chat_summary(c, chat.id)


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
        "properties": body.get("properties") or {},
        "amsreferences": body.get("amsreferences") or [],
    }
    msg = c.world.post_message(chat_id, str(body["sender"]), payload)
    return message_json(msg, c.world.chat(msg.conversation_id), _rest_base(c))


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
    msg = c.world.set_emotion(chat_id, _mid(request), str(body["sender"]), str(body["key"]), add)
    return message_json(msg, c.world.chat(chat_id), _rest_base(c))


async def add_member(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat = c.world.add_member(
        request.match_info["cid"], str(body["mri"]), str(body.get("role", "User")), body.get("by")
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


async def set_horizon(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    c.world.set_horizon(
        request.match_info["cid"], str(body["mri"]), str(body["consumptionhorizon"])
    )
    return {}


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
        )
    )
    return {"faults": len(recorder.faults)}


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
        ("POST", "/users", create_user),
        ("GET", "/users", list_users),
        ("POST", "/users/{mri}/revoke", revoke),
        ("POST", "/users/{mri}/expire_skype_token", expire_skype),
        ("POST", "/users/{mri}/expire_access_token", expire_access),
        ("POST", "/chats", create_chat),
        ("GET", "/chats", list_chats),
        ("GET", "/chats/{cid}", get_chat),
        ("POST", "/chats/{cid}/messages", post_message),
        ("GET", "/chats/{cid}/messages", list_messages),
        ("PUT", "/chats/{cid}/messages/{mid}", edit_message),
        ("DELETE", "/chats/{cid}/messages/{mid}", delete_message),
        ("POST", "/chats/{cid}/messages/{mid}/reactions", react),
        ("DELETE", "/chats/{cid}/messages/{mid}/reactions", react),
        ("POST", "/chats/{cid}/typing", typing),
        ("POST", "/chats/{cid}/members", add_member),
        ("DELETE", "/chats/{cid}/members/{mri}", remove_member),
        ("PUT", "/chats/{cid}/topic", set_topic),
        ("PUT", "/chats/{cid}/horizon", set_horizon),
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
