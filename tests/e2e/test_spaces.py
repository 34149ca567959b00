"""Spaces: each user gets a personal space of their Teams chats, with a space per team in it
holding the team's channels; rooms join as they appear and leave when the user leaves the
chat in Teams."""

from __future__ import annotations

import hashlib
from typing import Any

from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, wait_for
from tests.fake_teams.demo import square_png

STOP_TIMEOUT = 5
CHILD = "m.space.child"


async def _children(mx, space: str) -> set[str]:
    """The rooms a space holds (children with a `via`)."""
    state: list[dict[str, Any]] = await mx.client.api.request(
        "GET", f"/_matrix/client/v3/rooms/{space}/state"
    )
    return {e["state_key"] for e in state if e["type"] == CHILD and e["content"].get("via")}


async def _space_type(mx, room: str) -> str | None:
    create = await mx.client.get_state_event(room, EventType.ROOM_CREATE)
    return create.serialize().get("type")


async def test_a_space_of_chats_with_a_space_per_team(
    backend, synapse, bridge_factory, control, matrix_user
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    group = await control.create_chat("group", [me["mri"], ada["mri"], bob["mri"]], "Engines")
    await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    contoso_team = await control.create_team("Contoso", [ada["mri"], me["mri"]], ["Design"])
    # The team's picture (its General channel's, whose id is the team's).
    picture = await control.ams_upload(
        ada["mri"], square_png((10, 20, 30)), conversation=contoso_team["id"], view="avatar"
    )
    await control.set_chat_picture(contoso_team["id"], picture["id"], by=ada["mri"])
    await control.create_team("Fabrikam", [bob["mri"], me["mri"]], ["Ops"])
    bridge = bridge_factory(overrides={"bridge.spaces": True})
    await bridge.astart()
    await login_through_bot(mx, reg, control, me["mri"])

    rooms = {}
    for name in (
        "Engines",
        "Ada Lovelace",
        "Design (Contoso)",
        "General (Contoso)",
        "Ops (Fabrikam)",
        "General (Fabrikam)",
        "Microsoft Teams",
        "Contoso",
        "Fabrikam",
    ):
        rooms[name] = await mx.wait_for_invite(lambda inv, n=name: inv.name == n, timeout=60)
        await mx.join(rooms[name])
    personal, contoso, fabrikam = rooms["Microsoft Teams"], rooms["Contoso"], rooms["Fabrikam"]
    for space in (personal, contoso, fabrikam):
        assert await _space_type(mx, space) == "m.space"
    # A team's space has the team's picture; a team without one has none.
    avatar = await mx.client.get_state_event(contoso, EventType.ROOM_AVATAR)
    data = await mx.client.download_media(avatar.url)
    assert hashlib.sha256(data).digest() == hashlib.sha256(square_png((10, 20, 30))).digest()
    assert not [e for e in await mx.room_state(fabrikam) if e.type == EventType.ROOM_AVATAR]

    # The personal space: the chats and the teams' spaces; each team's: its channels.
    async def laid_out() -> bool:
        return (
            await _children(mx, personal)
            == {rooms["Engines"], rooms["Ada Lovelace"], contoso, fabrikam}
            and await _children(mx, contoso)
            == {rooms["Design (Contoso)"], rooms["General (Contoso)"]}
            and await _children(mx, fabrikam)
            == {rooms["Ops (Fabrikam)"], rooms["General (Fabrikam)"]}
        )

    await wait_for(laid_out)
    await control.wait_for_registration(me["mri"], timeout=60)

    # A chat that appears later joins the personal space.
    later = await control.create_chat("group", [me["mri"], bob["mri"]], "Difference")
    await control.post_message(later["id"], sender=bob["mri"], content="<p>hello</p>")
    difference = await mx.wait_for_invite(lambda inv: inv.name == "Difference")
    await mx.join(difference)

    async def added() -> bool:
        return difference in await _children(mx, personal)

    await wait_for(added)

    # A chat the user is removed from leaves the space.
    await control.remove_member(group["id"], me["mri"], by=ada["mri"])

    async def removed() -> bool:
        return rooms["Engines"] not in await _children(mx, personal)

    await wait_for(removed)

    # A restart adds nothing twice: the spaces are the same rooms, holding the same rooms.
    before = {space: await _children(mx, space) for space in (personal, contoso, fabrikam)}
    await bridge.astop(timeout=STOP_TIMEOUT)
    await bridge.astart()
    await control.wait_for_registration(me["mri"], timeout=60)
    await control.post_message(later["id"], sender=bob["mri"], content="<p>after restart</p>")
    await mx.wait_for_message(difference, body="after restart")
    after = {space: await _children(mx, space) for space in (personal, contoso, fabrikam)}
    assert after == before
    timeline_children = [e for e in mx.timeline[personal] if str(e.type) == CHILD]
    assert len(timeline_children) == len({e.state_key for e in timeline_children}) + 1  # removal
    await bridge.astop(timeout=STOP_TIMEOUT)
