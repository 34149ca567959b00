"""What Trouter did not push (a reconnect, a loss notice) arrives before what it pushes next.

After a gap the bridge catches each chat up from its cursor, one chat after another. A
message pushed into a chat the catch-up has not reached yet used to be bridged at once,
moving the cursor past the messages the gap had missed: the catch-up then found nothing
after it, and they were lost.
"""

from __future__ import annotations

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for


async def test_a_pushed_message_does_not_skip_what_a_gap_missed(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    topics = ("Gap A", "Gap B")
    chats = {
        t: await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic=t)
        for t in topics
    }
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    rooms = {}
    for t in topics:
        rooms[t] = await matrix_user.wait_for_invite(lambda inv, t=t: inv.name == t)
        await matrix_user.join(rooms[t])
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_puppet = puppet_mxid(reg, ada["mri"])

    def bodies(topic: str) -> list[str]:
        return [
            e.content.body for e in matrix_user.messages(rooms[topic]) if e.sender == ada_puppet
        ]

    async def post(topic: str, n: int) -> None:
        await control.post_message(chats[topic]["id"], sender=ada["mri"], content=f"<p>{n}</p>")

    for t in topics:
        await post(t, 0)
    for t in topics:
        await matrix_user.wait_for_message(rooms[t], sender=ada_puppet, body="0")

    # Not pushed: the gap.
    await control.pause_delivery(me["mri"])
    for n in (1, 2, 3):
        for t in topics:
            await post(t, n)
    # The catch-up's first fetch hangs: the resync stays on its first chat while the next
    # messages are pushed into both (as when a user has many chats to go through).
    await control.add_fault(path_contains="/messages", method="GET", status=0, delay=20, count=1)
    await control.resume_delivery(me["mri"], notice=True)
    for t in topics:
        await post(t, 4)

    async def complete() -> bool:
        return all(len(bodies(t)) >= 5 for t in topics)

    try:
        await wait_for(complete, timeout=180)
    finally:
        await control.clear_faults()
    for t in topics:
        assert bodies(t) == ["0", "1", "2", "3", "4"], (t, bodies(t))
