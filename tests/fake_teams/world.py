"""The simulated tenant and every mutation on it; each mutation is published as an event.

REST handlers and the control API both go through these operations, so a message a test
posts "as any user" is stored and fanned out exactly like one the bridge posts.
"""

from __future__ import annotations

import html
import json
import random
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from . import ids
from .model import Chat, ChatKind, Member, Message, Team, User, UserKind
from .options import SimOptions
from .render import NOTIFICATIONS_BASE, WireStyle, conversation_json, message_json, thread_json
from .util import now_ms

CALL_LOGS_ID = "48:calllogs"

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
        self.teams: dict[str, Team] = {}
        self.sink: EventSink | None = None
        self.dedupe = False
        # The tenant's external access policy: False refuses chats between work accounts of
        # different tenants when the service is asked to make them (control API: /policy).
        self.external_access = True
        self._seen_client_ids: dict[tuple[str, str], Message] = {}
        self.options = SimOptions()  # replaced by the shared ones (SimContext)
        self._last_created = 0
        self.rng = random.Random()

    # -- wire variants ---------------------------------------------------------
    def variant(self, setting: str) -> bool:
        """Resolve a random/always/never option to one yes-or-no."""
        if setting == "random":
            return self.rng.random() < 0.5
        return setting == "always"

    def pick(self, setting: str, choices: tuple[str, ...]) -> str:
        """Resolve an option whose value is one of `choices` or "random"."""
        return self.rng.choice(choices) if setting == "random" else setting

    def style(self, *, include_edit_id: bool = True) -> WireStyle:
        """The wire variants for one answer or one event."""
        return WireStyle(
            display_name_key=self.pick(
                self.options.display_name_key, ("imdisplayname", "imDisplayName")
            ),
            numbers_as_strings=self.variant(self.options.numbers_as_strings),
            include_edit_id=include_edit_id,
            channel_thread_ids=self.pick(
                self.options.channel_thread_ids, ("link", "fields", "both")
            ),
        )

    def _number(self, value: int) -> int | str:
        return str(value) if self.variant(self.options.numbers_as_strings) else value

    def _json_activity(self) -> bool:
        return self.pick(self.options.thread_activity_format, ("xml", "json")) == "json"

    def display_name(self, mri: str) -> str:
        user = self.users.get(mri)
        return user.display_name if user else ""

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

    def check_external_access(self, me: str, mris: list[str]) -> None:
        """Refuse (403) a chat change by ``me`` that brings in a work account of another
        tenant while external access is off. The error body's wording is the simulator's
        own: the protocol reference only says such requests answer 403."""
        if self.external_access:
            return
        caller = self.user(me)
        for mri in mris:
            other = self.users.get(mri)
            if (
                other is not None
                and caller.kind == "work"
                and other.kind == "work"
                and other.tenant_id != caller.tenant_id
            ):
                raise SimError(
                    403,
                    "Forbidden",
                    f"External access to the organization of {mri} is blocked by policy.",
                )

    def create_chat(self, kind: ChatKind, members: list[str], topic: str | None = None) -> Chat:
        if kind not in ("one_to_one", "group", "meeting"):
            raise SimError(400, "BadRequest", "kind must be one_to_one, group or meeting")
        if kind == "channel":
            raise SimError(400, "BadRequest", "channels are made with their team")
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
        # Strictly increasing, so chats made in the same millisecond still list in order.
        now = self._last_created = max(now_ms(), self._last_created + 1)
        roster = {
            u.mri: Member(u.mri, "Admin" if i == 0 else "User", now) for i, u in enumerate(users)
        }
        chat = Chat(chat_id, kind, roster, topic or None, users[0].mri, now, now)
        self.chats[chat_id] = chat
        self._publish_thread(chat)
        self._publish_conversation(chat, list(chat.members))
        return chat

    def create_team(
        self, display_name: str, members: list[str], channels: list[str] | None = None
    ) -> Team:
        """A team of `members` (the first one owns it) with its General channel, whose id
        is the team's, plus a standard channel per name in `channels`."""
        users = [self.user(m) for m in dict.fromkeys(members)]
        if not users or not display_name.strip():
            raise SimError(400, "BadRequest", "a team needs a name and members")
        team_id = ids.channel_id()
        team = Team(team_id, display_name, [])
        for name in ["General", *(channels or [])]:
            chat_id = team_id if name == "General" and not team.channel_ids else ids.channel_id()
            now = self._last_created = max(now_ms(), self._last_created + 1)
            roster = {
                u.mri: Member(u.mri, "Admin" if i == 0 else "User", now)
                for i, u in enumerate(users)
            }
            chat = Chat(chat_id, "channel", roster, None, users[0].mri, now, now)
            chat.team_id, chat.team_name, chat.channel_name = team_id, display_name, name
            self.chats[chat_id] = chat
            team.channel_ids.append(chat_id)
            self._publish_thread(chat)
            self._publish_conversation(chat, list(chat.members))
        self.teams[team_id] = team
        return team

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
    def post_message(
        self,
        chat_id: str,
        sender: str,
        body: dict[str, Any],
        wire: dict[str, Any] | None = None,
        thread_root: int | None = None,
    ) -> Message:
        """Store (unless it is a control message) and fan out one message; `wire` overrides
        top-level fields of its JSON (a None value removes the field). `thread_root` makes
        it a reply in that channel thread."""
        chat = self.chats.get(chat_id) or self.implicit_one_to_one(chat_id, sender)
        if chat is None:
            raise SimError(404, "NotFound", "Conversation not found")
        if sender not in chat.members:
            raise SimError(403, "Forbidden", "User is not a member of the conversation")
        if thread_root is not None:
            self._check_thread_root(chat, thread_root)
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
            extra=dict(wire or {}),
            root_id=thread_root,
        )
        msg.arrival_ms = msg.version = msg.id
        if not control:
            chat.next_sequence += 1
            chat.messages.append(msg)
            if self.dedupe:
                self._seen_client_ids[key] = msg
        self._publish_message(chat, msg, "NewMessage")
        return msg

    @staticmethod
    def _check_thread_root(chat: Chat, root_id: int) -> None:
        """Only channels have threads, and a thread hangs off a root post."""
        if chat.kind != "channel":
            raise SimError(400, "BadRequest", "only channel posts have threads")
        root = chat.message(root_id)
        if root is None:
            raise SimError(404, "NotFound", "Thread root not found")
        if root.root_id is not None:
            raise SimError(400, "BadRequest", "replies go to the root post of a thread")

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
        for key in ("deletetime", "deletionTime"):  # editing undeletes
            msg.properties.pop(key, None)
        markers = self.pick(self.options.edit_markers, ("both", "edittime", "skypeeditedid"))
        if markers in ("both", "edittime"):
            msg.properties["edittime"] = str(stamp)
        if markers in ("both", "skypeeditedid"):
            msg.edited_id = msg.client_message_id
        msg.version = stamp
        self._publish_message(chat, msg, "MessageUpdate")
        return msg

    def delete_message(self, chat_id: str, msg_id: int, mri: str) -> Message:
        chat, msg = self.own_message(chat_id, msg_id, mri)
        stamp = chat.next_arrival(now_ms())
        msg.content = ""
        marker = self.pick(
            self.options.delete_markers, ("deletetime", "deletionTime", "content_only")
        )
        if marker != "content_only":
            msg.properties[marker] = stamp
        msg.version = stamp
        self._publish_message(chat, msg, "MessageUpdate")
        return msg

    def set_emotion(
        self,
        chat_id: str,
        msg_id: int,
        mri: str,
        key: str,
        add: bool,
        history: bool | None = None,
    ) -> Message:
        """Add or remove `mri`'s reaction. With history (the `emotion_history` option, or
        `history`), adding again appends another entry for the same user instead of
        replacing it; keys whose last user left stay behind with `"users": []`.
        Reaction updates re-send the message without `skypeeditedid`."""
        chat = self.member_chat(chat_id, mri)
        msg = chat.message(msg_id)
        if msg is None:
            raise SimError(404, "NotFound", "Message not found")
        if not key:
            raise SimError(400, "BadRequest", "emotions.key is required")
        keep_history = self.variant(self.options.emotion_history) if history is None else history
        stamp = chat.next_arrival(now_ms())
        emotions = msg.properties.setdefault("emotions", [])
        entry = next((e for e in emotions if e.get("key") == key), None)
        if entry is None:
            entry = {"key": key, "users": []}
            emotions.append(entry)
        if not (add and keep_history):
            entry["users"] = [u for u in entry["users"] if u.get("mri") != mri]
        if add:
            entry["users"].append({"mri": mri, "time": stamp, "value": str(stamp)})
        msg.version = stamp
        self._publish_message(chat, msg, "MessageUpdate", include_edit_id=False)
        return msg

    def patch_message(
        self,
        chat_id: str,
        msg_id: int,
        *,
        properties: dict[str, Any] | None = None,
        wire: dict[str, Any] | None = None,
        content: str | None = None,
        publish: str | None = "MessageUpdate",
    ) -> Message:
        """Change a stored message behind the service's back (any shape a test needs);
        None values remove properties; optionally fan the result out."""
        chat = self.chat(chat_id)
        msg = chat.message(msg_id)
        if msg is None:
            raise SimError(404, "NotFound", "Message not found")
        for key, value in (properties or {}).items():
            if value is None:
                msg.properties.pop(key, None)
            else:
                msg.properties[key] = value
        msg.extra.update(wire or {})
        if content is not None:
            msg.content = content
        msg.version = chat.next_arrival(now_ms())
        if publish:
            self._publish_message(chat, msg, publish)
        return msg

    def set_horizon(self, chat_id: str, mri: str, horizon: str) -> None:
        chat = self.member_chat(chat_id, mri)
        chat.horizons[mri] = horizon
        self._publish_conversation(chat, [mri])
        others = [m for m in chat.members if m != mri]
        activity = {
            "user": mri,
            "consumptionhorizon": horizon,
            "messageVisibilityTime": self._number(chat.created_ms),
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
        return self.add_members(chat_id, [mri], role, by)

    def _member_entry(self, mri: str) -> dict[str, Any]:
        return {"id": mri, "friendlyname": self.display_name(mri)}

    def add_members(
        self, chat_id: str, mris: list[str], role: str = "User", by: str | None = None
    ) -> Chat:
        """Add several users at once: one AddMember notice with a `<target>` per user (or,
        with `thread_activity_format` json, one MemberJoined listing them)."""
        chat = self.chat(chat_id)
        targets = [self.user(m) for m in dict.fromkeys(mris)]
        if not targets:
            raise SimError(400, "BadRequest", "no members to add")
        if chat.kind == "one_to_one":
            raise SimError(403, "Forbidden", "1:1 chats have a fixed roster")
        stamp = now_ms()
        for target in targets:
            chat.members[target.mri] = Member(
                target.mri, role if role in ("Admin", "User") else "User", stamp
            )
        chat.version = stamp
        initiator = by or chat.creator
        if self._json_activity():
            members = [self._member_entry(t.mri) for t in targets]
            self._thread_activity(chat, "ThreadActivity/MemberJoined", {"members": members})
        else:
            parts = [
                f"<addmember><eventtime>{stamp}</eventtime><initiator>{initiator}</initiator>",
                "<detailedinitiatorinfo><friendlyName>"
                f"{html.escape(self.display_name(initiator))}</friendlyName>"
                "</detailedinitiatorinfo>",
                f"<rosterVersion>{stamp}</rosterVersion>",
            ]
            for target in targets:
                parts.append(
                    f"<target>{target.mri}</target><detailedtargetinfo><id>{target.mri}</id>"
                    f"<friendlyName>{html.escape(target.display_name)}</friendlyName>"
                    "</detailedtargetinfo>"
                )
            parts.append("</addmember>")
            self._thread_activity(chat, "ThreadActivity/AddMember", "".join(parts))
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
        if self._json_activity():
            body: str | dict[str, Any] = {"members": [self._member_entry(mri)]}
            kind = "ThreadActivity/MemberLeft"
        else:
            body = (
                f"<deletemember><eventtime>{stamp}</eventtime><initiator>{by or mri}</initiator>"
                f"<target>{mri}</target></deletemember>"
            )
            kind = "ThreadActivity/DeleteMember"
        self._thread_activity(chat, kind, body, recipients=recipients)
        self._publish_thread(chat, recipients)
        return chat

    def set_role(self, chat_id: str, mri: str, role: str, by: str | None = None) -> Chat:
        """Change a member's role: a RoleUpdate notice and a ThreadUpdate."""
        chat = self.chat(chat_id)
        member = chat.members.get(mri)
        if member is None:
            raise SimError(404, "NotFound", "Member not found")
        role = "Admin" if role.lower() == "admin" else "User"
        stamp = now_ms()
        member.role = role
        chat.version = stamp
        xml = (
            f"<roleupdate><eventtime>{stamp}</eventtime><initiator>{by or chat.creator}"
            f"</initiator><target><id>{mri}</id><role>{role.lower()}</role></target></roleupdate>"
        )
        self._thread_activity(chat, "ThreadActivity/RoleUpdate", xml)
        self._publish_thread(chat)
        return chat

    def set_topic(self, chat_id: str, topic: str, by: str) -> Chat:
        chat = self.member_chat(chat_id, by)
        stamp = now_ms()
        old = chat.topic
        chat.topic = topic or None
        chat.version = stamp
        if self._json_activity():
            body = {"oldValue": old or "", "newValue": topic, "user": by}
            self._thread_activity(chat, "ThreadActivity/SpaceTopicUpdated", body)
        else:
            xml = (
                f"<topicupdate><eventtime>{stamp}</eventtime><initiator>{by}</initiator>"
                f"<value>{html.escape(topic)}</value></topicupdate>"
            )
            self._thread_activity(chat, "ThreadActivity/TopicUpdate", xml)
        self._publish_thread(chat)
        return chat

    def set_picture(self, chat_id: str, url: str | None, by: str) -> Chat:
        """Change the chat's picture; members hear of it as a ThreadUpdate."""
        chat = self.member_chat(chat_id, by)
        chat.picture = f"URL@{url}" if url else None
        chat.version = now_ms()
        self._publish_thread(chat)
        return chat

    # -- raw notices and calls -------------------------------------------------------
    def post_activity(
        self,
        chat_id: str,
        messagetype: str,
        content: str | dict[str, Any],
        *,
        sender: str | None = None,
        store: bool = True,
        properties: dict[str, Any] | None = None,
    ) -> Message:
        """Any notice "sent by the conversation" (or by `sender`), stored and fanned out."""
        chat = self.chat(chat_id)
        return self._thread_activity(
            chat, messagetype, content, store=store, sender=sender, properties=properties
        )

    def post_call_event(
        self,
        chat_id: str,
        kind: str,
        participants: list[str],
        *,
        duration: int | None = None,
        by: str | None = None,
        ended_tag: bool = False,
        call_id: str | None = None,
    ) -> Message:
        """An `Event/Call` partlist (started, ended or missed) from `by`."""
        if kind not in ("started", "ended", "missed"):
            raise SimError(400, "BadRequest", "kind must be started, ended or missed")
        chat = self.chat(chat_id)
        caller = by or chat.creator
        attrs = "" if ended_tag else f' type="{kind}"'
        if call_id:
            attrs += f' callId="{html.escape(call_id)}"'
        parts = [f'<partlist{attrs} alt="">']
        for mri in participants or [caller]:
            part = f'<part identity="{html.escape(mri)}"><name>'
            part += f"{html.escape(self.display_name(mri))}</name>"
            if duration is not None and kind == "ended":
                part += f"<duration>{duration}</duration>"
            parts.append(part + "</part>")
        if ended_tag:  # the older shape: no type, an <ended/> marker instead
            parts.append("<ended/>")
        parts.append("</partlist>")
        return self._thread_activity(chat, "Event/Call", "".join(parts), sender=caller)

    def post_call_log(self, mri: str, call_log: dict[str, Any], as_string: bool = True) -> Message:
        """A `48:calllogs` entry pushed to `mri` alone (not stored)."""
        self.user(mri)
        stamp = now_ms()
        feed = Chat(CALL_LOGS_ID, "group", {}, None, mri, stamp, stamp)
        msg = Message(
            id=feed.next_arrival(stamp),
            sequence_id=0,
            conversation_id=CALL_LOGS_ID,
            sender=CALL_LOGS_ID,
            sender_name="",
            sender_tenant="",
            messagetype="Text",
            contenttype="text",
            content="",
            client_message_id=ids.random_client_message_id(),
            arrival_ms=stamp,
            properties={"call-log": json.dumps(call_log) if as_string else call_log},
        )
        self._publish_message(feed, msg, "NewMessage", [mri])
        return msg

    # -- publishing ------------------------------------------------------------
    def _thread_activity(
        self,
        chat: Chat,
        messagetype: str,
        content: str | dict[str, Any],
        *,
        store: bool = True,
        recipients: list[str] | None = None,
        sender: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Message:
        text = content if isinstance(content, str) else json.dumps(content)
        msg = Message(
            id=chat.next_arrival(now_ms()),
            sequence_id=chat.next_sequence if store else 0,
            conversation_id=chat.id,
            sender=sender or chat.id,
            sender_name=self.display_name(sender) if sender else "",
            sender_tenant="",
            messagetype=messagetype,
            contenttype="text",
            content=text,
            client_message_id=ids.random_client_message_id(),
            arrival_ms=0,
            properties=dict(properties or {}),
        )
        msg.arrival_ms = msg.version = msg.id
        if store:
            chat.next_sequence += 1
            chat.messages.append(msg)
        self._publish_message(chat, msg, "NewMessage", recipients)
        return msg

    def _publish_message(
        self,
        chat: Chat,
        msg: Message,
        resource_type: str,
        recipients: list[str] | None = None,
        *,
        include_edit_id: bool = True,
    ) -> None:
        if self.sink is None:
            return
        resource = message_json(
            msg, chat, NOTIFICATIONS_BASE, self.style(include_edit_id=include_edit_id)
        )
        link = f"{NOTIFICATIONS_BASE}/users/ME/conversations/{chat.id}/messages/{msg.id}"
        if msg.root_id is not None:
            link = (
                f"{NOTIFICATIONS_BASE}/users/ME/conversations/{chat.id};messageid={msg.root_id}"
                f"/messages/{msg.id}"
            )
        self.sink.publish(recipients or list(chat.members), resource_type, resource, link)

    def _publish_thread(self, chat: Chat, recipients: list[str] | None = None) -> None:
        if self.sink is None:
            return
        resource = thread_json(chat, self.users, NOTIFICATIONS_BASE, self.style())
        link = f"{NOTIFICATIONS_BASE}/threads/{chat.id}"
        self.sink.publish(recipients or list(chat.members), "ThreadUpdate", resource, link)

    def _publish_conversation(self, chat: Chat, recipients: list[str]) -> None:
        if self.sink is None:
            return

        style = self.style()

        def per_viewer(mri: str) -> dict[str, Any]:
            return conversation_json(chat, mri, NOTIFICATIONS_BASE, style=style)

        link = f"{NOTIFICATIONS_BASE}/users/ME/conversations/{chat.id}"
        self.sink.publish(recipients, "ConversationUpdate", per_viewer, link)
