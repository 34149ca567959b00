"""Typed views of Teams objects; nothing above this package touches raw JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .ids import is_call_log_id, is_feed_id, is_one_to_one_id
from .props import (
    ConsumptionHorizon,
    Mention,
    Reaction,
    call_log_thread_id,
    parse_emotions,
    parse_mentions,
    parse_quoted_message_ids,
    truthy,
)

# Message types whose content is user text or media: an empty ``content`` on one of these
# in a ``MessageUpdate`` is a deletion even when no ``deletetime`` came with it (§4.9).
_NON_CONTENT_PREFIXES = ("control/", "threadactivity/", "event/", "signal/")


class ConversationKind(Enum):
    """How the bridge should treat a conversation."""

    ONE_TO_ONE = "one_to_one"
    GROUP = "group"
    MEETING = "meeting"
    CHANNEL = "channel"
    OTHER = "other"


class ResourceType:
    """``resourceType`` values of EventMessages (kept as strings: unknown ones pass through)."""

    NEW_MESSAGE = "NewMessage"
    MESSAGE_UPDATE = "MessageUpdate"
    CONVERSATION_UPDATE = "ConversationUpdate"
    THREAD_UPDATE = "ThreadUpdate"
    USER_PRESENCE = "UserPresence"
    ENDPOINT_PRESENCE = "EndpointPresence"


@dataclass(frozen=True)
class Message:
    """A chat message, control message or thread-activity notice.

    ``content`` is the raw wire content (HTML, XML or JSON text depending on
    ``message_type``); ``properties`` is the wire ``properties`` object, whose
    values are often JSON held in strings (see ``json_property``).
    """

    id: str
    conversation_id: str
    message_type: str
    content: str
    sender_mri: str | None
    sender_name: str | None
    client_message_id: str | None
    version: int | None
    compose_time: datetime | None
    arrival_time: datetime | None
    edit_time: datetime | None
    delete_time: datetime | None
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)
    thread_root_id: str | None = None
    edited_id: str | None = None  # ``skypeeditedid``
    from_update: bool = False  # arrived in a ``MessageUpdate`` event

    @property
    def is_content(self) -> bool:
        """A message a person wrote (text or media), not a control, event or roster notice."""
        kind = self.message_type.lower()
        return bool(kind) and not kind.startswith(_NON_CONTENT_PREFIXES)

    @property
    def reply_root_id(self) -> str | None:
        """The root post of the channel thread this message is a reply in; ``None`` for a
        root post (whose link names the post itself) and for messages of chats."""
        root = self.thread_root_id
        return root if root is not None and root != self.id else None

    @property
    def is_deleted(self) -> bool:
        """Soft-deleted: ``deletetime`` is set, a delete flag is, or a ``MessageUpdate``
        re-sent a content message with empty content."""
        if self.delete_time is not None:
            return True
        if truthy(self.properties.get("systemdelete")) or truthy(
            self.properties.get("adminDelete")
        ):
            return True
        return self.from_update and self.is_content and not self.content.strip()

    @property
    def is_edited(self) -> bool:
        """The message has been edited at some point (``edittime`` or ``skypeeditedid``).

        A reaction change re-sends the whole message, so an edited message stays edited in
        later ``MessageUpdate`` events; compare ``edit_time`` to tell a new edit apart.
        """
        return self.edit_time is not None or self.edited_id is not None

    @property
    def emotions(self) -> tuple[Reaction, ...]:
        """Current reactions, one per (key, user), from ``properties.emotions``."""
        return parse_emotions(self.properties)

    @property
    def mentions(self) -> tuple[Mention, ...]:
        """``properties.mentions``; several item ids may name the same user (split spans)."""
        return parse_mentions(self.properties)

    @property
    def quoted_message_ids(self) -> tuple[str, ...]:
        """Ids of the messages this one quotes, from ``properties.qtdMsgs``."""
        return parse_quoted_message_ids(self.properties)

    def json_property(self, name: str) -> Any:
        """A property that may be JSON in a string (``mentions``, ``files``, …), decoded."""
        value = self.properties.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else None
            except ValueError:
                return None
        return value


@dataclass(frozen=True)
class ThreadMember:
    """A member of a thread roster."""

    mri: str
    role: str | None = None
    friendly_name: str | None = None


@dataclass(frozen=True)
class Conversation:
    """An entry of the conversation list; ``members`` holds MRIs (may be partial).

    For a channel, ``topic`` is the channel's name and ``team_id``/``team_name`` name the
    team it belongs to (the team's id is the id of its General channel).
    """

    id: str
    kind: ConversationKind
    topic: str | None
    members: tuple[str, ...]
    last_message: Message | None
    version: int | None
    consumption_horizon: ConsumptionHorizon | None = None  # the signed-in user's read position
    team_id: str | None = None
    team_name: str | None = None


@dataclass(frozen=True)
class Thread:
    """Thread metadata and roster (``topic``, ``team_id``, ``team_name`` as in
    ``Conversation``)."""

    id: str
    kind: ConversationKind
    topic: str | None
    members: tuple[ThreadMember, ...]
    version: int | None = None
    creator: str | None = None
    picture: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)
    team_id: str | None = None
    team_name: str | None = None


@dataclass(frozen=True)
class ConversationRef:
    """The chat an event belongs to.

    ``one_to_one``: a private chat of two people, which each of them sees as a chat with
    the other. ``opens_chat``: the event may be the first the client hears of the chat (a
    message in it); otherwise it is about a chat that is already known (the chat's
    metadata, or a call-log entry).
    """

    id: str
    one_to_one: bool
    opens_chat: bool


@dataclass(frozen=True)
class EventMessage:
    """A pushed event; ``resource`` is a ``Message``, ``Conversation`` or ``Thread`` when
    the resource type is one the client understands, else ``None``."""

    id: int | None
    resource_type: str
    time: datetime | None
    resource: Message | Conversation | Thread | None = None
    resource_link: str | None = None
    # Made from a message fetched over REST (a catch-up, history), not pushed.
    fetched: bool = False

    @property
    def message(self) -> Message | None:
        return self.resource if isinstance(self.resource, Message) else None

    @property
    def conversation(self) -> Conversation | None:
        return self.resource if isinstance(self.resource, Conversation) else None

    @property
    def thread(self) -> Thread | None:
        return self.resource if isinstance(self.resource, Thread) else None

    @property
    def conversation_ref(self) -> ConversationRef | None:
        """The chat this event belongs to; ``None`` for events of no chat (presence, the
        user's feeds, a call-log entry that names no chat)."""
        if isinstance(self.resource, (Thread, Conversation)):
            chat = self.resource
            one_to_one = chat.kind is ConversationKind.ONE_TO_ONE or is_one_to_one_id(chat.id)
            return ConversationRef(chat.id, one_to_one, opens_chat=False)
        message = self.message
        if message is None or not message.conversation_id:
            return None
        if is_call_log_id(message.conversation_id):
            # A call-log entry is about the chat the call was in.
            thread = call_log_thread_id(message.properties)
            if thread is None or is_feed_id(thread):
                return None
            return ConversationRef(thread, is_one_to_one_id(thread), opens_chat=False)
        if is_feed_id(message.conversation_id):
            return None
        conv_id = message.conversation_id
        return ConversationRef(conv_id, is_one_to_one_id(conv_id), opens_chat=True)


@dataclass(frozen=True)
class Profile:
    """A user's short profile from the middle tier."""

    mri: str
    display_name: str | None = None
    email: str | None = None
    given_name: str | None = None
    surname: str | None = None
    user_principal_name: str | None = None
    job_title: str | None = None
    object_id: str | None = None
    user_type: str | None = None
    tenant_name: str | None = None


@dataclass(frozen=True)
class ProfilePicture:
    """A user's profile picture as the middle tier serves it."""

    data: bytes = field(repr=False)
    content_type: str | None = None


@dataclass(frozen=True)
class SelfInfo:
    """The signed-in user."""

    mri: str
    display_name: str | None
    username: str | None


class ThreadActivityKind(Enum):
    """What a ``ThreadActivity/*`` message reports (§4.14)."""

    ADD_MEMBER = "add_member"
    DELETE_MEMBER = "delete_member"
    MEMBER_JOINED = "member_joined"
    MEMBER_LEFT = "member_left"
    TOPIC_UPDATE = "topic_update"
    ROLE_UPDATE = "role_update"
    HORIZON_UPDATE = "horizon_update"
    JOINING_ENABLED_UPDATE = "joining_enabled_update"
    HISTORY_DISCLOSED_UPDATE = "history_disclosed_update"
    PICTURE_UPDATE = "picture_update"


@dataclass(frozen=True)
class ActivityMember:
    """A user an activity is about: a target, or a joining/leaving member."""

    mri: str
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class ThreadActivity:
    """A roster, property or read-position change announced in a conversation.

    ``initiator`` is who did it (``None`` when not said); for ``DELETE_MEMBER`` a target
    equal to the initiator means the member left. ``topic`` is the new topic of a
    ``TOPIC_UPDATE`` (``old_topic`` when the JSON form gives it), ``value`` the new value of
    the other property updates, ``horizon`` the read position of a ``HORIZON_UPDATE``.
    """

    kind: ThreadActivityKind
    message_type: str
    conversation_id: str
    message_id: str
    time: datetime | None = None
    initiator: str | None = None
    initiator_name: str | None = None
    targets: tuple[ActivityMember, ...] = ()
    topic: str | None = None
    old_topic: str | None = None
    value: str | None = None
    horizon: ConsumptionHorizon | None = None
    roster_version: int | None = None


class CallEventKind(Enum):
    """How a call showed up in a conversation or in the call log."""

    STARTED = "started"
    ENDED = "ended"
    MISSED = "missed"
    DECLINED = "declined"


@dataclass(frozen=True)
class CallParticipant:
    mri: str
    name: str | None = None
    duration: int | None = None  # seconds


@dataclass(frozen=True)
class CallEvent:
    """An ``Event/Call`` message or a ``48:calllogs`` entry.

    ``conversation_id`` is the chat the call belongs to (a call-log entry's ``threadId``
    when it has one); ``duration`` is in seconds; ``state``/``direction``/``call_type``
    are the raw call-log values.
    """

    kind: CallEventKind
    conversation_id: str
    message_id: str
    call_id: str | None = None
    duration: int | None = None
    participants: tuple[CallParticipant, ...] = ()
    originator: str | None = None
    direction: str | None = None
    call_type: str | None = None
    state: str | None = None
    start_time: datetime | None = None
    connect_time: datetime | None = None
    end_time: datetime | None = None
    from_call_log: bool = False
