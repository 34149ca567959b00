"""Chat service REST API (teams-protocol.md §4), under `/v1` and `/api/chatsvc/{region}/v1`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .auth import chat_caller
from .context import SimContext, ctx
from .errors import json_error, unauthorized
from .ids import skype_id
from .model import Chat, ChatKind
from .paging import decode_state, encode_state, int_param
from .render import conversation_json, message_json, thread_json
from .util import compact_json, now_ms
from .world import SimError

Handler = Callable[[web.Request, SimContext, str], Awaitable[web.StreamResponse]]
PREFIXES = ("/v1", "/api/chatsvc/{region}/v1")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=compact_json(body), content_type="application/json", headers=headers
    )


def rest_base(request: web.Request) -> str:
    """The `…/v1` base the caller used, so links point back at the same host and prefix."""
    path = request.path
    cut = path.find("/v1/")
    prefix = path[: cut + 3] if cut >= 0 else "/v1"
    return f"{request.url.scheme}://{request.host}{prefix}"


def authed(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Authenticate with a Skype token (or an AFD Bearer token) and map SimErrors."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        c = ctx(request)
        caller = chat_caller(request, c.tokens)
        if caller is None:
            return unauthorized(c.options.error_bodies, c.rng)
        try:
            return await fn(request, c, caller.mri)
        except SimError as err:
            return json_error(err.status, err.code, err.message)

    return wrapped


async def read_json(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as err:
        raise SimError(400, "BadRequest", "body is not valid JSON") from err
    if not isinstance(body, dict):
        raise SimError(400, "BadRequest", "body must be a JSON object")
    return body


THREAD_MARK = ";messageid="


def conv_id(request: web.Request) -> str:
    """The conversation in the path. A channel thread id (`<channel>;messageid=<root>`)
    is refused: only posting and listing address a thread; everything else about a
    message (edit, delete, reactions) goes through the channel's own id."""
    cid, root = thread_target(request)
    if root is not None:
        raise SimError(400, "BadRequest", "this request takes the channel id, not a thread id")
    return cid


def thread_target(request: web.Request) -> tuple[str, int | None]:
    """(conversation id, thread root) of a path that may name a channel thread."""
    cid = request.match_info["cid"]
    if cid.startswith("48:"):
        raise SimError(400, "BadRequest", "virtual conversations are not supported here")
    base, mark, root = cid.partition(THREAD_MARK)
    if not mark:
        return cid, None
    if not root.isdigit():
        raise SimError(400, "BadRequest", "messageid must be a message id")
    return base, int(root)


def msg_id(request: web.Request) -> int:
    try:
        return int(request.match_info["mid"])
    except ValueError as err:
        raise SimError(404, "NotFound", "Message not found") from err


# -- self ---------------------------------------------------------------------------
async def properties(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    user = c.world.user(me)
    details = {"name": user.display_name, "upn": user.email, "givenName": user.given_name}
    return json_response(
        {
            "skypeName": skype_id(me),
            "primaryMemberName": user.email,
            "userDetails": json.dumps(details),
            "locale": "en-US",
            "readReceiptsEnabled": "true",
            "cid": user.object_id[-16:].replace("-", ""),
            "licenseType": "Freemium" if user.kind == "personal" else "Enterprise",
        }
    )


# -- conversations -----------------------------------------------------------------
async def list_conversations(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    q = request.query
    state = decode_state(q.get("syncState"))
    size = max(1, min(int_param(q.get("pageSize"), state.get("n", 100)), 500))
    start = int_param(q.get("startTime"), state.get("s", 0))
    target = q.get("targetType")
    chats = sorted(c.world.chats_of(me), key=lambda ch: (ch.last_activity, ch.id), reverse=True)
    if target and "thread" not in target.lower():
        chats = []
    chats = [ch for ch in chats if ch.last_activity >= start]
    if state.get("m") == "older":
        cursor = (state["b"], state["i"])
        chats = [ch for ch in chats if (ch.last_activity, ch.id) < (cursor[0], cursor[1])]
    elif state.get("m") == "newer":
        chats = [ch for ch in chats if max(ch.last_activity, ch.version) > state["a"]]
    page = chats[:size]
    base = rest_base(request)
    items = [
        conversation_json(
            ch,
            me,
            base,
            omit_members=ch.kind == "one_to_one" and c.variant(c.options.omit_one_to_one_members),
            style=c.world.style(),
        )
        for ch in page
    ]
    newest = max((max(ch.last_activity, ch.version) for ch in c.world.chats_of(me)), default=0)
    meta: dict[str, Any] = {
        "totalCount": len(page),
        "syncState": _link(request, {"m": "newer", "a": newest, "n": size}),
    }
    if len(chats) > size:
        last = page[-1]
        meta["backwardLink"] = _link(
            request, {"m": "older", "b": last.last_activity, "i": last.id, "s": start, "n": size}
        )
    return json_response({"conversations": items, "_metadata": meta})


def _link(request: web.Request, state: dict[str, Any]) -> str:
    query = {k: v for k, v in request.query.items() if k not in ("syncState", "startTime")}
    query["syncState"] = encode_state(state)
    return str(request.url.with_query(query))


async def get_conversation(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    chat = c.world.member_chat(conv_id(request), me)
    return json_response(conversation_json(chat, me, rest_base(request), style=c.world.style()))


async def put_conversation_property(
    request: web.Request, c: SimContext, me: str
) -> web.StreamResponse:
    name = request.query.get("name", "")
    body = await read_json(request)
    chat = c.world.member_chat(conv_id(request), me)
    if name == "consumptionhorizon":
        value = body.get("consumptionhorizon")
        if not isinstance(value, str) or value.count(";") != 2:
            raise SimError(400, "BadRequest", "consumptionhorizon must be 'a;b;c'")
        c.world.set_horizon(chat.id, me, value)
    elif not name:
        raise SimError(400, "BadRequest", "name is required")
    return web.Response(status=200)


# -- messages ----------------------------------------------------------------------
async def list_messages(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    """A channel's list holds its root posts and every reply, in arrival order; a thread
    id (`<channel>;messageid=<root>`) lists that thread alone."""
    cid, root = thread_target(request)
    chat = c.world.member_chat(cid, me)
    q = request.query
    state = decode_state(q.get("syncState"))
    size = max(1, min(int_param(q.get("pageSize"), state.get("n", 20)), 200))
    start = int_param(q.get("startTime"), state.get("s", 0))
    end = int_param(q.get("endTime"), state.get("e", 0)) or None
    msgs = chat.messages if root is None else chat.thread_of(root)
    if state.get("m") == "older":
        msgs = [m for m in msgs if m.id < state["b"]]
    elif state.get("m") == "newer":
        msgs = [m for m in msgs if m.version > state["a"]]
    msgs = [m for m in msgs if m.arrival_ms >= start and (end is None or m.arrival_ms <= end)]
    page = list(reversed(msgs[-size:]))
    base = rest_base(request)
    newest = max((m.version for m in chat.messages), default=0)
    meta: dict[str, Any] = {
        "syncState": _link(request, {"m": "newer", "a": newest, "n": size}),
        "lastCompleteSegmentStartTime": page[-1].arrival_ms if page else start,
        "lastCompleteSegmentEndTime": page[0].arrival_ms if page else now_ms(),
    }
    if len(msgs) > size:
        meta["backwardLink"] = _link(
            request, {"m": "older", "b": page[-1].id, "s": start, "e": end or 0, "n": size}
        )
    user = c.world.user(me)
    return json_response(
        {
            "messages": [message_json(m, chat, base, c.world.style()) for m in page],
            "_metadata": meta,
            "tenantId": user.tenant_id,
        }
    )


async def get_message(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    chat = c.world.member_chat(conv_id(request), me)
    msg = chat.message(msg_id(request))
    if msg is None:
        raise SimError(404, "NotFound", "Message not found")
    return json_response(message_json(msg, chat, rest_base(request), c.world.style()))


async def post_message(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    """A message; posted to `<channel>;messageid=<root>` it is a reply in that thread."""
    body = await read_json(request)
    cid, root = thread_target(request)
    msg = c.world.post_message(cid, me, body, thread_root=root)
    location = f"{rest_base(request)}/users/ME/conversations/{request.match_info['cid']}"
    location += f"/messages/{msg.id}"
    return json_response({"OriginalArrivalTime": msg.arrival_ms}, 201, {"Location": location})


async def edit_message(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    body = await read_json(request)
    msg = c.world.edit_message(conv_id(request), msg_id(request), me, body)
    return json_response({"edittime": msg.properties.get("edittime")})


async def delete_message(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    msg = c.world.delete_message(conv_id(request), msg_id(request), me)
    return json_response({"deletetime": msg.properties.get("deletetime")})


async def message_property(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    if request.query.get("name") != "emotions":
        raise SimError(400, "BadRequest", "only name=emotions is supported")
    body = await read_json(request)
    emotions = body.get("emotions")
    if isinstance(emotions, str):
        try:
            emotions = json.loads(emotions)
        except ValueError:
            emotions = None
    if not isinstance(emotions, dict):
        raise SimError(400, "BadRequest", "emotions must be an object with a key")
    add = request.method == "PUT"
    c.world.set_emotion(conv_id(request), msg_id(request), me, str(emotions.get("key", "")), add)
    return web.Response(status=200)


# -- threads -----------------------------------------------------------------------
async def get_thread(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    chat = c.world.member_chat(conv_id(request), me)
    return json_response(thread_json(chat, c.world.users, rest_base(request), c.world.style()))


async def create_thread(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    body = await read_json(request)
    raw_props = body.get("properties")
    props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
    listed = [m.get("id") for m in body.get("members", []) if isinstance(m, dict)]
    members = [me] + [m for m in listed if isinstance(m, str) and m != me]
    kind: ChatKind
    if props.get("threadType") == "meeting":
        kind = "meeting"
    elif str(props.get("uniquerosterthread", "")).lower() == "true" and len(members) == 2:
        kind = "one_to_one"
    else:
        kind = "group"
    c.world.check_external_access(me, members)
    chat: Chat = c.world.create_chat(kind, members, props.get("topic") or None)
    location = f"{rest_base(request)}/threads/{chat.id}"
    shape = c.rng.choice(["empty", "id", "resource"])
    answer: dict[str, Any] = {}
    if shape == "id":
        answer = {"id": chat.id}
    elif shape == "resource":
        answer = {"threadResource": {"id": chat.id, "type": "Thread", "properties": {}}}
    return json_response(answer, 201, {"Location": location})


async def put_member(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    chat = c.world.member_chat(conv_id(request), me)
    body = await read_json(request)
    mri = request.match_info["mri"]
    role = str(body.get("role", "User"))
    if mri in chat.members:
        if chat.members[mri].role.lower() != role.lower():
            c.world.set_role(chat.id, mri, role, by=me)
    else:
        c.world.check_external_access(me, [mri])
        c.world.add_member(chat.id, mri, role, by=me)
    return web.Response(status=200)


async def delete_member(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    chat = c.world.member_chat(conv_id(request), me)
    c.world.remove_member(chat.id, request.match_info["mri"], by=me)
    return web.Response(status=200)


async def thread_property(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    name = request.query.get("name", "")
    body = await read_json(request)
    if name != "topic":
        raise SimError(400, "BadRequest", "only name=topic is supported")
    c.world.set_topic(conv_id(request), str(body.get("topic", "")), me)
    return web.Response(status=200)


async def horizons(request: web.Request, c: SimContext, me: str) -> web.StreamResponse:
    chat = c.world.member_chat(conv_id(request), me)
    return json_response(
        {
            "id": chat.id,
            "version": str(chat.version),
            "consumptionhorizons": [
                {
                    "id": mri,
                    "consumptionhorizon": chat.horizons.get(mri, "0;0;0"),
                    "messageVisibilityTime": m.joined_ms,
                }
                for mri, m in chat.members.items()
            ],
        }
    )


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/users/ME/properties", properties),
    ("GET", "/users/ME/conversations", list_conversations),
    ("GET", "/users/ME/conversations/{cid}", get_conversation),
    ("PUT", "/users/ME/conversations/{cid}/properties", put_conversation_property),
    ("GET", "/users/ME/conversations/{cid}/messages", list_messages),
    ("POST", "/users/ME/conversations/{cid}/messages", post_message),
    ("GET", "/users/ME/conversations/{cid}/messages/{mid}", get_message),
    ("PUT", "/users/ME/conversations/{cid}/messages/{mid}", edit_message),
    ("DELETE", "/users/ME/conversations/{cid}/messages/{mid}", delete_message),
    ("PUT", "/users/ME/conversations/{cid}/messages/{mid}/properties", message_property),
    ("DELETE", "/users/ME/conversations/{cid}/messages/{mid}/properties", message_property),
    ("POST", "/threads", create_thread),
    ("GET", "/threads/{cid}", get_thread),
    ("PUT", "/threads/{cid}/members/{mri}", put_member),
    ("DELETE", "/threads/{cid}/members/{mri}", delete_member),
    ("PUT", "/threads/{cid}/properties", thread_property),
    ("GET", "/threads/{cid}/consumptionhorizons", horizons),
]


def add_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        for method, path, handler in ROUTES:
            app.router.add_route(method, prefix + path, authed(handler))
