"""The latest schema in one step, for a new database. Keep it equal to what the numbered
upgrades make (tests/core/test_upgrades.py compares the two)."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme

from . import LATEST_VERSION, upgrade_table


@upgrade_table.register(description="Latest revision", upgrades_to=LATEST_VERSION)
async def upgrade_latest(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE "user" (
            mxid            TEXT PRIMARY KEY,
            mri             TEXT UNIQUE,
            credentials     TEXT,
            endpoint_id     TEXT,
            management_room TEXT
        )"""
    )
    await conn.execute(
        """CREATE TABLE puppet (
            mri          TEXT PRIMARY KEY,
            name         TEXT,
            name_source  TEXT,
            name_set     BOOLEAN NOT NULL DEFAULT false,
            avatar_url   TEXT,
            avatar_set   BOOLEAN NOT NULL DEFAULT false,
            is_registered BOOLEAN NOT NULL DEFAULT false,
            custom_mxid  TEXT,
            access_token TEXT,
            next_batch   TEXT,
            base_url     TEXT,
            avatar_hash  TEXT,
            avatar_checked_at BIGINT NOT NULL DEFAULT 0
        )"""
    )
    # The table must be called portal and have mxid and encrypted: mautrix's crypto store
    # joins on it. The receiver is '' for a chat all bridge users in it share one room of,
    # and the bridge user's MRI for a 1:1 chat, where each has a room of their own (see
    # portal/key.py); every table keyed by a portal carries it.
    await conn.execute(
        """CREATE TABLE portal (
            thread_id       TEXT NOT NULL,
            receiver        TEXT NOT NULL DEFAULT '',
            mxid            TEXT UNIQUE,
            kind            TEXT NOT NULL DEFAULT 'group',
            name            TEXT,
            name_set        BOOLEAN NOT NULL DEFAULT false,
            topic           TEXT,
            avatar_url      TEXT,
            encrypted       BOOLEAN NOT NULL DEFAULT false,
            other_user_mri  TEXT,
            last_message_id TEXT,
            relay_user_id   TEXT,
            avatar_source   TEXT,
            team_id         TEXT,
            team_name       TEXT,
            PRIMARY KEY (thread_id, receiver)
        )"""
    )
    await conn.execute(
        """CREATE TABLE user_portal (
            user_mxid TEXT NOT NULL,
            thread_id TEXT NOT NULL,
            receiver  TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (user_mxid, thread_id, receiver),
            FOREIGN KEY (user_mxid) REFERENCES "user"(mxid) ON DELETE CASCADE ON UPDATE CASCADE,
            FOREIGN KEY (thread_id, receiver) REFERENCES portal(thread_id, receiver)
                ON DELETE CASCADE ON UPDATE CASCADE
        )"""
    )
    # A Teams message part <-> a Matrix event; `origin` is where the message came from
    # ('matrix' or 'teams').
    await conn.execute(
        """CREATE TABLE message (
            thread_id  TEXT NOT NULL,
            receiver   TEXT NOT NULL DEFAULT '',
            message_id TEXT NOT NULL,
            part       INTEGER NOT NULL DEFAULT 0,
            mxid       TEXT NOT NULL,
            mx_room    TEXT NOT NULL,
            sender_mri TEXT,
            timestamp  BIGINT NOT NULL,
            version    TEXT,
            origin     TEXT NOT NULL DEFAULT 'teams',
            PRIMARY KEY (thread_id, receiver, message_id, part),
            UNIQUE (mxid, mx_room),
            FOREIGN KEY (thread_id, receiver) REFERENCES portal(thread_id, receiver)
                ON DELETE CASCADE ON UPDATE CASCADE
        )"""
    )
    # Every message the bridge posts to Teams, keyed by its clientmessageid: the echo that
    # comes back over Trouter is recognised here and not bridged again.
    await conn.execute(
        """CREATE TABLE sent_message (
            client_message_id TEXT PRIMARY KEY,
            thread_id   TEXT NOT NULL,
            receiver    TEXT NOT NULL DEFAULT '',
            mxid        TEXT NOT NULL,
            mx_room     TEXT NOT NULL,
            message_id  TEXT,
            created_at  BIGINT NOT NULL
        )"""
    )
    await conn.execute("CREATE INDEX sent_message_mxid_idx ON sent_message (mxid)")
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
    # Each user's spaces: team_id '' is the personal space, any other that team's.
    await conn.execute(
        """CREATE TABLE space (
            user_mxid TEXT NOT NULL,
            team_id   TEXT NOT NULL DEFAULT '',
            mxid      TEXT NOT NULL,
            name      TEXT,
            PRIMARY KEY (user_mxid, team_id)
        )"""
    )
