"""Hostile commands from Matrix: portal commands from a member who does not own the portal,
and secrets sent where the command is refused. Each is refused with a notice, no secret stays
in a room or reaches the logs, and the chat keeps working both ways afterwards.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from mautrix.types import EventType, RoomCreatePreset

from teams_bridge.db.files import database_files, sqlite_path
from tests.e2e.helpers import (
    login_through_bot,
    puppet_mxid,
    raw_event,
    refresh_token_for,
    wait_for,
)


async def _both_ways(user, room, control, chat_id: str, ada_mri: str, ada_puppet, text: str):
    await control.post_message(chat_id, sender=ada_mri, content=f"<p>{text} from Teams</p>")
    await user.wait_for_message(room, sender=ada_puppet, body=f"{text} from Teams")
    await user.send_text(room, f"{text} from Matrix")

    async def delivered():
        messages = await control.list_messages(chat_id)
        return any(f"{text} from Matrix" in m.get("content", "") for m in messages)

    await wait_for(delivered)


async def _answer(user, room, event_id) -> str:
    """The first notice after `event_id`: the bridge's answer to that command."""
    notice = await user.wait_for_notice(room, after=event_id)
    return notice.content.body


async def _redacted(user, room, event_id) -> None:
    await user.wait_for_event(
        room, lambda e: e.type == EventType.ROOM_REDACTION and e.redacts == event_id
    )
    # The homeserver no longer serves the content.
    event = await raw_event(user, room, event_id)
    assert event.get("content") == {}, event


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_portal_commands_are_refused_to_a_member_who_does_not_own_the_portal(
    backend, synapse, bridge_factory, control, matrix_client_factory
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    direct = await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    owner = await matrix_client_factory()
    guest = await matrix_client_factory()
    # Everyone on the homeserver may use the bridge; the portal's owner is also a bridge
    # admin, which lets them unbridge at the end.
    bridge = bridge_factory(permissions={synapse.server_name: "user", owner.user_id: "admin"})
    await bridge.astart()
    await login_through_bot(owner, reg, control, me["mri"])
    room = await owner.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
    await owner.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_puppet = puppet_mxid(reg, ada["mri"])
    await _both_ways(owner, room, control, direct["id"], ada["mri"], ada_puppet, "before")

    # Someone with `user` permission, not logged in and not in the Teams chat, is invited.
    await owner.client.invite_user(room, guest.user_id)
    await guest.wait_for_invite(lambda inv: inv.room_id == room)
    await guest.join(room)

    sent = await guest.send_text(room, "!teams unbridge")
    answer = await _answer(guest, room, sent)
    assert "limited to bridge administrators and to administrators of this room" in answer
    sent = await guest.send_text(room, "!teams delete-portal")
    assert "limited to bridge administrators" in await _answer(guest, room, sent)
    sent = await guest.send_text(room, "!teams set-pl 100")
    assert "limited to bridge administrators" in await _answer(guest, room, sent)
    # Relay mode is not implemented: its commands are gone.
    sent = await guest.send_text(room, "!teams unset-relay")
    assert "Unknown command" in await _answer(guest, room, sent)
    # Nor does the guest see the portal commands in the help.
    sent = await guest.send_text(room, "!teams help")
    help_text = await _answer(guest, room, sent)
    assert "unbridge" not in help_text and "delete-portal" not in help_text

    # The portal is intact: the ghost is still in the room, and messages cross both ways.
    members = await owner.members(room)
    assert members.get(ada_puppet) == "join"
    assert members.get(reg.bot_mxid) == "join"
    await _both_ways(owner, room, control, direct["id"], ada["mri"], ada_puppet, "after")

    # A bridge admin still may unbridge: the ghost leaves.
    await owner.send_text(room, "!teams unbridge")
    await owner.wait_for_event(
        room,
        lambda e: (
            e.type == EventType.ROOM_MEMBER
            and e.state_key == ada_puppet
            and str(getattr(e.content.membership, "value", e.content.membership)) == "leave"
        ),
    )
    assert bridge.proc is not None and bridge.proc.poll() is None


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_secrets_are_redacted_wherever_the_command_is_refused(
    backend, synapse, bridge_factory, bridge_database, control, matrix_client_factory, fake_teams
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    direct = await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    owner = await matrix_client_factory()
    withdrawn = await matrix_client_factory()

    # The database file exists with the loose mode an older version left it with.
    db_path = sqlite_path(bridge_database)
    assert db_path is not None
    Path(db_path).touch()
    os.chmod(db_path, 0o644)
    first = bridge_factory()
    await first.astart()
    await login_through_bot(owner, reg, control, me["mri"])
    room = await owner.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
    await owner.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_puppet = puppet_mxid(reg, ada["mri"])

    # The database and the side files SQLite made beside it are the bridge's alone.
    modes = {
        name: stat.S_IMODE(os.stat(name).st_mode)
        for name in database_files(db_path)
        if os.path.exists(name)
    }
    assert f"{db_path}-wal" in modes
    assert set(modes.values()) == {0o600}, modes

    # A refresh token sent in a portal room (not a management room): removed, refused.
    portal_token = await refresh_token_for(fake_teams.url, control, me["mri"])
    sent = await owner.send_text(room, f"!teams login-refresh {portal_token}")
    await _redacted(owner, room, sent)
    assert "restricted command" in await _answer(owner, room, sent)

    # A user whose permission was withdrawn after they opened a DM with the bot.
    dm = await withdrawn.client.create_room(
        preset=RoomCreatePreset.TRUSTED_PRIVATE, is_direct=True, invitees=[reg.bot_mxid]
    )
    await withdrawn.wait_for_notice(dm, contains="Teams bridge bot")
    await first.astop()
    second = bridge_factory(permissions={synapse.server_name: "user", withdrawn.user_id: "relay"})
    await second.astart()
    dm_token = await refresh_token_for(fake_teams.url, control, bob["mri"])
    sent = await withdrawn.send_text(dm, f"login-refresh {dm_token}")
    await _redacted(withdrawn, dm, sent)
    assert "not allowed to use this bridge" in await _answer(withdrawn, dm, sent)

    # The chat still works both ways.
    await control.wait_for_registration(me["mri"], timeout=60)
    await _both_ways(owner, room, control, direct["id"], ada["mri"], ada_puppet, "still")

    # Neither token reached a log of either run.
    await second.astop()
    logs = first.log_text() + second.log_text()
    assert len(logs) > 1000
    assert portal_token not in logs
    assert dm_token not in logs
