"""What a Teams channel adds to a portal: threads, and mentions of everyone in the room.

A channel is one room for now (a later space per team can adopt these rooms: the team is
stored with the portal by its `Room` and named in the room's ``m.bridge`` state as its ``network``). Its
root posts are ordinary messages; a reply in a channel thread is a Matrix thread event
(``m.thread``) under the root post's event, with the reply fallback pointing at the newest
event of the thread.
Which thread a Teams message is in is remembered in memory only: after a restart it is
asked of the homeserver (the newest thread event) or of Teams (a message's root).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mautrix.api import Method, Path
from mautrix.types import EventID, RelationType

from .. import db as dbm
from ..delivery.errors import Permanent, Transient, classify
from ..formatter import RoomMention
from ..teams import TeamsError
from .calls import is_chat_message_id
from .rules import thread_relation

if TYPE_CHECKING:
    from mautrix.types import MessageEventContent

    from ..teams import Message
    from ..user import User
    from .portal import Portal

K = TypeVar("K")
V = TypeVar("V")

# Threads and messages remembered per channel (the rest is looked up again when needed).
REMEMBERED = 1000
# How a group chat's "@Everyone" is written. The channel form (mentionType "channel", the
# channel's id) is seen in captured channel posts; "chat" with the chat's id and the
# text "Everyone" is unconfirmed: it is the name Microsoft Graph gives such a mention.
EVERYONE = "Everyone"
CHAT_MENTION = "chat"
CHANNEL_MENTION = "channel"
TEAM_MENTION = "team"


class _Bounded(OrderedDict[K, V]):
    """A mapping that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass(frozen=True)
class ThreadTarget:
    """Where a Matrix message goes in a channel: into the thread of ``root_id``.
    ``in_matrix_thread``: the event is a thread event too (not a plain reply)."""

    root_id: str
    in_matrix_thread: bool


class Threads:
    """A portal's channel threads and mentions of everyone. Owns its memory of which
    thread each message is in."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self._roots: _Bounded[str, str] = _Bounded()  # Teams message id -> its thread root
        self._latest: _Bounded[str, EventID] = _Bounded()  # root id -> newest thread event

    # -- mentions of everyone --------------------------------------------------------------

    def is_room_mention(self, mri: str, mention_type: str) -> bool:
        """Whether a Teams mention means everyone in this room: the chat or channel itself,
        or (in a channel) its team. Mentions of other channels stay text."""
        portal = self.portal
        if portal.is_direct:
            return False
        if mri.lower() == portal.thread_id.lower():
            return mention_type in ("", CHAT_MENTION, CHANNEL_MENTION, TEAM_MENTION)
        return (
            portal.is_channel
            and mention_type == TEAM_MENTION
            and (portal.team_id is None or mri.lower() == portal.team_id.lower())
        )

    def outgoing_room_mention(self, content: dict[str, Any]) -> RoomMention | None:
        """The Teams mention of everyone for a Matrix message that mentions the room
        (``m.mentions.room``, or ``@room`` from a client without ``m.mentions``); none in
        a 1:1 chat."""
        portal = self.portal
        if portal.is_direct:
            return None
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict):
            wanted = mentions.get("room") is True
        else:
            wanted = "@room" in str(content.get("body") or "")
        if not wanted:
            return None
        if portal.is_channel:
            return RoomMention(portal.thread_id, CHANNEL_MENTION, portal.topic or "General")
        return RoomMention(portal.thread_id, CHAT_MENTION, EVERYONE)

    # -- Teams -> Matrix: threads ----------------------------------------------------------

    async def place(
        self, message: Message, parts: list[MessageEventContent]
    ) -> list[MessageEventContent]:
        """A reply in a channel thread: its parts become Matrix thread events under the
        root post (a reply to one message of the thread stays a real reply)."""
        portal = self.portal
        root = message.reply_root_id if portal.is_channel else None
        if root is None:
            return parts
        root_row = await dbm.Message.get(portal.thread_id, portal.receiver, root)
        if root_row is None:
            # The root post was never bridged: the reply stands on its own.
            portal.log.debug("Root %s of reply %s is not in the room", root, message.id)
            return parts
        latest = await self._newest_in_thread(root, root_row.mxid)
        for content in parts:
            quoted = content.relates_to.in_reply_to if content.get_reply_to() else None
            content.set_thread_parent(root_row.mxid, latest)
            if quoted is not None:
                # A reply to one message of the thread: a real reply, not a fallback.
                content.relates_to.in_reply_to = quoted
                content.relates_to.is_falling_back = False
        return parts

    async def _newest_in_thread(self, root_id: str, root_event: EventID) -> EventID:
        latest = self._latest.get(root_id)
        if latest is not None:
            return latest
        portal = self.portal
        assert portal.mxid
        path = Path.v1.rooms[portal.mxid].relations[root_event][RelationType.THREAD.value]
        try:
            resp = await portal.main_intent.api.request(
                Method.GET, path, query_params={"limit": "1", "dir": "b"}
            )
        except Exception as e:
            portal.log.debug("Could not read thread %s from the homeserver: %s", root_event, e)
            return root_event
        chunk = resp.get("chunk") if isinstance(resp, dict) else None
        newest = chunk[0].get("event_id") if chunk and isinstance(chunk[0], dict) else None
        return EventID(newest) if isinstance(newest, str) else root_event

    def note_recorded(self, message: Message, event_id: EventID) -> None:
        """A Teams message's part is in the room: remember its thread (channels only)."""
        if self.portal.is_channel:
            root = message.reply_root_id
            self._note(message.id, root, event_id if root else None)

    def note_sent(self, thread: ThreadTarget | None, message_id: str, event_id: EventID) -> None:
        """Remember a message sent from Matrix into a channel thread."""
        if thread is not None:
            newest = event_id if thread.in_matrix_thread else None
            self._note(message_id, thread.root_id, newest)

    def _note(self, message_id: str, root_id: str | None, newest: EventID | None) -> None:
        """Remember a channel message's thread and, given ``newest``, the event that is now
        the newest of the Matrix thread."""
        self._roots.put(message_id, root_id or message_id)
        if root_id is not None and newest is not None:
            self._latest.put(root_id, newest)

    # -- Matrix -> Teams: threads ----------------------------------------------------------

    async def target(self, sender: User, content: dict[str, Any]) -> ThreadTarget | None:
        """The channel thread a Matrix message belongs in: a thread event's root, or the
        thread of the message a reply answers (replying to a root post answers in its
        thread). ``None``: a new root post (also when the target never reached Teams)."""
        portal = self.portal
        if not portal.is_channel or not portal.mxid:
            return None
        target, in_thread = thread_relation(content)
        if not target:
            return None
        row = await dbm.Message.get_by_mxid(EventID(target), portal.mxid)
        if row is None or not is_chat_message_id(row.message_id):
            return None
        return ThreadTarget(await self._root_of(sender, row.message_id), in_thread)

    async def _root_of(self, sender: User, message_id: str) -> str:
        known = self._roots.get(message_id)
        if known is not None:
            return known
        assert sender.client is not None
        try:
            message = await sender.client.get_message(self.portal.thread_id, message_id)
        except Exception as e:
            failure = classify(e, "the thread lookup")
            if isinstance(failure, Permanent) and isinstance(e, TeamsError):
                return message_id  # gone from Teams: post as if it were the root
            if failure is None:
                raise
            raise Transient(f"could not look up the thread ({failure})") from e
        root = message.reply_root_id or message_id
        self._roots.put(message_id, root)
        return root
