"""Hostile profiles from Teams: names that are too long or carry control and bidi characters.
Ghosts get clean names, no message is lost, and the chat keeps working both ways.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

# Longer than any homeserver takes as a display name (Synapse: 256 characters).
LONG_NAME = ("Hubert Wolfeschlegelsteinhausenbergerdorff " * 7)[:300]
NUL_NAME = "Nul\x00l Byte"
RLO_NAME = "Eve \u202eexe.gnp"  # shows as "Eve png.exe" when set raw
# Both at once: refused by the homeserver as too long, and by PostgreSQL for the NUL.
BOTH_NAME = "Mallory\x00\u202e " + "x" * 300
# Control characters, bidi embeddings/overrides/isolates/marks and other invisible ones.
TROUBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _assert_clean(text: str, limit: int) -> None:
    assert not TROUBLE.search(text), repr(text)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text), repr(text)
    assert len(text.encode("utf-8")) <= limit, len(text.encode("utf-8"))


async def _room_name(matrix_user, room: str) -> str | None:
    for evt in await matrix_user.room_state(room):
        if evt.type == EventType.ROOM_NAME:
            return evt.content.name
    return None


async def _displayname(matrix_user, user_id: str) -> str | None:
    return (await matrix_user.client.get_profile(user_id)).displayname


async def _both_ways(control, matrix_user, room, chat_id, sender_mri, sender_mxid, tag):
    """A message still crosses from Teams to Matrix and from Matrix to Teams."""
    await control.post_message(chat_id, sender=sender_mri, content=f"<p>{tag} from Teams</p>")
    await matrix_user.wait_for_message(room, sender=sender_mxid, body=f"{tag} from Teams")
    await matrix_user.send_text(room, f"{tag} from Matrix")

    async def delivered():
        return any(
            f"{tag} from Matrix" in (m.get("content") or "")
            for m in await control.list_messages(chat_id)
        )

    await wait_for(delivered)


@pytest.mark.parametrize("backend", ["pg", "lite"], indirect=True)
async def test_hostile_names_become_clean_ghosts_and_lose_no_message(
    backend, synapse, bridge_factory, control, fake_teams, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    hostile = {
        "long": await control.create_user(display_name=LONG_NAME, kind="work"),
        "nul": await control.create_user(display_name=NUL_NAME, kind="work"),
        "rlo": await control.create_user(display_name=RLO_NAME, kind="work"),
        "both": await control.create_user(display_name=BOTH_NAME, kind="work"),
    }
    members = [me["mri"]] + [u["mri"] for u in hostile.values()]
    # No topic: the room is named after its members.
    chat = await control.create_chat(kind="group", members=members)
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(timeout=60)
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ghosts = {key: puppet_mxid(reg, user["mri"]) for key, user in hostile.items()}

    # Every one of them writes (with their own name on the message); every message arrives.
    for key, user in hostile.items():
        await control.post_message(chat["id"], sender=user["mri"], content=f"<p>hello {key}</p>")
    for key, ghost in ghosts.items():
        await matrix_user.wait_for_message(room, sender=ghost, body=f"hello {key}", timeout=60)

    # The ghosts carry clean names that fit, with the template's suffix kept.
    names = {key: await _displayname(matrix_user, ghost) for key, ghost in ghosts.items()}
    for key, name in names.items():
        assert name is not None and name.endswith(" (Teams)"), (key, name)
        _assert_clean(name, 256)
    assert names["nul"] == "Null Byte (Teams)"
    assert names["rlo"] == "Eve exe.gnp (Teams)"
    assert names["long"].startswith("Hubert Wolfeschlegelsteinhausenbergerdorff Hubert")
    assert names["both"].startswith("Mallory xxxx")
    for key in ("long", "both"):
        assert names[key].endswith("\u2026 (Teams)"), names[key]  # cut, and shown to be

    # The room name built from those names is clean and fits too.
    room_name = await _room_name(matrix_user, room)
    assert room_name and "Null Byte" in room_name and "Eve exe.gnp" in room_name, room_name
    _assert_clean(room_name, 255)

    # A hostile topic renames the room to its clean form (JSON can carry a NUL, XML not).
    fake_teams.options.thread_activity_format = "json"
    topic = "Plan\x00 B\u202e " + "!" * 300
    await control.set_topic(chat["id"], topic, by=hostile["both"]["mri"])
    renamed = await matrix_user.wait_for_event(
        room,
        lambda e: e.type == EventType.ROOM_NAME and (e.content.name or "").startswith("Plan B"),
    )
    _assert_clean(renamed.content.name, 255)

    # Someone with such a name who joins later: the roster's name, then their first message.
    late = await control.create_user(display_name="Late\x00\u202e " + "z" * 300, kind="work")
    await control.add_member(chat["id"], late["mri"], by=me["mri"])
    await control.post_message(chat["id"], sender=late["mri"], content="<p>hello late</p>")
    late_ghost = puppet_mxid(reg, late["mri"])
    await matrix_user.wait_for_message(room, sender=late_ghost, body="hello late", timeout=60)
    late_name = await _displayname(matrix_user, late_ghost)
    assert late_name and late_name.startswith("Late zzz"), late_name
    _assert_clean(late_name, 256)

    # A later name change of the worst of them is bridged the same way, message kept.
    await control.post_message(
        chat["id"],
        sender=hostile["both"]["mri"],
        content="<p>renamed</p>",
        imdisplayname="\u2066Mallory\x07 \u202eReloaded\u2069" + "\u200b" * 300,
    )
    await matrix_user.wait_for_message(room, sender=ghosts["both"], body="renamed")

    # After all that, the chat still works both ways and the bridge is up.
    await _both_ways(
        control, matrix_user, room, chat["id"], hostile["both"]["mri"], ghosts["both"], "still"
    )
    assert bridge.proc is not None and bridge.proc.poll() is None
