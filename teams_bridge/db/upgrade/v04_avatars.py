"""v4: profile pictures as avatars."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Profile pictures: what was uploaded, and when it was checked")
async def upgrade_v4(conn: Connection) -> None:
    # The sha256 of the picture behind puppet.avatar_url (an unchanged one is not uploaded
    # again) and when the picture was last fetched (epoch ms; refetched at most every
    # bridge.avatar_refresh_hours); the Teams picture URL behind a room's avatar.
    await conn.execute("ALTER TABLE puppet ADD COLUMN avatar_hash TEXT")
    await conn.execute("ALTER TABLE puppet ADD COLUMN avatar_checked_at BIGINT NOT NULL DEFAULT 0")
    await conn.execute("ALTER TABLE portal ADD COLUMN avatar_source TEXT")
