"""The simulator's presence service on the raw wire: both route forms, etags, limits and
refusals."""

from __future__ import annotations

import aiohttp

from tests.fake_teams import ControlClient, FakeTeams

from .helpers import login


async def test_presence_routes_and_refusals(
    sim: FakeTeams, http: aiohttp.ClientSession, control: ControlClient
):
    ada = await control.create_user("Ada Lovelace")
    bob = await control.create_user("Bob Builder")
    me = await login(sim, http, control, ada["mri"])
    base = me.authz["regionGtms"]["unifiedPresence"].rstrip("/")
    auth = {"X-Skypetoken": me.skype_token}
    await control.set_presence(bob["mri"], "Busy", activity="InAMeeting", note="<p>Hi</p>")

    for url in (f"{base}/v1/presence/getpresence/", f"{base}/ups/emea/v1/presence/getpresence"):
        async with http.post(url, json=[{"mri": bob["mri"]}], headers=auth) as resp:
            assert resp.status == 200
            [entry] = await resp.json()
        assert entry["status"] == 20000 and entry["etagMatch"] is False
        assert entry["presence"]["availability"] == "Busy"
        assert entry["presence"]["activity"] == "InAMeeting"
        assert entry["presence"]["note"]["message"] == "<p>Hi</p>"

    # The etag the client has: no body.
    body = [{"mri": bob["mri"], "etag": entry["etag"]}]
    async with http.post(f"{base}/v1/presence/getpresence/", json=body, headers=auth) as resp:
        [same] = await resp.json()
    assert same["etagMatch"] is True and "presence" not in same
    # A Bearer access token works too; nothing at all does not.
    bearer = {"Authorization": f"Bearer {me.access_token}"}
    async with http.post(
        f"{base}/v1/presence/getpresence/", json=[{"mri": bob["mri"]}], headers=bearer
    ) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/v1/presence/getpresence/", json=[]) as resp:
        assert resp.status == 401
    # Too many people in one request, or a body of the wrong shape.
    many = [{"mri": f"8:orgid:{n}"} for n in range(651)]
    async with http.post(f"{base}/v1/presence/getpresence/", json=many, headers=auth) as resp:
        assert resp.status == 400
    async with http.post(
        f"{base}/v1/presence/getpresence/", json={"mri": "x"}, headers=auth
    ) as resp:
        assert resp.status == 400

    # Own availability: only the status menu's choices.
    url = f"{base}/v1/me/forceavailability/"
    async with http.put(url, json={"availability": "Sleeping"}, headers=auth) as resp:
        assert resp.status == 400
    async with http.put(url, json={"availability": "BeRightBack"}, headers=auth) as resp:
        assert resp.status == 200
    async with http.put(
        f"{base}/ups/emea/v1/me/publishnote", json={"message": "Out", "expiry": "x"}, headers=auth
    ) as resp:
        assert resp.status == 200
    state = await control.get_presence(ada["mri"])
    assert (state["availability"], state["activity"]) == ("BeRightBack", "BeRightBack")
    assert state["forced"] == "BeRightBack" and state["note"] == "Out"

    # A subscription is recorded per endpoint; a purge replaces the earlier one.
    sub_url = f"{base}/v1/pubsub/subscriptions/ep-1"
    for adds, purge in (([bob["mri"]], False), ([ada["mri"]], True)):
        body = {
            "trouterUri": "http://127.0.0.1:9/v4/f/none/unifiedPresenceService",
            "shouldPurgePreviousSubscriptions": purge,
            "subscriptionsToAdd": [{"mri": m, "source": "ups"} for m in adds],
            "subscriptionsToRemove": [],
        }
        async with http.post(sub_url, json=body, headers=auth) as resp:
            assert resp.status == 200
    [sub] = (await control.presence_subscriptions())["subscriptions"]
    assert sub["mris"] == [ada["mri"]] and sub["endpoint_id"] == "ep-1"
    async with http.post(sub_url, json={"subscriptionsToAdd": []}, headers=auth) as resp:
        assert resp.status == 400
