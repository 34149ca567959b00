"""Several writes that belong together, stored together.

A bridged message changes a few tables at once (its mapping, the portal's cursor, the
version bridged, a delivery status). Written one statement at a time, each is a round trip
and a commit of its own, and a crash in between leaves half of it. Here they are all or
nothing: on PostgreSQL as one statement (every write but the last a WITH part of it), so a
single round trip; on SQLite in one transaction.

The writes must touch different rows (PostgreSQL runs the parts of one statement against
the same snapshot, so no part sees another's changes).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import asyncpg
from mautrix.util.async_db import Database, Scheme
from mautrix.util.async_db.database import conn_var

Query = tuple[str, Sequence[Any]]

_PLACEHOLDER = re.compile(r"\$(\d+)")


def array_params(types: Sequence[str], first: int) -> str:
    """PostgreSQL: ``$first::type[], ...``, one array parameter per column type (for
    ``unnest``: many rows as one statement's few parameters)."""
    return ", ".join(f"${first + i}::{kind}[]" for i, kind in enumerate(types))


def combine(queries: Sequence[Query]) -> Query:
    """PostgreSQL: one statement that runs every query, parameters renumbered."""
    args: list[Any] = []
    for _, q_args in queries:
        args.extend(q_args)
    shape = tuple((q, len(q_args)) for q, q_args in queries)
    return _combined(shape), args


@functools.lru_cache(maxsize=64)
def _combined(shape: tuple[tuple[str, int], ...]) -> str:
    """The statement for these queries with these numbers of parameters (a few shapes)."""
    parts: list[str] = []
    offset = 0
    for q, count in shape:

        def shift(m: re.Match[str], by: int = offset) -> str:
            return f"${int(m.group(1)) + by}"

        parts.append(_PLACEHOLDER.sub(shift, q))
        offset += count
    if len(parts) == 1:
        return parts[0]
    ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}"


async def execute(db: Database, query: str, *args: Any) -> Any:
    """``db.execute``; on PostgreSQL outside a transaction, straight through asyncpg's pool
    (a fifth less CPU per statement than mautrix's wrapper of each connection, which adds
    only a trace-level log line)."""
    return await _pooled(db, "execute", query, args)


async def fetch(db: Database, query: str, *args: Any) -> list[Any]:
    """``db.fetch``, the same way as `execute`."""
    return list(await _pooled(db, "fetch", query, args))


async def _pooled(db: Database, method: str, query: str, args: Sequence[Any]) -> Any:
    if db.scheme != Scheme.POSTGRES or conn_var.get(None) is not None:
        return await getattr(db, method)(query, *args)
    try:
        return await getattr(db.pool, method)(query, *args)  # type: ignore[attr-defined]
    except asyncpg.InternalClientError as e:
        await db._handle_exception(e)  # type: ignore[attr-defined]  (it exits the bridge)
        raise


async def execute_batch(db: Database, queries: Sequence[Query]) -> None:
    if not queries:
        return
    if len(queries) == 1:
        await execute(db, queries[0][0], *queries[0][1])
    elif db.scheme == Scheme.POSTGRES:
        q, args = combine(queries)
        await execute(db, q, *args)
    else:
        async with db.acquire() as conn, conn.transaction():
            for q, args in queries:
                await conn.execute(q, *args)


def rows_affected(status: object) -> int:
    """The rows a statement changed: asyncpg returns 'INSERT 0 n' (or 'DELETE n'), the SQLite
    wrapper a cursor with rowcount."""
    if isinstance(status, str):
        try:
            return int(status.rsplit(" ", 1)[-1])
        except ValueError:
            return 0
    return getattr(status, "rowcount", 0) or 0
