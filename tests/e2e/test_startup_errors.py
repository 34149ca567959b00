"""A bridge that cannot work says so at start-up: one line with what is wrong and how to fix
it, an exit code other than 0, and nothing started (no appservice listener where the
problem is found before it, no portal, no Teams connection).

Each case runs the real bridge process once against the real Synapse and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mautrix.util.async_db import Database
from yarl import URL

from teams_bridge.db import upgrade_table
from tests.e2e.bridge_process import READY_LINE, BridgeProcess, RunResult, build_config
from tests.harness.ports import free_port

PREFIX = "Cannot start: "
# mautrix logs this just before the appservice listener starts.
LISTENER_LINE = "Starting appservice"


def _bridge(
    tmp_path: Path,
    name: str,
    *,
    registration: Any,
    homeserver_url: str,
    database: str,
    server_name: str = "localhost",
    overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> BridgeProcess:
    workdir = tmp_path / name
    config = build_config(
        registration=registration,
        homeserver_url=homeserver_url,
        server_name=server_name,
        database=database,
        endpoints={},  # never reached: nobody is logged in
        log_file=workdir / "bridge.log",
        overrides=overrides,
    )
    for dotted in drop:
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]
    return BridgeProcess(workdir, config)


def _refused(
    result: RunResult, code: int, *phrases: str, listener: bool = False, logged: bool = True
) -> str:
    """The run ended with `code` and one "Cannot start" line holding `phrases`; its line."""
    lines = [line for line in result.output.splitlines() if PREFIX in line]
    detail = f"exit {result.returncode}\n{result.output}\n--- log ---\n{result.log[-3000:]}"
    assert result.returncode == code, detail
    assert len(lines) == 1, detail
    line = lines[0]
    assert line.startswith(PREFIX), line  # the bare line on stderr, no log decoration
    for phrase in phrases:
        assert phrase in line, (phrase, line)
    assert "Traceback" not in result.output and "Traceback" not in result.log, detail
    assert READY_LINE not in result.log
    assert (LISTENER_LINE in result.log) == listener, detail
    if logged:  # (not when logging is not set up yet)
        # The same line is in the log, for those who read it there.
        assert line in result.log, detail
    return line


def _fake_registration() -> SimpleNamespace:
    return SimpleNamespace(
        url="http://127.0.0.1:29999",
        port=free_port(),
        id="teams",
        bot_localpart="teamsbot",
        as_token="a" * 32,
        hs_token="b" * 32,
        prefix="teams",
    )


async def test_config_errors(tmp_path: Path):
    """Before anything else: the config file and its values (no homeserver needed)."""
    reg = _fake_registration()
    sqlite = f"sqlite:{tmp_path / 'bridge.db'}"

    def bridge(name: str, drop: tuple[str, ...] = (), **overrides: Any) -> BridgeProcess:
        return _bridge(
            tmp_path,
            name,
            registration=reg,
            homeserver_url="http://127.0.0.1:1",
            database=sqlite,
            overrides=overrides,
            drop=drop,
        )

    # No config file at all.
    missing = bridge("missing")
    missing.config_path.unlink()
    _refused(
        await missing.arun_once(),
        11,
        f"the config file {missing.config_path} does not exist",
        "example-config.yaml",
        logged=False,
    )

    # Not YAML.
    broken = bridge("broken")
    broken.config_path.write_text("homeserver:\n  address: [unclosed\n")
    _refused(await broken.arun_once(), 11, "is not valid YAML at line", logged=False)

    # The tokens were never generated (the key is missing: the example's placeholder is
    # filled in by the config upgrade).
    line = _refused(
        await bridge("no_token", drop=("appservice.as_token",)).arun_once(),
        11,
        "appservice.as_token",
        "generate the registration",
    )
    assert "a" * 32 not in line

    # Values of the wrong kind, each naming its key and what it must be.
    cases = [
        ({"appservice.port": "twelve"}, "appservice.port must be a whole number from 1 to"),
        # A key set to nothing keeps the example's value, which must not stay.
        ({"homeserver.address": None}, "homeserver.address not configured. Set it to"),
        ({"homeserver.address": "localhost:8008"}, "homeserver.address must be an http://"),
        ({"bridge.permissions": {"*": "superuser"}}, "levels are relay, user and admin"),
        ({"teams.endpoints": {"login": "ftp://x"}}, "teams.endpoints is invalid"),
        (
            {"metrics.enabled": True, "metrics.listen_port": reg.port},
            "metrics.listen_port must differ from appservice.port",
        ),
        ({"appservice.database": "mysql://x"}, "appservice.database must be postgres://"),
    ]
    for index, (overrides, phrase) in enumerate(cases):
        result = await bridge(f"value{index}", **overrides).arun_once()
        line = _refused(result, 11, "configuration error in", phrase)
        assert "mysql://x" not in line  # the database URL may hold a password


async def test_homeserver_and_registration_errors(tmp_path: Path, synapse):
    reg = synapse.appservices["lite"]

    def bridge(name: str, registration: Any = reg, **kwargs: Any) -> BridgeProcess:
        kwargs.setdefault("homeserver_url", synapse.url)
        kwargs.setdefault("database", f"sqlite:{tmp_path / name / 'bridge.db'}")
        return _bridge(tmp_path, name, registration=registration, **kwargs)

    # Nothing listens at homeserver.address: a few quick tries, then the line.
    nowhere = f"http://127.0.0.1:{free_port()}"
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await bridge("unreachable", homeserver_url=nowhere).arun_once()
    unreachable_seconds = loop.time() - began
    _refused(result, 16, f"the homeserver at {nowhere}", "cannot be reached (connection refused)")
    assert unreachable_seconds < 30, unreachable_seconds

    # The homeserver does not know the as_token: the registration is not loaded.
    wrong_as = dataclasses.replace(reg, as_token="x" * 40)
    line = _refused(
        await bridge("as_token", registration=wrong_as).arun_once(),
        16,
        "does not accept appservice.as_token (M_UNKNOWN_TOKEN)",
        "app_service_config_files",
    )
    assert "x" * 40 not in line

    # homeserver.domain is not the homeserver's server name.
    _refused(
        await bridge("domain", server_name="elsewhere.test").arun_once(),
        16,
        "homeserver.domain is elsewhere.test but the homeserver's server name is localhost",
    )

    # The listener port is taken.
    with socket.socket() as squatter:
        # (Earlier bridges' connections may linger on the port in TIME_WAIT.)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", reg.port))
        squatter.listen()
        _refused(
            await bridge("port").arun_once(),
            13,
            f"cannot listen on 127.0.0.1:{reg.port} (appservice.hostname, appservice.port)",
        )

    # The homeserver cannot reach the bridge: the registration's url points elsewhere than
    # where the bridge listens. Found by the appservice ping, once the listener is up.
    elsewhere = free_port()
    _refused(
        await bridge(
            "ping",
            overrides={"appservice.port": elsewhere},
        ).arun_once(),
        16,
        "the homeserver cannot reach the bridge (M_CONNECTION_FAILED",
        f"reaches 127.0.0.1:{elsewhere}",
        listener=True,
    )

    # The homeserver's hs_token is not the config's: the bridge refuses its ping.
    wrong_hs = dataclasses.replace(reg, hs_token="y" * 40)
    line = _refused(
        await bridge("hs_token", registration=wrong_hs).arun_once(),
        16,
        "hs_token is not appservice.hs_token",
        listener=True,
    )
    assert "y" * 40 not in line


async def _upgraded(url: str) -> None:
    """Create the bridge's schema in the database, as a bridge run would."""
    db = Database.create(url, upgrade_table=upgrade_table, owner_name="teams-bridge")
    await db.start()
    await db.stop()


async def test_database_errors(tmp_path: Path, synapse, postgres, postgres_database):
    reg = synapse.appservices["pg"]

    def bridge(name: str, database: str) -> BridgeProcess:
        return _bridge(
            tmp_path, name, registration=reg, homeserver_url=synapse.url, database=database
        )

    # PostgreSQL is not there: a few quick tries, then the line (without the password).
    nowhere = f"postgres://bridge:s3cret@127.0.0.1:{free_port()}/bridge"
    line = _refused(
        await bridge("pg_down", nowhere).arun_once(),
        25,
        "cannot be reached (connection refused)",
        "appservice.database",
    )
    assert "s3cret" not in line

    # A read-only database: the schema cannot be created.
    name = URL(postgres_database).path.lstrip("/")
    postgres.psql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    _refused(
        await bridge("pg_ro", postgres_database).arun_once(),
        25,
        "is not writable (cannot execute CREATE TABLE in a read-only transaction)",
    )
    postgres.psql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')

    # The schema is there and current, but the bridge's role may only read it (the tables
    # belong to another role): nothing could be stored.
    await _upgraded(postgres_database)
    reader = f"reader_{name}"
    postgres.psql(f'CREATE ROLE "{reader}" LOGIN')
    postgres.psql(
        f'GRANT USAGE, CREATE ON SCHEMA public TO "{reader}"; '
        f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{reader}"',
        database=name,
    )
    as_reader = str(URL(postgres_database).with_user(reader))
    _refused(
        await bridge("pg_reader", as_reader).arun_once(),
        25,
        "is not writable (permission denied for table",
    )

    # A database a newer version of the bridge has upgraded.
    postgres.psql("UPDATE version SET version = version + 1", database=name)
    _refused(
        await bridge("pg_newer", postgres_database).arun_once(),
        25,
        "was used by a newer version of teams-bridge",
        "Downgrading is not supported",
    )

    # SQLite where no file can be made.
    missing_dir = tmp_path / "no" / "such" / "dir" / "bridge.db"
    _refused(
        await bridge("sqlite_dir", f"sqlite:{missing_dir}").arun_once(),
        25,
        f"the SQLite database sqlite:{missing_dir} cannot be used",
    )
