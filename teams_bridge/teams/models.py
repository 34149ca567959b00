"""Typed views of Teams objects; nothing above this package touches raw JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


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

    @property
    def is_deleted(self) -> bool:
        return self.delete_time is not None

    @property
    def is_edited(self) -> bool:
        return self.edit_time is not None

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
    """An entry of the conversation list; ``members`` holds MRIs (may be partial)."""

    id: str
    kind: ConversationKind
    topic: str | None
    members: tuple[str, ...]
    last_message: Message | None
    version: int | None


@dataclass(frozen=True)
class Thread:
    """Thread metadata and roster."""

    id: str
    kind: ConversationKind
    topic: str | None
    members: tuple[ThreadMember, ...]
    version: int | None = None
    creator: str | None = None
    picture: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class EventMessage:
    """A pushed event; ``resource`` is a ``Message``, ``Conversation`` or ``Thread`` when
    the resource type is one the client understands, else ``None``."""

    id: int | None
    resource_type: str
    time: datetime | None
    resource: Message | Conversation | Thread | None = None
    resource_link: str | None = None

    @property
    def message(self) -> Message | None:
        return self.resource if isinstance(self.resource, Message) else None

    @property
    def conversation(self) -> Conversation | None:
        return self.resource if isinstance(self.resource, Conversation) else None

    @property
    def thread(self) -> Thread | None:
        return self.resource if isinstance(self.resource, Thread) else None


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
class SelfInfo:
    """The signed-in user."""

    mri: str
    display_name: str | None
    username: str | None
