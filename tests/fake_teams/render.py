"""JSON shapes of the chat service (teams-protocol.md §4.2, §4.3, §4.5).

Everything is rendered per request because links carry the host they were
served from: REST answers use the REST host, pushed events a different one.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from .model import Chat, Message, User
from .util import iso_ms3, iso_ms7

NOTIFICATIONS_BASE = "https://notifications.skype.net/v1"
_NOTICES = ("Control/", "ThreadActivity/")


@dataclass(frozen=True)
class WireStyle:
    """Per-render wire variants (options resolved for one answer or one event)."""

    display_name_key: str = "imdisplayname"  # or "imDisplayName"
    numbers_as_strings: bool = False  # sequenceId, deletetime, emotion times, versions, …
    include_edit_id: bool = True  # reaction-only updates re-send the message without it
    channel_thread_ids: str = "link"  # or "fields" or "both" (see SimOptions)


PLAIN = WireStyle()


def _num(value: Any, style: WireStyle) -> Any:
    if style.numbers_as_strings and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _stringify_properties(props: dict[str, Any]) -> None:
    for key in ("deletetime", "deletionTime", "edittime"):
        value = props.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            props[key] = str(value)
    emotions = props.get("emotions")
    if isinstance(emotions, list):
        for entry in emotions:
            for user in entry.get("users", []) if isinstance(entry, dict) else []:
                if isinstance(user, dict) and isinstance(user.get("time"), int):
                    user["time"] = str(user["time"])


def message_json(msg: Message, chat: Chat, base: str, style: WireStyle = PLAIN) -> dict[str, Any]:
    """A message object as lists and events carry it."""
    arrival = iso_ms7(msg.arrival_ms)
    data: dict[str, Any] = {
        "id": str(msg.id),
        "sequenceId": _num(msg.sequence_id, style),
        "clientmessageid": msg.client_message_id,
        "version": str(msg.version),
        "type": "Message",
        "messagetype": msg.messagetype,
        "contenttype": msg.contenttype,
        "content": msg.content,
        "from": f"{base}/users/ME/contacts/{msg.sender}",
        style.display_name_key: msg.sender_name,
        "fromTenantId": msg.sender_tenant,
        "conversationid": chat.id,
        "conversationLink": f"{base}/users/ME/conversations/{chat.id}",
        "composetime": msg.compose_time or arrival,
        "originalarrivaltime": arrival,
        "threadtype": chat.thread_type,
        "amsreferences": list(msg.amsreferences),
        "properties": copy.deepcopy(msg.properties),
        "s2spartnername": "skypespaces",
    }
    if msg.sender_name and not msg.sender.startswith("19:"):
        first, _, last = msg.sender_name.partition(" ")
        data["fromDisplayNameInToken"] = msg.sender_name
        data["fromGivenNameInToken"] = first
        data["fromFamilyNameInToken"] = last
    if chat.topic:
        data["threadtopic"] = chat.topic
    if chat.kind == "channel" and msg.sequence_id and not msg.messagetype.startswith(_NOTICES):
        _thread_ids(data, msg, chat, base, style)
    if msg.edited_id and style.include_edit_id:
        data["skypeeditedid"] = msg.edited_id
    emotions = msg.properties.get("emotions")
    if isinstance(emotions, list) and emotions:
        counts = {
            e["key"]: len({u.get("mri") for u in e["users"]})
            for e in emotions
            if isinstance(e, dict) and e.get("users")
        }
        data["annotationsSummary"] = {"emotions": counts}
    if style.numbers_as_strings:
        _stringify_properties(data["properties"])
    for key, value in msg.extra.items():  # per-message wire overrides; None removes a field
        if value is None:
            data.pop(key, None)
        else:
            data[key] = copy.deepcopy(value)
    return data


def _thread_ids(
    data: dict[str, Any], msg: Message, chat: Chat, base: str, style: WireStyle
) -> None:
    """A channel post names its thread: the link's `;messageid=` is the root post's id (a
    root post names itself); replies may carry rootMessageId/parentMessageId instead."""
    root = msg.root_id if msg.root_id is not None else msg.id
    if style.channel_thread_ids in ("link", "both"):
        data["conversationLink"] = f"{base}/users/ME/conversations/{chat.id};messageid={root}"
    if style.channel_thread_ids in ("fields", "both") and msg.root_id is not None:
        data["rootMessageId"] = str(root)
        data["parentMessageId"] = str(root)


def _channel_properties(chat: Chat, props: dict[str, Any]) -> None:
    """How a channel names itself and its team (§4.2): a team's General channel is the
    team's own thread and carries only the team's name."""
    props["spaceThreadTopic"] = chat.team_name or ""
    if not chat.is_general:
        props["topicThreadTopic"] = chat.channel_name or ""
        props["spaceId"] = chat.team_id or ""
    props["groupId"] = (chat.team_id or "")[3:35]


def conversation_json(
    chat: Chat, viewer: str, base: str, *, omit_members: bool = False, style: WireStyle = PLAIN
) -> dict[str, Any]:
    """A conversation as `/users/ME/conversations` lists it, seen by `viewer`."""
    last = chat.messages[-1] if chat.messages else None
    member = chat.members.get(viewer)
    props: dict[str, Any] = {
        "consumptionhorizon": chat.horizons.get(viewer, "0;0;0"),
        "isemptyconversation": "False" if last else "True",
        "alerts": "true",
        "favorite": "false",
    }
    if last:
        props["lastimreceivedtime"] = iso_ms3(last.arrival_ms)
    thread: dict[str, Any] = {
        "threadType": chat.thread_type,
        "productThreadType": chat.product_thread_type,
        "membercount": str(len(chat.members)),
        "uniquerosterthread": "true" if chat.kind == "one_to_one" else "false",
        "createdat": str(chat.created_ms),
        "creator": chat.creator,
        "lastjoinat": str(member.joined_ms if member else chat.created_ms),
        "version": str(chat.version),
        "historydisclosed": "false",
        "tenantid": "",
    }
    if chat.kind == "one_to_one":
        thread["fixedRoster"] = "true"
    if chat.topic:
        thread["topic"] = chat.topic
    if chat.kind == "channel":
        _channel_properties(chat, thread)
    elif not omit_members:  # channel entries carry no roster
        thread["members"] = json.dumps(list(chat.members))
    return {
        "id": chat.id,
        "type": "Conversation",
        "version": _num(chat.last_activity, style),
        "targetLink": f"{base}/threads/{chat.id}",
        "messages": f"{base}/users/ME/conversations/{chat.id}/messages",
        "lastUpdatedMessageId": _num(last.id if last else 0, style),
        "lastUpdatedMessageVersion": _num(last.version if last else 0, style),
        "properties": props,
        "threadProperties": thread,
        "memberProperties": {"role": member.role if member else "User", "isReader": False},
        "lastMessage": message_json(last, chat, base, style) if last else {},
    }


def thread_json(
    chat: Chat, users: dict[str, User], base: str, style: WireStyle = PLAIN
) -> dict[str, Any]:
    """A thread (`GET /threads/{id}`) with its roster and friendly names."""
    members = []
    for mri, member in chat.members.items():
        user = users.get(mri)
        members.append(
            {
                "id": mri,
                "type": "ThreadMember",
                "role": member.role,
                "friendlyName": user.display_name if user else "",
                "userLink": f"{base}/users/{mri}",
                "linkedMri": "",
                "capabilities": [],
                "cid": 0,
                "userTile": "",
                "tenantId": user.tenant_id if user else "",
            }
        )
    props: dict[str, Any] = {
        "creator": chat.creator,
        "createdat": str(chat.created_ms),
        "historydisclosed": "false",
        "joiningenabled": "false" if chat.kind == "one_to_one" else "true",
        "uniquerosterthread": "true" if chat.kind == "one_to_one" else "false",
        "threadType": chat.thread_type,
        "productThreadType": chat.product_thread_type,
        "capabilities": ["AddMember", "ChangeTopic", "EditMsg", "DeleteMsg", "ChatReadReceipt"],
    }
    if chat.kind == "one_to_one":
        props["fixedRoster"] = "true"
    if chat.topic:
        props["topic"] = chat.topic
    if chat.picture:
        props["picture"] = chat.picture
    if chat.kind == "channel":
        _channel_properties(chat, props)
    return {
        "id": chat.id,
        "type": "Thread",
        "version": _num(chat.version, style),
        "rosterVersion": _num(chat.version, style),
        "properties": props,
        "members": members,
        "messages": f"{base}/users/ME/conversations/{chat.id}/messages",
    }
