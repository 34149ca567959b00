"""Parsers for the loosely typed fields inside messages and conversations.

Reactions, mentions, quoted messages and consumption horizons arrive as real
arrays, as JSON held in strings, with numbers as ints or as strings, and with
history and empty entries mixed in (teams-protocol.md §4.5, §4.7, §4.8, §4.10,
§4.12). Everything here takes plain mappings so ``models`` can use it without
importing the rest of the parser; nothing here raises on bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidId
from .ids import check_id, id_from_link, parse_mri

_DIGITS_RE = re.compile(r"^[+-]?\d{1,30}$")
_MS_MIN = 10**11  # ms epochs of real message ids and read times are 12-14 digits
_MS_MAX = 10**14
# ``mentionType`` values that name a conversation instead of a person (§4.8): a channel
# ("channel", seen in captured channel posts), a team ("team") and a group chat's
# "@Everyone" ("chat", unconfirmed: the name Microsoft Graph gives that kind).
CONVERSATION_MENTION_TYPES = frozenset({"chat", "channel", "team"})


@dataclass(frozen=True)
class Reaction:
    """One user's reaction on a message; ``key`` is the Teams emotion key (see ``emoji``)."""

    key: str
    mri: str
    time_ms: int | None = None


@dataclass(frozen=True)
class Mention:
    """An entry of ``properties.mentions``: the ``itemid`` of the ``<span>`` in the content,
    whom it names, and the display name when the sender included one."""

    item_id: str
    mri: str
    display_name: str | None = None
    mention_type: str | None = None

    @property
    def is_conversation(self) -> bool:
        """A mention of a whole conversation (``@Everyone`` in a chat, a channel, a team)
        rather than of a person: its ``mri`` is the conversation's id."""
        kind = (self.mention_type or "").lower()
        return kind in CONVERSATION_MENTION_TYPES or self.mri.startswith("19:")


@dataclass(frozen=True)
class ConsumptionHorizon:
    """A read position: ``"<a>;<b>;<c>"`` (§4.12).

    ``message_id`` is the newest message read (``None`` for ``"0;0;0"``, never read) and
    ``read_time`` when it was read; ``mri`` is whose position it is when known.
    """

    raw: str
    mri: str | None = None
    message_id: str | None = None
    read_time: datetime | None = None
    client_message_id: str | None = None


def int_value(value: Any) -> int | None:
    """An int from an int, an integral float or a decimal string; ``None`` otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS_RE.match(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number == number and abs(number) != float("inf") else None
    return None


def text_value(value: Any) -> str | None:
    """A stripped non-empty string (numbers are turned into strings)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


def json_value(value: Any) -> Any:
    """Decode JSON held in a string; other values pass through; bad JSON is ``None``."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def ms_datetime(value: Any) -> datetime | None:
    """A UTC datetime from a positive ms epoch (int or string)."""
    number = int_value(value)
    if number is None or number <= 0:
        return None
    seconds = number / 1000 if number >= _MS_MIN else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def user_mri(value: Any) -> str | None:
    """An MRI (``8:orgid:…``, ``28:…``, …) from a bare MRI or a contacts URL; ``None`` when
    absent, not an MRI, or hostile."""
    text = text_value(value)
    if text is None:
        return None
    try:
        return parse_mri(id_from_link(text)).raw
    except InvalidId:
        return None


def call_log_thread_id(properties: Mapping[str, Any]) -> str | None:
    """The chat a call-log entry (its ``call-log`` property) is about, when it names one."""
    data = json_value(properties.get("call-log"))
    if not isinstance(data, Mapping):
        return None
    thread = text_value(_first(data, "threadId", "threadid"))
    if thread is None:
        return None
    try:
        return check_id(thread)
    except InvalidId:
        return None


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


# -- reactions ----------------------------------------------------------------------
def _emotion_entries(raw: Any) -> Iterable[tuple[Any, Any]]:
    """(key, users) pairs from the array form or a ``{key: users}`` object."""
    raw = json_value(raw)
    if isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, Mapping):
                yield _first(entry, "key", "emotion", "name"), _first(entry, "users", "Users")
    elif isinstance(raw, Mapping):
        yield from raw.items()


def parse_emotions(properties: Mapping[str, Any]) -> tuple[Reaction, ...]:
    """``properties.emotions`` collapsed to one reaction per (key, user), the latest one.

    Keys whose ``users`` array is empty (left behind by removals) contribute nothing;
    a user listed several times under one key (history) counts once.
    """
    latest: dict[tuple[str, str], Reaction] = {}
    order: list[tuple[str, str]] = []
    for raw_key, raw_users in _emotion_entries(properties.get("emotions")):
        key = text_value(raw_key)
        users = json_value(raw_users)
        if key is None or not isinstance(users, list):
            continue
        for user in users:
            if isinstance(user, Mapping):
                mri = user_mri(_first(user, "mri", "id", "user"))
                stamp = int_value(_first(user, "time", "value"))
            else:
                mri, stamp = user_mri(user), None
            if mri is None:
                continue
            ident = (key, mri)
            previous = latest.get(ident)
            if previous is None:
                order.append(ident)
            elif (previous.time_ms or 0) > (stamp or 0):
                continue
            latest[ident] = Reaction(key=key, mri=mri, time_ms=stamp)
    return tuple(latest[ident] for ident in order)


# -- mentions and quotes ------------------------------------------------------------
def parse_mentions(properties: Mapping[str, Any]) -> tuple[Mention, ...]:
    """``properties.mentions`` (a JSON string of an array indexed by ``itemid``)."""
    raw = json_value(properties.get("mentions"))
    if not isinstance(raw, list):
        return ()
    mentions: list[Mention] = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        item_id = text_value(_first(entry, "itemid", "itemId", "id"))
        mri = user_mri(_first(entry, "mri", "mentionedMri", "userId"))
        if item_id is None or mri is None:
            continue
        mentions.append(
            Mention(
                item_id=item_id,
                mri=mri,
                display_name=text_value(_first(entry, "displayName", "displayname")),
                mention_type=text_value(_first(entry, "mentionType", "mentiontype")),
            )
        )
    return tuple(mentions)


def parse_quoted_message_ids(properties: Mapping[str, Any]) -> tuple[str, ...]:
    """Message ids listed in ``properties.qtdMsgs`` (quote/reply metadata)."""
    raw = json_value(properties.get("qtdMsgs"))
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        return ()
    ids: list[str] = []
    for entry in raw:
        value = (
            _first(entry, "messageId", "messageid", "id") if isinstance(entry, Mapping) else entry
        )
        text = text_value(value)
        if text is None:
            continue
        try:
            check_id(text)
        except InvalidId:
            continue
        if text not in ids:
            ids.append(text)
    return tuple(ids)


# -- consumption horizons -----------------------------------------------------------
def _ms_like(value: str) -> int | None:
    number = int_value(value) if value.isdigit() else None
    if number is not None and _MS_MIN <= number < _MS_MAX:
        return number
    return None


def parse_consumption_horizon(value: Any, mri: str | None = None) -> ConsumptionHorizon | None:
    """Parse ``"<msgId>;<readMs>;<clientMsgId>"``; ``None`` if it is not one.

    Sources disagree on the fields (§4.12): the first field is taken as the message id
    when it looks like one (an ms epoch), else the third; the second is the read time.
    """
    raw = text_value(value)
    if raw is None or len(raw) > 200:
        return None
    parts = [p.strip() for p in raw.split(";")]
    if len(parts) < 2 or not all(p.isdigit() or p == "" for p in parts):
        return None
    first = _ms_like(parts[0])
    third = _ms_like(parts[2]) if len(parts) > 2 else None
    message = first if first is not None else third
    client = parts[2] if len(parts) > 2 and parts[2] not in ("", "0") else None
    return ConsumptionHorizon(
        raw=raw,
        mri=mri,
        message_id=str(message) if message is not None else None,
        read_time=ms_datetime(parts[1]) if _ms_like(parts[1]) else None,
        client_message_id=client,
    )
