"""`ControlClient`: async client for the simulator's `/_control/` API, usable from any process."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import quote

import aiohttp


def _seg(value: str) -> str:
    """Percent-encode one path segment (conversation ids and MRIs contain `:` and `@`)."""
    return quote(value, safe="")


class ControlError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class ControlClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.base_url}/_control{path}"
        async with self._session.request(method, url, json=body, params=params) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ControlError(resp.status, data)
            return data

    # -- users ---------------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        return await self._call("GET", "/info")

    async def create_user(
        self,
        display_name: str,
        kind: str = "work",
        email: str | None = None,
        tenant_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"display_name": display_name, "kind": kind}
        if email:
            body["email"] = email
        if tenant_id:
            body["tenant_id"] = tenant_id
        return await self._call("POST", "/users", body)

    async def set_policy(self, *, external_access: bool) -> dict[str, Any]:
        return await self._call("PUT", "/policy", {"external_access": external_access})

    async def list_users(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/users")

    async def revoke(self, mri: str) -> dict[str, Any]:
        return await self._call("POST", f"/users/{_seg(mri)}/revoke")

    async def expire_skype_token(self, mri: str) -> dict[str, Any]:
        return await self._call("POST", f"/users/{_seg(mri)}/expire_skype_token")

    async def expire_access_token(self, mri: str) -> dict[str, Any]:
        return await self._call("POST", f"/users/{_seg(mri)}/expire_access_token")

    async def set_picture(
        self, mri: str, data: bytes, content_type: str = "image/png"
    ) -> dict[str, Any]:
        """Give `mri` a profile picture (or a new one); returns its sha256."""
        body = {"content_b64": base64.b64encode(data).decode(), "content_type": content_type}
        return await self._call("PUT", f"/users/{_seg(mri)}/picture", body)

    async def remove_picture(self, mri: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/users/{_seg(mri)}/picture")

    async def set_presence(
        self,
        mri: str,
        availability: str | None = None,
        *,
        activity: str | None = None,
        note: str | None = None,
        device_type: str | None = None,
    ) -> dict[str, Any]:
        """Change a user's presence as their Teams clients would (pushed to subscribers)."""
        body: dict[str, Any] = {}
        for key, value in (
            ("availability", availability),
            ("activity", activity),
            ("note", note),
            ("device_type", device_type),
        ):
            if value is not None:
                body[key] = value
        return await self._call("PUT", f"/users/{_seg(mri)}/presence", body)

    async def get_presence(self, mri: str) -> dict[str, Any]:
        return await self._call("GET", f"/users/{_seg(mri)}/presence")

    async def presence_subscriptions(self) -> dict[str, Any]:
        return await self._call("GET", "/presence/subscriptions")

    # -- chats ---------------------------------------------------------------------
    async def create_chat(
        self, kind: str, members: list[str], topic: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "members": members}
        if topic is not None:
            body["topic"] = topic
        return await self._call("POST", "/chats", body)

    async def create_team(
        self, display_name: str, members: list[str], channels: list[str] | None = None
    ) -> dict[str, Any]:
        """A team (the first member owns it) with its General channel (whose id is the
        team's) and a standard channel per name; channels are chats of kind `channel`."""
        body = {"display_name": display_name, "members": members, "channels": channels or []}
        return await self._call("POST", "/teams", body)

    async def list_teams(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/teams")

    async def list_chats(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/chats")

    async def get_chat(self, chat_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/chats/{_seg(chat_id)}")

    async def post_message(
        self,
        chat_id: str,
        sender: str,
        content: str,
        messagetype: str = "RichText/Html",
        clientmessageid: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Post as `sender`. Extra fields: `properties`, `imdisplayname`, `contenttype`,
        `amsreferences`, `thread_root` (a channel post's id: reply in its thread),
        `wire` (top-level JSON overrides; None removes a field, e.g.
        `{"imdisplayname": None, "imDisplayName": "Ada"}`) and `mentions`
        (`[{"mri", "text"?, "split"?=True, "display_names"?=True, "mention_type"?="person"}]`,
        filling `{mention:N}` placeholders in `content`)."""
        body = {"sender": sender, "content": content, "messagetype": messagetype, **extra}
        if clientmessageid is not None:
            body["clientmessageid"] = clientmessageid
        return await self._call("POST", f"/chats/{_seg(chat_id)}/messages", body)

    async def list_messages(self, chat_id: str) -> list[dict[str, Any]]:
        return await self._call("GET", f"/chats/{_seg(chat_id)}/messages")

    async def edit_message(
        self, chat_id: str, message_id: str, sender: str, content: str
    ) -> dict[str, Any]:
        body = {"sender": sender, "content": content}
        return await self._call("PUT", f"/chats/{_seg(chat_id)}/messages/{message_id}", body)

    async def delete_message(self, chat_id: str, message_id: str, sender: str) -> dict[str, Any]:
        return await self._call(
            "DELETE", f"/chats/{_seg(chat_id)}/messages/{message_id}", {"sender": sender}
        )

    async def react(
        self,
        chat_id: str,
        message_id: str,
        sender: str,
        key: str,
        remove: bool = False,
        history: bool | None = None,
    ) -> dict[str, Any]:
        """Add (or `remove`) a reaction; `history` overrides the `emotion_history` option
        (re-adding then appends another entry for the same user)."""
        body: dict[str, Any] = {"sender": sender, "key": key}
        if history is not None:
            body["history"] = history
        return await self._call(
            "DELETE" if remove else "POST",
            f"/chats/{_seg(chat_id)}/messages/{message_id}/reactions",
            body,
        )

    async def patch_message(
        self,
        chat_id: str,
        message_id: str,
        *,
        properties: dict[str, Any] | None = None,
        wire: dict[str, Any] | None = None,
        content: str | None = None,
        publish: str | None = "MessageUpdate",
    ) -> dict[str, Any]:
        """Reshape a stored message (None values remove) and push it as `publish`
        (None: do not push)."""
        body: dict[str, Any] = {"publish": publish}
        if properties is not None:
            body["properties"] = properties
        if wire is not None:
            body["wire"] = wire
        if content is not None:
            body["content"] = content
        return await self._call("PATCH", f"/chats/{_seg(chat_id)}/messages/{message_id}", body)

    async def typing(self, chat_id: str, sender: str) -> dict[str, Any]:
        return await self._call("POST", f"/chats/{_seg(chat_id)}/typing", {"sender": sender})

    async def add_member(
        self, chat_id: str, mri: str, role: str = "User", by: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            "POST", f"/chats/{_seg(chat_id)}/members", {"mri": mri, "role": role, "by": by}
        )

    async def add_members(
        self, chat_id: str, mris: list[str], role: str = "User", by: str | None = None
    ) -> dict[str, Any]:
        """Several users in one AddMember notice (one `<target>` each)."""
        return await self._call(
            "POST", f"/chats/{_seg(chat_id)}/members", {"mris": mris, "role": role, "by": by}
        )

    async def set_role(
        self, chat_id: str, mri: str, role: str, by: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            "PUT", f"/chats/{_seg(chat_id)}/members/{_seg(mri)}/role", {"role": role, "by": by}
        )

    async def remove_member(self, chat_id: str, mri: str, by: str | None = None) -> dict[str, Any]:
        return await self._call("DELETE", f"/chats/{_seg(chat_id)}/members/{_seg(mri)}", {"by": by})

    async def set_topic(self, chat_id: str, topic: str, by: str) -> dict[str, Any]:
        return await self._call("PUT", f"/chats/{_seg(chat_id)}/topic", {"topic": topic, "by": by})

    async def set_chat_picture(
        self, chat_id: str, object_id: str | None, by: str
    ) -> dict[str, Any]:
        """Set the chat's picture to an AMS object (see `ams_upload`); None removes it."""
        path = f"/chats/{_seg(chat_id)}/picture"
        if object_id is None:
            return await self._call("DELETE", path, {"by": by})
        return await self._call("PUT", path, {"object_id": object_id, "by": by})

    async def set_horizon(self, chat_id: str, mri: str, consumptionhorizon: str) -> dict[str, Any]:
        return await self._call(
            "PUT",
            f"/chats/{_seg(chat_id)}/horizon",
            {"mri": mri, "consumptionhorizon": consumptionhorizon},
        )

    async def post_activity(
        self,
        chat_id: str,
        messagetype: str,
        content: str | dict[str, Any],
        *,
        sender: str | None = None,
        store: bool = True,
        properties: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Any notice (`ThreadActivity/...`, `Event/...`) sent by the conversation or
        `sender`; a dict `content` is sent as JSON text."""
        body: dict[str, Any] = {"messagetype": messagetype, "content": content, "store": store}
        if sender is not None:
            body["sender"] = sender
        if properties is not None:
            body["properties"] = properties
        return await self._call("POST", f"/chats/{_seg(chat_id)}/activity", body)

    async def post_call(
        self,
        chat_id: str,
        kind: str = "ended",
        participants: list[str] | None = None,
        *,
        duration: int | None = None,
        by: str | None = None,
        ended_tag: bool = False,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        """An `Event/Call` partlist: kind started/ended/missed; `ended_tag` uses the older
        `<ended/>` marker instead of `type="ended"`."""
        body: dict[str, Any] = {
            "kind": kind,
            "participants": participants or [],
            "duration": duration,
            "by": by,
            "ended_tag": ended_tag,
            "call_id": call_id,
        }
        return await self._call("POST", f"/chats/{_seg(chat_id)}/calls", body)

    async def post_call_log(self, mri: str, **fields: Any) -> dict[str, Any]:
        """A `48:calllogs` entry pushed to `mri`. Fields: `originator`, `target`, `state`
        (accepted/missed/declined/cancelled), `duration` (s), `thread_id`, `call_id`,
        `call_type`, `end_ms`, `as_string` (default True: `call-log` is a JSON string),
        `call_log` (raw keys merged last)."""
        return await self._call("POST", f"/users/{_seg(mri)}/call_logs", fields)

    # -- media (AMS) -----------------------------------------------------------------
    async def ams_upload(
        self,
        sender: str,
        data: bytes | None = None,
        *,
        size: int | None = None,
        seed: int = 0,
        filename: str = "file",
        type: str = "pish/image",
        content_type: str = "application/octet-stream",
        conversation: str | None = None,
        permissions: dict[str, list[str]] | None = None,
        view: str | None = None,
    ) -> dict[str, Any]:
        """Upload as `sender`: `data`, or `size` seeded random bytes. Returns id, url, views."""
        body: dict[str, Any] = {
            "sender": sender,
            "filename": filename,
            "type": type,
            "content_type": content_type,
        }
        if data is not None:
            body["content_b64"] = base64.b64encode(data).decode()
        elif size is not None:
            body["size"] = size
            body["seed"] = seed
        for key, value in (("conversation", conversation), ("permissions", permissions)):
            if value is not None:
                body[key] = value
        if view is not None:
            body["view"] = view
        return await self._call("POST", "/ams", body)

    async def ams_objects(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/ams")

    async def ams_object(self, object_id: str, include_bytes: bool = True) -> dict[str, Any]:
        """Owner, type, filename, permissions, contents (size, sha256, data_b64), downloads."""
        return await self._call(
            "GET", f"/ams/{_seg(object_id)}", params={"bytes": "1" if include_bytes else "0"}
        )

    async def ams_content(self, object_id: str, name: str) -> bytes:
        """The raw bytes uploaded to `content/{name}` (`imgpsh`, `original`, …)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.base_url}/_control/ams/{_seg(object_id)}/content/{_seg(name)}"
        async with self._session.get(url) as resp:
            if resp.status >= 400:
                raise ControlError(resp.status, await resp.text())
            return await resp.read()

    async def post_media(
        self, chat_id: str, sender: str, format: str = "image", **fields: Any
    ) -> dict[str, Any]:
        """Post a media message as `sender`: format `image` (inline AMSImage), `picture`
        (RichText/UriObject), `file`, `video` (Media_Video), `video_inline` (AMSVideo),
        `voice` (Media_AudioMsg) or `sharepoint` (properties.files). Fields: `object_id` or
        `content_b64`/`size` (uploaded first), `filename`, `caption`, `width`, `height`,
        `duration_ms`, `file_size`, `content_type`, `view`."""
        body = {"sender": sender, "format": format, **fields}
        return await self._call("POST", f"/chats/{_seg(chat_id)}/media", body)

    # -- device codes --------------------------------------------------------------
    async def device_codes(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/device_codes")

    async def approve_device_code(self, user_code: str, mri: str) -> dict[str, Any]:
        return await self._call(
            "POST", "/device_codes/approve", {"user_code": user_code, "mri": mri}
        )

    async def decline_device_code(self, user_code: str) -> dict[str, Any]:
        return await self._call("POST", "/device_codes/decline", {"user_code": user_code})

    async def wait_for_device_code(
        self, kind: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first pending code (of `kind`), polling until one shows up."""
        deadline = time.monotonic() + timeout
        while True:
            for code in await self.device_codes():
                if kind is None or code["kind"] == kind:
                    return code
            if time.monotonic() > deadline:
                raise TimeoutError("no pending device code")
            await asyncio.sleep(0.05)

    # -- inspection ----------------------------------------------------------------
    async def requests(
        self, path_contains: str | None = None, method: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"path_contains": path_contains, "method": method}.items() if v}
        return await self._call("GET", "/requests", params=params)

    async def clear_requests(self) -> None:
        await self._call("DELETE", "/requests")

    async def tokens(self) -> dict[str, list[str]]:
        return await self._call("GET", "/tokens")

    async def connections(self) -> dict[str, Any]:
        return await self._call("GET", "/connections")

    async def wait_for_registration(self, mri: str, timeout: float = 30.0) -> dict[str, Any]:
        """Until `mri` has a live connection with an unexpired registration pointing at it."""
        deadline = time.monotonic() + timeout
        while True:
            state = (await self.connections()).get(mri, {})
            regs = [r for r in state.get("registrations", []) if r["live"] and not r["expired"]]
            if regs:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mri} has no live, registered Trouter connection")
            await asyncio.sleep(0.05)

    async def message_loss(self, mri: str) -> dict[str, Any]:
        return await self._call("POST", "/trouter/message_loss", {"mri": mri})

    async def pause_delivery(self, mri: str) -> dict[str, Any]:
        """Events published for `mri` are lost until `resume_delivery`."""
        return await self._call("POST", "/trouter/pause", {"mri": mri})

    async def resume_delivery(self, mri: str, notice: bool = True) -> dict[str, Any]:
        return await self._call("POST", "/trouter/resume", {"mri": mri, "notice": notice})

    async def duplicate_deliveries(self, mri: str, enabled: bool = True) -> dict[str, Any]:
        return await self._call("POST", "/trouter/duplicate", {"mri": mri, "enabled": enabled})

    async def silence(self, mri: str, enabled: bool = True) -> dict[str, Any]:
        """The user's current sockets stop sending anything (pongs included)."""
        return await self._call("POST", "/trouter/silence", {"mri": mri, "enabled": enabled})

    async def disconnect(self, mri: str, notice: bool = True) -> dict[str, Any]:
        return await self._call("POST", "/trouter/disconnect", {"mri": mri, "notice": notice})

    async def add_fault(
        self,
        path_contains: str,
        status: int = 429,
        count: int = 1,
        method: str | None = None,
        retry_after: float | str | None = None,
        body: str | None = None,
        delay: float = 0.0,
        body_contains: str | None = None,
    ) -> dict[str, Any]:
        """Fail (or, with status 0 and a delay, slow down) the next `count` matches.

        `body_contains` narrows the match to requests whose body holds that text (an
        AMS content upload is streamed, its body never matches)."""
        return await self._call(
            "POST",
            "/faults",
            {
                "path_contains": path_contains,
                "status": status,
                "count": count,
                "method": method,
                "retry_after": retry_after,
                "body": body,
                "delay": delay,
                "body_contains": body_contains,
            },
        )

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")
