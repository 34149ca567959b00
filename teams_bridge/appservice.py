"""The appservice endpoint, made durable: events are stored before a transaction is answered.

mautrix answers 200 even when handling failed, and handles events in background tasks after
answering; its transaction dedup is an in-memory set. Here a transaction is answered only
after its events bound for Teams are in the database, and a storage failure answers 500 so
the homeserver sends the same transaction again.

The homeserver resends a refused transaction until it is accepted, and sends nothing else
meanwhile: anything in one transaction that makes the bridge refuse it stops all bridging.
So the request size limit is never below what the homeserver can send.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from mautrix.appservice import AppService

EventPersister = Callable[[str, list[dict[str, Any]]], Awaitable[None]]

MIB = 1024**2

# The smallest request body limit (MiB) that can hold any transaction Synapse sends. Synapse
# puts up to 100 events in a transaction, as canonical JSON (UTF-8, nothing escaped that the
# event itself does not escape). An event is at most 64 KiB as stored (the whole PDU);
# as sent, a state event also carries the content it replaced (`unsigned.prev_content`, up
# to 64 KiB more), and an invite or a knock carries the room's stripped state (by default 7
# state events plus the inviter's membership, up to 64 KiB each). That is at most
# 100 x (1 + 1 + 8) x 64 KiB = 62.5 MiB of events. Up to 100 ephemeral events and 100
# to-device messages, and a homeserver configured to share more state with invites, fit in
# the rest. A bridged message is only ever 64 KiB, but a hostile room can make the invites
# of bridge users that large, and one refused transaction blocks every room.
MIN_BODY_MIB = 100


def body_limit_bytes(configured: Any, log: logging.Logger | None = None) -> int:
    """The request body limit for `appservice.max_body_size` (MiB), never below the minimum.

    Configs written before the minimum existed say 1 MiB; the config upgrade keeps that value,
    which would refuse a transaction of 20 long messages forever.
    """
    try:
        mib = float(configured)
    except (TypeError, ValueError):
        mib = 0.0
    if not (MIN_BODY_MIB <= mib < math.inf):  # (not NaN either)
        if log is not None:
            log.warning(
                "appservice.max_body_size is %r MiB, below the %d MiB a homeserver transaction "
                "can take; using %d MiB",
                configured,
                MIN_BODY_MIB,
                MIN_BODY_MIB,
            )
        mib = MIN_BODY_MIB
    return int(mib * MIB)


class DurableAppService(AppService):
    persist_events: EventPersister | None = None

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        transaction_id, data = await self._read_transaction_header(request)
        if self.persist_events is not None:
            events = data.get("events") or []
            try:
                # Shielded: if the homeserver hangs up mid-request, aiohttp cancels this
                # handler, and a query cancelled halfway leaves its connection unusable.
                await asyncio.shield(self.persist_events(transaction_id, events))
            except Exception:
                self.log.exception(
                    "Could not store transaction %s; the homeserver will send it again",
                    transaction_id,
                )
                return web.json_response(
                    {"errcode": "M_UNKNOWN", "error": "The bridge could not store the events"},
                    status=500,
                )
        # The body is cached by aiohttp, so the regular handling can read it again.
        return await super()._http_handle_transaction(request)
