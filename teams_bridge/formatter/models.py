"""Values exchanged between the formatter and the bridge core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

MentionResolver = Callable[[str], "tuple[str, str] | None"]
"""Teams MRI -> (Matrix user id, display name), or None when the MRI has no Matrix user."""

UserResolver = Callable[[str], "tuple[str, str] | None"]
"""Matrix user id -> (Teams MRI, display name), or None when the user is not a Teams user."""

RoomMentionTest = Callable[[str, str], bool]
"""(mentioned id, lowercase ``mentionType``) -> whether the mention means everyone in this
room (Matrix ``@room``), e.g. a group chat's ``@Everyone`` or the channel itself."""


@dataclass(frozen=True)
class RoomMention:
    """How a mention of everyone in the room is written in this Teams conversation: the
    conversation's id, the ``mentionType`` and the text Teams shows for it."""

    mri: str
    mention_type: str
    display_name: str


@dataclass(frozen=True)
class InlineImage:
    """An AMS image or video found in Teams HTML, left for the media code to fetch."""

    src: str
    item_id: str | None
    alt: str | None
    kind: Literal["image", "video"]


@dataclass(frozen=True)
class MatrixMessage:
    """Teams content converted for a Matrix ``m.text`` event."""

    body: str
    formatted_body: str | None
    mentioned_user_ids: list[str] = field(default_factory=list)
    reply_to_message_id: str | None = None
    images: list[InlineImage] = field(default_factory=list)
    mentions_room: bool = False


@dataclass(frozen=True)
class TeamsContent:
    """Matrix content converted for a Teams ``RichText/Html`` message."""

    html: str
    mentions: list[dict] = field(default_factory=list)
