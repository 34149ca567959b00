"""The presence client against the simulator: batched reads, subscriptions pushed over
Trouter after every connect, the own availability and note; and the parsing of entries."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from teams_bridge.teams import Presence, TrouterState
from teams_bridge.teams.presence import (
    GET_BATCH,
    SUBSCRIBE_BATCH,
    is_presence_path,
    note_text,
    parse_entry,
    parse_push,
)

from .conftest import Sim, logged_in_client
from .recorder import Recorder


async def _until(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_read_subscribe_push_and_set_own(http_session: aiohttp.ClientSession, sim: Sim):
    ada = await sim.control.create_user("Ada Lovelace")
    bob = await sim.control.create_user("Bob Builder")
    cid = await sim.control.create_user("Cid Smith")
    await sim.control.set_presence(bob["mri"], "Busy", activity="InACall")
    await sim.control.set_presence(cid["mri"], "Away", note="<p>Back at <b>3</b></p>")
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()

    # One read for many people; people Teams does not know come back as unknown.
    unknown = "8:orgid:00000000-0000-0000-0000-000000000001"
    found = {p.mri: p for p in await client.get_presence([bob["mri"], cid["mri"], unknown])}
    assert found[bob["mri"]].availability == "Busy"
    assert found[bob["mri"]].activity == "InACall"
    assert found[cid["mri"]].availability == "Away"
    assert found[cid["mri"]].note == "Back at 3"
    assert found[unknown].availability == "PresenceUnknown"

    # Pushes: a snapshot after subscribing, then each change, on the Trouter connection.
    pushes: list[tuple[list[Presence], bool]] = []
    connected: list[str] = []
    rec = Recorder()

    async def on_connected(surl: str) -> None:
        connected.append(surl)
        await client.subscribe_presence(surl, [bob["mri"], cid["mri"]], purge=True)

    client.start_trouter(
        rec.on_event,
        rec.on_state,
        on_presence=lambda entries, snapshot: pushes.append((entries, snapshot)),
        on_connected=on_connected,
    )
    try:
        await _until(lambda: any(snapshot for _, snapshot in pushes))
        snap = next(entries for entries, snapshot in pushes if snapshot)
        assert {p.mri for p in snap} == {bob["mri"], cid["mri"]}
        subs = (await sim.control.presence_subscriptions())["subscriptions"]
        assert subs[0]["trouter_uri"].endswith("/unifiedPresenceService")
        assert set(subs[0]["mris"]) == {bob["mri"], cid["mri"]}

        await sim.control.set_presence(bob["mri"], "Available")
        await _until(
            lambda: any(
                not snapshot and p.mri == bob["mri"] and p.availability == "Available"
                for entries, snapshot in pushes
                for p in entries
            )
        )
        # Messaging pushes still reach the event consumer (the dispatch is by path).
        chat = await sim.control.create_chat("group", [ada["mri"], bob["mri"]], topic="T")
        await sim.control.post_message(chat["id"], bob["mri"], "<p>hi</p>")
        await rec.wait(lambda: bool(rec.messages(chat["id"])))

        # A reconnect gives a new push URL; subscribing there again brings a new snapshot.
        before = len([1 for _, snapshot in pushes if snapshot])
        await sim.control.disconnect(ada["mri"])
        await _until(lambda: len(connected) >= 2)
        assert connected[1] != connected[0]
        await _until(lambda: len([1 for _, s in pushes if s]) > before)
        await rec.wait(lambda: rec.states[-1][0] is TrouterState.CONNECTED)
    finally:
        await client.stop()

    # The own availability and note.
    await client.set_availability("DoNotDisturb")
    await client.set_status_note("Writing <code> & tests")
    mine = await sim.control.get_presence(ada["mri"])
    assert mine["availability"] == "DoNotDisturb" and mine["forced"] == "DoNotDisturb"
    own = (await client.get_presence([ada["mri"]]))[0]
    assert own.availability == "DoNotDisturb"
    assert own.note == "Writing <code> & tests"
    await client.set_status_note("")
    assert (await client.get_presence([ada["mri"]]))[0].note is None
    with pytest.raises(ValueError):
        await client.set_availability("Sleeping")


async def test_requests_are_batched(http_session: aiohttp.ClientSession, sim: Sim):
    ada = await sim.control.create_user("Ada Lovelace")
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    many = [f"8:orgid:00000000-0000-0000-0000-{n:012d}" for n in range(GET_BATCH + 5)]
    await sim.control.clear_requests()
    found = await client.get_presence(many)
    assert len(found) == len(many)
    reads = await sim.control.requests(path_contains="/getpresence", method="POST")
    assert [len(json.loads(r["body"])) for r in reads] == [GET_BATCH, 5]

    await client.subscribe_presence("http://127.0.0.1:1/v4/f/x/", many[:250], purge=True)
    subs = await sim.control.requests(path_contains="/pubsub/subscriptions/", method="POST")
    bodies = [json.loads(r["body"]) for r in subs]
    assert [len(b["subscriptionsToAdd"]) for b in bodies] == [SUBSCRIBE_BATCH, 100, 50]
    # Only the first request of a purging subscription purges.
    assert [b["shouldPurgePreviousSubscriptions"] for b in bodies] == [True, False, False]
    assert bodies[0]["trouterUri"] == "http://127.0.0.1:1/v4/f/x/unifiedPresenceService"
    assert bodies[0]["subscriptionsToAdd"][0] == {"mri": many[0], "source": "ups"}


def test_parsing_is_tolerant():
    good = {
        "mri": "8:orgid:a",
        "etag": "A1",
        "presence": {
            "availability": "Busy",
            "activity": "InAMeeting",
            "note": {"message": "<p>Lunch&nbsp;at  <i>12</i></p>"},
            "calendarData": {"isOutOfOffice": True},
        },
    }
    parsed = parse_entry(good)
    assert parsed == Presence(
        mri="8:orgid:a",
        availability="Busy",
        activity="InAMeeting",
        note="Lunch at 12",
        etag="A1",
        out_of_office=True,
    )
    # An etag match without a body, garbage and bad ids carry no state.
    assert parse_entry({"mri": "8:orgid:a", "etagMatch": True}) is None
    assert parse_entry({"mri": "not an mri", "presence": {"availability": "Busy"}}) is None
    assert parse_entry("x") is None
    assert parse_entry({"mri": "8:orgid:a", "presence": {"availability": ""}}) is None
    entries, snapshot = parse_push({"presence": [good, 5, None], "isSnapshot": True})
    assert [p.mri for p in entries] == ["8:orgid:a"] and snapshot
    assert parse_push({"presence": "x"}) == ([], False)
    assert note_text("  ") is None and note_text(None) is None
    assert is_presence_path("/v4/f/abc/unifiedPresenceService")
    assert is_presence_path("https://h/v4/f/abc/TeamsUnifiedPresenceService/")
    assert not is_presence_path("/v4/f/abc/messaging")
