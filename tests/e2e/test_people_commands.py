"""Finding people and starting chats from the management room: `search-users`, `contacts`,
`start-chat` (`pm`) and `create-group`, with their refusals."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.helpers import CODE_RE, login_through_bot, puppet_mxid, wait_for

STOP_TIMEOUT = 5


async def test_people_and_new_chats_from_the_management_room(
    backend, synapse, bridge_factory, control, matrix_user
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    await control.create_user(display_name="Bob Marley", kind="work")
    carol = await control.create_user(display_name="Carol Shaw", kind="work")
    await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    bridge = bridge_factory()
    await bridge.astart()
    dm = await login_through_bot(mx, reg, control, me["mri"])
    ada_room = await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
    await mx.wait_for_notice(dm, contains="Your Teams chats are set up")
    await control.wait_for_registration(me["mri"], timeout=60)

    async def ask(command: str) -> str:
        sent = await mx.send_text(dm, command)
        return (await mx.wait_for_notice(dm, after=sent)).content.body

    # Search: names and emails, each with a pill of the ghost.
    found = await ask("search-users babbage")
    assert "Bob Babbage" in found and puppet_mxid(reg, bob["mri"]) in found
    assert bob["email"] in found and "Bob Marley" not in found
    assert "Nobody found" in await ask("search-users zzzz-nobody")
    assert "Usage" in await ask("search-users x")

    # Contacts: the 1:1 partners.
    listed = await ask("contacts")
    assert "Ada Lovelace" in listed and "Bob Babbage" not in listed

    # start-chat with someone there is a 1:1 with: its room, no new Teams chat.
    chats_before = len(await control.list_chats())
    answer = await ask(f"start-chat {ada['mri']}")
    assert "You already have a chat" in answer and ada_room in answer
    # By email, with someone there is none with: a new Teams 1:1 and its room.
    answer = await ask(f"pm {bob['email']}")
    assert "Started a chat with Bob Babbage" in answer
    assert len(await control.list_chats()) == chats_before + 1
    bob_room = await mx.wait_for_invite(lambda inv: inv.name == "Bob Babbage")
    assert bob_room in answer and mx.invites[bob_room].is_direct
    # By the ghost's Matrix ID, again: the same room.
    assert bob_room in await ask(f"start-chat {puppet_mxid(reg, bob['mri'])}")
    assert len(await control.list_chats()) == chats_before + 1

    # Refusals: nobody, several people, yourself, no argument.
    assert "Nobody matches" in await ask("start-chat zzzz-nobody")
    several = await ask("start-chat Bob")
    assert "Several people match" in several and "Bob Marley" in several
    assert "Teams knows nobody" in await ask(
        "start-chat 8:orgid:00000000-0000-0000-0000-000000000000"
    )
    assert "That is you" in await ask(f"start-chat {me['mri']}")
    assert "Usage" in await ask("start-chat")

    # create-group: a Teams group chat with a topic, and its room.
    answer = await ask(f"create-group {ada['mri']} {bob['email']} --name Engines")
    assert "Created the group chat Engines" in answer
    group_room = await mx.wait_for_invite(lambda inv: inv.name == "Engines")
    assert group_room in answer
    group = next(c for c in await control.list_chats() if c["topic"] == "Engines")
    assert {m["mri"] for m in group["members"]} == {me["mri"], ada["mri"], bob["mri"]}
    assert "Usage" in await ask("create-group")

    # A DM with a ghost started from the Matrix client: answered with the 1:1 portal.
    def told_about(room_id: str):
        return lambda e: room_id in str(getattr(e.content, "body", "") or "")

    started = await mx.create_dm(puppet_mxid(reg, ada["mri"]))
    await mx.wait_for_event(started, told_about(ada_room))
    carol_p = puppet_mxid(reg, carol["mri"])
    started = await mx.create_dm(carol_p)
    carol_room = await mx.wait_for_invite(lambda inv: inv.name == "Carol Shaw")
    await mx.wait_for_event(started, told_about(carol_room))
    assert any(
        {m["mri"] for m in c["members"]} == {me["mri"], carol["mri"]}
        for c in await control.list_chats()
    )

    # A person in another organisation: the directory search does not find them by email;
    # by Teams user ID a chat is refused while external access is blocked, and works after.
    dan = await control.create_user(
        display_name="Dan Other", kind="work", tenant_id=str(uuid.uuid4())
    )
    assert "Teams knows nobody" in await ask(f"start-chat {dan['email']}")
    await control.set_policy(external_access=False)
    chats_before = len(await control.list_chats())
    refused = await ask(f"start-chat {dan['mri']}")
    assert "Dan Other is in another organisation" in refused and "403" in refused
    refused = await ask(f"create-group {ada['mri']} {dan['mri']}")
    assert "refused to create the group chat" in refused and "another organisation" in refused
    assert len(await control.list_chats()) == chats_before
    await control.set_policy(external_access=True)
    assert "Started a chat with Dan Other" in await ask(f"start-chat {dan['mri']}")
    await mx.wait_for_invite(lambda inv: inv.name == "Dan Other")
    assert len(await control.list_chats()) == chats_before + 1

    # help lists every command with a description.
    help_text = await ask("help")
    listed = (
        "login", "login-browser", "login-refresh", "cancel", "logout", "ping", "sync",
        "search-users", "contacts", "start-chat", "create-group", "search", "leave",
        "login-matrix", "logout-matrix", "ping-matrix", "help", "version",
    )  # fmt: skip
    for command in listed:
        assert f"**{command}**" in help_text, command

    async def logged_out() -> bool:
        return "You are not logged in" in await ask("ping")

    # Not logged in: refused.
    await ask("logout")
    await wait_for(logged_out)
    assert "logged in" in await ask("search-users ada")
    await bridge.astop(timeout=STOP_TIMEOUT)


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_personal_accounts_find_people_by_email(
    backend, synapse, bridge_factory, control, matrix_user
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    pat = await control.create_user(display_name="Pat Personal", kind="personal")
    sam = await control.create_user(display_name="Sam Personal", kind="personal")
    wendy = await control.create_user(display_name="Wendy Work", kind="work")
    bridge = bridge_factory()
    await bridge.astart()
    dm = await mx.create_dm(reg.bot_mxid)
    await mx.wait_for_notice(dm, contains="Teams bridge bot")
    await mx.send_text(dm, "login personal")
    prompt = await mx.wait_for_notice(dm, contains="enter the code")
    match = CODE_RE.search(prompt.content.body)
    assert match, prompt.content.body
    await control.approve_device_code(match.group(1), pat["mri"])
    await mx.wait_for_notice(dm, contains="Successfully logged in", timeout=60)
    await control.wait_for_registration(pat["mri"], timeout=60)

    async def ask(command: str) -> str:
        sent = await mx.send_text(dm, command)
        return (await mx.wait_for_notice(dm, after=sent)).content.body

    # By name: a personal account cannot search, and says how it can.
    assert "by their email address only" in await ask("search-users Sam")
    # By email: the consumer search finds the person, with a pill of their ghost.
    found = await ask(f"search-users {sam['email'].upper()}")
    assert "Sam Personal" in found and puppet_mxid(reg, sam["mri"]) in found
    assert await control.requests(path_contains="/users/searchUsers")
    assert await control.requests(path_contains="/users/searchV2") == []
    # A work account's address is not found that way.
    assert "Nobody found" in await ask(f"search-users {wendy['email']}")
    assert "Teams knows nobody" in await ask(f"start-chat {wendy['email']}")
    # start-chat by email opens a new 1:1 and its room.
    answer = await ask(f"start-chat {sam['email']}")
    assert "Started a chat with Sam Personal" in answer
    room = await mx.wait_for_invite(lambda inv: inv.name == "Sam Personal")
    assert room in answer
    chats = await control.list_chats()
    assert any({m["mri"] for m in c["members"]} == {pat["mri"], sam["mri"]} for c in chats)
    await bridge.astop(timeout=STOP_TIMEOUT)
