"""Log lines about one chat or one person, without a logger of their own.

A child logger (``log.getChild(thread_id)``) is kept by the logging module for the life of
the process, one for every chat or person ever seen, with a placeholder for each dot in
the name; portals and puppets are dropped from memory when idle, their loggers never
were. ``KeyedLog`` writes through the parent logger and names the chat or person at the
start of each line instead.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

TRACE = 5  # mautrix's TRACE level


class KeyedLog(logging.LoggerAdapter):
    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, key: str) -> None:
        base = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        super().__init__(base, {"key": key})
        self.key = key
        self._prefix = f"[{key}] "

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return self._prefix + str(msg), kwargs

    def trace(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(TRACE, msg, *args, **kwargs)

    def getChild(self, suffix: str) -> KeyedLog:  # noqa: N802  (as logging.Logger's)
        return KeyedLog(self.logger.getChild(suffix), self.key)
