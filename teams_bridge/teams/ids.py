"""Teams identifiers: MRIs, conversation ids, and the links that carry them.

Ids arrive inside URLs on many hosts and are later put back into URL paths and
database keys, so everything here validates first and rejects hostile input
(control characters, path separators) instead of passing it on.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, unquote, urlsplit

from .errors import InvalidId

MAX_ID_LENGTH = 1024
# The feed of the signed-in user's calls; its entries name the chat a call was in.
CALL_LOGS_ID = "48:calllogs"
MSA_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"

_FORBIDDEN_CHARS = frozenset("/\\?#")
# Printable ASCII without the separators: what nearly every id is, checked at once.
_PLAIN_ASCII_ID = re.compile(r"[\x20-\x22\x24-\x2e\x30-\x3e\x40-\x5b\x5d-\x7e]+")
_MESSAGEID_RE = re.compile(r";messageid=", re.IGNORECASE)
_UNQ_RE = re.compile(r"^19:([0-9a-fA-F-]{36})_([0-9a-fA-F-]{36})@unq\.gbl\.spaces$")


def check_id(value: str) -> str:
    """Return ``value`` if it is safe to use as an id, else raise ``InvalidId``."""
    if not isinstance(value, str) or not value:
        raise InvalidId("empty or non-string id")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidId("id too long")
    if _PLAIN_ASCII_ID.fullmatch(value):
        return value
    for ch in value:
        if ch in _FORBIDDEN_CHARS:
            raise InvalidId("id contains a path or query separator")
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise InvalidId("id contains control characters")
    return value


def is_valid_id(value: object) -> bool:
    """Whether ``value`` passes ``check_id``."""
    if not isinstance(value, str):
        return False
    try:
        check_id(value)
    except InvalidId:
        return False
    return True


class MriKind(Enum):
    """What sort of entity an MRI names."""

    ORGID = "orgid"  # 8:orgid:<aad object id>, work/school user
    LIVE = "live"  # 8:live:<name> or 8:live:.cid.<hex>, personal account
    SKYPE = "skype"  # 8:<skypename>, legacy Skype
    VISITOR = "visitor"  # 8:teamsvisitor:..., anonymous meeting guest
    ACS = "acs"  # 8:acs:..., Azure Communication Services identity
    BOT = "bot"  # 28:<guid>
    PSTN = "pstn"  # 4:+<phone>
    SFB = "sfb"  # 2:..., Skype for Business
    MSN = "msn"  # 1:...
    FEED = "feed"  # 48:<name>, virtual feed such as 48:notes
    THREAD = "thread"  # 19:..., a conversation "speaking" (ThreadActivity)
    UNKNOWN = "unknown"


_PREFIX_KINDS = {
    "28": MriKind.BOT,
    "4": MriKind.PSTN,
    "2": MriKind.SFB,
    "1": MriKind.MSN,
    "48": MriKind.FEED,
    "19": MriKind.THREAD,
}


@dataclass(frozen=True)
class Mri:
    """A parsed MRI: ``raw`` is the full string, ``ident`` the part after the prefix."""

    raw: str
    kind: MriKind
    prefix: str
    ident: str

    @property
    def is_user(self) -> bool:
        """People (not bots, feeds or conversations)."""
        return self.kind in (
            MriKind.ORGID,
            MriKind.LIVE,
            MriKind.SKYPE,
            MriKind.VISITOR,
            MriKind.ACS,
            MriKind.PSTN,
            MriKind.SFB,
            MriKind.MSN,
        )

    @property
    def object_id(self) -> str | None:
        """The AAD object id of a work/school user."""
        if self.kind is MriKind.ORGID:
            return self.ident[len("orgid:") :]
        return None


def parse_mri(value: str) -> Mri:
    """Parse and classify an MRI; raise ``InvalidId`` if it is not one."""
    check_id(value)
    prefix, sep, ident = value.partition(":")
    if not sep or not prefix.isdigit() or not prefix.isascii() or not ident:
        raise InvalidId("not an MRI")
    if prefix == "8":
        lowered = ident.lower()
        if lowered.startswith("orgid:"):
            kind = MriKind.ORGID
        elif lowered.startswith("live:"):
            kind = MriKind.LIVE
        elif lowered.startswith("teamsvisitor:"):
            kind = MriKind.VISITOR
        elif lowered.startswith("acs:"):
            kind = MriKind.ACS
        else:
            kind = MriKind.SKYPE
    else:
        kind = _PREFIX_KINDS.get(prefix, MriKind.UNKNOWN)
    return Mri(raw=value, kind=kind, prefix=prefix, ident=ident)


def mri_from_skype_id(skype_id: str) -> str:
    """Turn a Skype-token ``skypeid`` (``orgid:…``/``live:…``) into an MRI."""
    check_id(skype_id)
    if re.match(r"^\d+:", skype_id):
        return skype_id
    return f"8:{skype_id}"


class ConversationIdKind(Enum):
    """What a conversation id alone tells about the conversation."""

    ONE_TO_ONE = "one_to_one"  # 19:<a>_<b>@unq.gbl.spaces
    ONE_TO_ONE_UNI = "one_to_one_uni"  # 19:uni01_…@thread.v2 (peer not derivable)
    GROUP = "group"  # 19:…@thread.v2
    MEETING = "meeting"  # 19:meeting_…@thread.v2
    LEGACY_GROUP = "legacy_group"  # 19:…@thread.skype
    CHANNEL = "channel"  # 19:…@thread.tacv2
    DIRECT = "direct"  # 8:live:… etc., addressed by the peer's MRI
    FEED = "feed"  # 48:notes and friends
    UNKNOWN = "unknown"


def split_message_id(conv_id: str) -> tuple[str, str | None]:
    """Split ``<channel>;messageid=<root>`` into the channel id and the root id."""
    parts = _MESSAGEID_RE.split(conv_id, maxsplit=1)
    if len(parts) == 2:
        return parts[0], parts[1] or None
    return conv_id, None


def thread_conversation_id(channel_id: str, root_id: str) -> str:
    """The id a channel thread is addressed by: ``<channel>;messageid=<root>`` (§4.7)."""
    check_id(channel_id)
    check_id(root_id)
    base, _old_root = split_message_id(channel_id)
    return f"{base};messageid={root_id}"


def classify_conversation(conv_id: str) -> ConversationIdKind:
    """Classify a conversation id by its shape."""
    check_id(conv_id)
    base, _root = split_message_id(conv_id)
    lowered = base.lower()
    if lowered.startswith("48:"):
        return ConversationIdKind.FEED
    if re.match(r"^\d+:", lowered) and not lowered.startswith("19:"):
        return ConversationIdKind.DIRECT
    if not lowered.startswith("19:"):
        return ConversationIdKind.UNKNOWN
    if lowered.endswith("@unq.gbl.spaces"):
        return ConversationIdKind.ONE_TO_ONE
    if lowered.endswith("@thread.tacv2"):
        return ConversationIdKind.CHANNEL
    if lowered.endswith("@thread.skype"):
        return ConversationIdKind.LEGACY_GROUP
    if lowered.endswith("@thread.v2"):
        if lowered.startswith("19:uni01_"):
            return ConversationIdKind.ONE_TO_ONE_UNI
        if lowered.startswith("19:meeting_"):
            return ConversationIdKind.MEETING
        return ConversationIdKind.GROUP
    return ConversationIdKind.UNKNOWN


@functools.lru_cache(maxsize=4096)
def _id_kind(conv_id: str) -> ConversationIdKind:
    try:
        return classify_conversation(conv_id)
    except InvalidId:
        return ConversationIdKind.UNKNOWN


def is_one_to_one_id(conv_id: str) -> bool:
    """Whether the id alone shows a private chat of two people (a chat created with
    ``uniquerosterthread`` may have a group-shaped id: its properties tell, see
    ``ConversationKind``)."""
    return _id_kind(conv_id) in (
        ConversationIdKind.ONE_TO_ONE,
        ConversationIdKind.ONE_TO_ONE_UNI,
        ConversationIdKind.DIRECT,
    )


def is_channel_id(conv_id: str) -> bool:
    """Whether the id is a Teams channel's (a thread of it included)."""
    return _id_kind(conv_id) is ConversationIdKind.CHANNEL


def is_feed_id(conv_id: str) -> bool:
    """Whether the id is one of the signed-in user's virtual feeds (``48:…``), which are
    not chats."""
    return _id_kind(conv_id) is ConversationIdKind.FEED


def is_call_log_id(conv_id: str) -> bool:
    """Whether the id is the call-log feed's."""
    return conv_id.lower() == CALL_LOGS_ID


def is_participant_mri(value: str | None) -> bool:
    """Whether ``value`` can name someone acting in a chat (a person or a bot) rather
    than a conversation or a feed: notices "from the conversation" carry the chat's id
    where a sender would be."""
    if not value:
        return False
    prefix = value.partition(":")[0]
    return _PREFIX_KINDS.get(prefix) not in (MriKind.THREAD, MriKind.FEED)


def members_from_conversation_id(conv_id: str) -> tuple[str, ...]:
    """The members a 1:1 id implies: both users of an ``@unq.gbl.spaces`` id, or the peer
    of a peer-addressed (``8:…``) conversation; empty when the id says nothing."""
    kind = classify_conversation(conv_id)
    if kind is ConversationIdKind.ONE_TO_ONE:
        match = _UNQ_RE.match(conv_id)
        if match:
            return (f"8:orgid:{match.group(1).lower()}", f"8:orgid:{match.group(2).lower()}")
    elif kind is ConversationIdKind.DIRECT:
        return (conv_id,)
    return ()


def one_to_one_peer(conv_id: str, self_mri: str | None) -> str | None:
    """The other user of a 1:1 conversation when the id reveals it."""
    members = members_from_conversation_id(conv_id)
    if len(members) == 1:
        return members[0]
    if not members or self_mri is None:
        return None
    others = [m for m in members if m.lower() != self_mri.lower()]
    if len(others) == 1:
        return others[0]
    if not others:  # a chat with oneself
        return members[0]
    return None


def _last_segment(value: str) -> str:
    if "://" in value:
        try:
            path = urlsplit(value).path
        except ValueError as exc:
            raise InvalidId("unparsable link") from exc
    elif re.match(r"^\d+:", value):
        return value  # a bare id: validated whole, so a slash in it is caught
    else:
        path = value
    segment = path.rsplit("/", 1)[-1]
    if not segment:
        raise InvalidId("link has no id segment")
    return segment


def parse_link(value: str) -> tuple[str, str | None]:
    """Extract ``(id, root message id)`` from a ``from``/``conversationLink`` value.

    Accepts URLs on any host, relative paths and bare ids; the id is the last path
    segment, percent-decoded, with any ``;messageid=<root>`` split off.
    """
    if not isinstance(value, str) or not value:
        raise InvalidId("empty link")
    try:
        segment = unquote(_last_segment(value), errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidId("link is not valid UTF-8") from exc
    ident, root = split_message_id(segment)
    check_id(ident)
    if root is not None:
        check_id(root)
    return ident, root


def id_from_link(value: str) -> str:
    """The id (MRI or conversation id) at the end of a link, without ``;messageid=``."""
    return parse_link(value)[0]


def escape_segment(value: str) -> str:
    """Percent-encode an id as one URL path segment (``:`` ``@`` ``;`` included)."""
    check_id(value)
    return quote(value, safe="")
