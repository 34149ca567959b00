"""A standby process (`bridge.cluster`): two bridge processes with the same config on one
PostgreSQL database, one homeserver registration and one port. One is the bridge; the other
takes over when it dies or stops, and every message in between arrives once."""

from __future__ import annotations

import os
import re
import signal

import asyncpg
import pytest

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

STANDING_BY = "Standing by: process"
STARTED = "Startup actions complete"


def cluster(lease_seconds: float, renew_seconds: float) -> dict:
    return {
        "bridge.cluster.enabled": True,
        "bridge.cluster.lease_seconds": lease_seconds,
        "bridge.cluster.renew_seconds": renew_seconds,
    }


async def _one_bridge(synapse, bridge_factory, control, matrix_user, overrides, topic):
    """A bridge with the lease, a logged-in user and the room of a chat with Ada."""
    reg = synapse.appservices["pg"]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic=topic)
    first = bridge_factory(overrides=overrides)
    await first.astart()
    assert "Took the lease: it was free" in first.log_text()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == topic)
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    return reg, me, ada, chat, room, first


async def _setup(synapse, bridge_factory, control, matrix_user, overrides):
    """As `_one_bridge`, and a second process standing by."""
    found = await _one_bridge(synapse, bridge_factory, control, matrix_user, overrides, "Standby")
    second = bridge_factory(overrides=overrides)
    await second.astart(ready=STANDING_BY)
    return (*found, second)


def _owner(bridge) -> str:
    found = re.search(r"Process (\S+) is waiting for the bridge's lease", bridge.log_text())
    assert found, bridge.output_tail()
    return found.group(1)


async def _both_ways(control, matrix_user, chat, room, me, ada, ada_puppet, text: str) -> None:
    """`text` from Teams into the room and from the room into Teams."""
    await control.post_message(chat["id"], sender=ada["mri"], content=f"<p>{text} t2m</p>")
    await matrix_user.send_text(room, f"{text} m2t")


async def _arrived(control, matrix_user, chat, room, me, ada_puppet, texts: list[str]) -> None:
    async def all_there() -> bool:
        in_matrix = _matrix_bodies(matrix_user, room, ada_puppet)
        in_teams = await _teams_bodies(control, chat, me)
        return all(f"{t} t2m" in in_matrix and f"{t} m2t" in in_teams for t in texts)

    await wait_for(all_there, timeout=180, interval=0.3)


def _matrix_bodies(matrix_user, room, ada_puppet) -> list[str]:
    return [e.content.body for e in matrix_user.messages(room) if e.sender == ada_puppet]


async def _teams_bodies(control, chat, me) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m.get("content", ""))
        for m in await control.list_messages(chat["id"])
        if str(m.get("from", "")).endswith(me["mri"])
    ]


@pytest.mark.parametrize("backend", ["pg"])
async def test_standby_takes_over_from_a_killed_process(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg, me, ada, chat, room, first, second = await _setup(
        synapse, bridge_factory, control, matrix_user, cluster(6, 1)
    )
    ada_puppet = puppet_mxid(reg, ada["mri"])
    assert STARTED not in second.log_text()  # it waits; the first is the bridge

    await _both_ways(control, matrix_user, chat, room, me, ada, ada_puppet, "before")
    await _arrived(control, matrix_user, chat, room, me, ada_puppet, ["before"])
    assert STARTED not in second.log_text()

    first_owner = _owner(first)
    first.kill()
    # Nobody is the bridge until the lease runs out: these wait in Teams and in Synapse.
    await _both_ways(control, matrix_user, chat, room, me, ada, ada_puppet, "between")

    async def took_over() -> bool:
        return STARTED in second.log_text()

    await wait_for(took_over, timeout=180)
    assert f"Took over from process {first_owner}: its lease had run out" in second.log_text()

    await _both_ways(control, matrix_user, chat, room, me, ada, ada_puppet, "after")
    await _arrived(control, matrix_user, chat, room, me, ada_puppet, ["between", "after"])
    # Once each, in order, both ways.
    expected_t2m = ["before t2m", "between t2m", "after t2m"]
    expected_m2t = ["before m2t", "between m2t", "after m2t"]
    assert _matrix_bodies(matrix_user, room, ada_puppet) == expected_t2m
    assert await _teams_bodies(control, chat, me) == expected_m2t


@pytest.mark.parametrize("backend", ["pg"])
async def test_stopped_process_hands_over_at_once(
    backend, synapse, bridge_factory, control, matrix_user
):
    # A lease of an hour: the standby can only take over because it was released.
    reg, me, ada, chat, room, first, second = await _setup(
        synapse, bridge_factory, control, matrix_user, cluster(3600, 600)
    )
    ada_puppet = puppet_mxid(reg, ada["mri"])
    await first.astop()
    assert "Released the lease" in first.log_text()

    async def took_over() -> bool:
        return STARTED in second.log_text()

    await wait_for(took_over, timeout=180)
    assert "Took the lease: it was free" in second.log_text()
    await _both_ways(control, matrix_user, chat, room, me, ada, ada_puppet, "handed over")
    await _arrived(control, matrix_user, chat, room, me, ada_puppet, ["handed over"])

    # A standby that is stopped leaves at once, and the bridge goes on.
    third = bridge_factory(overrides=cluster(3600, 600))
    await third.astart(ready=STANDING_BY)
    await third.astop()
    assert "Everything stopped, shutting down" in third.log_text()
    assert "Released the lease" not in third.log_text()
    await _both_ways(control, matrix_user, chat, room, me, ada, ada_puppet, "still")
    await _arrived(control, matrix_user, chat, room, me, ada_puppet, ["still"])


@pytest.mark.parametrize("backend", ["pg"])
async def test_process_that_lost_its_lease_exits_at_once(backend, bridge_database, bridge_factory):
    bridge = bridge_factory(overrides=cluster(6, 1))
    await bridge.astart()
    conn = await asyncpg.connect(bridge_database)
    try:
        # As if another process had taken over while this one was cut off.
        await conn.execute("UPDATE bridge_lease SET owner = 'elsewhere'")
    finally:
        await conn.close()
    proc = bridge.proc
    assert proc is not None

    async def exited() -> bool:
        return proc.poll() is not None

    await wait_for(exited, timeout=120)
    assert proc.returncode == 75  # a supervisor starting it again gets a standby
    assert "Lost the bridge's lease (another process holds it): exiting" in bridge.log_text()


@pytest.mark.parametrize("backend", ["pg"])
async def test_process_resumed_after_its_lease_ran_out_sends_nothing(
    backend, synapse, bridge_database, bridge_factory, control, matrix_user
):
    """A bridge frozen (a paused machine, SIGSTOP) past its lease, while another process
    took over: when it resumes it must not bridge what it had in hand, which the other
    process now does."""
    reg, me, ada, chat, room, bridge = await _one_bridge(
        synapse, bridge_factory, control, matrix_user, cluster(6, 1), "Frozen"
    )
    ada_puppet = puppet_mxid(reg, ada["mri"])
    await control.post_message(chat["id"], sender=ada["mri"], content="<p>before</p>")
    await matrix_user.wait_for_message(room, sender=ada_puppet, body="before")

    proc = bridge.proc
    assert proc is not None
    conn = await asyncpg.connect(bridge_database)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        # Pushed over Trouter to the frozen process: it is waiting in its socket.
        await control.post_message(chat["id"], sender=ada["mri"], content="<p>while frozen</p>")

        async def ran_out() -> bool:
            return await conn.fetchval("SELECT expires_at < now() FROM bridge_lease")

        await wait_for(ran_out, timeout=120)
        await conn.execute(
            "UPDATE bridge_lease SET owner = 'elsewhere', expires_at = now() + interval '1 hour'"
        )
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        await conn.close()

    async def exited() -> bool:
        return proc.poll() is not None

    await wait_for(exited, timeout=120)
    assert proc.returncode == 75
    assert "Lost the bridge's lease (it " in bridge.log_text()
    # Anything it had sent would be in the room before a message sent after its exit.
    await matrix_user.send_text(room, "probe")
    await matrix_user.wait_for_message(room, sender=matrix_user.user_id, body="probe")
    bodies = [e.content.body for e in matrix_user.messages(room) if e.sender == ada_puppet]
    assert bodies == ["before"]


@pytest.mark.parametrize("backend", ["lite"])
async def test_standby_needs_postgresql(backend, bridge_factory):
    result = await bridge_factory(overrides=cluster(30, 10)).arun_once()
    assert result.returncode != 0
    assert "bridge.cluster.enabled" in result.output + result.log
    assert "needs a PostgreSQL database" in result.output + result.log


@pytest.mark.parametrize("backend", ["pg"])
async def test_standby_with_a_database_that_is_not_there_says_so(
    backend, bridge_database, bridge_factory
):
    # Waiting mends an unreachable server, not a wrong name: the process says so and exits.
    missing = bridge_database.rsplit("/", 1)[0] + "/no_such_database"
    result = await bridge_factory(
        overrides={**cluster(30, 10), "appservice.database": missing}
    ).arun_once()
    assert result.returncode == 25
    assert "does not exist" in result.output + result.log
