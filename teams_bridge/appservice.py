"""The appservice endpoint, made durable: events are stored before a transaction is answered.

mautrix answers 200 even when handling failed, and handles events in background tasks after
answering; its transaction dedup is an in-memory set. Here a transaction is answered only
after its events bound for Teams are in the database, and a storage failure answers 500 so
the homeserver sends the same transaction again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from mautrix.appservice import AppService

EventPersister = Callable[[str, list[dict[str, Any]]], Awaitable[None]]


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
