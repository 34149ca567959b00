"""Scenario 4: many logged-in users, each with its own Trouter connection and chats.

A second bridge (its own registration and database) so the first one's portals and caches
do not count. Steps, RSS read from /proc after the bridge has gone quiet:

1. One user logs in through the bot; the bridge is restarted: RSS idle with one user.
2. The other users log in through the bot, concurrently (device codes approved through the
   simulator's control API); the bridge is restarted and timed from process start until
   every user has a fresh Trouter connection with a live registration: the start-up time.
   RSS with all users connected.
3. One typing notification in every chat: the bridge loads a portal for each chat (a
   database row and an in-memory portal, no Matrix room: typing needs none). RSS again.

`bridge.initial_chat_sync` is 0 here: with the default, every login would create a Matrix
room per chat, thousands of rooms, and on this machine Synapse creates a few per second.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import statistics
import time
from typing import Any

import aiohttp

from tests.harness import free_port

from .. import procfs
from ..matrix import Api
from ..stack import Bridge, Stack
from .common import bounded_gather

log = logging.getLogger("bench.scale")

# What the bridge logs (INFO) when a user's catch-up after a (re)connect has finished.
RESYNC_LINE = "Resync done"


async def _rss_when_quiet(bridge: Bridge) -> int:
    await procfs.settle_cpu(bridge.pid, quiet=0.02, window=0.5, limit=20)
    reads = []
    for _ in range(3):
        reads.append(bridge.rss_kib())
        await asyncio.sleep(0.2)
    return int(statistics.median(reads))


async def _wait_registered(stack: Stack, count: int, since: float, timeout: float) -> float:
    """Poll (10 Hz, bounded) until `count` users are registered on connections opened after
    `since`; returns the wall-clock time it was first seen."""
    deadline = time.monotonic() + timeout
    while True:
        if await stack.registered(since) >= count:
            return time.time()
        if time.monotonic() > deadline:
            have = await stack.registered(since)
            raise TimeoutError(f"only {have} of {count} users connected after {timeout}s")
        await asyncio.sleep(0.1)


def _log_count(bridge: Bridge, offset: int, text: str) -> int:
    assert bridge.process
    path = bridge.process.log_path
    if not path.exists():
        return 0
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().count(text.encode())


async def _wait_caught_up(bridge: Bridge, offset: int, count: int, timeout: float) -> float | None:
    """Until the bridge has logged a finished catch-up ("Resync done") for `count` users
    since `offset`; None if it does not log that (older bridges) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _log_count(bridge, offset, RESYNC_LINE) >= count:
            return time.time()
        await asyncio.sleep(0.1)
    return None


async def bulk_login(
    stack: Stack, bridge: Bridge, accounts: list[tuple[str, str]], mris: list[str]
) -> None:
    """Each Matrix account opens a DM with the bot and sends `login`; every device code
    the bridge asks for is approved for the next unused Teams user."""
    assert stack.control and stack.session and stack.synapse
    bot = bridge.registration.bot_mxid
    apis = [Api(stack.session, stack.synapse.url, token) for _, token in accounts]
    rooms = await bounded_gather(
        8,
        [
            api.create_room(preset="trusted_private_chat", is_direct=True, invite=[bot])
            for api in apis
        ],
    )
    # The bot must be in the room before `login` counts as a management-room command.
    pending = dict(zip(rooms, apis, strict=True))
    deadline = time.monotonic() + 60 + len(rooms)
    while pending:

        async def check(room: str, api: Api) -> None:
            if bot in await api.joined_members(room):
                pending.pop(room, None)

        await bounded_gather(8, [check(room, api) for room, api in list(pending.items())])
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bot never joined {len(pending)} of the DMs")
        await asyncio.sleep(0.5)
    await bounded_gather(
        8,
        [
            api.send_message(room, {"msgtype": "m.text", "body": "login"})
            for api, room in zip(apis, rooms, strict=True)
        ],
    )
    unused = list(mris)
    deadline = time.monotonic() + 60 + 2 * len(mris)
    while unused:
        for code in await stack.control.device_codes():
            if code["status"] == "pending" and unused:
                await stack.control.approve_device_code(code["user_code"], unused.pop())
        if not unused:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(unused)} logins never asked for a device code")
        await asyncio.sleep(0.2)


async def _count(stack: Stack, bridge: Bridge, sql: str) -> int:
    assert stack.postgres
    out = await asyncio.to_thread(stack.postgres.psql, sql, bridge.name)
    return int(out.strip() or 0)


async def _loaded(port: int, kind: str) -> int | None:
    """How many portals/puppets/users the bridge holds in memory (its metrics)."""
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith(f'teams_bridge_loaded{{kind="{kind}"}}'):
            return int(float(line.split()[-1]))
    return None


async def _restart(stack: Stack, bridge: Bridge, users: int) -> tuple[float, float | None]:
    """Restart the bridge; seconds until every user has a fresh Trouter connection with a
    live registration, and until every user's catch-up has finished (None if not logged)."""
    await stack.stop_bridge("scale")
    assert bridge.process
    offset = bridge.process.log_path.stat().st_size if bridge.process.log_path.exists() else 0
    started = time.time()
    start_task = asyncio.create_task(stack.start_bridge("scale"))
    connected_at = await _wait_registered(stack, users, started, 120 + users)
    await start_task
    caught_up_at = await _wait_caught_up(bridge, offset, users, 60 + users / 10)
    return connected_at - started, (caught_up_at - started if caught_up_at else None)


async def _touch_every_chat(stack: Stack, chats: list[dict], senders: list[str]) -> None:
    """One typing notification in every chat: the bridge loads (and, the first time, stores)
    a portal for each; typing needs no Matrix room."""
    assert stack.control
    await bounded_gather(
        16,
        [stack.control.typing(c["id"], s) for c, s in zip(chats, senders, strict=True)],
    )


async def run(
    stack: Stack, users: int, chats_per_user: int, room_users: int, contacts: int = 20
) -> dict[str, Any]:
    """``room_users``: the users whose chats all get a Matrix room, through the bridge's
    normal path (a message from Teams in a chat without a room)."""
    assert stack.control and stack.postgres
    control = stack.control
    began = time.monotonic()
    tag = secrets.token_hex(2)
    phases: dict[str, float] = {}
    room_users = min(room_users, users)

    t = time.monotonic()
    people = await bounded_gather(
        16, [control.create_user(f"Scale User {i:03d}", "work") for i in range(users)]
    )
    pool = [await control.create_user(f"Scale Contact {j:02d}", "work") for j in range(contacts)]
    specs = []
    for i, person in enumerate(people):
        for k in range(chats_per_user):
            a = pool[(i * chats_per_user + k) % contacts]
            b = pool[(i * chats_per_user + k + 1) % contacts]
            specs.append((person["mri"], a["mri"], b["mri"], f"Scale {i:03d}/{k:02d}"))
    chats = await bounded_gather(
        16, [control.create_chat("group", [m, a, b], topic=topic) for m, a, b, topic in specs]
    )
    senders = [spec[1] for spec in specs]
    accounts = await bounded_gather(
        8, [stack.register_user(f"scale{i:03d}_{tag}") for i in range(users)]
    )
    phases["prepare_s"] = time.monotonic() - t

    bridge = stack.bridges["scale"]
    metrics_port = free_port()
    total_chats = users * chats_per_user
    bridge.overrides = {
        "bridge.initial_chat_sync": 0,
        "bridge.backfill.initial_messages": 0,
        "metrics.enabled": True,
        "metrics.listen_port": metrics_port,
        # Every portal stays loaded while the cost of one is measured; the shipped bound
        # is measured last.
        "bridge.cache.portals": total_chats + 1000,
    }
    await stack.start_bridge("scale")

    # 1. one user
    t = time.monotonic()
    await bulk_login(stack, bridge, accounts[:1], [people[0]["mri"]])
    await _wait_registered(stack, 1, 0.0, 60)
    phases["first_login_s"] = time.monotonic() - t
    await _restart(stack, bridge, 1)
    rss_one = await _rss_when_quiet(bridge)
    log.info("scale: RSS with one user %d KiB", rss_one)

    # 2. everyone, no rooms yet: the cost of a connected user
    t = time.monotonic()
    if users > 1:
        await bulk_login(stack, bridge, accounts[1:], [p["mri"] for p in people[1:]])
    await _wait_registered(stack, users, 0.0, 120 + users)
    phases["logins_s"] = time.monotonic() - t
    log.info("scale: %d users logged in after %.1fs", users, phases["logins_s"])
    startup_bare_s, _ = await _restart(stack, bridge, users)
    rss_all = await _rss_when_quiet(bridge)

    # 3. rooms for every chat of the first `room_users` users, the way a chat without a
    #    room gets one: a message arrives from Teams.
    t = time.monotonic()
    room_chats = room_users * chats_per_user
    await bounded_gather(
        16,
        [
            control.post_message(chats[n]["id"], sender=senders[n], content=f"<p>Room {n}</p>")
            for n in range(room_chats)
        ],
    )
    deadline = time.monotonic() + 300 + room_chats
    rooms = 0
    while time.monotonic() < deadline:
        # Done when the user is noted as in the room's chat: the last step of making it.
        rooms = await _count(
            stack,
            bridge,
            "SELECT count(*) FROM portal p JOIN user_portal up ON p.thread_id = up.thread_id "
            "AND p.receiver = up.receiver WHERE p.mxid IS NOT NULL",
        )
        if rooms >= room_chats:
            break
        await asyncio.sleep(1.0)
    phases["rooms_s"] = time.monotonic() - t
    log.info("scale: %d rooms made in %.1fs", rooms, phases["rooms_s"])

    # 4. the start-up that counts: every user connected, every room's chat caught up
    connected_s, caught_up_s = await _restart(stack, bridge, users)
    log.info(
        "scale: all %d users connected %.2fs and caught up %ss after the bridge started",
        users,
        connected_s,
        f"{caught_up_s:.2f}" if caught_up_s is not None else "?",
    )
    rss_rooms = await _rss_when_quiet(bridge)
    loaded_rooms = await _loaded(metrics_port, "portal")

    # 5. a portal for every chat: the cost of an idle portal
    t = time.monotonic()
    await _touch_every_chat(stack, chats, senders)
    deadline = time.monotonic() + 120 + total_chats / 10
    portals = 0
    while time.monotonic() < deadline:
        portals = await _count(stack, bridge, "SELECT count(*) FROM portal")
        loaded = await _loaded(metrics_port, "portal")
        if portals >= total_chats and (loaded is None or loaded >= total_chats):
            break
        await asyncio.sleep(0.5)
    phases["portals_s"] = time.monotonic() - t
    rss_portals = await _rss_when_quiet(bridge)
    loaded_all = await _loaded(metrics_port, "portal")

    # 6. the shipped bound (bridge.cache.portals): every chat touched again
    await stack.stop_bridge("scale")
    del bridge.overrides["bridge.cache.portals"]
    stack.reconfigure_bridge("scale")
    await _restart(stack, bridge, users)
    await _touch_every_chat(stack, chats, senders)
    await procfs.settle_cpu(bridge.pid, quiet=0.02, window=0.5, limit=60)
    rss_bounded = await _rss_when_quiet(bridge)
    loaded_bounded = await _loaded(metrics_port, "portal")
    await stack.stop_bridge("scale")

    per_user = (rss_all - rss_one) / max(1, users - 1)
    new_portals = (loaded_all or portals) - (loaded_rooms or 0)
    per_portal = (rss_portals - rss_rooms) / max(1, new_portals)
    phases["total_s"] = time.monotonic() - began
    return {
        "users": users,
        "chats_per_user": chats_per_user,
        "portals": portals,
        "rooms": rooms,
        "rss_one_user_kib": rss_one,
        "rss_all_users_kib": rss_all,
        "rss_with_rooms_kib": rss_rooms,
        "rss_with_portals_kib": rss_portals,
        "rss_bounded_kib": rss_bounded,
        "loaded_portals": {
            "after_start_with_rooms": loaded_rooms,
            "every_chat_unbounded": loaded_all,
            "every_chat_default_bound": loaded_bounded,
        },
        "rss_per_user_kib": round(per_user, 1),
        "rss_per_portal_kib": round(per_portal, 2),
        "startup_no_rooms_s": round(startup_bare_s, 2),
        "startup_all_connected_s": round(connected_s, 2),
        "startup_caught_up_s": round(caught_up_s, 2) if caught_up_s is not None else None,
        "phases_s": {k: round(v, 1) for k, v in phases.items()},
    }
