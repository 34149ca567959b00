"""The SQLite database holds every user's Teams refresh token: only the bridge may read it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from yarl import URL

# Files beside the database that hold its pages too: the write-ahead log, its index and
# the rollback journal.
SIDE_FILES = ("-wal", "-shm", "-journal")
MODE = 0o600

log = logging.getLogger("mau.db.files")


def sqlite_path(url: str) -> str | None:
    """The database file of a `sqlite:` URL as mautrix opens it; None for anything else."""
    parsed = URL(str(url))
    if parsed.scheme not in ("sqlite", "sqlite3"):
        return None
    path = parsed.path
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def database_files(path: str) -> Iterator[str]:
    yield path
    for suffix in SIDE_FILES:
        yield path + suffix


def restrict_sqlite_files(url: str) -> None:
    """Make the database file and its side files readable by the bridge's user only.

    A missing database file is created empty with that mode before SQLite opens it: SQLite
    gives the side files it creates later the database file's mode, so none of them is
    ever readable by others, whatever the umask.
    """
    path = sqlite_path(url)
    if path is None:
        return
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, MODE))
    except OSError as e:
        # Opening the database reports the problem properly.
        log.warning("Could not create %s: %s", path, e)
        return
    for name in database_files(path):
        try:
            if os.stat(name).st_mode & 0o777 != MODE:
                os.chmod(name, MODE)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("Could not make %s private (mode %o): %s", name, MODE, e)
