"""The one way a portal writes to its Matrix room.

Every event the bridge puts into a portal room goes through a `RoomWriter`: messages,
notices, reactions, redactions, typing, read markers and message statuses. It is the place
that chooses who sends (a Teams user's ghost, the room's own voice, or the bridge bot),
encrypts for encrypted rooms, and derives a transaction id from what is being sent, so a
resend after a crash is the same request to the homeserver.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import ClientError
from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.errors import (
    MatrixConnectionError,
    MatrixRequestError,
    MatrixResponseError,
    make_request_error,
)
from mautrix.types import (
    EventContent,
    EventID,
    EventType,
    MessageType,
    RoomID,
    Serializable,
    TextMessageEventContent,
)
from yarl import URL

from ..teams.lean_http import BodyTooLarge, LeanHttp, LeanHttpError

if TYPE_CHECKING:
    from mautrix.bridge.e2ee import EncryptionManager


class Voice(enum.Enum):
    """Who speaks when no Teams user does."""

    # The room's own voice: the other person's ghost in a 1:1 room, the bot elsewhere (it
    # created the room and holds its power).
    ROOM = "room"
    # The bridge bot itself: notices and message statuses.
    BOT = "bot"


# A sender is a Teams user (their MRI) or one of the voices above.
Sender = str | Voice

# How a Matrix event's delivery to Teams went (MSC2544-style statuses clients show).
SEND_STATUS = EventType("com.beeper.message_send_status", EventType.Class.MESSAGE)


# How far back (pages of 100 events) a send whose outcome was unknown is looked for.
LOOKUP_PAGES = 3
# Fields that tell a bridged event from another by the same sender at the same time.
IDENTIFYING = ("msgtype", "body", "m.relates_to", "status")


def outcome_unknown(error: BaseException) -> bool:
    """Whether a failed send may have reached the homeserver all the same: the connection
    broke, or a proxy answered for a homeserver that was going away."""
    if isinstance(error, MatrixRequestError):
        return error.http_status >= 500
    return isinstance(error, (MatrixConnectionError, OSError, TimeoutError))


def same_event(
    raw: dict[str, Any], sender: str, event_type: str, content: dict[str, Any], ts: int | None
) -> bool:
    """Whether `raw` (an event as the homeserver serves it) is the send described."""
    if raw.get("sender") != sender or raw.get("type") != event_type:
        return False
    if ts is not None and raw.get("origin_server_ts") != ts:
        return False
    got = raw.get("content")
    if not isinstance(got, dict):
        return False
    return all(got.get(key) == content[key] for key in IDENTIFYING if key in content)


def txn_id(kind: str, seed: str) -> str:
    """The transaction id of an event derived from ``seed`` (what identifies it on the
    Teams side): the same seed always gives the same id, so the homeserver treats a
    resend as the same event. ``kind`` keeps the kinds of events apart."""
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32]
    return f"teams-{kind}-{digest}" if kind else f"teams-{digest}"


async def put_event(
    intent: IntentAPI,
    room_id: RoomID,
    event_type: EventType,
    content: EventContent | dict[str, Any],
    txn: str,
    timestamp: int | None,
    http: LeanHttp | None = None,
) -> EventID:
    """``intent.send_message_event`` for a ghost of the appservice, once, with a transaction
    id: the same request, built directly. (mautrix's general request path formats log lines
    below the active level, copies its parameters and checks the intent's power level from
    the state store for every event; bridging a message is this request more than anything
    else.) A double puppet, or an intent acting for a device, takes mautrix's path."""
    api = intent.api
    if api.is_real_user or api.as_user_id or api.as_device_id:
        return await intent.send_message_event(
            room_id, event_type, content, txn_id=txn, timestamp=timestamp, retry_count=0
        )
    body = content.serialize() if isinstance(content, Serializable) else content
    url = (
        f"{str(api.base_url).rstrip('/')}/_matrix/client/v3/rooms/{quote(room_id, safe='')}"
        f"/send/{quote(str(event_type), safe='')}/{quote(txn, safe='')}"
        f"?user_id={quote(api.identity or api.bot_mxid, safe='')}"
    )
    if timestamp is not None:
        url += f"&ts={int(timestamp)}"
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    payload = json.dumps(body).encode()
    try:
        if http is not None and url.startswith("http://"):
            answered = await http.request("PUT", url, headers=headers, body=payload)
            data, status = answered.body, answered.status
        else:
            request = api.session.put(URL(url, encoded=True), data=payload, headers=headers)
            async with request as response:
                data = await response.read()
                status = response.status
    except (ClientError, LeanHttpError, BodyTooLarge) as e:
        raise MatrixConnectionError(str(e)) from e
    try:
        answer = json.loads(data) if data else {}
    except ValueError:
        answer = None
    if not 200 <= status < 300:
        error = answer if isinstance(answer, dict) else {}
        raise make_request_error(
            http_status=status,
            text=data.decode("utf-8", "replace"),
            errcode=error.get("errcode"),
            message=error.get("error"),
            unstable_errcode=error.get("org.matrix.msc3848.unstable.errcode"),
        )
    if not isinstance(answer, dict) or not isinstance(answer.get("event_id"), str):
        raise MatrixResponseError("`event_id` not in response.")
    return EventID(answer["event_id"])


class RoomWriter:
    """Writes to one portal room. The portal gives it the room and the intents; the
    writer never reads the portal's other state."""

    def __init__(
        self,
        *,
        room_id: Callable[[], RoomID | None],
        http: LeanHttp | None = None,
        bot: IntentAPI,
        room_voice: Callable[[], IntentAPI],
        ghost: Callable[[str], Awaitable[IntentAPI]],
        encrypted: Callable[[], bool],
        e2ee: Callable[[], EncryptionManager | None],
    ) -> None:
        self._room_id = room_id
        self._bot = bot
        self._room_voice = room_voice
        self._ghost = ghost
        self._encrypted = encrypted
        self._e2ee = e2ee
        self._http = http
        # Transaction ids whose send failed with an unknown outcome. The homeserver keeps an
        # appservice's transaction ids in memory only, so after a restart it would take the
        # same send again as a new event: such a send is looked for before it is repeated.
        self._uncertain: set[str] = set()

    @property
    def room_id(self) -> RoomID:
        room = self._room_id()
        assert room, "the portal has no room yet"
        return room

    async def intent_for(self, sender: Sender, *, join: bool = True) -> IntentAPI:
        """The intent that speaks for ``sender`` in this room (joined first, for ghosts)."""
        if sender is Voice.BOT:
            return self._bot
        if sender is Voice.ROOM:
            return self._room_voice()
        intent = await self._ghost(sender)
        if join:
            await intent.ensure_joined(self.room_id)
        return intent

    async def send(
        self,
        sender: Sender,
        content: EventContent | dict[str, Any],
        *,
        event_type: EventType = EventType.ROOM_MESSAGE,
        txn: str | None = None,
        timestamp: int | None = None,
    ) -> EventID:
        """Send one event; ``txn`` (from `txn_id`) makes a resend idempotent."""
        intent = await self.intent_for(sender)
        room = self.room_id
        e2ee = self._e2ee()
        if self._encrypted() and e2ee is not None:
            event_type, content = await e2ee.encrypt(room, event_type, content)
        if txn is not None and txn in self._uncertain:
            found = await self._find_sent(intent, event_type, content, timestamp)
            if found is not None:
                self._uncertain.discard(txn)
                return found
        # With a transaction id, no silent retries below this: a retry is this method
        # again, which looks first. (Without one, mautrix's own retries are all there is.)
        retries: dict[str, Any] = {"retry_count": 0} if txn is not None else {}
        try:
            if txn is not None and isinstance(intent, IntentAPI):
                event_id = await put_event(
                    intent, room, event_type, content, txn, timestamp, self._http
                )
            else:
                event_id = await intent.send_message_event(
                    room, event_type, content, txn_id=txn, timestamp=timestamp, **retries
                )
        except Exception as e:
            if txn is not None and outcome_unknown(e):
                self._uncertain.add(txn)
            raise
        if txn is not None:
            self._uncertain.discard(txn)
        return event_id

    async def _find_sent(
        self,
        intent: IntentAPI,
        event_type: EventType,
        content: EventContent | dict[str, Any],
        timestamp: int | None,
    ) -> EventID | None:
        """The event an earlier send with an unknown outcome made, if it is in the room."""
        wanted = content.serialize() if isinstance(content, Serializable) else dict(content)
        token = None
        for _ in range(LOOKUP_PAGES):
            query: dict[str, Any] = {"dir": "b", "limit": "100"}
            if token:
                query["from"] = token
            path = Path.v3.rooms[self.room_id].messages
            page = await intent.api.request(Method.GET, path, query_params=query)
            for raw in page.get("chunk") or []:
                if isinstance(raw, dict) and same_event(
                    raw, intent.mxid, str(event_type), wanted, timestamp
                ):
                    return EventID(raw["event_id"])
            token = page.get("end")
            if not token:
                break
        return None

    async def notice(self, text: str) -> EventID:
        """A notice from the bridge bot."""
        content = TextMessageEventContent(msgtype=MessageType.NOTICE, body=text)
        return await self.send(Voice.BOT, content)

    async def status(self, content: dict[str, Any]) -> EventID:
        """A message send status, from the bridge bot."""
        return await self.send(Voice.BOT, content, event_type=SEND_STATUS)

    async def redact(self, sender: Sender, event_id: EventID, *, fallback: bool = True) -> None:
        """Redact as ``sender``; when the homeserver refuses that (the ghost lacks the
        power, e.g. for someone else's event) and ``fallback`` holds, as the room's voice."""
        intent = await self.intent_for(sender, join=False)
        try:
            await intent.redact(self.room_id, event_id)
        except MatrixRequestError as e:
            voice = self._room_voice()
            if not fallback or intent is voice or e.http_status != 403:
                raise
            await voice.redact(self.room_id, event_id)

    async def typing(self, sender: Sender, timeout_ms: int) -> None:
        """Show ``sender`` typing for ``timeout_ms`` (0: stopped)."""
        intent = await self.intent_for(sender, join=False)
        await intent.set_typing(self.room_id, timeout=timeout_ms)

    async def read(self, sender: Sender, event_id: EventID) -> None:
        """Move ``sender``'s read marker to ``event_id``."""
        intent = await self.intent_for(sender)
        await intent.mark_read(self.room_id, event_id)
