BEGIN TRANSACTION;
CREATE TABLE bridge_state_kv (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
INSERT INTO "bridge_state_kv" VALUES('last_txn','17');
CREATE TABLE database_owner (
                key   INTEGER PRIMARY KEY DEFAULT 0,
                owner TEXT NOT NULL
            );
INSERT INTO "database_owner" VALUES(0,'teams-bridge');
CREATE TABLE matrix_event (
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
        );
INSERT INTO "matrix_event" VALUES('$s1','!room:example.org','@ada:example.org',1,'m.room.message','{"msgtype":"m.text","body":"hi"}','done',0,NULL,NULL,NULL,0);
INSERT INTO "matrix_event" VALUES('$e1','!room:example.org','@ada:example.org',2,'m.room.message','{"msgtype":"m.text","body":"yo"}','done',0,NULL,NULL,NULL,0);
CREATE TABLE message (
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
        );
INSERT INTO "message" VALUES('19:abc@thread.v2','','1700000000001',0,'$m1','!room:example.org','8:orgid:bob',1700000000001,'1700000000001','teams');
INSERT INTO "message" VALUES('19:abc@thread.v2','','1700000000002',0,'$s1','!room:example.org','8:orgid:ada',1700000000002,'1700000000002','matrix');
INSERT INTO "message" VALUES('19:abc@thread.v2','','1700000000005',0,'$e1','!room:example.org','8:orgid:ada',1700000000005,'1700000000005','matrix');
INSERT INTO "message" VALUES('19:ada_bob@unq.gbl.spaces','8:orgid:ada','1700000000003',0,'$d1','!dm:example.org','8:orgid:bob',1700000000003,'1700000000003','teams');
CREATE TABLE message_state (
            thread_id    TEXT NOT NULL,
            receiver     TEXT NOT NULL DEFAULT '',
            message_id   TEXT NOT NULL,
            edit_time    BIGINT,
            content_hash TEXT,
            deleted      BOOLEAN NOT NULL DEFAULT false,
            PRIMARY KEY (thread_id, receiver, message_id),
            FOREIGN KEY (thread_id, receiver) REFERENCES portal(thread_id, receiver)
                ON DELETE CASCADE ON UPDATE CASCADE
        );
INSERT INTO "message_state" VALUES('19:abc@thread.v2','','1700000000001',NULL,'abc',0);
INSERT INTO "message_state" VALUES('19:ada_bob@unq.gbl.spaces','8:orgid:ada','1700000000003',NULL,'def',0);
CREATE TABLE portal (
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
        );
INSERT INTO "portal" VALUES('19:abc@thread.v2','','!room:example.org','group','Engines',1,NULL,NULL,0,NULL,'1700000000001',NULL,NULL,NULL,NULL);
INSERT INTO "portal" VALUES('19:ada_bob@unq.gbl.spaces','8:orgid:ada','!dm:example.org','one_to_one','Bob Babbage',1,NULL,NULL,0,'8:orgid:bob','1700000000003',NULL,NULL,NULL,NULL);
INSERT INTO "portal" VALUES('19:ada_cy@unq.gbl.spaces','8:orgid:cy','!dm2:example.org','one_to_one','Ada Lovelace',1,NULL,NULL,0,'8:orgid:ada',NULL,NULL,NULL,NULL,NULL);
INSERT INTO "portal" VALUES('19:design@thread.tacv2','','!chan:example.org','channel','Design (Contoso)',1,'Design',NULL,0,NULL,NULL,NULL,NULL,'19:contoso@thread.tacv2','Contoso');
CREATE TABLE puppet (
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
        );
INSERT INTO "puppet" VALUES('8:orgid:bob','Bob Babbage','profile',1,NULL,0,0,NULL,NULL,NULL,NULL,'ff',1700000000000);
CREATE TABLE reaction (
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
        );
INSERT INTO "reaction" VALUES('19:abc@thread.v2','','1700000000001','8:orgid:ada','like','$r1','!room:example.org',0);
INSERT INTO "reaction" VALUES('19:ada_bob@unq.gbl.spaces','8:orgid:ada','1700000000003','8:orgid:ada','heart','$r2','!dm:example.org',0);
CREATE TABLE sent_message (
            client_message_id TEXT PRIMARY KEY,
            thread_id   TEXT NOT NULL,
            receiver    TEXT NOT NULL DEFAULT '',
            mxid        TEXT NOT NULL,
            mx_room     TEXT NOT NULL,
            message_id  TEXT,
            created_at  BIGINT NOT NULL
        );
INSERT INTO "sent_message" VALUES('123456789','19:abc@thread.v2','','$s1','!room:example.org','1700000000002',1700000000002);
INSERT INTO "sent_message" VALUES('223456789','19:ada_bob@unq.gbl.spaces','8:orgid:ada','$d2','!dm:example.org','1700000000004',1700000000004);
CREATE TABLE space (
            user_mxid TEXT NOT NULL,
            team_id   TEXT NOT NULL DEFAULT '',
            mxid      TEXT NOT NULL,
            name      TEXT,
            PRIMARY KEY (user_mxid, team_id)
        );
INSERT INTO "space" VALUES('@ada:example.org','','!space:example.org','Microsoft Teams');
CREATE TABLE "user" (
            mxid            TEXT PRIMARY KEY,
            mri             TEXT UNIQUE,
            credentials     TEXT,
            endpoint_id     TEXT,
            management_room TEXT
        );
INSERT INTO "user" VALUES('@ada:example.org','8:orgid:ada','{"refresh_token":"rt-ada"}','ep-1','!mgmt:example.org');
INSERT INTO "user" VALUES('@cy:example.org','8:orgid:cy','{"refresh_token":"rt-cy"}','ep-2',NULL);
CREATE TABLE user_portal (
            user_mxid TEXT NOT NULL,
            thread_id TEXT NOT NULL,
            receiver  TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (user_mxid, thread_id, receiver),
            FOREIGN KEY (user_mxid) REFERENCES "user"(mxid) ON DELETE CASCADE ON UPDATE CASCADE,
            FOREIGN KEY (thread_id, receiver) REFERENCES portal(thread_id, receiver)
                ON DELETE CASCADE ON UPDATE CASCADE
        );
INSERT INTO "user_portal" VALUES('@ada:example.org','19:abc@thread.v2','');
INSERT INTO "user_portal" VALUES('@ada:example.org','19:ada_bob@unq.gbl.spaces','8:orgid:ada');
INSERT INTO "user_portal" VALUES('@cy:example.org','19:ada_cy@unq.gbl.spaces','8:orgid:cy');
CREATE TABLE version (
                version INTEGER PRIMARY KEY
            );
INSERT INTO "version" VALUES(7);
CREATE INDEX sent_message_mxid_idx ON sent_message (mxid);
CREATE INDEX matrix_event_pending_idx ON matrix_event (status, room_id, seq);
CREATE INDEX reaction_mxid_idx ON reaction (mxid, mx_room);
COMMIT;
