"""Matrix input is never a reason to refuse a transaction: not its size, not a malformed
event in it (which is logged and skipped)."""

from __future__ import annotations

import logging
import math
from typing import Any

import aiohttp
import pytest
from mautrix.appservice.state_store.file import FileASStateStore

from teams_bridge.appservice import (
    MIB,
    MIN_BODY_MIB,
    DurableAppService,
    body_limit_bytes,
    event_problem,
)

HS_TOKEN = "hs-secret"


def _event(**fields: Any) -> dict[str, Any]:
    event = {
        "type": "m.room.message",
        "room_id": "!room:localhost",
        "sender": "@ada:localhost",
        "event_id": "$event",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "hello"},
    }
    for key, value in fields.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return event


MALFORMED: list[Any] = [
    "a string",
    None,
    42,
    ["a", "list"],
    _event(content="a string"),
    _event(content=["a", "list"]),
    _event(content=None),
    _event(content=...),
    _event(type=...),
    _event(room_id=...),
    _event(event_id=...),
    _event(sender=...),
    _event(type=""),
    _event(type={"m.room.message": 1}),
    _event(room_id=7),
    _event(sender=["@ada:localhost"]),
    _event(event_id=None),
    _event(event_id="$" + "x" * 300),
    _event(event_id="$nul\x00"),
    _event(event_id="$lone\ud800surrogate"),
    _event(sender="@" + "é" * 200 + ":localhost"),  # 255 characters, but 400 bytes
    _event(state_key=5),
    _event(unsigned="yesterday"),
    _event(type="m.room.redaction", redacts=["$a"], content={}),
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_events_are_named(raw):
    assert event_problem(raw)


def test_well_formed_events_pass():
    assert event_problem(_event()) is None
    assert event_problem(_event(state_key="", type="m.room.name", content={})) is None
    assert event_problem(_event(unsigned=None)) is None
    assert event_problem(_event(type="m.room.redaction", redacts="$a", content={})) is None
    assert event_problem(_event(sender="@" + "é" * 100 + ":localhost")) is None


def test_body_limit_is_never_below_a_full_transaction(caplog):
    log = logging.getLogger("test")
    with caplog.at_level(logging.WARNING):
        assert body_limit_bytes(1, log) == MIN_BODY_MIB * MIB
    assert "max_body_size" in caplog.text
    for value in (0, -5, 99.9, None, "lots", math.nan, math.inf):
        assert body_limit_bytes(value) == MIN_BODY_MIB * MIB
    assert body_limit_bytes(100) == 100 * MIB
    assert body_limit_bytes("250") == 250 * MIB
    # 100 long messages at Synapse's event size limit, or 100 large invites, fit.
    assert MIN_BODY_MIB * MIB >= 100 * 10 * 65536


def _appservice(tmp_path, **params: Any) -> DurableAppService:
    return DurableAppService(
        server="http://127.0.0.1:1",
        domain="localhost",
        as_token="as-secret",
        hs_token=HS_TOKEN,
        bot_localpart="bot",
        id="teams",
        state_store=FileASStateStore(path=str(tmp_path / "state.json"), binary=False),
        **params,
    )


@pytest.fixture
async def appservice(tmp_path, aiohttp_client):
    az = _appservice(tmp_path, aiohttp_params={"client_max_size": body_limit_bytes(MIN_BODY_MIB)})
    az.synchronous_handlers = True
    stored: list[dict[str, Any]] = []
    handled: list[str] = []

    async def persist(txn_id: str, events: list[dict[str, Any]]) -> set[str]:
        # As the bridge's: it reads the fields of what it is given.
        for raw in events:
            assert isinstance(raw["content"].get("body", ""), str)
        stored.extend(events)
        # Events it says need nothing more are not handed to mautrix's handler.
        return {raw["event_id"] for raw in events if raw["content"].get("body") == "queued"}

    async def on_event(evt) -> None:
        handled.append(evt.event_id)

    az.persist_events = persist
    az.matrix_event_handler(on_event)
    client = await aiohttp_client(az.app)
    return client, stored, handled


async def _put(client, txn_id: str, body: Any) -> int:
    resp = await client.put(
        f"/_matrix/app/v1/transactions/{txn_id}",
        json=body,
        headers={"Authorization": f"Bearer {HS_TOKEN}"},
    )
    return resp.status


async def test_a_transaction_keeps_its_valid_events_and_skips_the_rest(appservice, caplog):
    client, stored, handled = appservice
    valid = [
        _event(event_id=f"$valid{i}", content={"msgtype": "m.text", "body": f"{i}"})
        for i in range(3)
    ]
    events = [valid[0], *MALFORMED[:12], valid[1], *MALFORMED[12:], valid[2]]
    with caplog.at_level(logging.WARNING):
        assert await _put(client, "1", {"events": events}) == 200
    assert [e["event_id"] for e in stored] == ["$valid0", "$valid1", "$valid2"]
    assert handled == ["$valid0", "$valid1", "$valid2"]
    skipped = [r for r in caplog.records if "Skipping malformed event" in r.getMessage()]
    assert len(skipped) == len(MALFORMED)
    assert any("'$event'" in r.getMessage() and "content" in r.getMessage() for r in skipped)


async def test_events_mautrix_cannot_read_do_not_stop_the_others(appservice):
    client, stored, handled = appservice
    # Shaped well enough to get past the endpoint, but mautrix's reader raises a TypeError.
    odd = _event(
        event_id="$odd",
        type="m.room.member",
        state_key="@ada:localhost",
        content={"membership": "join"},
        unsigned={"prev_content": 5},
    )
    events = [odd, _event(event_id="$after")]
    assert await _put(client, "2", {"events": events}) == 200
    assert "$after" in handled


async def test_a_body_that_is_not_a_transaction_is_refused(appservice):
    client, stored, handled = appservice
    assert await _put(client, "3", ["events"]) == 400
    assert await _put(client, "4", {"events": "none"}) == 400
    assert stored == [] and handled == []


async def test_a_transaction_of_100_events_at_the_size_limit_is_taken(appservice):
    client, stored, handled = appservice
    events = [
        _event(event_id=f"$big{i}", content={"msgtype": "m.text", "body": "x" * 65_000})
        for i in range(100)
    ]
    assert await _put(client, "5", {"events": events}) == 200
    assert len(stored) == 100


async def test_the_endpoint_remembers_the_pings_that_reached_it(tmp_path, aiohttp_client):
    """Start-up asks the homeserver to ping the bridge; the homeserver's own answer can fail
    for a passing reason after the ping arrived, so the endpoint remembers what it got."""
    az = _appservice(tmp_path)
    client = await aiohttp_client(az.app)
    ok = await client.post(
        "/_matrix/app/v1/ping",
        json={"transaction_id": "t-1"},
        headers={"Authorization": f"Bearer {HS_TOKEN}"},
    )
    assert ok.status == 200
    forged = await client.post(
        "/_matrix/app/v1/ping",
        json={"transaction_id": "t-2"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert forged.status == 401
    assert list(az.pings_received) == ["t-1"]


async def test_events_the_store_took_care_of_are_not_read_again(appservice):
    client, stored, handled = appservice
    events = [
        _event(event_id="$queued", content={"msgtype": "m.text", "body": "queued"}),
        _event(event_id="$other", content={"msgtype": "m.text", "body": "other"}),
    ]
    assert await _put(client, "9", {"events": events}) == 200
    assert [e["event_id"] for e in stored] == ["$queued", "$other"]
    assert handled == ["$other"]


async def test_the_first_transaction_over_each_connection_is_told(tmp_path, aiohttp_client):
    """A restarted homeserver's first transaction comes over a new connection: the bridge
    is told before its events are stored (the portals then check their timelines)."""
    az = _appservice(tmp_path)
    stored: list[str] = []
    told: list[int] = []

    async def persist(txn_id: str, events: list[dict[str, Any]]) -> set[str]:
        stored.extend(raw["event_id"] for raw in events)
        return set()

    az.persist_events = persist
    az.on_new_connection = lambda: told.append(len(stored))
    client = await aiohttp_client(az.app)
    assert await _put(client, "10", {"events": [_event(event_id="$one")]}) == 200
    assert await _put(client, "11", {"events": [_event(event_id="$two")]}) == 200
    # Both over the client's kept-alive connection: told once, before anything was stored.
    assert told == [0]
    # Refused for its token: not the homeserver, nothing told.
    async with aiohttp.ClientSession() as stranger:
        resp = await stranger.put(
            client.make_url("/_matrix/app/v1/transactions/12"),
            json={"events": [_event(event_id="$forged")]},
            headers={"Authorization": "Bearer wrong"},
        )
        assert resp.status == 401
    assert told == [0]
    # A new connection, as a restarted homeserver opens: told once more.
    async with aiohttp.ClientSession() as session:
        for txn_id, event_id in (("13", "$three"), ("14", "$four")):
            resp = await session.put(
                client.make_url(f"/_matrix/app/v1/transactions/{txn_id}"),
                json={"events": [_event(event_id=event_id)]},
                headers={"Authorization": f"Bearer {HS_TOKEN}"},
            )
            assert resp.status == 200
    assert told == [0, 2]
    assert stored == ["$one", "$two", "$three", "$four"]
