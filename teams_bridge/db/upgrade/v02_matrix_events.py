"""v2: Matrix events stored before the appservice transaction is answered."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Persist Matrix events before acknowledging them")
async def upgrade_v2(conn: Connection) -> None:
    # Matrix events bound for Teams, written before the appservice transaction is answered
    # and worked off in order per room; a crash or a resent transaction cannot lose or
    # double one.
    await conn.execute(
        """CREATE TABLE matrix_event (
            event_id          TEXT PRIMARY KEY,
            room_id           TEXT NOT NULL,
            sender            TEXT NOT NULL,
            seq               BIGINT NOT NULL,
            event_type        TEXT NOT NULL,
            content           TEXT NOT NULL,
            status            TEXT NOT NULL DEFAULT 'pending',
            attempts          INTEGER NOT NULL DEFAULT 0,
            client_message_id TEXT,
            error             TEXT,
            txn_seq           BIGINT,
            received_at       BIGINT NOT NULL DEFAULT 0
        )"""
    )
    await conn.execute(
        "CREATE INDEX matrix_event_pending_idx ON matrix_event (status, room_id, seq)"
    )
    await conn.execute(
        """CREATE TABLE bridge_state_kv (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )"""
    )
