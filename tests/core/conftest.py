"""Fixtures for the core tests: a fresh bridge database, on PostgreSQL and on SQLite."""

from __future__ import annotations

import pytest
from mautrix.util.async_db import Database

from teams_bridge import db as dbm
from teams_bridge.db.upgrade import upgrade_table


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database")
    return request.getfixturevalue("sqlite_database")


@pytest.fixture
async def database(database_url: str):
    db = Database.create(database_url, upgrade_table=upgrade_table, owner_name="teams-bridge")
    await db.start()
    dbm.init(db)
    try:
        yield db
    finally:
        await db.stop()
