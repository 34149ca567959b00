"""AMS, the Async Media Service (teams-protocol.md §7), on the simulator's port.

`POST /v1/objects`, `PUT /v1/objects/{id}/content/{view}`, `GET /v1/objects/{id}/views/{view}`
and `…/views/{view}/status`. Content is streamed to files in a private temporary directory
and streamed back from them, so uploads of hundreds of megabytes never sit in memory.

Auth is `Authorization: skype_token <token>` (or the `skypetoken_asm` cookie). Creating or
uploading without a valid token is 401; reading without any token is 403, with an expired
or unknown one 401 (so clients can refresh), and without permission 403. A user may read an
object they own, one whose permissions name their MRI, or one whose permissions name a
conversation they are currently a member of.

The control routes let a test upload as any user, post media messages in every wire format
a Teams client produces, and read back what a client uploaded.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import random
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .context import SimContext, ctx
from .control_api import route
from .errors import json_error, unauthorized
from .render import message_json
from .util import compact_json, now_ms
from .world import SimError

CHUNK = 256 * 1024
MAX_UPLOAD = 4 * 1024**3
INLINE_BYTES_LIMIT = 8 * 1024 * 1024
IMAGE_TYPE = "pish/image"
AMS_IMAGE = "http://schema.skype.com/AMSImage"
AMS_VIDEO = "http://schema.skype.com/AMSVideo"
DOC_LINK = "https://login.skype.com/login/sso?go=webclient.xmm"

# Views served from the image content (uploaded as `imgpsh`); the sim does not resize.
IMAGE_VIEWS = {
    "imgo",
    "imgpsh_fullsize",
    "imgpsh_fullsize_anim",
    "imgpsh_mobile_save_anim",
    "imgt1",
    "imgt1_anim",
    "imgt2_anim",
    "avatar_fullsize",
}
CONTENT_VIEWS = {"original", "video", "audio"}
UPLOAD_NAMES = {"imgpsh", "original", "video", "audio", "thumbnail", "avatar"}


@dataclass
class AmsContent:
    path: Path
    size: int
    content_type: str
    sha256: str
    uploaded_ms: int


@dataclass
class AmsObject:
    id: str
    owner: str
    type: str
    filename: str
    permissions: dict[str, list[str]]
    sharing_mode: str | None
    created_ms: int
    contents: dict[str, AmsContent] = field(default_factory=dict)
    downloads: list[dict[str, Any]] = field(default_factory=list)

    def content_for(self, view: str) -> AmsContent | None:
        """Which uploaded content a view renders (None: the view has nothing yet)."""
        if view in self.contents and view != "imgpsh":
            return self.contents[view]
        if view == "avatar_fullsize" and "avatar" in self.contents:
            return self.contents["avatar"]
        if view in IMAGE_VIEWS:
            return self.contents.get("imgpsh") or self.contents.get("original")
        if view in CONTENT_VIEWS:
            return self.contents.get("original") or self.contents.get("imgpsh")
        if view == "thumbnail" and self.type == IMAGE_TYPE:
            return self.contents.get("imgpsh") or self.contents.get("original")
        return None

    def describe(self, base: str, include_bytes: bool) -> dict[str, Any]:
        contents: dict[str, Any] = {}
        for name, content in self.contents.items():
            entry: dict[str, Any] = {
                "size": content.size,
                "content_type": content.content_type,
                "sha256": content.sha256,
            }
            if include_bytes and content.size <= INLINE_BYTES_LIMIT:
                entry["data_b64"] = base64.b64encode(content.path.read_bytes()).decode()
            contents[name] = entry
        return {
            "id": self.id,
            "owner": self.owner,
            "type": self.type,
            "filename": self.filename,
            "permissions": self.permissions,
            "sharing_mode": self.sharing_mode,
            "created_ms": self.created_ms,
            "url": f"{base}/v1/objects/{self.id}",
            "contents": contents,
            "downloads": [dict(d) for d in self.downloads],
        }


class AmsStore:
    """The objects and the directory their content lives in."""

    def __init__(self) -> None:
        self.objects: dict[str, AmsObject] = {}
        self._dir: str | None = None

    @property
    def directory(self) -> Path:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="fake-teams-ams-")
        return Path(self._dir)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.objects.clear()

    def create(
        self,
        owner: str,
        type_: str,
        filename: str,
        permissions: dict[str, list[str]],
        sharing_mode: str | None,
    ) -> AmsObject:
        region = random.choice(["weu", "neu", "cus", "wus"])
        object_id = f"0-{region}-d{secrets.randbelow(20) + 1}-{secrets.token_hex(16)}"
        obj = AmsObject(object_id, owner, type_, filename, permissions, sharing_mode, now_ms())
        self.objects[object_id] = obj
        return obj

    def get(self, object_id: str) -> AmsObject:
        obj = self.objects.get(object_id)
        if obj is None:
            raise SimError(404, "NotFound", "Object not found")
        return obj

    async def store(
        self, obj: AmsObject, name: str, chunks: AsyncIterator[bytes], content_type: str
    ) -> AmsContent:
        """Write `chunks` to disk as they arrive; the previous content is replaced at the end."""
        final = self.directory / f"{obj.id}.{name}"
        partial = self.directory / f"{obj.id}.{name}.{secrets.token_hex(4)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise SimError(413, "TooLarge", "content too large")
                    out.write(chunk)
                    digest.update(chunk)
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        content = AmsContent(final, size, content_type, digest.hexdigest(), now_ms())
        obj.contents[name] = content
        return content


AMS: web.AppKey[AmsStore] = web.AppKey("fake_teams_ams", AmsStore)


def store_of(request: web.Request) -> AmsStore:
    return request.app[AMS]


def ams_token(request: web.Request) -> str | None:
    """`Authorization: skype_token <t>`, else the `skypetoken_asm` cookie."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "skype_token" and value.strip():
        return value.strip()
    cookie = request.cookies.get("skypetoken_asm")
    return cookie.strip() if cookie and cookie.strip() else None


def can_read(c: SimContext, obj: AmsObject, mri: str) -> bool:
    if mri == obj.owner:
        return True
    for key, rights in obj.permissions.items():
        if "read" not in rights and "write" not in rights:
            continue
        if key == mri:
            return True
        chat = c.world.chats.get(key)
        if chat is not None and mri in chat.members:
            return True
    return False


def _seeded_chunks(size: int, seed: int) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        rng = random.Random(seed)
        left = size
        while left > 0:
            n = min(CHUNK, left)
            left -= n
            yield rng.randbytes(n)

    return gen()


def _bytes_chunks(data: bytes) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), CHUNK):
            yield data[i : i + CHUNK]

    return gen()


def _base(c: SimContext) -> str:
    return c.base_url


# -- the protocol ------------------------------------------------------------------------
async def create_object(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    caller = c.tokens.valid(ams_token(request), "skype")
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        return json_error(400, "BadRequest", "body is not valid JSON")
    if not isinstance(body, dict):
        return json_error(400, "BadRequest", "body must be a JSON object")
    type_ = body.get("type")
    perms = body.get("permissions", {})
    filename = body.get("filename", "")
    if not isinstance(type_, str) or not type_:
        return json_error(400, "BadRequest", "type is required")
    if not isinstance(filename, str):
        return json_error(400, "BadRequest", "filename must be a string")
    if not isinstance(perms, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
        for k, v in perms.items()
    ):
        return json_error(400, "BadRequest", "permissions must map ids to lists of rights")
    mode = body.get("sharingMode")
    obj = store_of(request).create(
        caller.mri, type_, filename, perms, mode if isinstance(mode, str) else None
    )
    return web.Response(
        status=201, text=compact_json({"id": obj.id}), content_type="application/json"
    )


async def put_content(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    caller = c.tokens.valid(ams_token(request), "skype")
    if caller is None:
        return unauthorized(c.options.error_bodies, c.rng)
    name = request.match_info["view"]
    try:
        obj = store_of(request).get(request.match_info["oid"])
    except SimError as err:
        return json_error(err.status, err.code, err.message)
    if obj.owner != caller.mri:
        return json_error(403, "Forbidden", "only the owner can upload content")
    if name not in UPLOAD_NAMES:
        return json_error(400, "BadRequest", f"cannot upload to {name}")
    declared = request.content_length
    if declared is not None and declared > MAX_UPLOAD:
        return json_error(413, "TooLarge", "content too large")
    content_type = request.headers.get("Content-Type") or "application/octet-stream"
    try:
        content = await store_of(request).store(
            obj, name, request.content.iter_chunked(CHUNK), content_type
        )
    except SimError as err:
        return json_error(err.status, err.code, err.message)
    if declared is not None and content.size != declared:
        del obj.contents[name]
        content.path.unlink(missing_ok=True)
        return json_error(400, "BadRequest", "body shorter than Content-Length")
    return web.Response(status=201)


def _reader(request: web.Request) -> tuple[AmsObject | None, web.Response | None, str]:
    """(object, error answer, caller MRI) for the GET routes."""
    c = ctx(request)
    token = ams_token(request)
    if token is None:
        return None, json_error(403, "Forbidden", "authentication required"), ""
    caller = c.tokens.valid(token, "skype")
    if caller is None:
        return None, unauthorized(c.options.error_bodies, c.rng), ""
    obj = store_of(request).objects.get(request.match_info["oid"])
    if obj is None:
        return None, json_error(404, "NotFound", "Object not found"), caller.mri
    if not can_read(c, obj, caller.mri):
        return None, json_error(403, "Forbidden", "no permission for this object"), caller.mri
    return obj, None, caller.mri


async def get_view(request: web.Request) -> web.StreamResponse:
    view = request.match_info["view"]
    obj, error, mri = _reader(request)
    if error is not None:
        return error
    assert obj is not None
    if view == "imgpsh":
        return json_error(400, "BadRequest", "imgpsh is an upload name; view imgpsh_fullsize")
    content = obj.content_for(view)
    if content is None:
        return json_error(404, "NotFound", f"view {view} has no content")
    c = ctx(request)
    return await stream_file(
        request, content, with_length=c.variant(c.options.ams_content_length), obj=obj, mri=mri
    )


async def stream_file(
    request: web.Request,
    content: AmsContent,
    *,
    with_length: bool,
    obj: AmsObject | None = None,
    mri: str = "",
) -> web.StreamResponse:
    """Stream from disk with backpressure; what was sent is recorded on the object."""
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = content.content_type or "application/octet-stream"
    if with_length:
        resp.content_length = content.size
    else:
        resp.enable_chunked_encoding()
    record: dict[str, Any] = {
        "view": request.match_info.get("view"),
        "mri": mri,
        "content_length": with_length,
        "bytes_sent": 0,
        "complete": False,
        "finished": False,
    }
    if obj is not None:
        obj.downloads.append(record)
    try:
        await resp.prepare(request)
        with open(content.path, "rb") as source:
            while chunk := source.read(CHUNK):
                await resp.write(chunk)
                record["bytes_sent"] += len(chunk)
        await resp.write_eof()
        record["complete"] = True
    except (ConnectionError, OSError):
        pass  # the client went away (e.g. it stopped at its size limit)
    finally:
        record["finished"] = True
    return resp


async def get_status(request: web.Request) -> web.StreamResponse:
    view = request.match_info["view"]
    obj, error, _mri = _reader(request)
    if error is not None:
        return error
    assert obj is not None
    content = obj.content_for(view)
    base = f"{_base(ctx(request))}/v1/objects/{obj.id}/views/{view}"
    ready = content is not None
    body = {
        "content_length": content.size if content else 0,
        "content_full_length": content.size if content else 0,
        "view_length": content.size if content else 0,
        "content_state": "ready" if ready else "no content",
        "view_state": "ready" if ready else "none",
        "view_location": base,
        "status_location": f"{base}/status",
    }
    return web.Response(text=compact_json(body), content_type="application/json")


# -- control ------------------------------------------------------------------------------
def _upload_name(type_: str, requested: Any) -> str:
    if isinstance(requested, str) and requested:
        if requested not in UPLOAD_NAMES:
            raise SimError(400, "BadRequest", f"cannot upload to {requested}")
        return requested
    return "imgpsh" if type_ == IMAGE_TYPE else "original"


async def _control_upload(c: SimContext, store: AmsStore, body: dict[str, Any]) -> AmsObject:
    sender = c.world.user(str(body["sender"])).mri
    type_ = str(body.get("type") or IMAGE_TYPE)
    perms = body.get("permissions")
    if perms is None:
        conv = body.get("conversation")
        perms = {str(conv): ["read"]} if conv else {}
    if not isinstance(perms, dict):
        raise SimError(400, "BadRequest", "permissions must be an object")
    obj = store.create(
        sender, type_, str(body.get("filename") or "file"), dict(perms), body.get("sharing_mode")
    )
    if "content_b64" in body:
        data = base64.b64decode(str(body["content_b64"]))
        chunks = _bytes_chunks(data)
    elif "size" in body:
        chunks = _seeded_chunks(int(body["size"]), int(body.get("seed", 0)))
    else:
        return obj  # an object without content yet
    await store.store(
        obj,
        _upload_name(type_, body.get("view")),
        chunks,
        str(body.get("content_type") or "application/octet-stream"),
    )
    return obj


def _upload_answer(c: SimContext, obj: AmsObject) -> dict[str, Any]:
    url = f"{_base(c)}/v1/objects/{obj.id}"
    views = {v: f"{url}/views/{v}" for v in ("imgo", "imgpsh_fullsize", "original", "video")}
    answer: dict[str, Any] = {"id": obj.id, "url": url, "views": views, "owner": obj.owner}
    for name, content in obj.contents.items():
        answer.setdefault("size", content.size)
        answer.setdefault("sha256", content.sha256)
        answer.setdefault("content", name)
    return answer


async def control_upload(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return _upload_answer(c, await _control_upload(c, store_of(request), body))


async def control_list(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    return [
        {"id": o.id, "owner": o.owner, "type": o.type, "filename": o.filename}
        for o in store_of(request).objects.values()
    ]


async def control_get(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    obj = store_of(request).get(request.match_info["oid"])
    include = request.query.get("bytes", "1") not in ("0", "false", "no")
    return obj.describe(_base(c), include)


async def control_content(request: web.Request) -> web.StreamResponse:
    obj = store_of(request).objects.get(request.match_info["oid"])
    content = obj.contents.get(request.match_info["view"]) if obj else None
    if content is None:
        return json_error(404, "NotFound", "no such object or content")
    return await stream_file(request, content, with_length=True)


# Media messages as Teams clients send them (formats of §7.5; attribute orders differ on
# purpose from what the bridge sends, so parsers are tested for tolerance).
def _a(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _dims(body: dict[str, Any]) -> str:
    out = ""
    for key in ("width", "height"):
        if body.get(key) is not None:
            out += f' {key}="{int(body[key])}"'
    return out


def _caption(body: dict[str, Any]) -> str:
    caption = body.get("caption")
    if not caption:
        return ""
    text = str(caption)
    return text if text.lstrip().startswith("<p") else f"<p>{text}</p>"


def _uri_object(
    obj_url: str, object_id: str, type_: str, inner: str, body: dict[str, Any], thumb: str
) -> str:
    extra = _dims(body)
    if body.get("duration_ms") is not None:
        extra += f' duration_ms="{int(body["duration_ms"])}"'
    return (
        f'<URIObject uri="{_a(obj_url)}" url_thumbnail="{_a(obj_url)}/views/{thumb}"'
        f' type="{type_}" doc_id="{_a(object_id)}"{extra}>{inner}</URIObject>'
    )


def render_media(
    fmt: str, base: str, obj: AmsObject | None, body: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """(messagetype, content, properties) of one media message format."""
    caption = _caption(body)
    if fmt == "sharepoint":
        name = str(body.get("filename") or "report.pdf")
        site = "https://contoso-my.sharepoint.com/personal/ada_contoso_example"
        url = f"{site}/Documents/Microsoft Teams Chat Files/{name}"
        item = secrets.token_hex(16)
        entry: dict[str, Any] = {
            "@type": "http://schema.skype.com/File",
            "version": 2,
            "id": item,
            "itemid": item,
            "fileName": name,
            "fileType": name.rsplit(".", 1)[-1],
            "type": name.rsplit(".", 1)[-1],
            "title": name,
            "state": "active",
            "baseUrl": f"{site}/",
            "objectUrl": url,
            "fileInfo": {
                "itemId": secrets.token_hex(8),
                "fileUrl": url,
                "siteUrl": site,
                "serverRelativeUrl": "",
                "shareUrl": f"https://1drv.ms/u/s!{secrets.token_hex(6)}",
                "shareId": secrets.token_hex(6),
            },
            "fileChicletState": {"serviceName": "p2p", "state": "active"},
            "filePreview": {"previewUrl": f"{site}/_layouts/15/preview.png"},
            "sourceOfFile": 0,
            "providerData": "",
        }
        if body.get("file_size") is not None:
            entry["fileSize"] = int(body["file_size"])
        return "RichText/Html", caption or "<p></p>", {"files": json.dumps([entry])}
    if obj is None:
        raise SimError(400, "BadRequest", f"format {fmt} needs an object")
    oid = obj.id
    obj_url = f"{base}/v1/objects/{oid}"
    name = str(body.get("filename") or obj.filename or "file")
    size = body.get("file_size")
    if size is None:
        size = next((ct.size for ct in obj.contents.values()), 0)
    named = f'<OriginalName v="{_a(name)}"/><FileSize v="{int(size)}"/>'
    if fmt == "image":
        view = str(body.get("view") or "imgo")
        src = f"{obj_url}/views/{view}"
        img = (
            f'<img src="{_a(src)}" itemtype="{AMS_IMAGE}" itemid="{_a(oid)}"{_dims(body)}'
            f' alt="image" id="{_a(oid)}" itemscope="image" style="vertical-align:bottom">'
        )
        return "RichText/Html", f"{caption}<p>{img}</p>", {}
    if fmt == "video_inline":
        ms = int(body.get("duration_ms") or 0)
        video = (
            f'<video itemscope="" itemtype="{AMS_VIDEO}" src="{_a(obj_url)}/views/video"'
            f'{_dims(body)} data-duration="PT{ms / 1000:g}S">{html.escape(name)}</video>'
        )
        return "RichText/Html", f"<p>{video}</p>{caption}", {}
    if fmt == "picture":
        link = f"https://login.skype.com/login/sso?go=xmmfallback?pic={oid}"
        inner = (
            f'To view this shared photo, go to: <a href="{_a(link)}">{html.escape(link)}</a>'
            f'{named}<meta type="photo" originalName="{_a(name)}"/>'
        )
        xml = _uri_object(obj_url, oid, "Picture.1", inner, body, "imgt1")
        mtype = "RichText/UriObject"
    elif fmt == "file":
        link = f"{DOC_LINK}&docid={oid}"
        inner = (
            f"<Title>Title: {html.escape(name)}</Title>"
            f"<Description>Description: {html.escape(name)}</Description>"
            f'<a href="{_a(link)}">{html.escape(link)}</a>{named}'
        )
        xml = _uri_object(obj_url, oid, "File.1", inner, body, "thumbnail")
        mtype = "RichText/Media_GenericFile"
    elif fmt == "video":
        link = f"{DOC_LINK}&vim={oid}"
        inner = (
            f'<Title>{html.escape(name)}</Title><a href="{_a(link)}">{html.escape(link)}</a>{named}'
        )
        xml = _uri_object(obj_url, oid, "Video.1/Message.1", inner, body, "thumbnail")
        mtype = "RichText/Media_Video"
    elif fmt == "voice":
        link = f"{DOC_LINK}&am={oid}"
        inner = f'<Title>Voice message</Title><a href="{_a(link)}">Play</a>{named}'
        xml = _uri_object(obj_url, oid, "Audio.1/Message.1", inner, body, "thumbnail")
        mtype = "RichText/Media_AudioMsg"
    else:
        raise SimError(400, "BadRequest", f"unknown media format {fmt}")
    if caption:  # Skype media types carry no caption: use an HTML body
        return "RichText/Html", xml + caption, {}
    return mtype, xml, {}


async def control_post_media(request: web.Request, c: SimContext, body: dict[str, Any]) -> Any:
    chat_id = request.match_info["cid"]
    sender = str(body["sender"])
    fmt = str(body.get("format") or "image")
    store = store_of(request)
    obj: AmsObject | None = None
    if fmt != "sharepoint":
        if body.get("object_id"):
            obj = store.get(str(body["object_id"]))
        else:
            default_type = IMAGE_TYPE if fmt in ("image", "picture") else "sharing/file"
            upload = {
                "type": default_type,
                "conversation": chat_id,
                "filename": body.get("filename") or "file",
                **{k: v for k, v in body.items() if k in _UPLOAD_KEYS},
                "sender": sender,
            }
            if "content_b64" not in upload and "size" not in upload:
                upload["size"] = 1024
            obj = await _control_upload(c, store, upload)
    mtype, content, props = render_media(fmt, _base(c), obj, body)
    payload = {
        "content": content,
        "messagetype": mtype,
        "contenttype": "text",
        "properties": props,
        "amsreferences": [obj.id] if obj else [],
    }
    msg = c.world.post_message(chat_id, sender, payload)
    return {
        "message": message_json(msg, c.world.chat(msg.conversation_id), f"{_base(c)}/v1"),
        "object_id": obj.id if obj else None,
        "messagetype": mtype,
        "content": content,
    }


_UPLOAD_KEYS = ("type", "content_b64", "size", "seed", "content_type", "view", "permissions")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_route("POST", "/v1/objects", create_object)
    r.add_route("PUT", "/v1/objects/{oid}/content/{view}", put_content)
    r.add_route("GET", "/v1/objects/{oid}/views/{view}", get_view)
    r.add_route("GET", "/v1/objects/{oid}/views/{view}/status", get_status)
    p = "/_control"
    r.add_route("POST", f"{p}/ams", route(control_upload))
    r.add_route("GET", f"{p}/ams", route(control_list))
    r.add_route("GET", f"{p}/ams/{{oid}}", route(control_get))
    r.add_route("GET", f"{p}/ams/{{oid}}/content/{{view}}", control_content)
    r.add_route("POST", f"{p}/chats/{{cid}}/media", route(control_post_media))
