"""v7: each user's Matrix spaces: one personal space, and one per Teams team inside it."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Spaces: a personal one per user and one per team")
async def upgrade_v7(conn: Connection) -> None:
    # team_id '' is the user's personal space; any other is the space of that team.
    await conn.execute(
        """CREATE TABLE space (
            user_mxid TEXT NOT NULL,
            team_id   TEXT NOT NULL DEFAULT '',
            mxid      TEXT NOT NULL,
            name      TEXT,
            PRIMARY KEY (user_mxid, team_id)
        )"""
    )
