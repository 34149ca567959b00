"""RoomWriter: who speaks for a sender, encryption, and transaction ids."""

from __future__ import annotations

from typing import Any

import pytest
from mautrix.errors import MatrixConnectionError, MForbidden
from mautrix.types import EventID, EventType, MessageType, RoomID

from teams_bridge.portal.writer import RoomWriter, Voice, txn_id

ROOM = RoomID("!room:localhost")


class FakeIntent:
    """Records what an intent was asked to do (the writer's only collaborator)."""

    def __init__(self, mxid: str, *, forbid_redact: bool = False) -> None:
        self.mxid = mxid
        self.calls: list[tuple[Any, ...]] = []
        self.forbid_redact = forbid_redact

    async def ensure_joined(self, room: RoomID) -> bool:
        self.calls.append(("join", room))
        return True

    async def send_message_event(self, room, event_type, content, **kwargs) -> EventID:
        self.calls.append(("send", room, event_type, content, kwargs))
        return EventID(f"$ev{len(self.calls)}")

    async def redact(self, room, event_id) -> None:
        if self.forbid_redact:
            raise MForbidden(403, "not allowed")
        self.calls.append(("redact", room, event_id))

    async def set_typing(self, room, timeout) -> None:
        self.calls.append(("typing", room, timeout))

    async def mark_read(self, room, event_id) -> None:
        self.calls.append(("read", room, event_id))


class FakeE2EE:
    def __init__(self) -> None:
        self.encrypted: list[Any] = []

    async def encrypt(self, room, event_type, content):
        self.encrypted.append((room, event_type, content))
        return EventType.ROOM_ENCRYPTED, {"ciphertext": "x"}


def make_writer(*, encrypted: bool = False, e2ee: FakeE2EE | None = None, forbid: bool = False):
    bot = FakeIntent("@bot:localhost")
    voice = FakeIntent("@voice:localhost")
    ghosts: dict[str, FakeIntent] = {}

    async def ghost(mri: str) -> FakeIntent:
        return ghosts.setdefault(mri, FakeIntent(f"@g_{mri}:localhost", forbid_redact=forbid))

    writer = RoomWriter(
        room_id=lambda: ROOM,
        bot=bot,  # type: ignore[arg-type]
        room_voice=lambda: voice,  # type: ignore[arg-type,return-value]
        ghost=ghost,  # type: ignore[arg-type]
        encrypted=lambda: encrypted,
        e2ee=lambda: e2ee,  # type: ignore[arg-type,return-value]
    )
    return writer, bot, voice, ghosts


async def test_a_teams_user_speaks_through_their_joined_ghost():
    writer, bot, voice, ghosts = make_writer()
    await writer.send("8:orgid:ada", {"body": "hi"}, txn="t1", timestamp=5)
    ada = ghosts["8:orgid:ada"]
    assert [c[0] for c in ada.calls] == ["join", "send"]
    assert ada.calls[1][4] == {"txn_id": "t1", "timestamp": 5, "retry_count": 0}
    assert bot.calls == voice.calls == []


async def test_voices_speak_without_ghosts():
    writer, bot, voice, ghosts = make_writer()
    await writer.notice("hello")
    await writer.send(Voice.ROOM, {"body": "call"})
    assert [c[0] for c in bot.calls] == ["send"]
    assert bot.calls[0][3].msgtype == MessageType.NOTICE
    assert [c[0] for c in voice.calls] == ["send"]
    assert ghosts == {}


async def test_encrypted_rooms_get_ciphertext_only():
    e2ee = FakeE2EE()
    writer, bot, _, ghosts = make_writer(encrypted=True, e2ee=e2ee)
    await writer.send("8:orgid:ada", {"body": "secret"}, event_type=EventType.REACTION)
    await writer.notice("also secret")
    sends = [c for g in (ghosts["8:orgid:ada"], bot) for c in g.calls if c[0] == "send"]
    assert [s[2] for s in sends] == [EventType.ROOM_ENCRYPTED] * 2
    assert all("secret" not in str(s[3]) for s in sends)
    assert [e[1] for e in e2ee.encrypted] == [EventType.REACTION, EventType.ROOM_MESSAGE]


async def test_unencrypted_rooms_are_not_encrypted_even_with_e2ee_on():
    e2ee = FakeE2EE()
    writer, bot, _, _ = make_writer(encrypted=False, e2ee=e2ee)
    await writer.notice("plain")
    assert e2ee.encrypted == [] and bot.calls[0][2] == EventType.ROOM_MESSAGE


async def test_a_refused_redaction_falls_back_to_the_rooms_voice():
    writer, _, voice, ghosts = make_writer(forbid=True)
    await writer.redact("8:orgid:ada", EventID("$x"))
    assert voice.calls == [("redact", ROOM, "$x")]
    with pytest.raises(MForbidden):
        await writer.redact("8:orgid:ada", EventID("$y"), fallback=False)


async def test_typing_and_read_markers_go_to_the_senders_ghost():
    writer, _, _, ghosts = make_writer()
    await writer.typing("8:orgid:ada", 3000)
    await writer.read("8:orgid:ada", EventID("$x"))
    assert ("typing", ROOM, 3000) in ghosts["8:orgid:ada"].calls
    assert ("read", ROOM, "$x") in ghosts["8:orgid:ada"].calls


def test_transaction_ids_are_derived_from_the_seed_alone():
    assert txn_id("", "a|b") == txn_id("", "a|b")
    assert txn_id("", "a|b") != txn_id("", "a|c")
    assert txn_id("edit", "a|b").startswith("teams-edit-")
    assert txn_id("", "a|b").startswith("teams-") and len(txn_id("", "a|b")) == 6 + 32


class RestartingHomeserver(FakeIntent):
    """Stores each send, but the first answer is lost (the homeserver went away after
    storing it) and, restarted, it has forgotten the transaction ids it saw."""

    def __init__(self, mxid: str) -> None:
        super().__init__(mxid)
        self.stored: list[dict[str, Any]] = []
        self.fail_next = True
        self.api = self

    async def send_message_event(self, room, event_type, content, **kwargs) -> EventID:
        assert kwargs.get("retry_count") == 0, "mautrix must not resend behind our back"
        body = content.serialize() if hasattr(content, "serialize") else dict(content)
        event_id = f"$stored{len(self.stored)}"
        self.stored.append(
            {
                "event_id": event_id,
                "sender": self.mxid,
                "type": str(event_type),
                "origin_server_ts": kwargs.get("timestamp"),
                "content": body,
            }
        )
        if self.fail_next:
            self.fail_next = False
            raise MatrixConnectionError("Server disconnected")
        return EventID(event_id)

    async def request(self, method, path, query_params=None, **_: Any) -> dict[str, Any]:
        assert str(path).endswith("/messages") and query_params["dir"] == "b"
        return {"chunk": list(reversed(self.stored)), "end": None}


async def test_a_send_whose_answer_was_lost_is_looked_for_before_it_is_repeated():
    homeserver = RestartingHomeserver("@g_ada:localhost")

    async def ghost(mri: str) -> RestartingHomeserver:
        return homeserver

    writer = RoomWriter(
        room_id=lambda: ROOM,
        bot=homeserver,  # type: ignore[arg-type]
        room_voice=lambda: homeserver,  # type: ignore[arg-type,return-value]
        ghost=ghost,  # type: ignore[arg-type]
        encrypted=lambda: False,
        e2ee=lambda: None,
    )
    content = {"msgtype": "m.text", "body": "hello"}
    with pytest.raises(MatrixConnectionError):
        await writer.send("8:orgid:ada", content, txn="t1", timestamp=1000)
    # The retry finds the event the lost answer was about instead of sending it again.
    assert await writer.send("8:orgid:ada", content, txn="t1", timestamp=1000) == "$stored0"
    assert len(homeserver.stored) == 1
    # Another message at the same time is not mistaken for it, and a send that is not in
    # doubt is not looked for.
    other = {"msgtype": "m.text", "body": "other"}
    assert await writer.send("8:orgid:ada", other, txn="t2", timestamp=1000) == "$stored1"
    assert len(homeserver.stored) == 2


# -- the direct send of a ghost's event, against an HTTP server ------------------------------


@pytest.fixture
async def homeserver(aiohttp_server: Any) -> Any:
    """A homeserver's send endpoint: records each request, answers as scripted."""
    from aiohttp import web

    seen: list[dict[str, Any]] = []
    answers: list[tuple[int, Any]] = []

    async def send(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.raw_path.split("?")[0],
                "query": dict(request.query),
                "auth": request.headers.get("Authorization"),
                "type": request.headers.get("Content-Type"),
                "body": await request.json(),
            }
        )
        status, body = answers.pop(0) if answers else (200, {"event_id": "$sent"})
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", send)
    server = await aiohttp_server(app)
    return server, seen, answers


def _ghost_intent(base_url: str, session: Any, **api_options: Any) -> Any:
    import logging

    from mautrix.appservice import AppServiceAPI
    from yarl import URL

    api = AppServiceAPI(
        base_url=URL(base_url),
        bot_mxid="@bot:localhost",
        token="as-token",
        log=logging.getLogger("test.writer"),
        state_store=None,  # type: ignore[arg-type]
        client_session=session,
        **api_options,
    )
    return api.intent("@teams_ada:localhost")


async def test_a_ghosts_event_is_put_as_mautrix_would_put_it(homeserver: Any, lean: Any):
    import aiohttp
    from mautrix.types import TextMessageEventContent

    from teams_bridge.portal.writer import put_event

    server, seen, _ = homeserver
    async with aiohttp.ClientSession() as session:
        intent = _ghost_intent(str(server.make_url("/")), session)
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body="hi & bye")
        room = RoomID("!a/b?c:localhost")
        got = await put_event(
            intent, room, EventType.ROOM_MESSAGE, content, "teams-1/2", 1_700_000_000_123, lean
        )
    assert got == "$sent"
    [request] = seen
    assert request["path"] == (
        "/_matrix/client/v3/rooms/%21a%2Fb%3Fc%3Alocalhost/send/m.room.message/teams-1%2F2"
    )
    assert request["query"] == {"user_id": "@teams_ada:localhost", "ts": "1700000000123"}
    assert request["auth"] == "Bearer as-token" and request["type"] == "application/json"
    assert request["body"] == {"msgtype": "m.text", "body": "hi & bye"}


async def test_a_refused_or_failed_put_raises_what_mautrix_raises(homeserver: Any, lean: Any):
    import aiohttp
    from mautrix.errors import MatrixRequestError, MatrixResponseError

    from teams_bridge.portal.writer import outcome_unknown, put_event

    server, _, answers = homeserver
    answers.extend(
        [
            (403, {"errcode": "M_FORBIDDEN", "error": "not in the room"}),
            (502, "<html>bad gateway</html>"),
            (200, {"no": "event id"}),
        ]
    )
    async with aiohttp.ClientSession() as session:
        intent = _ghost_intent(str(server.make_url("/")), session)
        send = lambda: put_event(  # noqa: E731
            intent, ROOM, EventType.ROOM_MESSAGE, {"body": "x"}, "t", None, lean
        )
        with pytest.raises(MForbidden) as refused:
            await send()
        assert refused.value.message == "not in the room" and not outcome_unknown(refused.value)
        with pytest.raises(MatrixRequestError) as failed:
            await send()
        assert failed.value.http_status == 502 and outcome_unknown(failed.value)
        with pytest.raises(MatrixResponseError):
            await send()
        await server.close()  # nobody answers: the outcome is unknown
        with pytest.raises(MatrixConnectionError) as gone:
            await send()
        assert outcome_unknown(gone.value)
