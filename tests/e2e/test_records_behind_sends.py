"""Teams -> Matrix: a message's record (its mapping, the moved cursor) is written behind the
portal's next send, not before it. While the bridge's database holds every write, plain
messages still reach the room one after another, in order; a reply to one of them waits
for the records and then points at the right event; once the writes go through, every
message is mapped exactly once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

REPLY = "http://schema.skype.com/Reply"


@asynccontextmanager
async def writes_held(backend: str, database: str) -> AsyncIterator[None]:
    """Hold every write to the bridge's `message` table until the block ends (reads go on)."""
    if backend == "pg":
        conn = await asyncpg.connect(database)
        try:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("LOCK TABLE message IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                await tx.rollback()
        finally:
            await conn.close()
    else:
        db = sqlite3.connect(database.removeprefix("sqlite:"), isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")  # the one writer: the bridge's writes wait
            try:
                yield
            finally:
                db.execute("ROLLBACK")
        finally:
            db.close()


async def _mapped(backend: str, database: str, chat_id: str) -> list[tuple[str, str]]:
    """(Teams message id, Matrix event id) of the chat's mapped messages, in id order."""
    query = "SELECT message_id, mxid FROM message WHERE thread_id=$1 ORDER BY message_id"
    if backend == "pg":
        conn = await asyncpg.connect(database)
        try:
            return [(r["message_id"], r["mxid"]) for r in await conn.fetch(query, chat_id)]
        finally:
            await conn.close()
    with sqlite3.connect(database.removeprefix("sqlite:")) as db:
        return list(db.execute(query.replace("$1", "?"), (chat_id,)))


async def _setup(reg, bridge, control, matrix_user):
    """Grace logged in, in a group chat with Ada whose room exists and has one message from
    her (so the cursor is set and what follows takes the live path)."""
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Held")
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Held")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_puppet = puppet_mxid(reg, ada["mri"])
    await control.post_message(chat["id"], sender=ada["mri"], content="<p>before</p>")
    await matrix_user.wait_for_message(room, sender=ada_puppet, body="before")
    return me, ada, chat, room, ada_puppet


async def test_sends_do_not_wait_for_records_and_readers_do(
    backend, synapse, bridge_factory, bridge_database, control, matrix_user
):
    bridge = bridge_factory()
    _, ada, chat, room, ada_puppet = await _setup(
        synapse.appservices[backend], bridge, control, matrix_user
    )

    posted: list[dict] = []
    async with writes_held(backend, bridge_database):
        for i in range(3):
            posted.append(
                await control.post_message(
                    chat["id"], sender=ada["mri"], content=f"<p>held-{i}</p>"
                )
            )
        # Each message's send came after the one before had its answer, none after its
        # record: with the records written first, the first of them would hold up the rest.
        events = [
            await matrix_user.wait_for_message(room, sender=ada_puppet, body=f"held-{i}")
            for i in range(3)
        ]
        first = posted[0]["id"]
        quote = (
            f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{first}"><strong '
            f'itemprop="mri" itemid="{ada["mri"]}">Ada Lovelace</strong><span itemprop="time" '
            f'itemid="{first}"></span><p itemprop="preview">held-0</p></blockquote>'
        )
        reply_id = (
            await control.post_message(
                chat["id"], sender=ada["mri"], content=quote + "<p>about held-0</p>"
            )
        )["id"]

        # The writes stay held until the reply is handled: it waits for the records.
        async def reply_waits() -> bool:
            return f"Message {reply_id} waits for" in bridge.log_text()

        await wait_for(reply_waits, timeout=60)

    reply = await matrix_user.wait_for_message(room, sender=ada_puppet, body="about held-0")
    # The reply looked its quoted message up only once that message's record was stored.
    assert reply.content.relates_to is not None
    assert reply.content.relates_to.in_reply_to is not None
    assert reply.content.relates_to.in_reply_to.event_id == events[0].event_id

    bodies = [
        e.content.body
        for e in matrix_user.messages(room)
        if e.sender == ada_puppet and e.type == EventType.ROOM_MESSAGE
    ]
    assert bodies == ["before", "held-0", "held-1", "held-2", "about held-0"]

    async def all_mapped() -> bool:
        return len(await _mapped(backend, bridge_database, chat["id"])) == 5

    await wait_for(all_mapped, timeout=60)
    mapped = dict(await _mapped(backend, bridge_database, chat["id"]))
    for message, event in zip(posted, events, strict=True):
        assert mapped[message["id"]] == event.event_id


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
async def test_a_record_that_fails_is_tried_again_and_the_cursor_ends_at_the_newest(
    backend, synapse, bridge_factory, bridge_database, control, matrix_user
):
    """Writes refused for a while (the statement times out): the records are tried again in
    order, so the cursor ends at the newest message and a restart bridges nothing twice."""
    # Statements give up after a second, so a held write fails and is tried again.
    bridge = bridge_factory(overrides={"appservice.database_opts.command_timeout": 1})
    me, ada, chat, room, ada_puppet = await _setup(
        synapse.appservices[backend], bridge, control, matrix_user
    )

    async with writes_held(backend, bridge_database):
        for i in range(3):
            await control.post_message(chat["id"], sender=ada["mri"], content=f"<p>slow-{i}</p>")
        for i in range(3):
            await matrix_user.wait_for_message(room, sender=ada_puppet, body=f"slow-{i}")

        async def a_record_failed() -> bool:
            return "message records failed" in bridge.log_text()

        await wait_for(a_record_failed, timeout=60)

    async def all_mapped() -> bool:
        return len(await _mapped(backend, bridge_database, chat["id"])) == 4

    await wait_for(all_mapped, timeout=90)
    # A restart catches up from the stored cursor: nothing comes twice.
    await bridge.astop()
    await bridge.astart()
    await control.wait_for_registration(me["mri"], timeout=60)
    await control.post_message(chat["id"], sender=ada["mri"], content="<p>after</p>")
    await matrix_user.wait_for_message(room, sender=ada_puppet, body="after")
    bodies = [
        e.content.body
        for e in matrix_user.messages(room)
        if e.sender == ada_puppet and e.type == EventType.ROOM_MESSAGE
    ]
    assert bodies == ["before", "slow-0", "slow-1", "slow-2", "after"]
