"""Database access, one module per table."""

from mautrix.util.async_db import Database

from . import matrix_event  # noqa: F401  (constants used by callers)
from .matrix_event import KeyValue, MatrixEvent
from .message import Message
from .message_state import MessageState
from .portal import Portal
from .puppet import Puppet
from .reaction import Reaction
from .sent_message import SentMessage
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
    )
    for table in tables:
        table.db = db


__all__ = [
    "upgrade_table",
    "init",
    "User",
    "Puppet",
    "Portal",
    "Message",
    "SentMessage",
    "MatrixEvent",
    "KeyValue",
    "Reaction",
    "MessageState",
]
