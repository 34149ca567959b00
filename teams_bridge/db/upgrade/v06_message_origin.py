"""v6: where each bridged message came from, so delivered Matrix events can be pruned."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Message origin, so delivered Matrix events can be pruned")
async def upgrade_v6(conn: Connection) -> None:
    # 'matrix' for a message sent from Matrix to Teams, 'teams' for one bridged from Teams.
    # Until now the matrix_event queue (and the record of what the bridge posted) was the
    # only place that told them apart.
    await conn.execute("ALTER TABLE message ADD COLUMN origin TEXT NOT NULL DEFAULT 'teams'")
    await conn.execute(
        "UPDATE message SET origin='matrix' "
        "WHERE mxid IN (SELECT event_id FROM matrix_event) "
        "OR mxid IN (SELECT mxid FROM sent_message)"
    )
