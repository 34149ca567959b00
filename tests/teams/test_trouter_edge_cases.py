"""Trouter edge cases against a scripted server: junk input, silence, refusals."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from teams_bridge.teams import AccountKind, Endpoints, TeamsError, TrouterConfig, TrouterState
from teams_bridge.teams.http import TeamsHttp
from teams_bridge.teams.trouter import Trouter
from teams_bridge.teams.trouter_wire import parse_allocation, ws_url

from .fakes import FAST_RETRY, StaticTokens
from .recorder import Recorder
from .stub_trouter import Script, StubSocket, StubTrouter

# A pong may be late on a busy machine: only the tests about silent sockets wait briefly.
CONFIG = TrouterConfig(ping_interval=0.3, pong_timeout=5.0, backoff_initial=0.05, backoff_max=0.1)
QUICK_DEATH = replace(CONFIG, pong_timeout=0.4)


async def eventually(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until `predicate()` holds; the timeout only bounds a failure."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def event_body(content: str, message_id: str = "1715842456893") -> str:
    return json.dumps(
        {
            "id": 1,
            "type": "EventMessage",
            "resourceType": "NewMessage",
            "time": "2026-05-04T07:04:11.3Z",
            "resource": {
                "id": message_id,
                "type": "Message",
                "messagetype": "RichText/Html",
                "content": content,
                "from": "https://notifications.skype.net/v1/users/ME/contacts/8:orgid:u1",
                "conversationLink": "https://notifications.skype.net/v1/users/ME/conversations/19:abc@thread.v2",
            },
        }
    )


class Harness:
    def __init__(
        self, stub: StubTrouter, trouter: Trouter, rec: Recorder, tokens: StaticTokens
    ) -> None:
        self.stub = stub
        self.trouter = trouter
        self.rec = rec
        self.tokens = tokens

    async def socket(self, index: int = 0, timeout: float = 30.0) -> StubSocket:
        async def wait() -> StubSocket:
            while len(self.stub.sockets) <= index:
                await asyncio.sleep(0.01)
            return self.stub.sockets[index]

        return await asyncio.wait_for(wait(), timeout)

    def connected(self) -> int:
        return sum(1 for s, _ in self.rec.states if s is TrouterState.CONNECTED)


async def idle(sock: StubSocket) -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def start(aiohttp_server: Any) -> AsyncIterator[Any]:
    harnesses: list[Harness] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(
        script: Script = idle,
        *,
        config: TrouterConfig = CONFIG,
        on_event: Any = None,
        on_gap: Any = None,
    ) -> Harness:
        stub = StubTrouter(script)
        server = await aiohttp_server(stub.app())
        stub.base = str(server.make_url("")).rstrip("/")
        session = aiohttp.ClientSession()
        sessions.append(session)
        tokens = StaticTokens()
        eps = Endpoints.from_dict(
            {
                "trouter_enterprise": f"{stub.base}/v4/a",
                "registrar_enterprise": f"{stub.base}/registrar",
            }
        )
        rec = Recorder()
        trouter = Trouter(
            TeamsHttp(session, tokens, policy=FAST_RETRY),
            tokens,
            endpoints=eps,
            kind=AccountKind.ENTERPRISE,
            endpoint_id="epid-1",
            on_event=on_event or rec.on_event,
            on_state=rec.on_state,
            on_resync=rec.on_resync,
            config=config,
            on_gap=on_gap,
        )
        harness = Harness(stub, trouter, rec, tokens)
        harnesses.append(harness)
        trouter.start()
        return harness

    yield make
    for harness in harnesses:
        await harness.trouter.stop()
    for session in sessions:
        await session.close()


async def test_handshake_authenticates_and_registers(start: Any) -> None:
    h = await start()
    sock = await h.socket()
    auth = await sock.wait_for(lambda f: "user.authenticate" in f)
    assert auth.startswith("5:::")
    assert json.loads(auth[4:])["args"][0]["headers"]["Authorization"] == "Bearer access-1"
    activity = await sock.wait_for(lambda f: "user.activity" in f)
    assert activity.startswith("5:1+::")
    await h.rec.wait(lambda: h.connected() == 1)
    assert h.stub.registrations[0]["registrationId"] == "epid-1"
    assert h.stub.registrations[0]["transports"]["TROUTER"][0]["path"] == f"{h.stub.base}/v4/f/abc/"
    assert h.stub.skype_tokens == ["skype-1"]
    # No permessage-deflate: its zlib state would cost about 100 kB per user's connection.
    assert h.stub.extensions == [""]


async def test_malformed_input_is_skipped_and_the_socket_survives(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="teams")

    async def script(sock: StubSocket) -> None:
        for junk in [
            "garbage",
            "9::",
            "3:::{bad SECRET",
            "5:::{bad SECRET",
            "6:::x+[]",
            "3:::[1,2]",
        ]:
            await sock.send(junk)
        await sock.request(1, "{not json SECRET")
        await sock.request(
            2, json.dumps({"resourceType": "NewMessage", "resource": {"content": "SECRET"}})
        )
        await sock.request(3, "H4sIAAAA SECRET", **{"X-Microsoft-Skype-Content-Encoding": "gzip"})
        await sock.request(4, event_body("<p>still alive</p>"))
        await asyncio.Event().wait()

    h = await start(script)
    await h.rec.wait(
        lambda: any(e.message and e.message.content == "<p>still alive</p>" for e in h.rec.events)
    )
    sock = await h.socket()
    for req_id in (1, 2, 3, 4):
        await sock.wait_for(
            lambda f, i=req_id: f.startswith("3:::") and json.loads(f[4:]).get("id") == i
        )
    assert h.connected() == 1
    assert not any(s is TrouterState.DISCONNECTED for s, _ in h.rec.states)
    assert len(h.rec.events) == 1
    assert "SECRET" not in caplog.text
    assert "malformed" in caplog.text


async def test_requests_are_answered_before_the_consumer_runs(start: Any) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def blocking(event: Any) -> None:
        seen.append(event.message.content)
        await release.wait()

    async def script(sock: StubSocket) -> None:
        await sock.wait_for(lambda f: "user.activity" in f)
        await sock.request(
            10, event_body("<p>a</p>", "1"), **{"MS-CV": "cv.1", "trouter-request": "{}"}
        )
        await sock.request(
            11,
            base64.b64encode(gzip.compress(event_body("<p>b</p>", "2").encode())).decode(),
            **{"X-Microsoft-Skype-Content-Encoding": "gzip"},
        )
        await asyncio.Event().wait()

    h = await start(script, on_event=blocking)
    sock = await h.socket()
    reply = await sock.wait_for(lambda f: f.startswith("3:::") and '"id":10' in f)
    assert json.loads(reply[4:]) == {
        "id": 10,
        "status": 200,
        "headers": {"trouter-client": '{"cd":1}', "MS-CV": "cv.1.0", "trouter-request": "{}"},
        "body": "",
    }
    await asyncio.sleep(0.1)
    assert seen == ["<p>a</p>"]  # the reader waits for the slow consumer
    release.set()
    await sock.wait_for(lambda f: f.startswith("3:::") and '"id":11' in f)
    await eventually(lambda: len(seen) == 2)
    assert seen == ["<p>a</p>", "<p>b</p>"]


async def test_heartbeats_pings_and_events_are_answered(start: Any) -> None:
    async def script(sock: StubSocket) -> None:
        await sock.wait_for(lambda f: "user.activity" in f)
        await sock.send("2::")
        await sock.send('5:7+::{"name":"ping"}')
        await sock.send('5:8+::{"name":"trouter.connected","args":[{}]}')
        await asyncio.Event().wait()

    h = await start(script)
    sock = await h.socket()
    await sock.wait_for(lambda f: f == "2::")
    await sock.wait_for(lambda f: f == '6:::7+["pong"]')
    await sock.wait_for(lambda f: f == "6:::8+[]")


async def test_message_loss_is_acked_and_resyncs(start: Any) -> None:
    async def script(sock: StubSocket) -> None:
        await sock.wait_for(lambda f: "user.activity" in f)
        await asyncio.sleep(0.1)
        await sock.send('5:3+::{"name":"trouter.message_loss","args":[{"reason":"x"}]}')
        await asyncio.Event().wait()

    h = await start(script)
    sock = await h.socket()
    await sock.wait_for(lambda f: f == "6:::3+[]")
    await h.rec.wait(lambda: h.rec.resyncs >= 2)


async def test_a_gap_is_noted_before_the_next_push_is_handed_on(start: Any) -> None:
    """The consumer learns that pushes may have been missed (the connect, a loss notice)
    before it is handed the push that follows, not whenever the resync task runs."""
    order: list[str] = []

    async def on_event(event: Any) -> None:
        order.append(f"event {event.message.content}")

    async def script(sock: StubSocket) -> None:
        await sock.wait_for(lambda f: "user.activity" in f)
        await sock.request(1, event_body("<p>1</p>", "1"))
        await sock.send('5:3+::{"name":"trouter.message_loss","args":[{"reason":"x"}]}')
        await sock.request(2, event_body("<p>2</p>", "2"))
        await asyncio.Event().wait()

    h = await start(script, on_event=on_event, on_gap=lambda: order.append("gap"))
    await h.rec.wait(lambda: h.rec.resyncs >= 2)
    for _ in range(3000):
        if "event <p>2</p>" in order:
            break
        await asyncio.sleep(0.01)
    assert order == ["gap", "event <p>1</p>", "gap", "event <p>2</p>"]


async def test_consumer_errors_do_not_kill_the_connection(start: Any) -> None:
    calls: list[str] = []

    async def failing(event: Any) -> None:
        calls.append(event.message.content)
        raise RuntimeError("consumer bug")

    async def script(sock: StubSocket) -> None:
        await sock.wait_for(lambda f: "user.activity" in f)
        await sock.request(1, event_body("<p>1</p>", "1"))
        await sock.request(2, event_body("<p>2</p>", "2"))
        await asyncio.Event().wait()

    h = await start(script, on_event=failing)
    sock = await h.socket()
    await sock.wait_for(lambda f: '"id":2' in f and f.startswith("3:::"))
    # Answered first, consumed after: wait for the second call.
    await eventually(lambda: len(calls) == 2)
    assert calls == ["<p>1</p>", "<p>2</p>"]
    assert h.connected() == 1


async def test_a_silent_socket_is_declared_dead_and_replaced(start: Any) -> None:
    h = await start(config=QUICK_DEATH)
    h.stub.answer_pings = False
    await h.rec.wait(lambda: h.connected() >= 2)
    errors = [e for s, e in h.rec.states if s is TrouterState.DISCONNECTED]
    assert errors and "pong" in (errors[0] or "")
    assert h.stub.allocations >= 2


async def test_answered_pings_keep_the_socket(start: Any) -> None:
    config = replace(CONFIG, ping_interval=0.1, pong_timeout=1.0)
    h = await start(config=config)
    await h.rec.wait(lambda: h.connected() == 1)
    sock = await h.socket()

    # Thirty pings span three seconds; unanswered, the first would have killed the socket
    # by the last (after the pong timeout, and at least two seconds of silence).
    def dropped() -> bool:
        return any(s is TrouterState.DISCONNECTED for s, _ in h.rec.states)

    await eventually(lambda: dropped() or sum('"name":"ping"' in f for f in sock.received) >= 30)
    assert not dropped()
    assert h.connected() == 1


async def test_disconnect_frame_and_close_cause_a_fresh_allocation(start: Any) -> None:
    async def script(sock: StubSocket) -> None:
        await sock.wait_for(lambda f: "user.activity" in f)
        await sock.send('0:::{"reason":"timeout"}')

    h = await start(script)
    await h.rec.wait(lambda: h.connected() >= 2)
    assert h.stub.allocations >= 2
    assert h.rec.resyncs >= 1


async def test_refused_websocket_reminted_token_and_retried(start: Any) -> None:
    stub_refusals = 1

    async def script(sock: StubSocket) -> None:
        await asyncio.Event().wait()

    h = await start(script)
    await h.trouter.stop()
    h.stub.refuse_websocket = stub_refusals
    h.rec.states.clear()
    h.trouter.start()
    await h.rec.wait(lambda: h.connected() >= 1)
    assert "skype-1" in h.tokens.invalidated
    assert any("HTTP 401" in (e or "") for s, e in h.rec.states if s is TrouterState.DISCONNECTED)


async def test_stop_reports_stopped_and_closes(start: Any) -> None:
    h = await start()
    await h.rec.wait(lambda: h.connected() == 1)
    await h.trouter.stop()
    assert h.rec.states[-1] == (TrouterState.STOPPED, None)
    sock = await h.socket()
    await eventually(lambda: sock.ws.closed)


def test_allocation_parsing_and_ws_urls() -> None:
    alloc = parse_allocation(
        {
            "socketio": "https://t.example:443",
            "surl": "https://t.example:3443/v4/f/x/",
            "ttl": "589000",
            "connectparams": json.dumps({"sig": "s"}),
            "ccid": "c",
        }
    )
    assert alloc.socketio == "https://t.example:443/"
    assert alloc.connectparams == {"sig": "s"}
    assert (
        ws_url(alloc.socketio, "sid", "a=1") == "wss://t.example:443/socket.io/1/websocket/sid?a=1"
    )
    assert ws_url("http://127.0.0.1:5/", "sid", "") == "ws://127.0.0.1:5/socket.io/1/websocket/sid"
    with pytest.raises(TeamsError):
        parse_allocation({"socketio": "javascript:x", "surl": "https://x/"})
    with pytest.raises(TeamsError):
        parse_allocation({"surl": "https://x/"})


async def test_sessions_are_refreshed_after_their_maximum_age(start: Any) -> None:
    h = await start(config=replace(CONFIG, max_session_age=0.3))
    await h.rec.wait(lambda: h.connected() >= 2)
    assert h.stub.allocations >= 2
