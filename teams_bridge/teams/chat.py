"""Chat service calls: self, conversations, threads, messages, sending, editing,
reactions, typing and read positions."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from .authz import SkypeToken
from .errors import InvalidId, ParseError, TeamsError
from .http import Auth, Response, TeamsHttp
from .ids import (
    ConversationIdKind,
    classify_conversation,
    escape_segment,
    id_from_link,
    is_valid_id,
    split_message_id,
    thread_conversation_id,
)
from .kinds import AccountKind
from .links import resolve_page_link
from .models import Conversation, Message, Thread, ThreadMember
from .parse import as_int, parse_conversation, parse_message, parse_thread
from .props import ConsumptionHorizon, parse_consumption_horizon, user_mri

log = logging.getLogger("teams.chat")

TARGET_TYPES = "Passport|Skype|Lync|Thread|PSTN|Agent"
CONVERSATION_PAGE = 100
MESSAGE_PAGE = 200
MAX_SCAN_MESSAGES = 5000
MAX_PAGES = 200


class SkypeTokenSource(Protocol):
    """Where the chat API learns the service URLs from."""

    async def skype(self) -> SkypeToken: ...


def _with_query(url: str, params: Mapping[str, Any]) -> str:
    return f"{url}?{urlencode(params)}"


def _message_key(message: Message) -> int | None:
    return as_int(message.id) if message.id.isdigit() else None


def now_ms() -> int:
    return int(time.time() * 1000)


_last_client_message_id = 0


def new_client_message_id() -> str:
    """A fresh numeric ``clientmessageid`` (ms clock plus random digits, like the web client),
    never one this process made before: ids made in the same millisecond (a transaction's
    messages are given theirs at once) would otherwise meet by chance."""
    global _last_client_message_id
    candidate = now_ms() * 1000 + random.randrange(1000)
    _last_client_message_id = max(candidate, _last_client_message_id + 1)
    return str(_last_client_message_id)


def _message_id(message_id: str) -> str:
    """Message ids are decimal (arrival ms); anything else never reaches a URL."""
    if (
        not isinstance(message_id, str)
        or not (message_id.isascii() and message_id.isdigit())
        or len(message_id) > 30
    ):
        raise InvalidId("a message id is a decimal number")
    return message_id


class ChatApi:
    """The chat-service endpoints the bridge needs (§4)."""

    def __init__(self, http: TeamsHttp, tokens: SkypeTokenSource, kind: AccountKind) -> None:
        self.http = http
        self.tokens = tokens
        self.kind = kind

    async def _base(self) -> str:
        return (await self.tokens.skype()).services.chat

    def _headers(self) -> dict[str, str]:
        headers = {
            "BehaviorOverride": "redirectAs404",
            "x-ms-client-version": "1415/26022704215",
            "ClientInfo": "os=linux; osVer=0; proc=x86; lcid=en-us; deviceType=1; "
            "country=n/a; clientName=skypeteams; clientVer=1415/26022704215",
        }
        if self.kind is AccountKind.PERSONAL:
            headers["X-MS-Client-Consumer-Type"] = "teams4life"
            headers["ms-ic3-product"] = "tfl"
            headers["ms-ic3-additional-product"] = "Sfl"
        return headers

    async def _get(self, url: str) -> Response:
        return await self.http.request("GET", url, auth=Auth.CHAT, headers=self._headers())

    async def _send(self, method: str, url: str, body: Any = None) -> Response:
        return await self.http.request(
            method, url, auth=Auth.CHAT, json_body=body, headers=self._headers()
        )

    async def _conversation_url(self, conv_id: str) -> str:
        return f"{await self._base()}/users/ME/conversations/{escape_segment(conv_id)}"

    async def _message_url(self, conv_id: str, message_id: str) -> str:
        return f"{await self._conversation_url(conv_id)}/messages/{_message_id(message_id)}"

    async def _thread_url(self, conv_id: str) -> str:
        base_id, _root = split_message_id(conv_id)
        return f"{await self._base()}/threads/{escape_segment(base_id)}"

    async def self_properties(self) -> dict[str, Any]:
        """``/users/ME/properties`` (``skypeName``, ``userDetails``, …)."""
        data = (await self._get(f"{await self._base()}/users/ME/properties")).json()
        if not isinstance(data, dict):
            raise TeamsError(None, "invalid_response", "self properties are not an object")
        return data

    async def list_conversations(self, limit: int = 100) -> list[Conversation]:
        """Conversations, newest activity first, following ``backwardLink`` pages."""
        page_size = max(1, min(limit, CONVERSATION_PAGE))
        url: str | None = _with_query(
            f"{await self._base()}/users/ME/conversations",
            {
                "view": "msnp24Equivalent",
                "pageSize": page_size,
                "startTime": 0,
                "targetType": TARGET_TYPES,
            },
        )
        result: list[Conversation] = []
        seen_ids: set[str] = set()
        seen_urls: set[str] = set()
        while url and len(result) < limit and len(seen_urls) < MAX_PAGES:
            seen_urls.add(url)
            data = (await self._get(url)).json()
            if not isinstance(data, dict):
                raise TeamsError(None, "invalid_response", "conversation list is not an object")
            raw_list = data.get("conversations")
            entries = raw_list if isinstance(raw_list, list) else []
            new = 0
            for raw in entries:
                try:
                    conv = parse_conversation(raw)
                except ParseError as exc:
                    log.warning("Skipping an unparsable conversation: %s", exc)
                    continue
                if conv.id in seen_ids:
                    continue
                seen_ids.add(conv.id)
                result.append(conv)
                new += 1
            if new == 0:
                break
            url = self._next_page(data, url, full_page=len(entries) >= page_size, allow_sync=True)
            if url in seen_urls:
                break
        return result[:limit]

    @staticmethod
    def _next_page(
        data: Mapping[str, Any], url: str, *, full_page: bool, allow_sync: bool
    ) -> str | None:
        meta = data.get("_metadata")
        if not isinstance(meta, Mapping):
            return None
        link = meta.get("backwardLink")
        if isinstance(link, str) and link.strip():
            return resolve_page_link(link, url)
        sync = meta.get("syncState")
        if allow_sync and full_page and isinstance(sync, str) and sync.strip():
            return resolve_page_link(sync, url)
        return None

    async def get_conversation(self, conv_id: str) -> Conversation:
        url = _with_query(
            f"{await self._base()}/users/ME/conversations/{escape_segment(conv_id)}",
            {"view": "msnp24Equivalent"},
        )
        return parse_conversation((await self._get(url)).json())

    async def get_thread(self, conv_id: str) -> Thread:
        """Thread metadata and roster; peer-addressed and feed conversations, and 1:1s the
        thread endpoint refuses, are answered from the conversation object instead."""
        base_id, _root = split_message_id(conv_id)
        id_kind = classify_conversation(base_id)
        if id_kind in (ConversationIdKind.DIRECT, ConversationIdKind.FEED):
            return self._thread_from_conversation(await self.get_conversation(base_id))
        url = _with_query(
            f"{await self._base()}/threads/{escape_segment(base_id)}", {"view": "msnp24Equivalent"}
        )
        try:
            return parse_thread((await self._get(url)).json())
        except TeamsError as exc:
            if id_kind is ConversationIdKind.ONE_TO_ONE and exc.status in (400, 403, 404):
                return self._thread_from_conversation(await self.get_conversation(base_id))
            raise

    @staticmethod
    def _thread_from_conversation(conv: Conversation) -> Thread:
        return Thread(
            id=conv.id,
            kind=conv.kind,
            topic=conv.topic,
            members=tuple(ThreadMember(mri=m) for m in conv.members),
            version=conv.version,
        )

    async def list_messages(
        self, conv_id: str, *, after_id: str | None = None, limit: int = 200
    ) -> list[Message]:
        """Messages oldest first.

        Without ``after_id``: the newest ``limit`` messages. With it: the oldest ``limit``
        messages newer than ``after_id``, so a caller can catch up page by page.
        """
        after = as_int(after_id) if after_id is not None else None
        page_size = max(1, min(limit, MESSAGE_PAGE))
        url: str | None = _with_query(
            f"{await self._base()}/users/ME/conversations/{escape_segment(conv_id)}/messages",
            {
                "view": "msnp24Equivalent|supportsMessageProperties",
                "pageSize": page_size,
                "startTime": 0,
                "targetType": TARGET_TYPES,
            },
        )
        collected: list[Message] = []  # newest first, as on the wire
        seen_ids: set[str] = set()
        seen_urls: set[str] = set()
        scanned = 0
        reached_cursor = False
        while url and len(seen_urls) < MAX_PAGES:
            seen_urls.add(url)
            data = (await self._get(url)).json()
            if not isinstance(data, dict):
                raise TeamsError(None, "invalid_response", "message list is not an object")
            raw_list = data.get("messages")
            entries = raw_list if isinstance(raw_list, list) else []
            for raw in entries:
                scanned += 1
                try:
                    message = parse_message(raw, conversation_id=conv_id)
                except ParseError as exc:
                    log.warning("Skipping an unparsable message: %s", exc)
                    continue
                if message.id in seen_ids:
                    continue
                seen_ids.add(message.id)
                if after_id is not None:
                    key = _message_key(message)
                    if message.id == after_id or (
                        after is not None and key is not None and key <= after
                    ):
                        reached_cursor = True
                        continue
                collected.append(message)
            if not entries:
                break
            if after_id is None and len(collected) >= limit:
                break
            if after_id is not None and (reached_cursor or scanned >= MAX_SCAN_MESSAGES):
                break
            url = self._next_page(data, url, full_page=False, allow_sync=False)
            if url in seen_urls:
                break
        if after_id is not None and not reached_cursor and url:
            log.warning("Catch-up stopped after %d messages before reaching the cursor", scanned)
        oldest_first = list(reversed(collected))
        if all(_message_key(m) is not None for m in oldest_first):
            oldest_first.sort(key=lambda m: _message_key(m) or 0)
        if after_id is None:
            return oldest_first[-limit:]
        return oldest_first[:limit]

    async def send_message(
        self,
        conv_id: str,
        content: str,
        *,
        client_message_id: str,
        display_name: str | None,
        message_type: str = "RichText/Html",
        properties: Mapping[str, Any] | None = None,
        thread_root_id: str | None = None,
    ) -> str:
        """Post a message with the minimal body; returns the new message id.

        With ``thread_root_id`` the message is a reply in that channel thread: it goes to
        ``<channel>;messageid=<root>``, escaped as one path segment (§4.7).
        """
        body = self._message_body(
            content, client_message_id, display_name, message_type, properties
        )
        if thread_root_id is not None:
            conv_id = thread_conversation_id(conv_id, _message_id(thread_root_id))
        resp = await self._send("POST", f"{await self._conversation_url(conv_id)}/messages", body)
        message_id = self._sent_message_id(resp)
        if message_id is None:
            raise TeamsError(
                resp.status, "no_message_id", "the service did not return a message id"
            )
        return message_id

    @staticmethod
    def _message_body(
        content: str,
        client_message_id: str,
        display_name: str | None,
        message_type: str,
        properties: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "clientmessageid": client_message_id,
            "content": content,
            "messagetype": message_type,
            "contenttype": "text",
            "imdisplayname": display_name or "",
            "properties": dict(properties or {}),
        }

    async def get_message(self, conv_id: str, message_id: str) -> Message:
        """One message by id (§4.4)."""
        url = _with_query(
            await self._message_url(conv_id, message_id),
            {"view": "msnp24Equivalent|supportsMessageProperties"},
        )
        return parse_message((await self._get(url)).json(), conversation_id=conv_id)

    async def edit_message(
        self,
        conv_id: str,
        message_id: str,
        content: str,
        *,
        display_name: str | None,
        message_type: str = "RichText/Html",
        properties: Mapping[str, Any] | None = None,
        client_message_id: str | None = None,
    ) -> None:
        """Replace an own message's content (§4.9); the change comes back as a
        ``MessageUpdate``. A fresh ``clientmessageid`` is sent unless one is given."""
        body = self._message_body(
            content,
            client_message_id or new_client_message_id(),
            display_name,
            message_type,
            properties,
        )
        await self._send("PUT", await self._message_url(conv_id, message_id), body)

    async def delete_message(self, conv_id: str, message_id: str) -> None:
        """Soft-delete an own message; it stays in history with empty content."""
        url = _with_query(await self._message_url(conv_id, message_id), {"behavior": "softDelete"})
        await self._send("DELETE", url)

    async def _emotion(self, method: str, conv_id: str, message_id: str, key: str) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ValueError("empty reaction key")
        emotion: dict[str, Any] = {"key": key}
        if method == "PUT":
            emotion["value"] = now_ms()
        url = _with_query(
            f"{await self._message_url(conv_id, message_id)}/properties", {"name": "emotions"}
        )
        await self._send(method, url, {"emotions": emotion})

    async def add_reaction(self, conv_id: str, message_id: str, key: str) -> None:
        """React with a Teams emotion key (``like``, ``1f6a5_…``; see ``emoji``)."""
        await self._emotion("PUT", conv_id, message_id, key)

    async def remove_reaction(self, conv_id: str, message_id: str, key: str) -> None:
        await self._emotion("DELETE", conv_id, message_id, key)

    async def send_typing(self, conv_id: str) -> None:
        """One "is typing" notice; Teams has no "stopped typing" and expires it itself."""
        body = {
            "content": "",
            "contenttype": "Application/Message",
            "messagetype": "Control/Typing",
        }
        await self._send("POST", f"{await self._conversation_url(conv_id)}/messages", body)

    async def set_consumption_horizon(self, conv_id: str, message_id: str) -> None:
        """Mark the conversation read up to ``message_id`` (``<id>;<nowMs>;<id>``)."""
        mid = _message_id(message_id)
        url = _with_query(
            f"{await self._conversation_url(conv_id)}/properties", {"name": "consumptionhorizon"}
        )
        await self._send("PUT", url, {"consumptionhorizon": f"{mid};{now_ms()};{mid}"})

    async def get_consumption_horizons(self, conv_id: str) -> list[ConsumptionHorizon]:
        """Every member's read position (may be empty for large groups)."""
        data = (await self._get(f"{await self._thread_url(conv_id)}/consumptionhorizons")).json()
        entries = data.get("consumptionhorizons") if isinstance(data, Mapping) else None
        result: list[ConsumptionHorizon] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping):
                continue
            mri = user_mri(entry.get("id"))
            horizon = parse_consumption_horizon(entry.get("consumptionhorizon"), mri)
            if mri is not None and horizon is not None:
                result.append(horizon)
        return result

    async def create_thread(
        self,
        me: str,
        members: list[str],
        *,
        topic: str | None = None,
        one_to_one: bool = False,
    ) -> str:
        """Start a chat with ``members``, ``me`` (the signed-in user) as admin; its id.

        A 1:1 is marked with a fixed, unique roster, as the Teams client marks one (§4.3).
        The ``Location`` header is authoritative; the body may be empty, ``{"id"}`` or ``{"threadResource": {"id"}}``.
        """
        roster = [{"id": m, "role": "User"} for m in members if m != me]
        roster.append({"id": me, "role": "Admin"})
        props: dict[str, str] = {"threadType": "chat", "chatFilesIndexId": "2"}
        if topic:
            props["topic"] = topic
        if one_to_one:
            props.update(fixedRoster="true", uniquerosterthread="true")
        resp = await self._send(
            "POST", f"{await self._base()}/threads", {"members": roster, "properties": props}
        )
        thread_id = self._created_thread_id(resp)
        if thread_id is None:
            raise TeamsError(resp.status, "no_thread_id", "the service did not return a chat id")
        return thread_id

    @staticmethod
    def _created_thread_id(resp: Response) -> str | None:
        location = resp.headers.get("Location")
        if location:
            try:
                return id_from_link(location)
            except InvalidId:
                pass
        try:
            data = resp.json()
        except TeamsError:
            return None
        if isinstance(data, Mapping):
            resource = data.get("threadResource")
            raw = resource.get("id") if isinstance(resource, Mapping) else data.get("id")
            if isinstance(raw, str) and is_valid_id(raw):
                return raw
        return None

    async def add_member(self, conv_id: str, mri: str, role: str = "User") -> None:
        """Add someone to a group chat (§4.3)."""
        url = f"{await self._thread_url(conv_id)}/members/{escape_segment(mri)}"
        await self._send("PUT", url, {"role": role})

    async def remove_member(self, conv_id: str, mri: str) -> None:
        """Remove someone from a group chat, or (one's own MRI) leave it (§4.3)."""
        url = f"{await self._thread_url(conv_id)}/members/{escape_segment(mri)}"
        await self._send("DELETE", url, None)

    async def set_topic(self, conv_id: str, topic: str) -> None:
        """Rename a group chat (§4.3)."""
        url = _with_query(f"{await self._thread_url(conv_id)}/properties", {"name": "topic"})
        await self._send("PUT", url, {"topic": topic})

    @staticmethod
    def _sent_message_id(resp: Response) -> str | None:
        location = resp.headers.get("Location")
        if location:
            try:
                candidate = id_from_link(location)
            except InvalidId:
                candidate = ""
            if candidate.isdigit():
                return candidate
        try:
            data = resp.json()
        except TeamsError:
            data = None
        if isinstance(data, Mapping):
            arrival = as_int(data.get("OriginalArrivalTime", data.get("originalArrivalTime")))
            if arrival is not None and arrival > 0:
                return str(arrival)
            raw_id = data.get("id")
            if isinstance(raw_id, (str, int)) and str(raw_id).isdigit():
                return str(raw_id)
        return None
