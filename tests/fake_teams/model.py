"""In-memory state of the simulated tenant: users, chats, messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

UserKind = Literal["work", "personal"]
ChatKind = Literal["one_to_one", "group", "meeting", "channel"]


@dataclass
class User:
    mri: str
    display_name: str
    email: str
    object_id: str
    tenant_id: str
    kind: UserKind
    # The profile picture the middle tier serves (none: it answers 404).
    picture: bytes | None = field(default=None, repr=False)
    picture_type: str = "image/jpeg"

    @property
    def given_name(self) -> str:
        return self.display_name.split(" ")[0]

    @property
    def surname(self) -> str:
        parts = self.display_name.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""

    def public(self) -> dict[str, Any]:
        return {
            "mri": self.mri,
            "display_name": self.display_name,
            "email": self.email,
            "object_id": self.object_id,
            "tenant_id": self.tenant_id,
            "kind": self.kind,
            "has_picture": self.picture is not None,
        }


@dataclass
class Team:
    """A team: its General channel has the team's id; every channel shares the roster."""

    id: str
    display_name: str
    channel_ids: list[str]


@dataclass
class Member:
    mri: str
    role: str  # "Admin" | "User"
    joined_ms: int


@dataclass
class Message:
    """One stored message; rendered to JSON per request (link hosts differ)."""

    id: int
    sequence_id: int
    conversation_id: str
    sender: str
    sender_name: str
    sender_tenant: str
    messagetype: str
    contenttype: str
    content: str
    client_message_id: str
    arrival_ms: int
    compose_time: str | None = None
    version: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    amsreferences: list[Any] = field(default_factory=list)
    edited_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # A reply in a channel thread: the id of the thread's root post.
    root_id: int | None = None

    def __post_init__(self) -> None:
        if not self.version:
            self.version = self.arrival_ms


@dataclass
class Chat:
    id: str
    kind: ChatKind
    members: dict[str, Member]
    topic: str | None
    creator: str
    created_ms: int
    version: int
    # The thread's `picture` property: `URL@<AMS object>/views/avatar_fullsize`.
    picture: str | None = None
    messages: list[Message] = field(default_factory=list)
    last_id: int = 0
    next_sequence: int = 1
    horizons: dict[str, str] = field(default_factory=dict)
    # Channels: the team's id (its General channel's id, which is this chat's own id for
    # General), the team's name and the channel's name.
    team_id: str | None = None
    team_name: str | None = None
    channel_name: str | None = None

    @property
    def last_activity(self) -> int:
        return self.messages[-1].arrival_ms if self.messages else self.created_ms

    @property
    def is_general(self) -> bool:
        return self.kind == "channel" and self.team_id == self.id

    @property
    def thread_type(self) -> str:
        if self.kind == "channel":
            return "space" if self.is_general else "topic"
        return "meeting" if self.kind == "meeting" else "chat"

    @property
    def product_thread_type(self) -> str:
        if self.kind == "channel":
            return "TeamsTeam" if self.is_general else "TeamsStandardChannel"
        return {"one_to_one": "OneToOneChat", "group": "Chat", "meeting": "Meeting"}[self.kind]

    def thread_of(self, root_id: int) -> list[Message]:
        """A channel thread: its root post, then the replies, oldest first."""
        return [m for m in self.messages if m.id == root_id or m.root_id == root_id]

    def next_arrival(self, now: int) -> int:
        """Message ids are arrival ms, strictly increasing per conversation."""
        self.last_id = max(now, self.last_id + 1)
        return self.last_id

    def message(self, msg_id: int) -> Message | None:
        for msg in reversed(self.messages):
            if msg.id == msg_id:
                return msg
        return None
