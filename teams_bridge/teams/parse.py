"""Raw Teams JSON → models, tolerant of every known variant.

Unknown fields are ignored; a malformed object raises ``ParseError`` so the
caller can log it and move on without the rest of a page or stream suffering.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidId, ParseError
from .ids import (
    ConversationIdKind,
    check_id,
    classify_conversation,
    id_from_link,
    members_from_conversation_id,
    parse_link,
    split_message_id,
)
from .models import (
    Conversation,
    ConversationKind,
    EventMessage,
    Message,
    Profile,
    ResourceType,
    Thread,
    ThreadMember,
)
from .props import ConsumptionHorizon, parse_consumption_horizon, text_value

log = logging.getLogger("teams.parse")

_ISO_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_MIN_MS = 10**11  # below this a bare number is taken as seconds


def as_int(value: Any) -> int | None:
    """An int from an int, a float or a decimal string; ``None`` otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d{1,30}", text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number == number and abs(number) != float("inf") else None
    return None


def _from_epoch(number: float) -> datetime | None:
    if number != number or number <= 0 or number == float("inf"):
        return None
    seconds = number / 1000 if number >= _MIN_MS else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


_EPOCH_RE = re.compile(r"\d{1,20}(\.\d+)?")


def parse_time(value: Any) -> datetime | None:
    """A UTC datetime from ISO-8601 (any fractional digits) or an epoch number; ``None`` if
    absent, zero or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _EPOCH_RE.fullmatch(text):
        return _from_epoch(float(text))
    match = _ISO_RE.match(text)
    if not match:
        return None
    date, clock, fraction, zone = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    iso = f"{date}T{clock}"
    if fraction:
        iso += "." + fraction[:6].ljust(6, "0")
    if zone and zone.upper() != "Z":
        if ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        iso += zone
    else:
        iso += "+00:00"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """An object that may arrive as JSON in a string, or ``null``."""
    if value is None:
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ParseError(f"{what} is not valid JSON") from exc
    if not isinstance(value, Mapping):
        raise ParseError(f"{what} is not an object")
    return dict(value)


def _json_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, list) else []


def _require_mapping(obj: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ParseError(f"{what} is not an object")
    return obj


def _require_id(value: Any, what: str) -> str:
    text = text_value(value)
    if text is None:
        raise ParseError(f"{what} has no id")
    try:
        return check_id(text)
    except InvalidId as exc:
        raise ParseError(f"{what} has an invalid id: {exc}") from exc


def conversation_kind(conv_id: str, props: Mapping[str, Any]) -> ConversationKind:
    """Classify from thread properties first, then from the id's shape."""
    id_kind = classify_conversation(conv_id)
    thread_type = str(_first(props, "threadType", "threadtype") or "").lower()
    product = str(_first(props, "productThreadType", "productthreadtype") or "").lower()
    if id_kind is ConversationIdKind.FEED or "streamofnotifications" in (thread_type, product):
        return ConversationKind.OTHER
    if (
        _truthy(props.get("uniquerosterthread"))
        or product == "onetoonechat"
        or id_kind
        in (
            ConversationIdKind.ONE_TO_ONE,
            ConversationIdKind.ONE_TO_ONE_UNI,
            ConversationIdKind.DIRECT,
        )
    ):
        return ConversationKind.ONE_TO_ONE
    if id_kind is ConversationIdKind.MEETING or "meeting" in (thread_type, product):
        return ConversationKind.MEETING
    if (
        id_kind is ConversationIdKind.CHANNEL
        or thread_type in ("topic", "space")
        or product in ("topicthread", "teamsstandardchannel", "teamsprivatechannel", "teamsteam")
    ):
        return ConversationKind.CHANNEL
    if (
        id_kind in (ConversationIdKind.GROUP, ConversationIdKind.LEGACY_GROUP)
        or thread_type == "chat"
    ):
        return ConversationKind.GROUP
    return ConversationKind.OTHER


def parse_message(
    obj: Any, *, conversation_id: str | None = None, from_update: bool = False
) -> Message:
    """Parse a message object (§4.5) from a list, a send echo or an event.

    ``from_update`` marks a message re-sent by a ``MessageUpdate`` event (edit, delete or
    reaction change); it lets ``Message.is_deleted`` recognise an emptied message.
    """
    data = _require_mapping(obj, "message")
    msg_id = _require_id(data.get("id"), "message")
    conv: str | None = None
    root: str | None = None
    link = _first(data, "conversationLink", "conversation_link", "conversationlink")
    if isinstance(link, str) and link:
        try:
            conv, root = parse_link(link)
        except InvalidId as exc:
            raise ParseError(f"message has an invalid conversationLink: {exc}") from exc
    explicit = text_value(_first(data, "conversationid", "conversationId"))
    if explicit is not None:
        try:
            base, explicit_root = split_message_id(check_id(explicit))
        except InvalidId as exc:
            raise ParseError(f"message has an invalid conversationid: {exc}") from exc
        conv = base  # the explicit field wins over the link
        root = root or explicit_root
    if conv is None and conversation_id is not None:
        conv, root_hint = split_message_id(conversation_id)
        root = root or root_hint
    if conv is None:
        raise ParseError("message has no conversation id")
    properties = _json_object(data.get("properties"), "message properties")
    if root is None and classify_conversation(conv) is ConversationIdKind.CHANNEL:
        root = _root_field(data, properties)
    sender: str | None = None
    raw_from = data.get("from")
    if isinstance(raw_from, str) and raw_from:
        try:
            sender = id_from_link(raw_from)
        except InvalidId as exc:
            raise ParseError(f"message has an invalid sender: {exc}") from exc
    edit = parse_time(_first(properties, "edittime", "editTime")) or parse_time(
        data.get("edittime")
    )
    delete = parse_time(
        _first(properties, "deletetime", "deletionTime", "deleteTime")
    ) or parse_time(_first(data, "deletetime", "deletionTime"))
    content = data.get("content")
    return Message(
        id=msg_id,
        conversation_id=conv,
        message_type=text_value(_first(data, "messagetype", "messageType")) or "",
        content=content if isinstance(content, str) else "",
        sender_mri=sender,
        sender_name=text_value(
            _first(data, "imdisplayname", "imDisplayName", "fromDisplayNameInToken")
        ),
        client_message_id=text_value(_first(data, "clientmessageid", "clientMessageId")),
        version=as_int(data.get("version")),
        compose_time=parse_time(_first(data, "composetime", "composeTime")),
        arrival_time=parse_time(_first(data, "originalarrivaltime", "originalArrivalTime")),
        edit_time=edit,
        delete_time=delete,
        properties=properties,
        thread_root_id=root,
        edited_id=text_value(_first(data, "skypeeditedid", "skypeEditedId")),
        from_update=from_update,
    )


def _root_field(data: Mapping[str, Any], properties: Mapping[str, Any]) -> str | None:
    """A channel message's thread root from ``rootMessageId``/``parentMessageId`` (top
    level or in ``properties``), for links that do not carry ``;messageid=``."""
    for source in (data, properties):
        for key in ("rootMessageId", "rootmessageid", "parentMessageId", "parentmessageid"):
            value = text_value(source.get(key))
            if value is not None and value.isascii() and value.isdigit():
                return value
    return None


def _channel_names(
    conv_id: str, props: Mapping[str, Any]
) -> tuple[str | None, str | None, str | None]:
    """(channel name, team id, team name) of a channel conversation (§4.2): a team's own
    thread (``TeamsTeam``) is its General channel and has the team's id."""
    thread_type = str(_first(props, "threadType", "threadtype") or "").lower()
    product = str(_first(props, "productThreadType", "productthreadtype") or "").lower()
    team_name = text_value(_first(props, "spaceThreadTopic", "spacethreadtopic"))
    name = text_value(_first(props, "topicThreadTopic", "topicthreadtopic"))
    if product == "teamsteam" or (thread_type == "space" and not product):
        return name or "General", conv_id, team_name
    team_id = text_value(_first(props, "spaceId", "spaceid"))
    if team_id is not None:
        try:
            team_id = id_from_link(team_id)
        except InvalidId:
            team_id = None
    return name or _topic(props), team_id, team_name


def _member_mris(raw: Any) -> tuple[str, ...]:
    mris: list[str] = []
    for entry in _json_list(raw):
        value = entry
        if isinstance(entry, Mapping):
            value = _first(entry, "id", "mri")
        if isinstance(value, str):
            try:
                mri = id_from_link(value)
            except InvalidId:
                log.debug("Skipping a member with an invalid id")
                continue
            if mri not in mris:
                mris.append(mri)
    return tuple(mris)


def _topic(props: Mapping[str, Any]) -> str | None:
    return text_value(_first(props, "topic", "spaceThreadTopic", "topicThreadTopic", "threadtopic"))


def parse_conversation(obj: Any) -> Conversation:
    """Parse a conversation-list entry (§4.2)."""
    data = _require_mapping(obj, "conversation")
    conv_id = _require_id(data.get("id"), "conversation")
    props = _json_object(data.get("threadProperties"), "threadProperties")
    kind = conversation_kind(conv_id, props)
    members = _member_mris(props.get("members"))
    if not members:
        members = members_from_conversation_id(conv_id)
    topic, team_id, team_name = _topic(props), None, None
    if kind is ConversationKind.CHANNEL:
        topic, team_id, team_name = _channel_names(conv_id, props)
    last: Message | None = None
    raw_last = data.get("lastMessage")
    if isinstance(raw_last, Mapping) and raw_last.get("id") is not None:
        try:
            last = parse_message(raw_last, conversation_id=conv_id)
        except ParseError as exc:
            log.debug("Ignoring an unparsable lastMessage: %s", exc)
    return Conversation(
        id=conv_id,
        kind=kind,
        topic=topic,
        members=members,
        last_message=last,
        version=as_int(data.get("version")),
        consumption_horizon=_own_horizon(data.get("properties")),
        team_id=team_id,
        team_name=team_name,
    )


def _own_horizon(raw: Any) -> ConsumptionHorizon | None:
    try:
        props = _json_object(raw, "conversation properties")
    except ParseError:
        return None
    return parse_consumption_horizon(props.get("consumptionhorizon"))


def _thread_member(entry: Any) -> ThreadMember | None:
    if isinstance(entry, str):
        raw_id: Any = entry
        role = name = None
    elif isinstance(entry, Mapping):
        raw_id = _first(entry, "id", "mri")
        role = text_value(entry.get("role"))
        name = text_value(_first(entry, "friendlyName", "friendlyname", "displayName"))
    else:
        return None
    if not isinstance(raw_id, str):
        return None
    try:
        mri = id_from_link(raw_id)
    except InvalidId:
        log.debug("Skipping a thread member with an invalid id")
        return None
    return ThreadMember(mri=mri, role=role, friendly_name=name)


def parse_thread(obj: Any) -> Thread:
    """Parse a thread object (§4.3); 1:1 threads without a roster get one from the id."""
    data = _require_mapping(obj, "thread")
    thread_id = _require_id(data.get("id"), "thread")
    props = _json_object(data.get("properties"), "thread properties")
    members: list[ThreadMember] = []
    seen: set[str] = set()
    for entry in _json_list(data.get("members")):
        member = _thread_member(entry)
        if member is not None and member.mri not in seen:
            seen.add(member.mri)
            members.append(member)
    if not members:
        members = [ThreadMember(mri=m) for m in members_from_conversation_id(thread_id)]
    picture = text_value(props.get("picture"))
    if picture and picture.startswith("URL@"):
        picture = picture[4:]
    creator = text_value(props.get("creator"))
    if creator:
        try:
            creator = id_from_link(creator)
        except InvalidId:
            creator = None
    kind = conversation_kind(thread_id, props)
    topic, team_id, team_name = _topic(props), None, None
    if kind is ConversationKind.CHANNEL:
        topic, team_id, team_name = _channel_names(thread_id, props)
    return Thread(
        id=thread_id,
        kind=kind,
        topic=topic,
        members=tuple(members),
        version=as_int(data.get("version")),
        creator=creator,
        picture=picture,
        properties=props,
        team_id=team_id,
        team_name=team_name,
    )


def _conversation_from_resource_link(link: Any) -> str | None:
    if not isinstance(link, str):
        return None
    segments = [s for s in link.split("?")[0].split("/") if s]
    for index, segment in enumerate(segments[:-1]):
        if segment.lower() == "conversations":
            try:
                return id_from_link(segments[index + 1])
            except InvalidId:
                return None
    return None


def parse_event(obj: Any) -> EventMessage:
    """Parse an EventMessage (§5.2); unknown resource types keep ``resource=None``."""
    data = _require_mapping(obj, "event")
    resource_type = text_value(data.get("resourceType"))
    if resource_type is None:
        raise ParseError("event has no resourceType")
    link = text_value(data.get("resourceLink"))
    raw = data.get("resource")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ParseError("event resource is not valid JSON") from exc
    resource: Message | Conversation | Thread | None = None
    if resource_type in (ResourceType.NEW_MESSAGE, ResourceType.MESSAGE_UPDATE):
        resource = parse_message(
            raw,
            conversation_id=_conversation_from_resource_link(link),
            from_update=resource_type == ResourceType.MESSAGE_UPDATE,
        )
    elif resource_type == ResourceType.CONVERSATION_UPDATE:
        resource = parse_conversation(raw)
    elif resource_type == ResourceType.THREAD_UPDATE:
        resource = parse_thread(raw)
    return EventMessage(
        id=as_int(data.get("id")),
        resource_type=resource_type,
        time=parse_time(data.get("time")),
        resource=resource,
        resource_link=link,
    )


def parse_profile(obj: Any) -> Profile:
    """Parse a middle-tier short profile (§8)."""
    data = _require_mapping(obj, "profile")
    raw_mri = text_value(data.get("mri"))
    object_id = text_value(data.get("objectId"))
    if raw_mri is None and object_id is not None:
        raw_mri = f"8:orgid:{object_id}"
    mri = _require_id(raw_mri, "profile")
    return Profile(
        mri=mri,
        display_name=text_value(data.get("displayName")),
        email=text_value(_first(data, "email", "mail")),
        given_name=text_value(data.get("givenName")),
        surname=text_value(data.get("surname")),
        user_principal_name=text_value(data.get("userPrincipalName")),
        job_title=text_value(data.get("jobTitle")),
        object_id=object_id,
        user_type=text_value(_first(data, "type", "userType")),
        tenant_name=text_value(data.get("tenantName")),
    )
