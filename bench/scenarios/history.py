"""Scenario 6: history in new rooms. A user with `chats` chats of `messages` messages each
logs in to a fresh bridge, which makes a room per chat and puts each chat's history in
before inviting the user. Baseline: the same work done directly through the appservice API
in the same run: a room per chat made by one sender's ghost with the other joined, then the
same message content sent as those ghosts, two chats at a time and one message at a time
in each (as the bridge does), with the Teams times as `ts`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

from ..matrix import Api, MatrixError, SyncingUser
from ..stack import Stack
from .common import bounded_gather, login_with_bot, marker
from .teams_to_matrix import same_as_bridged

log = logging.getLogger("bench.history")

# Chats set up at the same time, by the bridge (its default) and by the baseline alike.
PARALLEL_CHATS = 2


async def run(stack: Stack, chats: int, messages: int) -> dict[str, Any]:
    assert stack.control and stack.session and stack.synapse
    control = stack.control
    me_teams = await control.create_user("History Reader", "work")
    senders = [await control.create_user(f"History Sender {i}", "work") for i in range(2)]
    seeded: list[tuple[str, list[tuple[str, str, int]]]] = []  # chat id, (sender, html, ts)
    markers: list[str] = []
    for k in range(chats):
        chat = await control.create_chat(
            "group", [me_teams["mri"], *(s["mri"] for s in senders)], f"History {k:02d}"
        )
        sent = []
        for n in range(messages):
            who = senders[n % 2]["mri"]
            m = marker()
            markers.append(m)
            html = f"<p>history {m}</p>"
            posted = await control.post_message(chat["id"], sender=who, content=html)
            sent.append((who, html, int(posted["id"])))
        seeded.append((chat["id"], sent))

    bridge = stack.bridges["history"]
    bridge.overrides = {
        "bridge.initial_chat_sync": chats,
        "bridge.backfill.initial_messages": messages,
        "bridge.backfill.parallel_chats": PARALLEL_CHATS,
    }
    await stack.start_bridge("history")
    user_id, token = await stack.register_user(f"history_{marker().lower()}")
    me = SyncingUser(Api(stack.session, stack.synapse.url, token), user_id)
    await me.start()
    try:
        # Timed from the bot's word that the login worked (the chat sync starts then) until
        # every room's invite, which comes once its history is in. The login itself (the
        # device-code poll, the tokens) is timed apart: the baseline has nothing like it.
        approved: list[float] = []
        logged_in: list[float] = []
        await login_with_bot(
            stack,
            bridge,
            me,
            me_teams["mri"],
            on_approve=approved.append,
            on_logged_in=logged_in.append,
        )
        t0 = logged_in[0]
        invites = await me.wait_invites(chats, timeout=120 + chats * messages * 0.5)
        bridge_s = time.monotonic() - t0
        login_s = t0 - approved[0]
        rooms = [inv.room_id for inv in invites if (inv.name or "").startswith("History ")]
        # (The reader is a plain user: with Synapse's default rate limits its joins wait.)
        await bounded_gather(4, [_join_patiently(me, r) for r in rooms])
        await me.wait_markers(markers, timeout=120)
        log.info("history: %d chats x %d messages in %.1fs", chats, messages, bridge_s)

        # The baselines: the same sends, directly. The main one builds each room as the
        # bridge does (made by the bot, which stays a member, with the bridge state; both
        # ghosts invited and joined); the plain one as a bare appservice might (made by one
        # ghost, the other joined), which costs the homeserver two member events and two
        # state events less per room.
        as_api = Api(stack.session, stack.synapse.url, bridge.registration.as_token)
        ghosts = [bridge.puppet_mxid(s["mri"]) for s in senders]
        bridged_state = await _bridge_state(as_api, rooms[0], ghosts[0])
        timings: dict[str, float] = {}
        for shape in ("bridge", "plain"):
            t1 = time.monotonic()
            pending = iter(seeded)

            async def baseline_worker(shape: str = shape, pending: Any = pending) -> None:
                for _chat_id, sent in pending:
                    await _baseline_chat(
                        as_api, bridge, ghosts, user_id, sent, shape, bridged_state
                    )

            await asyncio.gather(*(baseline_worker() for _ in range(PARALLEL_CHATS)))
            timings[shape] = time.monotonic() - t1
            log.info("history baseline (%s rooms): %.1fs", shape, timings[shape])
        baseline_s = timings["bridge"]
    finally:
        await me.stop()
        await stack.stop_bridge("history")
    total = chats * messages
    return {
        "chats": chats,
        "messages_per_chat": messages,
        "messages": total,
        "parallel_chats": PARALLEL_CHATS,
        "login_s": round(login_s, 3),
        "bridge_s": round(bridge_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(baseline_s / bridge_s, 3),
        "plain_baseline_s": round(timings["plain"], 3),
        "plain_ratio": round(timings["plain"] / bridge_s, 3),
        "bridge_msgs_per_s": round(total / bridge_s, 2),
        "baseline_msgs_per_s": round(total / baseline_s, 2),
    }


async def _bridge_state(as_api: Api, room: str, member: str) -> list[dict[str, Any]]:
    """The bridge state events of a room the bridge made, as initial state for another."""
    path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state"
    state = await as_api.call("GET", path, as_user=member)
    return [
        {"type": e["type"], "state_key": e["state_key"], "content": e["content"]}
        for e in state
        if e["type"] in ("m.bridge", "uk.half-shot.bridge")
    ]


async def _baseline_chat(
    as_api: Api,
    bridge: Any,
    ghosts: list[str],
    user_id: str,
    sent: list[tuple[str, str, int]],
    shape: str,
    bridged_state: list[dict[str, Any]],
) -> None:
    creator: str | None
    if shape == "bridge":
        creator, joiners = bridge.registration.bot_mxid, ghosts
        body: dict[str, Any] = {
            "name": "Baseline",
            "preset": "private_chat",
            "invite": ghosts,
            "initial_state": bridged_state,
            "power_level_override": {"users": {user_id: 1}, "kick": 1},
        }
    else:
        creator, joiners = ghosts[0], ghosts[1:]
        body = {"name": "Baseline", "preset": "private_chat", "invite": joiners}
    room = (await as_api.call("POST", "/_matrix/client/v3/createRoom", body, as_user=creator))[
        "room_id"
    ]
    for ghost in joiners:
        await as_api.join(room, as_user=ghost)
    for who, _html, ts in sent:
        m = marker()
        await as_api.call(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/{m}",
            same_as_bridged(f"<p>history {m}</p>"),
            as_user=bridge.puppet_mxid(who),
            params={"ts": str(ts)},
        )
    # As the bridge does: the user is invited once the history is in.
    await as_api.call(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room, safe='')}/invite",
        {"user_id": user_id},
        as_user=creator,
    )


async def _join_patiently(me: SyncingUser, room: str) -> None:
    while True:
        try:
            await me.api.join(room)
            return
        except MatrixError as e:
            if e.status != 429:
                raise
            wait_ms = e.body.get("retry_after_ms", 1000) if isinstance(e.body, dict) else 1000
            await asyncio.sleep(wait_ms / 1000)
