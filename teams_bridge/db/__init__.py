"""Database access, one module per table."""

from typing import Any

from mautrix.util.async_db import Database, Scheme

from . import matrix_event  # noqa: F401  (constants used by callers)
from .matrix_event import KeyValue, MatrixEvent
from .message import Incoming, Message
from .message_state import MessageState
from .portal import Portal
from .puppet import Puppet
from .reaction import Reaction
from .records import Record, RecordWriter
from .sent_message import SentMessage
from .space import Space
from .upgrade import upgrade_table
from .user import User


def init(db: Database) -> None:
    tables = (
        User,
        Puppet,
        Portal,
        Message,
        SentMessage,
        MatrixEvent,
        KeyValue,
        Reaction,
        MessageState,
        Space,
    )
    for table in tables:
        table.db = db
    RecordWriter.current = RecordWriter(db)
    if db.scheme == Scheme.POSTGRES:
        # asyncpg resets every connection handed back to its pool with a query of its own
        # (advisory locks, cursors, LISTEN, settings), one more round trip for every
        # statement run outside a transaction. The bridge uses none of these; an open
        # transaction is still rolled back by the pool itself.
        db._db_args.setdefault("reset", _keep_session)


async def _keep_session(conn: Any) -> None:
    pass


__all__ = [
    "upgrade_table",
    "init",
    "User",
    "Puppet",
    "Portal",
    "Message",
    "Incoming",
    "SentMessage",
    "MatrixEvent",
    "KeyValue",
    "Reaction",
    "Record",
    "RecordWriter",
    "MessageState",
    "Space",
]
