"""The database schema: a latest-schema fast path for new databases plus one frozen
upgrade script per schema version.

Each ``vNN_*`` module is the upgrade to version NN exactly as that version shipped it: it
holds its own SQL and calls nothing shared, so changing the latest schema can never change
what an old upgrade creates. A new schema version adds a module here, registered in order,
and updates ``v00_latest`` to match.

The same SQL runs on PostgreSQL and SQLite; mautrix rewrites `$n` placeholders for SQLite.
"""

from __future__ import annotations

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable()

LATEST_VERSION = 7

# Registered in order: the latest revision first, then each version's upgrade.
from . import (  # noqa: E402, F401
    v00_latest,
    v02_matrix_events,
    v03_fidelity,
    v04_avatars,
    v05_portal_keys,
    v06_message_origin,
    v07_spaces,
)

__all__ = ["LATEST_VERSION", "upgrade_table"]
