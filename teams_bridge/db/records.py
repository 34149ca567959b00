"""The records of bridged messages, gathered from every portal into one write.

A Teams message sent into Matrix is recorded after the send: its mapping to the Matrix
event, the version bridged and the portal's moved cursor. A Matrix event delivered to
Teams likewise: the post's mapping, the Teams id of its send record, the event done.
Written one statement per message, that was a round trip and a commit for each, the
largest single part of the bridge's CPU per message. A record is written behind the sends anyway (nothing waits for it
unless it reads what it stores), so it waits up to `WINDOW` for others and they go out
together: on PostgreSQL as one statement whose rows come as arrays (the same prepared
statement whatever their number), on SQLite in one transaction. Whoever needs records
stored (`RecordWriter.flush`) has the waiting ones written at once.

One batch is written at a time, in the order records came, so a portal's cursor never moves
back. A batch that fails for a reason of its data (a portal deleted meanwhile) is written
again record by record, so a bad record fails alone; one that fails for any other reason
(the database away, a connection in a bad state) is tried again as a whole, as the single
records were before.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg
from mautrix.util.async_db import Database, Scheme

from .batch import Query, array_params, execute, execute_batch
from .matrix_event import DONE, MatrixEvent
from .message import Message
from .message_state import MessageState
from .portal import cursor_query
from .sent_message import SentMessage

log = logging.getLogger("teams.records")

# How long a record waits for others before it is written (nothing waits on it meanwhile;
# whoever does has it written at once).
WINDOW = 0.05
# Most records in one statement (PostgreSQL: arrays, so only the rows' size limits it).
MOST = 500
# Tries of a batch while the database is away, the first pause between them (doubled each
# time) and the longest.
ATTEMPTS = 12
FIRST_PAUSE = 0.5
LONGEST_PAUSE = 15.0
# How long a stop waits for the records still waiting.
CLOSE_TIMEOUT = 10.0

# The rows' columns, in the order of `Message.insert_query` and `MessageState._values`.
_MESSAGE_COLUMNS = (
    ("thread_id", "text"),
    ("receiver", "text"),
    ("message_id", "text"),
    ("part", "integer"),
    ("mxid", "text"),
    ("mx_room", "text"),
    ("sender_mri", "text"),
    ("timestamp", "bigint"),
    ("version", "text"),
    ("origin", "text"),
)
_STATE_COLUMNS = (
    ("thread_id", "text"),
    ("receiver", "text"),
    ("message_id", "text"),
    ("edit_time", "bigint"),
    ("content_hash", "text"),
    ("deleted", "boolean"),
)


def _unnest(columns: Sequence[tuple[str, str]], first: int) -> str:
    return array_params([kind for _, kind in columns], first)


def _names(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(name for name, _ in columns)


_STATE_FIRST = len(_MESSAGE_COLUMNS) + 1
_FINISHED = _STATE_FIRST + len(_STATE_COLUMNS)
_SENT_FIRST = _FINISHED + 1
_CURSOR_FIRST = _SENT_FIRST + 2
# PostgreSQL: every record of a batch in one statement of five parts.
_BATCH = (
    f"WITH m AS (INSERT INTO message ({_names(_MESSAGE_COLUMNS)}) "
    f"SELECT * FROM unnest({_unnest(_MESSAGE_COLUMNS, 1)}) "
    "ON CONFLICT (thread_id, receiver, message_id, part) DO NOTHING), "
    f"s AS (INSERT INTO message_state ({_names(_STATE_COLUMNS)}) "
    f"SELECT * FROM unnest({_unnest(_STATE_COLUMNS, _STATE_FIRST)}) "
    "ON CONFLICT (thread_id, receiver, message_id) DO NOTHING), "
    f"e AS (UPDATE matrix_event SET status = '{DONE}', error = NULL "
    f"FROM unnest(${_FINISHED}::text[]) AS d(event_id) "
    "WHERE matrix_event.event_id = d.event_id), "
    "t AS (UPDATE sent_message SET message_id = x.message_id "
    f"FROM unnest(${_SENT_FIRST}::text[], ${_SENT_FIRST + 1}::text[]) "
    "AS x(client_message_id, message_id) "
    "WHERE sent_message.client_message_id = x.client_message_id) "
    "UPDATE portal SET last_message_id = c.message_id "
    f"FROM unnest(${_CURSOR_FIRST}::text[], ${_CURSOR_FIRST + 1}::text[], "
    f"${_CURSOR_FIRST + 2}::text[]) AS c(thread_id, receiver, message_id) "
    "WHERE portal.thread_id = c.thread_id AND portal.receiver = c.receiver"
)

# Failures that say a record is bad (written again one by one, so it fails alone); any
# other failure (the database away, a connection in a bad state) is tried again whole.
_BAD_DATA: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    sqlite3.IntegrityError,
)


@dataclass(eq=False)
class Record:
    """What bridging one message stores. Teams -> Matrix: its parts' mappings, its version
    (if it has content) and, when it is the portal's newest, the cursor moved to it.
    Matrix -> Teams: the mapping of the post (if it was one), the Teams id its send record
    got (`sent`: clientmessageid, message id) and the Matrix event marked done
    (`finished`)."""

    thread_id: str
    receiver: str
    mappings: list[Message]
    state: MessageState | None = None
    cursor: str | None = None
    finished: str | None = None
    sent: tuple[str, str] | None = None
    done: asyncio.Future[None] | None = field(default=None, repr=False)

    def queries(self) -> list[Query]:
        queries: list[Query] = [m.insert_query() for m in self.mappings]
        if self.state is not None:
            queries.append(self.state.insert_if_absent_query())
        if self.sent is not None:
            queries.append(SentMessage.message_id_query(*self.sent))
        if self.finished is not None:
            queries.append(MatrixEvent.done_query(self.finished))
        if self.cursor is not None:
            queries.append(cursor_query(self.thread_id, self.receiver, self.cursor))
        return queries


def _batch_args(records: Sequence[Record]) -> list[Any]:
    """The statement's arrays: a portal's cursor once (its newest record's), a row once."""
    mappings: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    states: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    cursors: dict[tuple[str, str], str] = {}
    finished: list[str] = []
    sent: dict[str, str] = {}
    for record in records:
        if record.finished is not None:
            finished.append(record.finished)
        if record.sent is not None:
            sent[record.sent[0]] = record.sent[1]
        for mapping in record.mappings:
            _, values = mapping.insert_query()
            mappings.setdefault(tuple(values[:4]), tuple(values))
        if record.state is not None:
            _, values = record.state.insert_if_absent_query()
            states.setdefault(tuple(values[:3]), tuple(values))
        if record.cursor is not None:
            # Records come in order and a record's cursor only ever moves forward.
            cursors[(record.thread_id, record.receiver)] = record.cursor
    args: list[Any] = []
    for rows, width in ((mappings, len(_MESSAGE_COLUMNS)), (states, len(_STATE_COLUMNS))):
        columns = list(zip(*rows.values(), strict=True)) if rows else [()] * width
        args.extend(list(column) for column in columns)
    args.append(finished)
    args.append(list(sent))
    args.append(list(sent.values()))
    args.append([key[0] for key in cursors])
    args.append([key[1] for key in cursors])
    args.append(list(cursors.values()))
    return args


class RecordWriter:
    """Gathers records (`add`) and writes them together, one batch at a time."""

    # The process's writer, for the database `init` was given.
    current: ClassVar[RecordWriter]

    def __init__(self, db: Database, window: float = WINDOW) -> None:
        self.db = db
        self.window = window
        self._waiting: list[Record] = []
        self._writer: asyncio.Task[None] | None = None
        self._now: asyncio.Event | None = None

    def add(self, record: Record) -> asyncio.Future[None]:
        """Queue ``record``; the future is done once it is stored (or failed, with why)."""
        loop = asyncio.get_running_loop()
        record.done = loop.create_future()
        self._waiting.append(record)
        if self._writer is None or self._writer.done():
            self._now = asyncio.Event()
            self._writer = loop.create_task(self._run(), name="record writer")
        elif len(self._waiting) >= MOST:
            self.flush()
        return record.done

    def flush(self) -> None:
        """Write what is waiting now: someone waits for it."""
        if self._now is not None:
            self._now.set()

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is waiting and stop (the bridge stopping). What the database does not
        take within ``timeout`` is left: those messages are after the stored cursor, and
        the next start sends them again with the same transaction ids."""
        writer = self._writer
        if writer is None:
            return
        self.flush()
        _, late = await asyncio.wait({writer}, timeout=timeout)
        if late:
            log.warning("Leaving %d message records unstored at the stop", len(self._waiting))
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _run(self) -> None:
        now = self._now
        assert now is not None
        while self._waiting:
            if not now.is_set():
                try:
                    async with asyncio.timeout(self.window):
                        await now.wait()
                except TimeoutError:
                    pass
            now.clear()  # a flush asked for while this batch is written: the next at once
            batch, self._waiting = self._waiting[:MOST], self._waiting[MOST:]
            if self._waiting:
                now.set()
            await self._write(batch)

    async def _write(self, batch: list[Record]) -> None:
        pause = FIRST_PAUSE
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._store(batch)
            except _BAD_DATA as e:
                if len(batch) == 1:
                    _finish(batch, e)
                    return
                log.warning("Storing %d message records together failed: %s", len(batch), e)
                for record in batch:
                    try:
                        await self._store([record])
                    except Exception as alone:
                        _finish([record], alone)
                    else:
                        _finish([record], None)
                return
            except Exception as e:
                log.warning(
                    "Storing %d message records failed (attempt %d): %s", len(batch), attempt, e
                )
                if attempt < ATTEMPTS:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, LONGEST_PAUSE)
                    continue
                _finish(batch, e)
                return
            _finish(batch, None)
            return

    async def _store(self, batch: list[Record]) -> None:
        if self.db.scheme == Scheme.POSTGRES:
            await execute(self.db, _BATCH, *_batch_args(batch))
        else:
            queries: list[Query] = []
            for record in batch:
                queries.extend(record.queries())
            await execute_batch(self.db, queries)


def _finish(records: Sequence[Record], error: BaseException | None) -> None:
    for record in records:
        done = record.done
        if done is None or done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
