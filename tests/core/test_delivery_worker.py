"""The Matrix -> Teams worker of a room: handlers report what they did and the worker records
it once (the mapping, the event's status, a message send status for the room, a notice on
failure, a checkpoint). A room's queue never stays stuck on one event: an event whose
handling raises fails for good after a few counted attempts (the count is stored), is
reported to the user, and the events after it are delivered. Database and network trouble
is not counted. Encrypted events are decrypted by the worker, or fail with a reason."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from types import SimpleNamespace
from typing import Any

import pytest
from mautrix.errors import SessionNotFound
from mautrix.types import Event
from mautrix.util.async_db import Database, Scheme

from teams_bridge import db as dbm
from teams_bridge.db import matrix_event
from teams_bridge.db.matrix_event import DONE, FAILED, PENDING
from teams_bridge.delivery.intake import DOUBLE_PUPPET_SOURCE_KEY, Intake, queue_row
from teams_bridge.delivery.results import Done, Result, Skipped
from teams_bridge.delivery.worker import (
    KEY_WAIT,
    KEY_WAIT_FIRST,
    MAX_UNEXPECTED_ATTEMPTS,
    NO_ENCRYPTION,
    NOT_ENCRYPTED,
    DeliveryWorker,
    Services,
    Untried,
    handler_kind,
    preclaim,
    store_events,
    store_transaction,
)
from teams_bridge.disruption import Disruptions
from teams_bridge.portal.writer import RoomWriter
from teams_bridge.teams import TeamsError

ROOM = "!room:localhost"
CHAT = "19:chat@thread.v2"
ADA = "@ada:localhost"
ADA_MRI = "8:orgid:ada"
VALID_STATUSES = {"SUCCESS", "PENDING", "FAIL_RETRIABLE", "FAIL_PERMANENT"}


class FakeChat:
    """The sender's Teams client: what was posted, and what the chat holds."""

    def __init__(self) -> None:
        self.messages: list[SimpleNamespace] = []
        self.lookups = 0

    async def list_messages(self, thread_id: str, limit: int = 200) -> list[SimpleNamespace]:
        assert thread_id == CHAT
        self.lookups += 1
        return list(self.messages)

    def post(self, client_message_id: str) -> str:
        message_id = str(1_700_000_000_000 + len(self.messages))
        self.messages.append(SimpleNamespace(id=message_id, client_message_id=client_message_id))
        return message_id


class Room:
    """A portal as its worker sees it: its handlers are scripted, and what the room is told
    is recorded."""

    def __init__(
        self,
        *,
        always: dict[str, BaseException] | None = None,
        once: dict[str, list[BaseException]] | None = None,
        results: dict[str, Result] | None = None,
        e2ee: Any = None,
        status_events: bool = True,
        require_encryption: bool = False,
    ) -> None:
        self.mxid = ROOM
        self.thread_id = CHAT
        self.receiver = ""
        self.log = logging.getLogger("test.delivery")
        self.told: list[tuple[str, Any]] = []
        bot = SimpleNamespace(send_message_event=self._told)
        self.writer = RoomWriter(
            room_id=lambda: ROOM,
            bot=bot,  # type: ignore[arg-type]
            room_voice=lambda: bot,  # type: ignore[arg-type,return-value]
            ghost=None,  # type: ignore[arg-type]
            encrypted=lambda: False,
            e2ee=lambda: None,
        )
        self.always = always or {}  # raised on every try
        self.once = once or {}  # raised one after the other, then the delivery works
        self.results = results or {}
        self.handled: list[tuple[str, str, dict[str, Any]]] = []  # (handler, event, event)
        self.chat = FakeChat()
        self.user = SimpleNamespace(
            mxid=ADA,
            mri=ADA_MRI,
            is_whitelisted=True,
            credentials=object(),
            client=self.chat,
            display_name="Ada",
        )
        self.checkpoints: list[Any] = []
        self.echoes_expected: list[tuple[str, str]] = []
        self.posts_expected: list[tuple[str, str]] = []  # (clientmessageid, sender)
        self.posts_ended: list[tuple[str, bool]] = []  # (clientmessageid, stored)
        # Teams message id -> what the echo held for its post adds to the mapping's write.
        self.held_echoes: dict[str, list[Any]] = {}
        self._recording: asyncio.Future[None] | None = None
        rule = Intake(
            bot_mxid="@bot:localhost",
            is_ghost=lambda user_id: user_id.startswith("@teams_"),
            command_prefix="!teams",
            bridge_name="teams-bridge",
        )

        async def get_user(user_id: str) -> Any:
            return self.user if user_id == ADA else None

        async def send_checkpoint(checkpoint: Any) -> None:
            self.checkpoints.append(checkpoint)

        services = Services(
            intake=rule,
            disruptions=SimpleNamespace(must_check=lambda *_: False),  # type: ignore[arg-type]
            get_user=get_user,
            timeline_page=None,  # type: ignore[arg-type]
            e2ee=lambda: e2ee,
            send_checkpoint=send_checkpoint,
            status_events=status_events,
            require_encryption=require_encryption,
        )
        self.services = services
        self.delivery = DeliveryWorker(
            self,
            services,
            {
                "text": self.deliver_text,
                "media": self.deliver_media,
                "edit": self.deliver_edit,
                "reaction": self.deliver_reaction,
                "redaction": self.deliver_redaction,
            },
        )

    def expect_echo(self, message_id: str, client_message_id: str) -> None:
        self.echoes_expected.append((message_id, client_message_id))

    def expect_post(self, client_message_id: str, sender_mri: str) -> None:
        self.posts_expected.append((client_message_id, sender_mri))

    async def records_settled(self) -> None:
        # As the portal's: the newest record queued, and so every one before it.
        while self._recording is not None and not self._recording.done():
            dbm.RecordWriter.current.flush()
            await asyncio.wait({self._recording})

    def record_later(self, record: dbm.Record) -> asyncio.Future[None]:
        self._recording = dbm.RecordWriter.current.add(record)
        return self._recording

    def held_echo_queries(self, client_message_id: str, message_id: str) -> list[Any] | None:
        if (client_message_id, ADA_MRI) not in self.posts_expected:
            return None  # (as the portal: nothing is held for a post it was not told of)
        return self.held_echoes.get(message_id)

    def end_post(self, client_message_id: str, *, stored: bool) -> None:
        self.posts_ended.append((client_message_id, stored))

    async def _told(self, room_id, event_type, content, **_: Any) -> str:
        if str(event_type) == "m.room.message":
            self.told.append(("notice", content.body))
            return "$notice"
        self.told.append((str(event_type), content))
        return "$status"

    async def _handle(self, kind: str, row: dbm.MatrixEvent, raw: dict[str, Any]) -> Result:
        self.handled.append((kind, row.event_id, raw))
        if row.event_id in self.always:
            raise self.always[row.event_id]
        if self.once.get(row.event_id):
            raise self.once[row.event_id].pop(0)
        return self.results.get(row.event_id, Done())

    async def deliver_text(self, sender, row, raw) -> Result:
        if row.event_id.startswith("$post"):
            return await self.delivery.post(sender, row, lambda cid: self._post(row, cid))
        return await self._handle("text", row, raw)

    async def _post(self, row: dbm.MatrixEvent, client_message_id: str) -> str:
        # Teams takes the message, and then the answer is lost once.
        message_id = self.chat.post(client_message_id)
        if self.once.get(row.event_id):
            raise self.once[row.event_id].pop(0)
        return message_id

    async def deliver_media(self, sender, row, raw) -> Result:
        return await self._handle("media", row, raw)

    async def deliver_edit(self, sender, row, raw) -> Result:
        return await self._handle("edit", row, raw)

    async def deliver_reaction(self, sender, row, raw) -> Result:
        return await self._handle("reaction", row, raw)

    async def deliver_redaction(self, sender, row, raw) -> Result:
        return await self._handle("redaction", row, raw)

    def statuses(self, event_id: str) -> list[dict[str, Any]]:
        found = [
            content
            for kind, content in self.told
            if kind == "com.beeper.message_send_status"
            and content["m.relates_to"]["event_id"] == event_id
        ]
        for status in found:
            assert status["status"] in VALID_STATUSES
        return found

    def notices(self) -> list[str]:
        return [body for kind, body in self.told if kind == "notice"]


def _raw(event_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> dict:
    return {
        "type": event_type,
        "room_id": ROOM,
        "sender": ADA,
        "event_id": event_id,
        "origin_server_ts": 1,
        "content": content,
    }


async def _store(
    event_id: str,
    seq: int,
    content: dict[str, Any],
    attempts: int = 0,
    event_type: str = "m.room.message",
) -> None:
    raw = _raw(event_id, content, event_type)
    row = dbm.MatrixEvent(
        event_id, ROOM, ADA, seq, event_type, json.dumps(raw), PENDING, attempts, None, None,
    )  # fmt: skip
    await dbm.MatrixEvent.insert_many([row])


async def _run_until_finished(room: Room, *event_ids: str) -> None:
    """Run the worker until every one of the events is done or failed, and what the room
    is told about them has been sent."""
    await dbm.Portal(
        CHAT, "", ROOM, "group", None, False, None, None, False, None, None, None
    ).insert()
    room.delivery.wake()
    try:
        async with asyncio.timeout(30):
            while True:
                rows = [await dbm.MatrixEvent.get(e) for e in event_ids]
                # A row is finished in the database before the worker, resuming, queues
                # what the room is told: wait for the worker to have gone idle as well.
                if all(r is not None and r.status != PENDING for r in rows) and (
                    room.delivery.is_idle()
                ):
                    break
                await asyncio.sleep(0.02)
            await room.delivery.reports_sent()
    finally:
        for task in (room.delivery._task, room.delivery._reporter):
            if task is not None:
                task.cancel()


TEXT = {"msgtype": "m.text", "body": "hi"}
EDIT = {
    "msgtype": "m.text",
    "body": "* hello",
    "m.new_content": {"msgtype": "m.text", "body": "hello"},
    "m.relates_to": {"rel_type": "m.replace", "event_id": "$post"},
}
REACTION = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$post", "key": "👍"}}


async def test_an_event_that_keeps_raising_fails_alone(database: Database):
    await _store("$poison", 1, TEXT)
    await _store("$next", 2, TEXT)
    room = Room(always={"$poison": TypeError("unhashable type: 'list'")})
    await _run_until_finished(room, "$poison", "$next")
    poison = await dbm.MatrixEvent.get("$poison")
    assert poison.status == FAILED
    assert poison.attempts == MAX_UNEXPECTED_ATTEMPTS
    assert poison.error == "internal error (TypeError)"
    [status] = room.statuses("$poison")
    assert status["status"] == "FAIL_PERMANENT"
    assert status["error"] == "internal error (TypeError)" and status["is_certain"] is True
    assert room.notices() == [
        "Your message could not be delivered to Teams: internal error (TypeError)"
    ]
    assert (await dbm.MatrixEvent.get("$next")).status == DONE
    assert [c.status.value for c in room.checkpoints] == ["PERM_FAILURE", "SUCCESS"]


async def test_the_count_survives_a_restart(database: Database):
    # Two attempts were counted before a restart: the next error is the last.
    await _store("$poison", 1, TEXT, attempts=2)
    await _store("$next", 2, TEXT)
    room = Room(always={"$poison": KeyError("x")})
    await _run_until_finished(room, "$poison", "$next")
    poison = await dbm.MatrixEvent.get("$poison")
    assert (poison.status, poison.attempts) == (FAILED, 3)


async def test_database_and_network_trouble_is_not_counted(database: Database):
    await _store("$flaky", 1, TEXT)
    room = Room(once={"$flaky": [ConnectionResetError(), sqlite3.OperationalError("locked")]})
    await _run_until_finished(room, "$flaky")
    flaky = await dbm.MatrixEvent.get("$flaky")
    assert (flaky.status, flaky.attempts) == (DONE, 0)
    assert [s["status"] for s in room.statuses("$flaky")] == ["SUCCESS"]


async def test_content_of_the_wrong_type_fails_at_once(database: Database):
    await _store("$sticker", 1, {"msgtype": ["m.text"], "body": "x"}, event_type="m.sticker")
    await _store("$next", 2, TEXT)
    room = Room()
    await _run_until_finished(room, "$sticker", "$next")
    sticker = await dbm.MatrixEvent.get("$sticker")
    assert sticker.status == FAILED and "'msgtype' is not a string" in sticker.error
    [status] = room.statuses("$sticker")
    assert status["status"] == "FAIL_PERMANENT" and "msgtype" in status["error"]
    assert [e for _, e, _ in room.handled] == ["$next"]


async def test_each_outcome_is_recorded_once_and_only_failures_are_told(database: Database):
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}
    await _store("$post", 1, TEXT)
    await _store("$reaction", 2, reaction, event_type="m.reaction")
    await _store("$redaction", 3, {"redacts": "$x"}, event_type="m.room.redaction")
    await _store("$edit", 4, {**TEXT, "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
    await _store("$image", 5, {"msgtype": "m.image", "body": "a.png", "url": "mxc://a/b"})
    await _store("$refused", 6, TEXT)
    room = Room(
        results={"$edit": Skipped("the edited message was not bridged to Teams")},
        always={"$refused": TeamsError(403, "Forbidden", "not a member")},
    )
    events = ["$post", "$reaction", "$redaction", "$edit", "$image", "$refused"]
    await _run_until_finished(room, *events)
    # Each kind went to its own handler, in order.
    assert [(kind, e) for kind, e, _ in room.handled] == [
        ("reaction", "$reaction"),
        ("redaction", "$redaction"),
        ("edit", "$edit"),
        ("media", "$image"),
        ("text", "$refused"),
    ]
    # A new message is mapped, with the Teams message id its echo will carry.
    rows = {e: await dbm.MatrixEvent.get(e) for e in events}
    [posted] = room.chat.messages
    mapping = await dbm.Message.get_by_mxid("$post", ROOM)
    assert (mapping.message_id, mapping.sender_mri, mapping.thread_id) == (
        posted.id,
        ADA_MRI,
        CHAT,
    )
    sent = await dbm.SentMessage.get(rows["$post"].client_message_id)
    assert sent.message_id == posted.id and sent.mxid == "$post"
    assert mapping.timestamp == sent.created_at
    assert {e: rows[e].status for e in events} == {
        "$post": DONE,
        "$reaction": DONE,
        "$redaction": DONE,
        "$edit": FAILED,
        "$image": DONE,
        "$refused": FAILED,
    }
    assert rows["$edit"].error == "the edited message was not bridged to Teams"
    assert rows["$refused"].error == "Teams refused the message (HTTP 403 Forbidden: not a member)"
    # Successes get SUCCESS; a skip is not reported; a failure gets its status and a notice.
    for event_id in ("$post", "$reaction", "$redaction", "$image"):
        [status] = room.statuses(event_id)
        assert status == {
            "m.relates_to": {"rel_type": "m.reference", "event_id": event_id},
            "network": "teams",
            "status": "SUCCESS",
        }
    assert room.statuses("$edit") == []
    [refused] = room.statuses("$refused")
    assert refused["status"] == "FAIL_PERMANENT"
    assert refused["reason"] == "m.foreign_network_error"
    assert refused["message"] == rows["$refused"].error
    assert room.notices() == [f"Your message could not be delivered to Teams: {refused['error']}"]
    checkpoints = {c.event_id: (c.step.value, c.status.value) for c in room.checkpoints}
    assert checkpoints == {
        "$post": ("REMOTE", "SUCCESS"),
        "$reaction": ("REMOTE", "SUCCESS"),
        "$redaction": ("REMOTE", "SUCCESS"),
        "$image": ("REMOTE", "SUCCESS"),
        "$refused": ("REMOTE", "PERM_FAILURE"),
    }


async def test_without_status_events_only_failures_are_told_by_a_notice(database: Database):
    await _store("$post", 1, TEXT)
    await _store("$refused", 2, TEXT)
    room = Room(always={"$refused": TeamsError(403, "Forbidden", "x")}, status_events=False)
    await _run_until_finished(room, "$post", "$refused")
    assert [kind for kind, _ in room.told] == ["notice"]
    assert room.statuses("$post") == room.statuses("$refused") == []
    assert {c.event_id: c.status.value for c in room.checkpoints} == {
        "$post": "SUCCESS",
        "$refused": "PERM_FAILURE",
    }


async def test_a_send_that_may_have_reached_teams_is_looked_up_not_repeated(database: Database):
    # Teams took the message, but the answer was lost: the retry finds it by its
    # clientmessageid instead of posting it again.
    await _store("$post", 1, TEXT)
    room = Room(once={"$post": [TimeoutError()]})
    await _run_until_finished(room, "$post")
    [posted] = room.chat.messages
    row = await dbm.MatrixEvent.get("$post")
    assert (row.status, row.attempts) == (DONE, 1)
    assert posted.client_message_id == row.client_message_id
    assert (await dbm.Message.get_by_mxid("$post", ROOM)).message_id == posted.id
    assert [s["status"] for s in room.statuses("$post")] == ["SUCCESS"]
    # Mapped: the portal is told to expect the echo of exactly that post.
    assert room.echoes_expected == [(posted.id, posted.client_message_id)]
    assert room.posts_ended == [(posted.client_message_id, False)]


async def test_an_echo_that_came_before_the_mapping_is_stored_with_it(database: Database):
    # The portal held the post's echo: its version goes into the mapping's write, and the
    # echo is not expected again.
    await _store("$post", 1, TEXT)
    room = Room()
    first_id = str(1_700_000_000_000)
    state = dbm.MessageState(CHAT, "", first_id, 5, "digest", False)
    room.held_echoes[first_id] = [state.insert_if_absent_query()]
    await _run_until_finished(room, "$post")
    [posted] = room.chat.messages
    assert posted.id == first_id
    assert room.posts_expected == [(posted.client_message_id, ADA_MRI)]
    stored = await dbm.MessageState.get(CHAT, "", first_id)
    assert (stored.edit_time, stored.content_hash) == (5, "digest")
    assert (await dbm.Message.get_by_mxid("$post", ROOM)).message_id == first_id
    assert room.echoes_expected == []
    assert room.posts_ended == [(posted.client_message_id, True)]


async def test_a_post_given_up_releases_what_was_held_for_it(database: Database):
    await _store("$post", 1, TEXT)
    room = Room(once={"$post": [TeamsError(403, "Forbidden", "not a member")]})
    await _run_until_finished(room, "$post")
    row = await dbm.MatrixEvent.get("$post")
    assert row.status == FAILED
    assert room.posts_ended == [(row.client_message_id, False)]


def _queued(event_id: str, seq: int, content: dict[str, Any], event_type="m.room.message"):
    raw = _raw(event_id, content, event_type)
    return raw, queue_row(raw, seq, None, 1_700_000_000_123)


async def _sent_records(event_id: str) -> list[dbm.SentMessage]:
    rows = await dbm.SentMessage.db.fetch(
        "SELECT client_message_id FROM sent_message WHERE mxid=$1", event_id
    )
    return [await dbm.SentMessage.get(r["client_message_id"]) for r in rows]


async def test_a_plain_message_is_stored_with_its_first_attempt_and_posted_with_no_more(
    database: Database,
):
    # The endpoint stores the attempt with the event: the worker neither looks for it in
    # the chat nor writes anything before the post.
    room = Room()
    raw, row = _queued("$post", 1, TEXT)
    [stored] = await store_events([(raw, row, room)], room.services.untried)
    assert stored is row
    [claim] = await _sent_records("$post")
    assert (claim.thread_id, claim.mx_room, claim.message_id) == (CHAT, ROOM, None)
    in_db = await dbm.MatrixEvent.get("$post")
    assert (in_db.client_message_id, in_db.attempts) == (claim.client_message_id, 1)
    assert claim.client_message_id in room.services.untried
    await _run_until_finished(room, "$post")
    [posted] = room.chat.messages
    assert posted.client_message_id == claim.client_message_id
    assert room.chat.lookups == 0
    done = await dbm.MatrixEvent.get("$post")
    assert (done.status, done.attempts) == (DONE, 1)  # no second attempt was stored
    mapping = await dbm.Message.get_by_mxid("$post", ROOM)
    assert (mapping.message_id, mapping.timestamp) == (posted.id, row.received_at)
    assert (await dbm.SentMessage.get(posted.client_message_id)).message_id == posted.id
    assert room.posts_expected == [(posted.client_message_id, ADA_MRI)]
    assert len(room.services.untried) == 0


async def test_after_a_restart_a_stored_first_attempt_is_looked_up_before_it_is_posted(
    database: Database,
):
    # The process that stored the attempt is gone: it may have posted it. Not found in the
    # chat, it is posted with the same clientmessageid; found, it is only mapped.
    first = Room()
    for event_id, seq in (("$post", 1), ("$post-sent", 2)):
        raw, row = _queued(event_id, seq, TEXT)
        await store_events([(raw, row, first)], first.services.untried)
    [claim] = await _sent_records("$post")
    [claim_sent] = await _sent_records("$post-sent")
    room = Room()  # a new process: nothing is known untried
    already = room.chat.post(claim_sent.client_message_id)
    await _run_until_finished(room, "$post", "$post-sent")
    assert room.chat.lookups == 2
    assert [m.client_message_id for m in room.chat.messages] == [
        claim_sent.client_message_id,
        claim.client_message_id,
    ]
    assert (await dbm.MatrixEvent.get("$post")).attempts == 2
    assert (await dbm.Message.get_by_mxid("$post-sent", ROOM)).message_id == already


async def test_a_message_stored_with_its_attempt_that_keeps_raising_gets_as_many_tries(
    database: Database,
):
    room = Room(always={"$poison": TypeError("unhashable type: 'list'")})
    raw, row = _queued("$poison", 1, TEXT)
    await store_events([(raw, row, room)], room.services.untried)
    await _run_until_finished(room, "$poison")
    poison = await dbm.MatrixEvent.get("$poison")
    assert (poison.status, poison.attempts) == (FAILED, MAX_UNEXPECTED_ATTEMPTS)
    tries = [event_id for _, event_id, _ in room.handled if event_id == "$poison"]
    assert len(tries) == MAX_UNEXPECTED_ATTEMPTS
    assert len(room.services.untried) == 0


async def test_an_event_stored_before_keeps_its_attempt(database: Database):
    room = Room()
    raw, row = _queued("$post", 1, TEXT)
    await store_events([(raw, row, room)], room.services.untried)
    [claim] = await _sent_records("$post")
    raw, again = _queued("$post", 2, TEXT)  # the homeserver sent the transaction again
    assert await store_events([(raw, again, room)], room.services.untried) == []
    assert [c.client_message_id for c in await _sent_records("$post")] == [claim.client_message_id]
    assert (await dbm.MatrixEvent.get("$post")).client_message_id == claim.client_message_id
    assert list(room.services.untried._ids) == [claim.client_message_id]


async def test_a_transaction_of_several_events_claims_only_its_plain_messages(database: Database):
    room = Room()
    entries = [
        (*_queued("$text", 1, TEXT), room),
        (*_queued("$edit", 2, EDIT), room),
        (*_queued("$image", 3, {"msgtype": "m.image", "body": "a.png", "url": "mxc://a/b"}), room),
        (*_queued("$react", 4, REACTION, "m.reaction"), room),
        (*_queued("$enc", 5, ENCRYPTED_CONTENT, "m.room.encrypted"), room),
    ]
    stored = await store_events(entries, room.services.untried)
    assert [r.event_id for r in stored] == ["$text", "$edit", "$image", "$react", "$enc"]
    for event_id in ("$edit", "$image", "$react", "$enc"):
        assert await _sent_records(event_id) == []
        assert (await dbm.MatrixEvent.get(event_id)).attempts == 0
    [claim] = await _sent_records("$text")
    assert list(room.services.untried._ids) == [claim.client_message_id]


async def test_a_transaction_sent_again_with_more_stores_only_the_new_in_one_statement(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    room = Room()
    first = [(*_queued("$one", 1, TEXT), room), (*_queued("$two", 2, EDIT), room)]
    await store_events(first, room.services.untried)
    [one_claim] = await _sent_records("$one")
    statements: list[str] = []
    fetch = matrix_event.fetch

    async def counted(db: Database, query: str, *args: Any) -> list[Any]:
        statements.append(query)
        return await fetch(db, query, *args)

    monkeypatch.setattr(matrix_event, "fetch", counted)
    # Resent, with newer events behind: only those are stored, in order, with their claims.
    again = [
        (*_queued("$one", 1, TEXT), room),
        (*_queued("$three", 3, TEXT), room),
        (*_queued("$two", 2, EDIT), room),
        (*_queued("$four", 4, TEXT), room),
    ]
    stored = await store_events(again, room.services.untried)
    assert [r.event_id for r in stored] == ["$three", "$four"]
    assert [c.client_message_id for c in await _sent_records("$one")] == [
        one_claim.client_message_id
    ]
    assert (await dbm.MatrixEvent.get("$one")).client_message_id == one_claim.client_message_id
    claims = {e: (await _sent_records(e))[0].client_message_id for e in ("$three", "$four")}
    for event_id, client_message_id in claims.items():
        assert (await dbm.MatrixEvent.get(event_id)).client_message_id == client_message_id
    assert set(room.services.untried._ids) == {one_claim.client_message_id, *claims.values()}
    if database.scheme == Scheme.POSTGRES:
        assert len(statements) == 1  # the whole transaction in one statement


async def test_a_store_that_fails_leaves_nothing_untried(database: Database):
    room = Room()
    raw, row = _queued("$post", 1, TEXT)
    row.room_id = None  # type: ignore[assignment]  (refused by the database: NOT NULL)
    with pytest.raises(Exception):  # noqa: B017  (asyncpg and sqlite3 raise their own)
        await store_events([(raw, row, room)], room.services.untried)
    assert len(room.services.untried) == 0
    assert await dbm.MatrixEvent.get("$post") is None
    assert await _sent_records("$post") == []


def test_only_a_plain_message_gets_its_attempt_at_once():
    for content, event_type in (
        (EDIT, "m.room.message"),
        ({"msgtype": "m.file", "body": "f", "url": "mxc://a/b"}, "m.room.message"),
        (TEXT, "m.sticker"),
        (REACTION, "m.reaction"),
        (ENCRYPTED_CONTENT, "m.room.encrypted"),
    ):
        raw, row = _queued("$x", 1, content, event_type)
        assert preclaim(raw, row, CHAT, "") is None
        assert (row.client_message_id, row.attempts) == (None, 0)
    for msgtype in ("m.text", "m.notice", "m.emote"):
        raw, row = _queued("$x", 1, {"msgtype": msgtype, "body": "hi"})
        claim = preclaim(raw, row, CHAT, "8:orgid:me")
        assert claim is not None
        assert (row.client_message_id, row.attempts) == (claim.client_message_id, 1)
        assert (claim.receiver, claim.mxid, claim.created_at) == (
            "8:orgid:me",
            "$x",
            1_700_000_000_123,
        )


def test_untried_ids_are_bounded_and_taken_once(monkeypatch):
    monkeypatch.setattr(Untried, "LIMIT", 3)
    untried = Untried()
    for n in range(5):
        untried.add(str(n))
    assert list(untried._ids) == ["2", "3", "4"]
    assert untried.take("3") and not untried.take("3")
    untried.discard("4")
    untried.discard(None)
    assert list(untried._ids) == ["2"]


ENCRYPTED_CONTENT = {
    "algorithm": "m.megolm.v1.aes-sha2",
    "ciphertext": "AwgAEnAC",
    "session_id": "session",
    "sender_key": "senderkey",
    "device_id": "ADADEVICE",
}


async def test_an_encrypted_message_fails_with_a_reason_when_encryption_is_off(
    database: Database,
):
    await _store("$secret", 1, ENCRYPTED_CONTENT, event_type="m.room.encrypted")
    await _store("$next", 2, TEXT)
    room = Room(e2ee=None)
    await _run_until_finished(room, "$secret", "$next")
    secret = await dbm.MatrixEvent.get("$secret")
    assert (secret.status, secret.error) == (FAILED, NO_ENCRYPTION)
    [status] = room.statuses("$secret")
    assert status["status"] == "FAIL_PERMANENT" and status["error"] == NO_ENCRYPTION
    assert room.notices() == [f"Your message could not be delivered to Teams: {NO_ENCRYPTION}"]
    assert [e for _, e, _ in room.handled] == ["$next"]


async def test_with_encryption_required_a_message_in_the_clear_is_refused(database: Database):
    await _store("$clear", 1, TEXT)
    await _store("$secret", 2, ENCRYPTED_CONTENT, event_type="m.room.encrypted")
    e2ee = FakeEncryption(
        {"$secret": ("m.room.message", {"msgtype": "m.text", "body": "s"})}, set()
    )
    room = Room(e2ee=e2ee, require_encryption=True)
    await _run_until_finished(room, "$clear", "$secret")
    clear = await dbm.MatrixEvent.get("$clear")
    assert (clear.status, clear.error) == (FAILED, NOT_ENCRYPTED)
    assert room.notices() == [f"Your message could not be delivered to Teams: {NOT_ENCRYPTED}"]
    assert [e for _, e, _ in room.handled] == ["$secret"]


class FakeEncryption:
    """Decrypts by looking the plaintext up; the first try of `late_keys` finds no session."""

    def __init__(self, plaintext: dict[str, dict[str, Any]], late_keys: set[str]) -> None:
        self.plaintext = plaintext
        self.late_keys = set(late_keys)
        self.tries: list[str] = []
        self.waits: list[int] = []
        self.requests: list[tuple[Any, ...]] = []
        self.crypto = self  # request_room_key lives on the OlmMachine

    async def request_room_key(self, room_id, sender_key, session_id, from_devices, timeout):
        self.requests.append((room_id, sender_key, session_id, from_devices))
        return False

    async def decrypt(self, evt: Any, wait_session_timeout: int = 5) -> Event:
        assert evt.content.session_id == "session"
        self.tries.append(evt.event_id)
        self.waits.append(wait_session_timeout)
        if evt.event_id in self.late_keys:
            self.late_keys.discard(evt.event_id)
            raise SessionNotFound(evt.content.session_id, evt.content.sender_key)
        event_type, content = self.plaintext[evt.event_id]
        return Event.deserialize(
            {
                "type": event_type,
                "room_id": evt.room_id,
                "event_id": evt.event_id,
                "sender": evt.sender,
                "origin_server_ts": evt.timestamp,
                "content": content,
            }
        )


async def test_an_encrypted_event_is_decrypted_then_delivered_by_its_kind(database: Database):
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}
    e2ee = FakeEncryption(
        {
            "$text": ("m.room.message", {"msgtype": "m.text", "body": "secret"}),
            "$reaction": ("m.reaction", reaction),
            "$command": ("m.room.message", {"msgtype": "m.text", "body": "!teams ping"}),
            "$echo": (
                "m.room.message",
                {"msgtype": "m.text", "body": "mine", DOUBLE_PUPPET_SOURCE_KEY: "teams-bridge"},
            ),
        },
        late_keys={"$text"},
    )
    for seq, event_id in enumerate(["$text", "$reaction", "$command", "$echo"]):
        await _store(event_id, seq, ENCRYPTED_CONTENT, event_type="m.room.encrypted")
    room = Room(e2ee=e2ee)
    await _run_until_finished(room, "$text", "$reaction", "$command", "$echo")
    # The handlers got the plaintext; the keys of the first came late (a counted try).
    handled = {e: (kind, raw) for kind, e, raw in room.handled}
    assert handled.keys() == {"$text", "$reaction"}
    assert handled["$text"][0] == "text"
    assert handled["$text"][1]["content"]["body"] == "secret"
    assert handled["$text"][1]["sender"] == ADA
    assert handled["$reaction"] == ("reaction", handled["$reaction"][1])
    assert e2ee.tries.count("$text") == 2
    # The keys were asked of the sender's device, and the second try waited longer.
    assert [r[2] for r in e2ee.requests] == ["session"]
    assert e2ee.requests[0][3] == {ADA: [ENCRYPTED_CONTENT["device_id"]]}
    assert e2ee.waits[:2] == [KEY_WAIT_FIRST, KEY_WAIT]
    text = await dbm.MatrixEvent.get("$text")
    assert (text.status, text.attempts) == (DONE, 1)
    # The room heard it was waiting (retriable), then that it went through.
    statuses = room.statuses("$text")
    assert [s["status"] for s in statuses] == ["FAIL_RETRIABLE", "SUCCESS"]
    assert statuses[0]["reason"] == "com.beeper.undecryptable_event"
    # A command and the bridge's own double-puppeted send are left alone, silently.
    for event_id, why in (("$command", "command"), ("$echo", "double puppeting")):
        row = await dbm.MatrixEvent.get(event_id)
        assert row.status == FAILED and why in row.error
        assert room.statuses(event_id) == []
    notices = room.notices()
    assert len(notices) == 1 and "does not have the keys" in notices[0], notices


@pytest.mark.parametrize("event_type", ["m.room.message", "m.sticker"])
def test_handler_kinds(event_type):
    def kind(content: dict[str, Any], etype: str = event_type) -> str:
        return handler_kind({"type": etype, "content": content})

    assert kind({"msgtype": "m.text"}) == "text"
    assert kind({"msgtype": "m.emote"}) == "text"
    assert kind({"msgtype": "m.image"}) == "media"
    assert kind({"msgtype": "m.location"}) == "media"  # (refused there)
    assert kind({"msgtype": "m.text", "m.relates_to": {"rel_type": "m.replace"}}) == "edit"
    assert kind({}, "m.reaction") == "reaction"
    assert kind({}, "m.room.redaction") == "redaction"


# -- events handed over by the appservice endpoint -----------------------------------------


def _row(event_id: str, seq: int) -> dbm.MatrixEvent:
    raw = _raw(event_id, TEXT)
    return dbm.MatrixEvent(
        event_id, ROOM, ADA, seq, "m.room.message", json.dumps(raw), PENDING, 0, None, None
    )


class CountingReads:
    """Counts the worker's reads of the room's pending events."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        self.gate: asyncio.Event | None = None
        original = dbm.MatrixEvent.pending.__func__  # type: ignore[attr-defined]

        async def pending(cls, room_id, limit):
            self.reads += 1
            found = await original(cls, room_id, limit)
            if self.gate is not None:
                await self.gate.wait()
            return found

        monkeypatch.setattr(dbm.MatrixEvent, "pending", classmethod(pending))


async def _until(condition, what: str) -> None:
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.01)


async def _settled(room: Room) -> None:
    """The worker is done with what it was given, and the records of it are stored."""
    await _until(room.delivery.is_idle, "the worker idle")
    await room.records_settled()


async def _stored_and_woken(room: Room, *rows: dbm.MatrixEvent) -> None:
    stored = await dbm.MatrixEvent.insert_many(list(rows))
    room.delivery.wake(stored)


async def test_events_handed_over_in_order_are_delivered_without_reading_the_room(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    counter = CountingReads(monkeypatch)
    room = Room()
    await _store("$first", 1, TEXT)
    room.delivery.wake()
    await _until(lambda: len(room.handled) == 1, "the first delivery")
    reads = counter.reads
    try:
        await _stored_and_woken(room, _row("$a", 2), _row("$b", 3))
        await _stored_and_woken(room, _row("$c", 4))
        await _until(lambda: len(room.handled) == 4, "the handed-over deliveries")
        assert [e for _, e, _ in room.handled] == ["$first", "$a", "$b", "$c"]
        assert counter.reads == reads  # no read of the room for them
        await _settled(room)
        for event_id in ("$a", "$b", "$c"):
            assert (await dbm.MatrixEvent.get(event_id)).status == DONE
    finally:
        room.delivery._task.cancel()


async def test_an_event_that_may_sort_before_what_was_taken_makes_the_room_be_read(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    counter = CountingReads(monkeypatch)
    room = Room()
    await _store("$late", 10, TEXT)
    room.delivery.wake()
    await _until(lambda: len(room.handled) == 1, "the first delivery")
    reads = counter.reads
    try:
        # Stored below what the worker has taken (as a recovered event is): read, not queued;
        # handing over an event delivered already does not deliver it again.
        await _stored_and_woken(room, _row("$early", 5))
        room.delivery.wake([await dbm.MatrixEvent.get("$late")])
        await _until(lambda: len(room.handled) == 2, "the recovered delivery")
        await _until(lambda: counter.reads > reads, "a read")
        await asyncio.sleep(0.1)
        assert [e for _, e, _ in room.handled] == ["$late", "$early"]
    finally:
        room.delivery._task.cancel()


async def test_an_event_handed_over_during_a_read_is_not_lost(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    counter = CountingReads(monkeypatch)
    room = Room()
    await _store("$first", 1, TEXT)
    room.delivery.wake()
    await _until(lambda: len(room.handled) == 1, "the first delivery")
    counter.gate = asyncio.Event()
    reads = counter.reads
    room.delivery.wake()  # (as after a recovery) a read of the room, held open
    await _until(lambda: counter.reads == reads + 1, "the read")
    try:
        # Stored after that read's snapshot, handed over while it is under way.
        await _stored_and_woken(room, _row("$during", 2))
        counter.gate.set()
        await _until(lambda: len(room.handled) == 2, "the delivery")
        assert [e for _, e, _ in room.handled] == ["$first", "$during"]
        await _settled(room)
        assert (await dbm.MatrixEvent.get("$during")).status == DONE
    finally:
        room.delivery._task.cancel()


async def test_only_new_events_are_handed_over(database: Database):
    assert [r.event_id for r in await dbm.MatrixEvent.insert_many([_row("$x", 1)])] == ["$x"]
    again = await dbm.MatrixEvent.insert_many([_row("$x", 1), _row("$y", 2)])
    assert [r.event_id for r in again] == ["$y"]
    assert await dbm.MatrixEvent.insert_many([_row("$y", 2)]) == []


def test_an_expected_echo_is_recognised_once_and_only_by_its_ids():
    from teams_bridge.portal.inbound import EXPECTED_ECHOES, Inbound

    inbound = Inbound(SimpleNamespace(log=logging.getLogger("test")))  # type: ignore[arg-type]
    inbound.expect_echo("100", "c1")
    inbound.expect_echo("101", "c2")
    message = lambda id_, cid: SimpleNamespace(id=id_, client_message_id=cid)  # noqa: E731
    assert not inbound._is_expected_echo(message("101", "other"))  # not ours: looked up
    assert not inbound._is_expected_echo(message("101", "c2"))  # (forgotten by that look)
    assert inbound._is_expected_echo(message("100", "c1"))
    assert not inbound._is_expected_echo(message("100", "c1"))  # a second copy is looked up
    for n in range(EXPECTED_ECHOES + 5):
        inbound.expect_echo(str(200 + n), f"x{n}")
    assert len(inbound._expected_echoes) == EXPECTED_ECHOES
    assert not inbound._is_expected_echo(message("200", "x0"))  # the oldest were forgotten
    assert inbound._is_expected_echo(
        message(str(200 + EXPECTED_ECHOES + 4), f"x{EXPECTED_ECHOES + 4}")
    )


def test_the_echo_of_a_post_not_mapped_yet_is_held_once_and_released_if_not_stored():
    from teams_bridge.portal.inbound import EXPECTED_ECHOES, Inbound

    requeued: list[tuple[Any, Any]] = []
    portal = SimpleNamespace(
        log=logging.getLogger("test"),
        requeue_message=lambda source, message: requeued.append((source, message)),
        updates=SimpleNamespace(version_queries=lambda m: [("version of", (m.id,))]),
    )
    inbound = Inbound(portal)  # type: ignore[arg-type]
    source = object()
    message = lambda id_, cid, sender=ADA_MRI: SimpleNamespace(  # noqa: E731
        id=id_, client_message_id=cid, sender_mri=sender
    )
    assert not inbound._hold_echo(source, message("100", "c1"))  # no post on its way
    inbound.expect_post("c1", ADA_MRI)
    inbound.expect_post("c2", ADA_MRI)
    assert inbound.held_echo_queries("c1", "100") is None  # nothing came yet
    assert not inbound._hold_echo(source, message("100", "c1", "8:orgid:eve"))  # not its sender
    assert inbound._hold_echo(source, message("100", "c1"))
    assert not inbound._hold_echo(source, message("100", "c1"))  # a second copy is handled
    assert inbound.held_echo_queries("c1", "999") is None  # not the message posted
    assert inbound.held_echo_queries("c1", "100") == [("version of", ("100",))]
    inbound.end_post("c1", stored=True)
    assert requeued == [] and "c1" not in inbound._posts
    # A post given up (or mapped without what its echo changes) lets the echo go on.
    assert inbound._hold_echo(source, message("101", "c2"))
    inbound.end_post("c2", stored=False)
    assert [(s, m.id) for s, m in requeued] == [(source, "101")]
    # The oldest of too many posts on their way is forgotten, and its echo let go.
    inbound.expect_post("c3", ADA_MRI)
    assert inbound._hold_echo(source, message("102", "c3"))
    for n in range(EXPECTED_ECHOES):
        inbound.expect_post(f"x{n}", ADA_MRI)
    assert len(inbound._posts) == EXPECTED_ECHOES
    assert [m.id for _, m in requeued] == ["101", "102"]


async def test_an_idle_worker_holds_no_task_and_starts_again_when_woken(database: Database):
    room = Room()
    await _store("$one", 1, TEXT)
    room.delivery.wake()
    await _until(lambda: len(room.handled) == 1, "the delivery")
    await _until(room.delivery.is_idle, "the worker and its reports to end")
    assert room.delivery._task.done() and room.delivery._reporter.done()
    await _stored_and_woken(room, _row("$two", 2))
    await _until(lambda: len(room.handled) == 2, "the next delivery")
    await _until(room.delivery.is_idle, "the worker to end again")
    assert [e for _, e, _ in room.handled] == ["$one", "$two"]


def test_a_message_is_surely_new_only_after_the_cursor_and_not_from_a_bridge_user():
    from teams_bridge.portal.inbound import Inbound

    users = {"8:orgid:ada": object()}
    portal = SimpleNamespace(
        log=logging.getLogger("test"),
        last_message_id="1000",
        directory=SimpleNamespace(user_by_mri=users.get),
    )
    inbound = Inbound(portal)  # type: ignore[arg-type]
    message = lambda id_, sender="8:orgid:bob": SimpleNamespace(id=id_, sender_mri=sender)  # noqa: E731
    assert inbound._surely_new(message("1001"))
    assert not inbound._surely_new(message("1000"))  # a copy of the newest bridged
    assert not inbound._surely_new(message("999"))  # older: may be bridged
    assert not inbound._surely_new(message("1001", "8:orgid:ada"))  # may be our own post
    assert not inbound._surely_new(message("1001", ""))
    assert not inbound._surely_new(message("abc"))
    portal.last_message_id = None  # nothing bridged yet (a new room's history, say)
    assert not inbound._surely_new(message("1001"))
    portal.last_message_id = "1000"
    inbound._unrecorded.add("1001")  # sent, its record (and the cursor past it) not stored
    assert not inbound._surely_new(message("1001"))
    assert inbound._surely_new(message("1002"))
    # History the database did not know when it was put in: new without a cursor too.
    portal.last_message_id = None
    inbound._fresh = {"500", "1001"}
    assert inbound._surely_new(message("500"))
    assert not inbound._surely_new(message("501"))
    assert not inbound._surely_new(message("500", "8:orgid:ada"))  # may be our own post
    assert not inbound._surely_new(message("1001"))  # its record is on its way


async def test_a_check_without_anchor_leaves_a_room_with_waiting_events_to_their_own(
    database: Database,
):
    """After a start or a disruption every loaded portal checks its timeline; one without
    an anchor stops at the newest event the bridge knows. A room with events waiting must
    not count as checked by it: its oldest waiting event's own check is what finds a gap
    below the newer ones (the homeserver never sent them)."""
    await _store("$waiting", 1, TEXT)
    room = Room()
    disruptions = Disruptions(300)
    disruptions.note_start()
    disruptions.note_recovered()
    pages: list[Any] = []

    async def timeline_page(room_id: str, token: str | None, limit: int) -> dict[str, Any]:
        pages.append((room_id, token, limit))
        return {"chunk": [], "end": None}

    room.delivery.services = dataclasses.replace(
        room.services, disruptions=disruptions, timeline_page=timeline_page
    )
    assert await room.delivery.reconcile(None)
    assert pages == []  # no read, and still behind
    assert disruptions.portal_is_behind(room.delivery.checked_ms)
    # With nothing waiting, the same check reads the newest few events and is done.
    await (await dbm.MatrixEvent.get("$waiting")).finish(DONE)
    assert await room.delivery.reconcile(None)
    assert pages == [(ROOM, None, 10)]
    assert not disruptions.portal_is_behind(room.delivery.checked_ms)


def _after_a_disruption() -> Disruptions:
    """A start's disruption, the homeserver answering again, transaction 20 stored."""
    disruptions = Disruptions(300)
    disruptions.note_start()
    disruptions.note_recovered()
    disruptions.record("20", int(time.time() * 1000))
    return disruptions


def _sent_at(event_id: str, ms: int) -> dict[str, Any]:
    return {**_raw(event_id, TEXT), "origin_server_ts": ms}


async def test_what_a_check_without_anchor_finds_goes_before_a_transaction_stored_meanwhile(
    database: Database,
):
    """The check every room makes after a disruption reads its timeline with nothing
    waiting. A restarted homeserver lost `$m0`..`$m2`, and sends `$m3` (over a new
    connection) while that check reads: `$m3` is stored meanwhile, under a lower order than
    the newest transaction's. What the check found must still go out before `$m3`."""
    room, disruptions, now = Room(), _after_a_disruption(), int(time.time() * 1000)
    lost = [_sent_at(f"$m{i}", now) for i in range(3)]
    pages: list[str | None] = []

    async def timeline_page(room_id: str, token: str | None, limit: int) -> dict[str, Any]:
        pages.append(token)
        if len(pages) == 1:
            # The first page was read just before `$m3` reached the homeserver; its
            # transaction, and a later one (another room's), come in while it is answered.
            disruptions.note_new_connection()
            received = int(time.time() * 1000)
            disruptions.record("21", received)
            await dbm.MatrixEvent.insert_many(
                [queue_row(_sent_at("$m3", now), matrix_event.txn_order(21, 0), 21, received)]
            )
            disruptions.record("22", received)
            return {"chunk": list(reversed(lost)), "end": None}
        return {"chunk": [_sent_at("$m3", now), *reversed(lost)], "end": None}

    room.delivery.services = dataclasses.replace(
        room.services, disruptions=disruptions, timeline_page=timeline_page
    )
    assert await room.delivery.reconcile(None)
    # Not counted as checked: the waiting event's own check places what was lost.
    assert disruptions.portal_is_behind(room.delivery.checked_ms)
    await _run_until_finished(room, "$m0", "$m1", "$m2", "$m3")
    assert [event_id for _, event_id, _ in room.handled] == ["$m0", "$m1", "$m2", "$m3"]
    assert len(pages) == 2


async def test_no_transaction_is_stored_between_a_check_looking_for_one_and_storing_its_finds(
    database: Database, monkeypatch: pytest.MonkeyPatch
):
    """Once the check with nothing waiting has seen that nothing came in while it read the
    timeline, no transaction is stored until it has stored what it found: one that came
    right then (`$m3`, newer than everything read) would sort before them, and go out
    before the events the homeserver lost."""
    room, disruptions, now = Room(), _after_a_disruption(), int(time.time() * 1000)
    lost = [_sent_at(f"$m{i}", now) for i in range(3)]

    async def timeline_page(room_id: str, token: str | None, limit: int) -> dict[str, Any]:
        return {"chunk": list(reversed(lost)), "end": None}

    services = dataclasses.replace(
        room.services, disruptions=disruptions, timeline_page=timeline_page
    )
    room.delivery.services = services
    original = dbm.MatrixEvent.pending.__func__  # type: ignore[attr-defined]
    reads = 0
    arriving: list[asyncio.Task] = []

    async def pending(cls, room_id, limit):
        nonlocal reads
        reads += 1
        found = await original(cls, room_id, limit)
        if reads == 2:
            # The check's look for events stored meanwhile has its answer (none) when
            # transaction 21 comes in.
            row = queue_row(_sent_at("$m3", now), matrix_event.txn_order(21, 0), 21, now)
            arriving.append(
                asyncio.create_task(
                    store_transaction(services, "21", now, [(_sent_at("$m3", now), row, room)])
                )
            )
            if not services.storing.locked():
                await arriving[0]  # nothing keeps it from being stored first
        return found

    monkeypatch.setattr(dbm.MatrixEvent, "pending", classmethod(pending))
    assert await room.delivery.reconcile(None)
    await arriving[0]
    assert not disruptions.portal_is_behind(room.delivery.checked_ms)
    await _run_until_finished(room, "$m0", "$m1", "$m2", "$m3")
    assert [event_id for _, event_id, _ in room.handled] == ["$m0", "$m1", "$m2", "$m3"]
