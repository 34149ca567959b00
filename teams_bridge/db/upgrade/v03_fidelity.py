"""v3: reactions both ways, and the last bridged version of each message."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Reactions and the last bridged version of messages")
async def upgrade_v3(conn: Connection) -> None:
    # Reactions both ways, one row per (message, user, key): what was bridged is known
    # across restarts, and the echo of a reaction sent from Matrix is not bridged back.
    await conn.execute(
        """CREATE TABLE reaction (
            thread_id   TEXT NOT NULL,
            receiver    TEXT NOT NULL DEFAULT '',
            message_id  TEXT NOT NULL,
            sender_mri  TEXT NOT NULL,
            emotion_key TEXT NOT NULL,
            mxid        TEXT NOT NULL,
            mx_room     TEXT NOT NULL,
            sent_at     BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (thread_id, receiver, message_id, sender_mri, emotion_key),
            FOREIGN KEY (thread_id, receiver) REFERENCES portal(thread_id, receiver)
                ON DELETE CASCADE ON UPDATE CASCADE
        )"""
    )
    await conn.execute("CREATE INDEX reaction_mxid_idx ON reaction (mxid, mx_room)")
    # The last bridged version of each message (edits and deletes, either way).
    await conn.execute(
        """CREATE TABLE message_state (
            thread_id    TEXT NOT NULL,
            receiver     TEXT NOT NULL DEFAULT '',
            message_id   TEXT NOT NULL,
            edit_time    BIGINT,
            content_hash TEXT,
            deleted      BOOLEAN NOT NULL DEFAULT false,
            PRIMARY KEY (thread_id, receiver, message_id),
            FOREIGN KEY (thread_id, receiver) REFERENCES portal(thread_id, receiver)
                ON DELETE CASCADE ON UPDATE CASCADE
        )"""
    )
