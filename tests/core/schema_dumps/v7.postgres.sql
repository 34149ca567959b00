CREATE TABLE public.bridge_state_kv (
    key text NOT NULL,
    value text NOT NULL
);

CREATE TABLE public.database_owner (
    key integer DEFAULT 0 NOT NULL,
    owner text NOT NULL
);

CREATE TABLE public.matrix_event (
    event_id text NOT NULL,
    room_id text NOT NULL,
    sender text NOT NULL,
    seq bigint NOT NULL,
    event_type text NOT NULL,
    content text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    client_message_id text,
    error text,
    txn_seq bigint,
    received_at bigint DEFAULT 0 NOT NULL
);

CREATE TABLE public.message (
    thread_id text NOT NULL,
    receiver text DEFAULT ''::text NOT NULL,
    message_id text NOT NULL,
    part integer DEFAULT 0 NOT NULL,
    mxid text NOT NULL,
    mx_room text NOT NULL,
    sender_mri text,
    "timestamp" bigint NOT NULL,
    version text,
    origin text DEFAULT 'teams'::text NOT NULL
);

CREATE TABLE public.message_state (
    thread_id text NOT NULL,
    receiver text DEFAULT ''::text NOT NULL,
    message_id text NOT NULL,
    edit_time bigint,
    content_hash text,
    deleted boolean DEFAULT false NOT NULL
);

CREATE TABLE public.portal (
    thread_id text NOT NULL,
    receiver text DEFAULT ''::text NOT NULL,
    mxid text,
    kind text DEFAULT 'group'::text NOT NULL,
    name text,
    name_set boolean DEFAULT false NOT NULL,
    topic text,
    avatar_url text,
    encrypted boolean DEFAULT false NOT NULL,
    other_user_mri text,
    last_message_id text,
    relay_user_id text,
    avatar_source text,
    team_id text,
    team_name text
);

CREATE TABLE public.puppet (
    mri text NOT NULL,
    name text,
    name_source text,
    name_set boolean DEFAULT false NOT NULL,
    avatar_url text,
    avatar_set boolean DEFAULT false NOT NULL,
    is_registered boolean DEFAULT false NOT NULL,
    custom_mxid text,
    access_token text,
    next_batch text,
    base_url text,
    avatar_hash text,
    avatar_checked_at bigint DEFAULT 0 NOT NULL
);

CREATE TABLE public.reaction (
    thread_id text NOT NULL,
    receiver text DEFAULT ''::text NOT NULL,
    message_id text NOT NULL,
    sender_mri text NOT NULL,
    emotion_key text NOT NULL,
    mxid text NOT NULL,
    mx_room text NOT NULL,
    sent_at bigint DEFAULT 0 NOT NULL
);

CREATE TABLE public.sent_message (
    client_message_id text NOT NULL,
    thread_id text NOT NULL,
    receiver text DEFAULT ''::text NOT NULL,
    mxid text NOT NULL,
    mx_room text NOT NULL,
    message_id text,
    created_at bigint NOT NULL
);

CREATE TABLE public.space (
    user_mxid text NOT NULL,
    team_id text DEFAULT ''::text NOT NULL,
    mxid text NOT NULL,
    name text
);

CREATE TABLE public."user" (
    mxid text NOT NULL,
    mri text,
    credentials text,
    endpoint_id text,
    management_room text
);

CREATE TABLE public.user_portal (
    user_mxid text NOT NULL,
    thread_id text NOT NULL,
    receiver text DEFAULT ''::text NOT NULL
);

CREATE TABLE public.version (
    version integer NOT NULL
);

INSERT INTO public.bridge_state_kv VALUES ('last_txn', '17');

INSERT INTO public.database_owner VALUES (0, 'teams-bridge');

INSERT INTO public.matrix_event VALUES ('$s1', '!room:example.org', '@ada:example.org', 1, 'm.room.message', '{"msgtype":"m.text","body":"hi"}', 'done', 0, NULL, NULL, NULL, 0);
INSERT INTO public.matrix_event VALUES ('$e1', '!room:example.org', '@ada:example.org', 2, 'm.room.message', '{"msgtype":"m.text","body":"yo"}', 'done', 0, NULL, NULL, NULL, 0);

INSERT INTO public.message VALUES ('19:abc@thread.v2', '', '1700000000001', 0, '$m1', '!room:example.org', '8:orgid:bob', 1700000000001, '1700000000001', 'teams');
INSERT INTO public.message VALUES ('19:ada_bob@unq.gbl.spaces', '8:orgid:ada', '1700000000003', 0, '$d1', '!dm:example.org', '8:orgid:bob', 1700000000003, '1700000000003', 'teams');
INSERT INTO public.message VALUES ('19:abc@thread.v2', '', '1700000000002', 0, '$s1', '!room:example.org', '8:orgid:ada', 1700000000002, '1700000000002', 'matrix');
INSERT INTO public.message VALUES ('19:abc@thread.v2', '', '1700000000005', 0, '$e1', '!room:example.org', '8:orgid:ada', 1700000000005, '1700000000005', 'matrix');

INSERT INTO public.message_state VALUES ('19:abc@thread.v2', '', '1700000000001', NULL, 'abc', false);
INSERT INTO public.message_state VALUES ('19:ada_bob@unq.gbl.spaces', '8:orgid:ada', '1700000000003', NULL, 'def', false);

INSERT INTO public.portal VALUES ('19:abc@thread.v2', '', '!room:example.org', 'group', 'Engines', true, NULL, NULL, false, NULL, '1700000000001', NULL, NULL, NULL, NULL);
INSERT INTO public.portal VALUES ('19:ada_bob@unq.gbl.spaces', '8:orgid:ada', '!dm:example.org', 'one_to_one', 'Bob Babbage', true, NULL, NULL, false, '8:orgid:bob', '1700000000003', NULL, NULL, NULL, NULL);
INSERT INTO public.portal VALUES ('19:ada_cy@unq.gbl.spaces', '8:orgid:cy', '!dm2:example.org', 'one_to_one', 'Ada Lovelace', true, NULL, NULL, false, '8:orgid:ada', NULL, NULL, NULL, NULL, NULL);
INSERT INTO public.portal VALUES ('19:design@thread.tacv2', '', '!chan:example.org', 'channel', 'Design (Contoso)', true, 'Design', NULL, false, NULL, NULL, NULL, NULL, '19:contoso@thread.tacv2', 'Contoso');

INSERT INTO public.puppet VALUES ('8:orgid:bob', 'Bob Babbage', 'profile', true, NULL, false, false, NULL, NULL, NULL, NULL, 'ff', 1700000000000);

INSERT INTO public.reaction VALUES ('19:abc@thread.v2', '', '1700000000001', '8:orgid:ada', 'like', '$r1', '!room:example.org', 0);
INSERT INTO public.reaction VALUES ('19:ada_bob@unq.gbl.spaces', '8:orgid:ada', '1700000000003', '8:orgid:ada', 'heart', '$r2', '!dm:example.org', 0);

INSERT INTO public.sent_message VALUES ('123456789', '19:abc@thread.v2', '', '$s1', '!room:example.org', '1700000000002', 1700000000002);
INSERT INTO public.sent_message VALUES ('223456789', '19:ada_bob@unq.gbl.spaces', '8:orgid:ada', '$d2', '!dm:example.org', '1700000000004', 1700000000004);

INSERT INTO public.space VALUES ('@ada:example.org', '', '!space:example.org', 'Microsoft Teams');

INSERT INTO public."user" VALUES ('@ada:example.org', '8:orgid:ada', '{"refresh_token":"rt-ada"}', 'ep-1', '!mgmt:example.org');
INSERT INTO public."user" VALUES ('@cy:example.org', '8:orgid:cy', '{"refresh_token":"rt-cy"}', 'ep-2', NULL);

INSERT INTO public.user_portal VALUES ('@ada:example.org', '19:abc@thread.v2', '');
INSERT INTO public.user_portal VALUES ('@ada:example.org', '19:ada_bob@unq.gbl.spaces', '8:orgid:ada');
INSERT INTO public.user_portal VALUES ('@cy:example.org', '19:ada_cy@unq.gbl.spaces', '8:orgid:cy');

INSERT INTO public.version VALUES (7);

ALTER TABLE ONLY public.bridge_state_kv
    ADD CONSTRAINT bridge_state_kv_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.database_owner
    ADD CONSTRAINT database_owner_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.matrix_event
    ADD CONSTRAINT matrix_event_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_mxid_mx_room_key UNIQUE (mxid, mx_room);

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_pkey PRIMARY KEY (thread_id, receiver, message_id, part);

ALTER TABLE ONLY public.message_state
    ADD CONSTRAINT message_state_pkey PRIMARY KEY (thread_id, receiver, message_id);

ALTER TABLE ONLY public.portal
    ADD CONSTRAINT portal_mxid_key UNIQUE (mxid);

ALTER TABLE ONLY public.portal
    ADD CONSTRAINT portal_pkey PRIMARY KEY (thread_id, receiver);

ALTER TABLE ONLY public.puppet
    ADD CONSTRAINT puppet_pkey PRIMARY KEY (mri);

ALTER TABLE ONLY public.reaction
    ADD CONSTRAINT reaction_pkey PRIMARY KEY (thread_id, receiver, message_id, sender_mri, emotion_key);

ALTER TABLE ONLY public.sent_message
    ADD CONSTRAINT sent_message_pkey PRIMARY KEY (client_message_id);

ALTER TABLE ONLY public.space
    ADD CONSTRAINT space_pkey PRIMARY KEY (user_mxid, team_id);

ALTER TABLE ONLY public."user"
    ADD CONSTRAINT user_mri_key UNIQUE (mri);

ALTER TABLE ONLY public."user"
    ADD CONSTRAINT user_pkey PRIMARY KEY (mxid);

ALTER TABLE ONLY public.user_portal
    ADD CONSTRAINT user_portal_pkey PRIMARY KEY (user_mxid, thread_id, receiver);

ALTER TABLE ONLY public.version
    ADD CONSTRAINT version_pkey PRIMARY KEY (version);

CREATE INDEX matrix_event_pending_idx ON public.matrix_event USING btree (status, room_id, seq);

CREATE INDEX reaction_mxid_idx ON public.reaction USING btree (mxid, mx_room);

CREATE INDEX sent_message_mxid_idx ON public.sent_message USING btree (mxid);

ALTER TABLE ONLY public.message_state
    ADD CONSTRAINT message_state_thread_id_receiver_fkey FOREIGN KEY (thread_id, receiver) REFERENCES public.portal(thread_id, receiver) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_thread_id_receiver_fkey FOREIGN KEY (thread_id, receiver) REFERENCES public.portal(thread_id, receiver) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.reaction
    ADD CONSTRAINT reaction_thread_id_receiver_fkey FOREIGN KEY (thread_id, receiver) REFERENCES public.portal(thread_id, receiver) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.user_portal
    ADD CONSTRAINT user_portal_thread_id_receiver_fkey FOREIGN KEY (thread_id, receiver) REFERENCES public.portal(thread_id, receiver) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.user_portal
    ADD CONSTRAINT user_portal_user_mxid_fkey FOREIGN KEY (user_mxid) REFERENCES public."user"(mxid) ON UPDATE CASCADE ON DELETE CASCADE;
