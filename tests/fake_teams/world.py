"""The simulated tenant and every mutation on it; each mutation is published as an event.

REST handlers and the control API both go through these operations, so a message a test
posts "as any user" is stored and fanned out exactly like one the bridge posts.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from . import ids
from .model import Chat, ChatKind, Member, Message, User, UserKind
from .render import NOTIFICATIONS_BASE, conversation_json, message_json, thread_json
from .util import now_ms

Resource = dict[str, Any] | Callable[[str], dict[str, Any]]


class SimError(Exception):
    """An error answered to the caller as `{"errorCode", "message"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class EventSink(Protocol):
    def publish(
        self, recipients: list[str], resource_type: str, resource: Resource, link: str
    ) -> None: ...


class World:
    """Users and chats, plus the operations the service offers on them."""

    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.users: dict[str, User] = {}
        self.chats: dict[str, Chat] = {}
        self.sink: EventSink | None = None
        self.dedupe = False
        self._seen_client_ids: dict[tuple[str, str], Message] = {}

    # -- users -----------------------------------------------------------------
    def create_user(
        self,
        display_name: str,
        kind: UserKind = "work",
        email: str | None = None,
        tenant_id: str | None = None,
    ) -> User:
        if kind not in ("work", "personal"):
            raise SimError(400, "BadRequest", "kind must be work or personal")
        slug = "".join(c for c in display_name.lower().replace(" ", ".") if c.isalnum() or c == ".")
        if kind == "work":
            mri, oid = ids.new_work_identity()
            tid = tenant_id or self.tenant_id
            email = email or f"{slug or 'user'}.{oid[:4]}@contoso.example"
        else:
            mri, oid, _cid = ids.new_personal_identity()
            tid = ids.MSA_TENANT_ID
            email = email or f"{slug or 'user'}.{oid[-4:]}@outlook.example"
        user = User(mri, display_name, email, oid, tid, kind)
        self.users[mri] = user
        return user

    def user(self, mri: str) -> User:
        user = self.users.get(mri)
        if user is None:
            raise SimError(404, "NotFound", f"unknown user {mri}")
        return user

    # -- chats -----------------------------------------------------------------
    def chat(self, chat_id: str) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise SimError(404, "NotFound", "Conversation not found")
        return chat

    def member_chat(self, chat_id: str, mri: str) -> Chat:
        chat = self.chat(chat_id)
        if mri not in chat.members:
            raise SimError(403, "Forbidden", "User is not a member of the conversation")
        return chat

    def chats_of(self, mri: str) -> list[Chat]:
        return [c for c in self.chats.values() if mri in c.members]

    def create_chat(self, kind: ChatKind, members: list[str], topic: str | None = None) -> Chat:
        if kind not in ("one_to_one", "group", "meeting"):
            raise SimError(400, "BadRequest", "kind must be one_to_one, group or meeting")
        unique = list(dict.fromkeys(members))
        users = [self.user(m) for m in unique]
        if not users:
            raise SimError(400, "BadRequest", "a chat needs members")
        if kind == "one_to_one":
            if len(users) != 2:
                raise SimError(400, "BadRequest", "a 1:1 chat has exactly two members")
            a, b = users
            if a.kind == "work" and b.kind == "work":
                chat_id = ids.work_one_to_one_id(a.object_id, b.object_id)
            else:
                chat_id = ids.uni01_one_to_one_id(a.mri, b.mri)
            if chat_id in self.chats:
                return self.chats[chat_id]
            topic = None
        else:
            chat_id = ids.meeting_id() if kind == "meeting" else ids.group_id()
        now = now_ms()
        roster = {
            u.mri: Member(u.mri, "Admin" if i == 0 else "User", now) for i, u in enumerate(users)
        }
        chat = Chat(chat_id, kind, roster, topic or None, users[0].mri, now, now)
        self.chats[chat_id] = chat
        self._publish_thread(chat)
        self._publish_conversation(chat, list(chat.members))
        return chat

    def implicit_one_to_one(self, chat_id: str, sender: str) -> Chat | None:
        """Work 1:1 ids are deterministic: the first message creates the chat."""
        if chat_id in self.chats or not chat_id.endswith("@unq.gbl.spaces"):
            return None
        pair = chat_id[3 : -len("@unq.gbl.spaces")].split("_")
        me = self.users.get(sender)
        if len(pair) != 2 or me is None or me.object_id not in pair:
            return None
        other_oid = pair[1] if pair[0] == me.object_id else pair[0]
        other = next((u for u in self.users.values() if u.object_id == other_oid), None)
        if other is None or other.kind != "work":
            return None
        return self.create_chat("one_to_one", [me.mri, other.mri])

    # -- messages --------------------------------------------------------------
    def post_message(self, chat_id: str, sender: str, body: dict[str, Any]) -> Message:
        """Store (unless it is a control message) and fan out one message."""
        chat = self.chats.get(chat_id) or self.implicit_one_to_one(chat_id, sender)
        if chat is None:
            raise SimError(404, "NotFound", "Conversation not found")
        if sender not in chat.members:
            raise SimError(403, "Forbidden", "User is not a member of the conversation")
        messagetype = body.get("messagetype") or body.get("messageType")
        if not isinstance(messagetype, str) or not messagetype:
            raise SimError(400, "BadRequest", "messagetype is required")
        content = body.get("content", "")
        if not isinstance(content, str):
            raise SimError(400, "BadRequest", "content must be a string")
        client_id = str(body.get("clientmessageid") or ids.random_client_message_id())
        key = (chat.id, client_id)
        if self.dedupe and key in self._seen_client_ids:
            return self._seen_client_ids[key]
        user = self.user(sender)
        raw_props = body.get("properties")
        props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
        control = messagetype.startswith("Control/")
        msg = Message(
            id=chat.next_arrival(now_ms()),
            sequence_id=0 if control else chat.next_sequence,
            conversation_id=chat.id,
            sender=sender,
            sender_name=str(
                body.get("imdisplayname") or body.get("imDisplayName") or user.display_name
            ),
            sender_tenant=user.tenant_id,
            messagetype=messagetype,
            contenttype=str(body.get("contenttype") or body.get("contentType") or "text"),
            content=content,
            client_message_id=client_id,
            arrival_ms=0,
            properties=dict(props),
            amsreferences=list(body.get("amsreferences") or []),
        )
        msg.arrival_ms = msg.version = msg.id
        if not control:
            chat.next_sequence += 1
            chat.messages.append(msg)
            if self.dedupe:
                self._seen_client_ids[key] = msg
        self._publish_message(chat, msg, "NewMessage")
        return msg

    def own_message(self, chat_id: str, msg_id: int, mri: str) -> tuple[Chat, Message]:
        chat = self.member_chat(chat_id, mri)
        msg = chat.message(msg_id)
        if msg is None:
            raise SimError(404, "NotFound", "Message not found")
        if msg.sender != mri:
            raise SimError(403, "Forbidden", "Only the sender can change a message")
        return chat, msg

    def edit_message(self, chat_id: str, msg_id: int, mri: str, body: dict[str, Any]) -> Message:
        chat, msg = self.own_message(chat_id, msg_id, mri)
        content = body.get("content")
        if not isinstance(content, str):
            raise SimError(400, "BadRequest", "content must be a string")
        stamp = chat.next_arrival(now_ms())
        msg.content = content
        if body.get("messagetype"):
            msg.messagetype = str(body["messagetype"])
        props = body.get("properties")
        if isinstance(props, dict):
            msg.properties.update({k: v for k, v in props.items() if k != "emotions"})
        msg.properties.pop("deletetime", None)
        msg.properties["edittime"] = str(stamp)
        msg.edited_id = msg.client_message_id
        msg.version = stamp
        self._publish_message(chat, msg, "MessageUpdate")
        return msg

    def delete_message(self, chat_id: str, msg_id: int, mri: str) -> Message:
        chat, msg = self.own_message(chat_id, msg_id, mri)
        stamp = chat.next_arrival(now_ms())
        msg.content = ""
        msg.properties["deletetime"] = stamp
        msg.version = stamp
        self._publish_message(chat, msg, "MessageUpdate")
        return msg

    def set_emotion(self, chat_id: str, msg_id: int, mri: str, key: str, add: bool) -> Message:
        chat = self.member_chat(chat_id, mri)
        msg = chat.message(msg_id)
        if msg is None:
            raise SimError(404, "NotFound", "Message not found")
        if not key:
            raise SimError(400, "BadRequest", "emotions.key is required")
        stamp = chat.next_arrival(now_ms())
        emotions = msg.properties.setdefault("emotions", [])
        entry = next((e for e in emotions if e.get("key") == key), None)
        if entry is None:
            entry = {"key": key, "users": []}
            emotions.append(entry)
        entry["users"] = [u for u in entry["users"] if u.get("mri") != mri]
        if add:
            entry["users"].append({"mri": mri, "time": stamp, "value": str(stamp)})
        msg.version = stamp
        self._publish_message(chat, msg, "MessageUpdate")
        return msg

    def set_horizon(self, chat_id: str, mri: str, horizon: str) -> None:
        chat = self.member_chat(chat_id, mri)
        chat.horizons[mri] = horizon
        self._publish_conversation(chat, [mri])
        others = [m for m in chat.members if m != mri]
        activity = {
            "user": mri,
            "consumptionhorizon": horizon,
            "messageVisibilityTime": chat.created_ms,
            "version": str(now_ms()),
        }
        self._thread_activity(
            chat,
            "ThreadActivity/MemberConsumptionHorizonUpdate",
            activity,
            store=False,
            recipients=others,
        )

    # -- roster and properties ---------------------------------------------------
    def add_member(self, chat_id: str, mri: str, role: str = "User", by: str | None = None) -> Chat:
        chat = self.chat(chat_id)
        target = self.user(mri)
        if chat.kind == "one_to_one":
            raise SimError(403, "Forbidden", "1:1 chats have a fixed roster")
        stamp = now_ms()
        chat.members[mri] = Member(mri, role if role in ("Admin", "User") else "User", stamp)
        chat.version = stamp
        initiator = by or chat.creator
        xml = (
            f"<addmember><eventtime>{stamp}</eventtime><initiator>{initiator}</initiator>"
            f"<rosterVersion>{stamp}</rosterVersion><target>{mri}</target>"
            f"<detailedtargetinfo><id>{mri}</id><friendlyName>{html.escape(target.display_name)}"
            f"</friendlyName></detailedtargetinfo></addmember>"
        )
        self._thread_activity(chat, "ThreadActivity/AddMember", xml)
        self._publish_thread(chat)
        return chat

    def remove_member(self, chat_id: str, mri: str, by: str | None = None) -> Chat:
        chat = self.chat(chat_id)
        if mri not in chat.members:
            raise SimError(404, "NotFound", "Member not found")
        stamp = now_ms()
        recipients = list(chat.members)
        del chat.members[mri]
        chat.version = stamp
        xml = (
            f"<deletemember><eventtime>{stamp}</eventtime><initiator>{by or mri}</initiator>"
            f"<target>{mri}</target></deletemember>"
        )
        self._thread_activity(chat, "ThreadActivity/DeleteMember", xml, recipients=recipients)
        self._publish_thread(chat, recipients)
        return chat

    def set_topic(self, chat_id: str, topic: str, by: str) -> Chat:
        chat = self.member_chat(chat_id, by)
        stamp = now_ms()
        chat.topic = topic or None
        chat.version = stamp
        xml = (
            f"<topicupdate><eventtime>{stamp}</eventtime><initiator>{by}</initiator>"
            f"<value>{html.escape(topic)}</value></topicupdate>"
        )
        self._thread_activity(chat, "ThreadActivity/TopicUpdate", xml)
        self._publish_thread(chat)
        return chat

    # -- publishing ------------------------------------------------------------
    def _thread_activity(
        self,
        chat: Chat,
        messagetype: str,
        content: str | dict[str, Any],
        *,
        store: bool = True,
        recipients: list[str] | None = None,
    ) -> Message:
        text = content if isinstance(content, str) else json.dumps(content)
        msg = Message(
            id=chat.next_arrival(now_ms()),
            sequence_id=chat.next_sequence if store else 0,
            conversation_id=chat.id,
            sender=chat.id,
            sender_name="",
            sender_tenant="",
            messagetype=messagetype,
            contenttype="text",
            content=text,
            client_message_id=ids.random_client_message_id(),
            arrival_ms=0,
        )
        msg.arrival_ms = msg.version = msg.id
        if store:
            chat.next_sequence += 1
            chat.messages.append(msg)
        self._publish_message(chat, msg, "NewMessage", recipients)
        return msg

    def _publish_message(
        self, chat: Chat, msg: Message, resource_type: str, recipients: list[str] | None = None
    ) -> None:
        if self.sink is None:
            return
        resource = message_json(msg, chat, NOTIFICATIONS_BASE)
        link = f"{NOTIFICATIONS_BASE}/users/ME/conversations/{chat.id}/messages/{msg.id}"
        self.sink.publish(recipients or list(chat.members), resource_type, resource, link)

    def _publish_thread(self, chat: Chat, recipients: list[str] | None = None) -> None:
        if self.sink is None:
            return
        resource = thread_json(chat, self.users, NOTIFICATIONS_BASE)
        link = f"{NOTIFICATIONS_BASE}/threads/{chat.id}"
        self.sink.publish(recipients or list(chat.members), "ThreadUpdate", resource, link)

    def _publish_conversation(self, chat: Chat, recipients: list[str]) -> None:
        if self.sink is None:
            return

        def per_viewer(mri: str) -> dict[str, Any]:
            return conversation_json(chat, mri, NOTIFICATIONS_BASE)

        link = f"{NOTIFICATIONS_BASE}/users/ME/conversations/{chat.id}"
        self.sink.publish(recipients, "ConversationUpdate", per_viewer, link)
