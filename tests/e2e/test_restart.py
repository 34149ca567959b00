"""A restart while the homeserver holds events for the bridge, or has left one unsent.

When a transaction cannot be delivered, Synapse marks the appservice down and retries on a
timer. The bridge's start-up ping tells it to retry at once; a second ping while that
recovery runs fails on Synapse's side (HTTP 502), and mautrix's own connection check would
then wait 4 s before trying again. So the bridge pings once per start, and the events held
for it arrive.
"""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.bridge_process import READY_LINE
from tests.e2e.helpers import login_through_bot, wait_for
from tests.harness.ports import free_port

PING_LINE = "Received ping from homeserver"


def _text_after(path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


async def test_restart_while_homeserver_retries_pings_once(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Held")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Held")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)

    await bridge.astop()
    homeserver_offset = synapse.log_path.stat().st_size
    await matrix_user.send_text(room, "sent while the bridge was down")

    # Synapse could not deliver it and has put the appservice in recovery.
    async def in_recovery() -> bool:
        return f"Scheduling retries on {reg.id}" in _text_after(synapse.log_path, homeserver_offset)

    await wait_for(in_recovery)

    bridge_offset = bridge.log_path.stat().st_size
    await bridge.astart()

    async def delivered() -> bool:
        return any(
            "sent while the bridge was down" in m.get("content", "")
            for m in await control.list_messages(chat["id"])
        )

    await wait_for(delivered)
    text = _text_after(bridge.log_path, bridge_offset)
    assert text.count(PING_LINE) == 1, text
    assert "failed with HTTP 502" not in text


class Switchboard:
    """Stands at the registration's URL and passes every request on to the bridge, except a
    transaction that holds `swallow` in it: answered as delivered, never passed on. To the
    bridge that is a transaction the homeserver left unsent (Synapse's recovery can leave
    one created as it ends: the process starting after a stop or a crash is the one that
    must find its events in the room's timeline)."""

    def __init__(
        self, listen_port: int, bridge_port: int, swallow: str, renumber: bool = False
    ) -> None:
        self.listen_port, self.bridge_port, self.swallow = listen_port, bridge_port, swallow
        self.swallowed: list[str] = []
        # With `renumber`, what is passed on is numbered 1, 2, 3... (the same number for a
        # transaction sent again): no gap shows where one was swallowed, as when the
        # homeserver lost events before it made a transaction of them.
        self.renumber = renumber
        self._numbers: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._pass_on)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.listen_port).start()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def reconnect(self) -> None:
        """Close the connections to the bridge: what is passed on next comes over a new one,
        as from a restarted homeserver."""
        assert self._session is not None
        await self._session.close()
        self._session = aiohttp.ClientSession()

    async def _pass_on(self, request: web.Request) -> web.Response:
        body = await request.read()
        if "/transactions/" in request.path and self.swallow.encode() in body:
            self.swallowed.append(request.path)
            return web.json_response({})
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in _PASSED_HEADERS}
        path = request.path_qs
        if self.renumber and "/transactions/" in request.path:
            txn_id = request.path.rsplit("/", 1)[1]
            number = self._numbers.setdefault(txn_id, len(self._numbers) + 1)
            path = request.path.rsplit("/", 1)[0] + f"/{number}"
        url = f"http://127.0.0.1:{self.bridge_port}{path}"
        try:
            async with self._session.request(
                request.method, url, data=body, headers=headers
            ) as resp:
                return web.Response(
                    status=resp.status,
                    body=await resp.read(),
                    content_type=resp.content_type,
                )
        except aiohttp.ClientError:
            return web.Response(status=502)  # the bridge is down: the homeserver retries


_PASSED_HEADERS = {"authorization", "content-type"}
LEFT_UNSENT = "left unsent by the homeserver"


async def _bridge_behind_switchboard(
    backend, synapse, bridge_factory, control, matrix_user, overrides=None, renumber=False
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(
        kind="group", members=[me["mri"], ada["mri"]], topic="Stranded"
    )
    switchboard = Switchboard(reg.port, free_port(), LEFT_UNSENT, renumber=renumber)
    await switchboard.start()
    bridge = bridge_factory(
        overrides={"appservice.port": switchboard.bridge_port, **(overrides or {})}
    )
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Stranded")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    return me, chat, room, bridge, switchboard


async def _mine_in_teams(control, chat, me) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m.get("content", ""))
        for m in await control.list_messages(chat["id"])
        if str(m.get("from", "")).endswith(me["mri"])
    ]


async def _all_in_order(control, chat, me, bridge, expected: list[str]) -> None:
    """`expected` reach Teams, in that order, the stranded one found in the timeline."""

    async def arrived() -> bool:
        return set(expected) <= set(await _mine_in_teams(control, chat, me))

    await wait_for(arrived, timeout=90)
    assert await _mine_in_teams(control, chat, me) == expected
    assert "Recovered 1 events the homeserver did not send" in bridge.log_text()


async def _left_unsent_then_restart(
    control, chat, room, me, bridge, switchboard, matrix_user, while_stopped=None
):
    await matrix_user.send_text(room, "before")

    async def first_there() -> bool:
        return "before" in await _mine_in_teams(control, chat, me)

    await wait_for(first_there)
    await matrix_user.send_text(room, LEFT_UNSENT)

    async def swallowed() -> bool:
        return bool(switchboard.swallowed)

    await wait_for(swallowed)
    await bridge.astop()
    if while_stopped:
        await while_stopped()
    await bridge.astart()


@pytest.mark.parametrize("then", [None, "after"], ids=["nothing-after", "one-after"])
async def test_a_message_the_homeserver_left_unsent_reaches_teams_after_a_restart(
    then, backend, synapse, bridge_factory, control, matrix_user
):
    """Nothing more sent in the room: the new process finds it on its own. A message sent
    right after the restart: it waits for the one before it."""
    me, chat, room, bridge, switchboard = await _bridge_behind_switchboard(
        backend, synapse, bridge_factory, control, matrix_user
    )
    try:
        await _left_unsent_then_restart(control, chat, room, me, bridge, switchboard, matrix_user)
        expected = ["before", LEFT_UNSENT]
        if then:
            await matrix_user.send_text(room, then)
            expected.append(then)

        await _all_in_order(control, chat, me, bridge, expected)
    finally:
        await switchboard.stop()


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_after_a_start_the_rooms_check_their_timelines_once_the_users_are_connected(
    backend, synapse, bridge_factory, control, matrix_user
):
    """The check every loaded room makes after a start reads a page of its timeline, which
    for thousands of rooms is much work for the homeserver: it waits until the start-up
    (every user connected) is done, however long that takes, and still finds a message
    the homeserver left unsent."""
    me, chat, room, bridge, switchboard = await _bridge_behind_switchboard(
        backend, synapse, bridge_factory, control, matrix_user
    )
    offset = 0

    async def slow_teams() -> None:
        nonlocal offset
        offset = bridge.log_path.stat().st_size
        # The user's connection takes longer than the check's delay after a start (5 s).
        await control.add_fault(
            path_contains="/users/ME/properties", method="GET", status=0, delay=8, count=1
        )

    try:
        await _left_unsent_then_restart(
            control, chat, room, me, bridge, switchboard, matrix_user, while_stopped=slow_teams
        )
        await _all_in_order(control, chat, me, bridge, ["before", LEFT_UNSENT])
        text = _text_after(bridge.log_path, offset)
        assert text.index(READY_LINE) < text.index("Checked the timelines of"), text
    finally:
        await switchboard.stop()


async def test_what_a_restarted_homeserver_lost_goes_before_what_it_sends_next(
    backend, synapse, bridge_factory, control, matrix_user
):
    """A restarting homeserver loses what it had queued for the bridge, and its first
    transaction afterwards comes over a new connection, possibly before the bridge's watch
    notices the restart (here the watch is off, so nothing else tells). The room checks its
    timeline before sending what came over the new connection: the lost message goes first.
    (The lost events never made a transaction: no gap in the numbers shows them.)"""
    me, chat, room, bridge, switchboard = await _bridge_behind_switchboard(
        backend,
        synapse,
        bridge_factory,
        control,
        matrix_user,
        overrides={"bridge.homeserver_watch_seconds": 0},
        renumber=True,
    )
    try:
        await matrix_user.send_text(room, "before")

        async def first_there() -> bool:
            return "before" in await _mine_in_teams(control, chat, me)

        # The check every room makes after the start is done: the next is minutes away.
        async def start_checked() -> bool:
            return "Checked the timelines of" in bridge.log_text()

        await wait_for(first_there)
        await wait_for(start_checked, timeout=60)
        await matrix_user.send_text(room, LEFT_UNSENT)

        async def swallowed() -> bool:
            return bool(switchboard.swallowed)

        await wait_for(swallowed)
        await switchboard.reconnect()
        await matrix_user.send_text(room, "after")
        expected = ["before", LEFT_UNSENT, "after"]

        await _all_in_order(control, chat, me, bridge, expected)
    finally:
        await switchboard.stop()
