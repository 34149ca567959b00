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
        # Timed from the approval of the login (the chat sync starts with it) until every
        # room's invite, which comes once its history is in.
        started: list[float] = []
        await login_with_bot(stack, bridge, me, me_teams["mri"], on_approve=started.append)
        t0 = started[0]
        invites = await me.wait_invites(chats, timeout=120 + chats * messages * 0.5)
        bridge_s = time.monotonic() - t0
        rooms = [inv.room_id for inv in invites if (inv.name or "").startswith("History ")]
        # (The reader is a plain user: with Synapse's default rate limits its joins wait.)
        await bounded_gather(4, [_join_patiently(me, r) for r in rooms])
        await me.wait_markers(markers, timeout=120)
        log.info("history: %d chats x %d messages in %.1fs", chats, messages, bridge_s)

        # The baseline: the same rooms and sends, directly.
        as_api = Api(stack.session, stack.synapse.url, bridge.registration.as_token)
        ghosts = [bridge.puppet_mxid(s["mri"]) for s in senders]
        t1 = time.monotonic()
        pending = iter(seeded)

        async def baseline_worker() -> None:
            for _chat_id, sent in pending:
                await _baseline_chat(as_api, bridge, ghosts, user_id, sent)

        await asyncio.gather(*(baseline_worker() for _ in range(PARALLEL_CHATS)))
        baseline_s = time.monotonic() - t1
        log.info("history baseline: %.1fs", baseline_s)
    finally:
        await me.stop()
        await stack.stop_bridge("history")
    total = chats * messages
    return {
        "chats": chats,
        "messages_per_chat": messages,
        "messages": total,
        "parallel_chats": PARALLEL_CHATS,
        "bridge_s": round(bridge_s, 3),
        "baseline_s": round(baseline_s, 3),
        "ratio": round(baseline_s / bridge_s, 3),
        "bridge_msgs_per_s": round(total / bridge_s, 2),
        "baseline_msgs_per_s": round(total / baseline_s, 2),
    }


async def _baseline_chat(
    as_api: Api, bridge: Any, ghosts: list[str], user_id: str, sent: list[tuple[str, str, int]]
) -> None:
    room = (
        await as_api.call(
            "POST",
            "/_matrix/client/v3/createRoom",
            {"name": "Baseline", "preset": "private_chat", "invite": ghosts[1:]},
            as_user=ghosts[0],
        )
    )["room_id"]
    for ghost in ghosts[1:]:
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
        as_user=ghosts[0],
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
