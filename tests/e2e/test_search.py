"""`search`: messages in the user's recent chats (or one chat), with links to the bridged
events."""

from __future__ import annotations

from tests.e2e.helpers import login_through_bot

STOP_TIMEOUT = 5


async def test_search_finds_messages_and_links_their_events(
    backend, synapse, bridge_factory, control, matrix_user
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    group = (await control.create_chat("group", [me["mri"], ada["mri"], bob["mri"]], "Engines"))[
        "id"
    ]
    direct = (await control.create_chat("one_to_one", [me["mri"], ada["mri"]]))["id"]
    bridge = bridge_factory()
    await bridge.astart()
    dm = await login_through_bot(mx, reg, control, me["mri"])
    engines = await mx.wait_for_invite(lambda inv: inv.name == "Engines")
    with_ada = await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
    await mx.join(engines)
    await mx.join(with_ada)
    await mx.wait_for_notice(dm, contains="Your Teams chats are set up")
    await control.wait_for_registration(me["mri"], timeout=60)

    events = {}
    for chat, room, who, text in (
        (group, engines, bob, "the Needle is in the engine"),
        (group, engines, ada, "nothing to see"),
        (direct, with_ada, ada, "found the needle twice: needle"),
    ):
        await control.post_message(chat, sender=who["mri"], content=f"<p>{text}</p>")
        events[text] = (await mx.wait_for_message(room, body=text)).event_id

    async def ask(room: str, command: str) -> str:
        sent = await mx.send_text(room, command)
        return (await mx.wait_for_notice(room, after=sent)).content.body

    # In the management room: every recent chat, newest first, each with its event's link.
    answer = await ask(dm, "search needle")
    lines = [line for line in answer.splitlines() if line.startswith("* ")]
    assert len(lines) == 2, answer
    assert (
        "Ada Lovelace" in lines[0]
        and f"{with_ada}/{events['found the needle twice: needle']}" in lines[0]
    )
    assert "**needle**" in lines[0]
    assert "Engines" in lines[1] and "Bob Babbage" in lines[1] and "**Needle**" in lines[1]
    assert f"{engines}/{events['the Needle is in the engine']}" in lines[1]
    assert "UTC" in lines[1]
    # Every word must be there.
    assert "Nothing found" in await ask(dm, "search needle haystack")
    # In a bridged room: that chat only.
    only = await ask(engines, "!teams search needle")
    assert "this chat" in only and "Engines" in only and "Ada Lovelace" not in only
    assert "Usage" in await ask(dm, "search n")

    # A chat Teams will not let us read is named as such; the others are still searched.
    await control.add_fault(f"{direct}/messages", status=403, count=1, method="GET")
    answer = await ask(dm, "search needle")
    assert "(1 could not be read)" in answer
    lines = [line for line in answer.splitlines() if line.startswith("* ")]
    assert len(lines) == 1 and "Engines" in lines[0], answer
    # Teams not answering at all: said so.
    await control.add_fault("/users/ME/conversations", status=403, count=1, method="GET")
    assert "Teams did not answer the search" in await ask(dm, "search needle")
    await bridge.astop(timeout=STOP_TIMEOUT)
