"""v5: a 1:1 chat's portal belongs to one bridge user; a channel's team is stored."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import upgrade_table


@upgrade_table.register(description="Portals of 1:1 chats per user; the team of a channel")
async def upgrade_v5(conn: Connection) -> None:
    # A channel's team: its id (the id of its General channel) and its name.
    await conn.execute("ALTER TABLE portal ADD COLUMN team_id TEXT")
    await conn.execute("ALTER TABLE portal ADD COLUMN team_name TEXT")
    # Until now every portal had the receiver '', so bridge users in the same 1:1 chat shared
    # one room, named after the other person of whoever made it. Each such room now belongs
    # to a bridge user in it who is not that other person, a logged-in one first; the others
    # get a room of their own when the chat next reaches them.
    await conn.execute(
        """CREATE TEMPORARY TABLE v5_receiver (
            thread_id TEXT PRIMARY KEY,
            receiver  TEXT NOT NULL
        )"""
    )
    await conn.execute(
        """INSERT INTO v5_receiver (thread_id, receiver)
        SELECT thread_id, receiver FROM (
            SELECT p.thread_id AS thread_id, (
                SELECT u.mri FROM user_portal up JOIN "user" u ON u.mxid = up.user_mxid
                WHERE up.thread_id = p.thread_id AND up.receiver = '' AND u.mri IS NOT NULL
                    AND u.mri <> COALESCE(p.other_user_mri, '')
                ORDER BY CASE WHEN u.credentials IS NULL THEN 1 ELSE 0 END, up.user_mxid
                LIMIT 1
            ) AS receiver
            FROM portal p WHERE p.kind = 'one_to_one' AND p.receiver = ''
        ) AS moves WHERE receiver IS NOT NULL"""
    )
    # The other bridge users of such a room are no longer in its portal.
    await conn.execute(
        """DELETE FROM user_portal WHERE receiver = '' AND EXISTS (
            SELECT 1 FROM v5_receiver m WHERE m.thread_id = user_portal.thread_id
                AND NOT EXISTS (
                    SELECT 1 FROM "user" u
                    WHERE u.mxid = user_portal.user_mxid AND u.mri = m.receiver
                )
        )"""
    )
    # The foreign keys of user_portal, message, reaction and message_state carry the new
    # receiver along (ON UPDATE CASCADE); sent_message has none. Every table is updated
    # anyway, which changes nothing where the cascade did.
    for table in ("portal", "user_portal", "message", "reaction", "message_state", "sent_message"):
        await conn.execute(
            f"""UPDATE {table} SET receiver = (
                SELECT m.receiver FROM v5_receiver m WHERE m.thread_id = {table}.thread_id
            ) WHERE receiver = '' AND thread_id IN (SELECT thread_id FROM v5_receiver)"""
        )
    await conn.execute("DROP TABLE v5_receiver")
