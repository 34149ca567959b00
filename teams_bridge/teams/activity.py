"""Typed views of roster/property notices and call events carried as messages.

``ThreadActivity/*`` messages come as Skype-style XML (``<addmember>…``) or as JSON
(``MemberJoined``, ``SpaceTopicUpdated``, ``MemberConsumptionHorizonUpdate``); calls come
as ``Event/Call`` XML or as ``48:calllogs`` entries (teams-protocol.md §4.13, §4.14).
Both parsers return ``None`` for anything they do not recognise or cannot read and
never raise, so a hostile or novel message is simply not special.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .models import (
    ActivityMember,
    CallEvent,
    CallEventKind,
    CallParticipant,
    Message,
    ThreadActivity,
    ThreadActivityKind,
)
from .parse import parse_time
from .props import (
    call_log_thread_id,
    int_value,
    json_value,
    ms_datetime,
    parse_consumption_horizon,
    text_value,
    user_mri,
)
from .xmlsafe import attr, child, child_text, children, find_all, local_name, parse_xml

log = logging.getLogger("teams.activity")

MAX_CONTENT_CHARS = 256 * 1024

_KINDS: dict[str, ThreadActivityKind] = {
    "addmember": ThreadActivityKind.ADD_MEMBER,
    "deletemember": ThreadActivityKind.DELETE_MEMBER,
    "memberjoined": ThreadActivityKind.MEMBER_JOINED,
    "memberleft": ThreadActivityKind.MEMBER_LEFT,
    "topicupdate": ThreadActivityKind.TOPIC_UPDATE,
    "spacetopicupdated": ThreadActivityKind.TOPIC_UPDATE,
    "roleupdate": ThreadActivityKind.ROLE_UPDATE,
    "memberroleupdate": ThreadActivityKind.ROLE_UPDATE,
    "memberconsumptionhorizonupdate": ThreadActivityKind.HORIZON_UPDATE,
    "consumptionhorizonupdate": ThreadActivityKind.HORIZON_UPDATE,
    "joiningenabledupdate": ThreadActivityKind.JOINING_ENABLED_UPDATE,
    "historydisclosedupdate": ThreadActivityKind.HISTORY_DISCLOSED_UPDATE,
    "pictureupdate": ThreadActivityKind.PICTURE_UPDATE,
}
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _event_time(value: Any) -> datetime | None:
    return ms_datetime(value) or parse_time(value)


def _picture(value: str | None) -> str | None:
    if value and value.startswith("URL@"):
        return value[4:] or None
    return value


# -- thread activity ----------------------------------------------------------------
def parse_thread_activity(message: Message) -> ThreadActivity | None:
    """The typed content of a ``ThreadActivity/*`` message, or ``None``."""
    if not message.message_type.lower().startswith("threadactivity/"):
        return None
    content = message.content
    if len(content) > MAX_CONTENT_CHARS:
        return None
    subtype = message.message_type.split("/", 1)[1].strip().lower()
    try:
        text = content.strip()
        if text.startswith("<"):
            root = parse_xml(text)
            if root is None:
                return None
            kind = _KINDS.get(subtype) or _KINDS.get(local_name(root))
            return None if kind is None else _from_xml(message, kind, root)
        kind = _KINDS.get(subtype)
        if kind is None:
            return None
        data = json_value(text) if text else {}
        if not isinstance(data, Mapping):
            return None
        return _from_json(message, kind, data)
    except _PARSE_ERRORS as exc:
        log.debug("Unreadable %s content: %s", message.message_type, type(exc).__name__)
        return None


def _base(message: Message, kind: ThreadActivityKind, **fields: Any) -> ThreadActivity:
    return ThreadActivity(
        kind=kind,
        message_type=message.message_type,
        conversation_id=message.conversation_id,
        message_id=message.id,
        **fields,
    )


def _xml_member_id(element: ET.Element) -> str | None:
    """``<target>8:x</target>`` or ``<target><id>8:x</id>…</target>``."""
    return user_mri(child_text(element, "id", "mri") or (element.text or "").strip())


def _xml_targets(root: ET.Element) -> tuple[ActivityMember, ...]:
    members: list[ActivityMember] = []

    def index_of(mri: str) -> int | None:
        for i, m in enumerate(members):
            if m.mri == mri:
                return i
        return None

    for node in root:
        name = local_name(node)
        if name == "target":
            mri = _xml_member_id(node)
            if mri is None:
                continue
            member = ActivityMember(
                mri=mri,
                name=child_text(node, "friendlyname", "displayname", "name"),
                role=child_text(node, "role"),
            )
            found = index_of(mri)
            if found is None:
                members.append(member)
            else:
                old = members[found]
                members[found] = ActivityMember(
                    mri, old.name or member.name, old.role or member.role
                )
        elif name == "detailedtargetinfo":
            info_name = child_text(node, "friendlyname", "displayname", "name")
            info_role = child_text(node, "role")
            info_id = user_mri(child_text(node, "id", "mri"))
            if info_id is not None:
                found = index_of(info_id)
            else:  # no id: it describes the target just before it
                found = len(members) - 1 if members else None
            if found is None:
                if info_id is not None:
                    members.append(ActivityMember(info_id, info_name, info_role))
                continue
            old = members[found]
            members[found] = ActivityMember(old.mri, old.name or info_name, old.role or info_role)
    return tuple(members)


def _from_xml(message: Message, kind: ThreadActivityKind, root: ET.Element) -> ThreadActivity:
    initiator_node = child(root, "initiator")
    initiator = _xml_member_id(initiator_node) if initiator_node is not None else None
    info = child(root, "detailedinitiatorinfo")
    initiator_name = (
        child_text(info, "friendlyname", "displayname", "name") if info is not None else None
    )
    if initiator_name is None and initiator_node is not None:
        initiator_name = child_text(initiator_node, "friendlyname", "displayname", "name")
    value = child_text(root, "value")
    if value is None:
        node = child(root, "value")
        value = "" if node is not None and kind is ThreadActivityKind.TOPIC_UPDATE else None
    horizon = None
    if kind is ThreadActivityKind.HORIZON_UPDATE:
        horizon = parse_consumption_horizon(
            child_text(root, "consumptionhorizon"),
            user_mri(child_text(root, "user", "id")) or initiator,
        )
    return _base(
        message,
        kind,
        time=_event_time(child_text(root, "eventtime")),
        initiator=initiator,
        initiator_name=initiator_name,
        targets=_xml_targets(root),
        topic=value if kind is ThreadActivityKind.TOPIC_UPDATE else None,
        value=_picture(value) if kind is not ThreadActivityKind.TOPIC_UPDATE else None,
        horizon=horizon,
        roster_version=int_value(child_text(root, "rosterversion")),
    )


def _json_members(data: Mapping[str, Any], fallback_name: str | None) -> tuple[ActivityMember, ...]:
    raw = json_value(_first(data, "members", "targets"))
    if isinstance(raw, Mapping):
        raw = [raw]
    members: list[ActivityMember] = []
    entries = raw if isinstance(raw, list) else []
    for entry in entries:
        if isinstance(entry, Mapping):
            mri = user_mri(_first(entry, "id", "mri", "userId"))
            name = text_value(_first(entry, "friendlyname", "friendlyName", "displayName"))
            role = text_value(entry.get("role"))
        else:
            mri, name, role = user_mri(entry), None, None
        if mri is not None and all(m.mri != mri for m in members):
            members.append(ActivityMember(mri, name, role))
    if len(members) == 1 and members[0].name is None and fallback_name:
        members[0] = ActivityMember(members[0].mri, fallback_name, members[0].role)
    return tuple(members)


def _from_json(
    message: Message, kind: ThreadActivityKind, data: Mapping[str, Any]
) -> ThreadActivity:
    user = user_mri(_first(data, "user", "userId", "mri"))
    initiator = user_mri(_first(data, "initiator", "initiatorMri")) or (
        user if kind is not ThreadActivityKind.HORIZON_UPDATE else None
    )
    fallback = text_value(_first(data, "friendlyName", "friendlyname")) or (
        message.sender_name if message.sender_mri != message.conversation_id else None
    )
    time = _event_time(_first(data, "eventtime", "eventTime", "time"))
    if kind is ThreadActivityKind.HORIZON_UPDATE:
        horizon = parse_consumption_horizon(
            _first(data, "consumptionhorizon", "consumptionHorizon"), user
        )
        return _base(message, kind, time=time, initiator=initiator, horizon=horizon)
    if kind is ThreadActivityKind.TOPIC_UPDATE:
        new = _first(data, "newValue", "value", "topic")
        return _base(
            message,
            kind,
            time=time,
            initiator=initiator,
            topic=new.strip() if isinstance(new, str) else text_value(new),
            old_topic=text_value(data.get("oldValue")),
        )
    value = text_value(_first(data, "newValue", "value"))
    return _base(
        message,
        kind,
        time=time,
        initiator=initiator,
        initiator_name=text_value(_first(data, "initiatorName", "initiatorFriendlyName")),
        targets=_json_members(data, fallback),
        value=_picture(value),
        roster_version=int_value(_first(data, "rosterVersion", "rosterversion")),
    )


# -- calls --------------------------------------------------------------------------
_CALL_TYPES = ("event/call", "threadactivity/callstarted", "threadactivity/callended")
_LOG_STATES = {
    "accepted": CallEventKind.ENDED,
    "missed": CallEventKind.MISSED,
    "cancelled": CallEventKind.MISSED,
    "canceled": CallEventKind.MISSED,
    "declined": CallEventKind.DECLINED,
    "rejected": CallEventKind.DECLINED,
}


def parse_call_event(message: Message) -> CallEvent | None:
    """A call notice (``Event/Call`` partlist XML) or call-log entry, or ``None``."""
    try:
        if message.properties.get("call-log") is not None:
            return _from_call_log(message)
        if message.message_type.lower() in _CALL_TYPES:
            return _from_partlist(message)
    except _PARSE_ERRORS as exc:
        log.debug("Unreadable call event: %s", type(exc).__name__)
    return None


def _seconds(value: str | None) -> int | None:
    number = int_value(value)
    return number if number is not None and number >= 0 else None


def _from_partlist(message: Message) -> CallEvent | None:
    if len(message.content) > MAX_CONTENT_CHARS:
        return None
    root = parse_xml(message.content)
    if root is None:
        return None
    partlist = next(find_all(root, "partlist"), None)
    ended = next(find_all(root, "ended"), None) is not None
    raw_type = (attr(partlist, "type") or "").lower() if partlist is not None else ""
    kind: CallEventKind | None = {
        "started": CallEventKind.STARTED,
        "ended": CallEventKind.ENDED,
        "missed": CallEventKind.MISSED,
    }.get(raw_type)
    if kind is None:
        if ended or message.message_type.lower().endswith("callended"):
            kind = CallEventKind.ENDED
        elif partlist is not None or message.message_type.lower().endswith("callstarted"):
            kind = CallEventKind.STARTED
        else:
            return None
    participants: list[CallParticipant] = []
    for part in children(partlist, "part") if partlist is not None else iter(()):
        mri = user_mri(attr(part, "identity", "id", "mri") or child_text(part, "identity", "id"))
        if mri is None or any(p.mri == mri for p in participants):
            continue
        participants.append(
            CallParticipant(
                mri=mri,
                name=child_text(part, "name", "displayname"),
                duration=_seconds(child_text(part, "duration")),
            )
        )
    durations = [p.duration for p in participants if p.duration is not None]
    call_id = None
    if partlist is not None:
        call_id = attr(partlist, "callid", "callId")
    return CallEvent(
        kind=kind,
        conversation_id=message.conversation_id,
        message_id=message.id,
        call_id=call_id,
        duration=max(durations) if durations else None,
        participants=tuple(participants),
        originator=message.sender_mri if message.sender_mri != message.conversation_id else None,
    )


def _log_participant(mri_value: Any, info: Any) -> CallParticipant | None:
    details = info if isinstance(info, Mapping) else {}
    mri = user_mri(mri_value) or user_mri(_first(details, "id", "mri"))
    if mri is None:
        return None
    return CallParticipant(mri=mri, name=text_value(_first(details, "displayName", "name")))


def _from_call_log(message: Message) -> CallEvent | None:
    data = json_value(message.properties.get("call-log"))
    if not isinstance(data, Mapping):
        return None
    state = text_value(_first(data, "callState", "callstate"))
    start = parse_time(data.get("startTime"))
    connect = parse_time(data.get("connectTime"))
    end = parse_time(data.get("endTime"))
    kind = _LOG_STATES.get((state or "").lower())
    if kind is None:
        kind = CallEventKind.ENDED if connect is not None else CallEventKind.MISSED
    duration = None
    if connect is not None and end is not None and end >= connect:
        duration = int((end - connect).total_seconds())
    participants: list[CallParticipant] = []
    for mri_value, info in (
        (data.get("originator"), data.get("originatorParticipant")),
        (data.get("target"), data.get("targetParticipant")),
    ):
        participant = _log_participant(mri_value, info)
        if participant is not None and all(p.mri != participant.mri for p in participants):
            participants.append(participant)
    conversation = call_log_thread_id(message.properties) or message.conversation_id
    call_id = text_value(_first(data, "callId", "callid"))
    return CallEvent(
        kind=kind,
        conversation_id=conversation,
        message_id=message.id,
        call_id=call_id,
        duration=duration,
        participants=tuple(participants),
        originator=user_mri(data.get("originator")),
        direction=text_value(_first(data, "callDirection", "calldirection")),
        call_type=text_value(_first(data, "callType", "calltype")),
        state=state,
        start_time=start,
        connect_time=connect,
        end_time=end,
        from_call_log=True,
    )
