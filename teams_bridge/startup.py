"""Start-up checks: everything the bridge needs from its surroundings is tried before any of
it is used, and a problem stops the bridge with one line that says what is wrong and what
to do about it, and an exit code other than 0 (see docs/operations.md).

Order: the config file and its values (before the event loop); the listener ports, the
homeserver, the appservice token and the database (before anything is started: no portal,
no Teams connection); then, once the appservice listener is up, whether the homeserver
reaches it (the appservice ping, which also proves the hs_token).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import logging
import os
import re
import secrets
import socket
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import aiohttp
import asyncpg
from mautrix.util.async_db import (
    DatabaseNotOwned,
    ForeignTablesFound,
    UnsupportedDatabaseVersion,
)
from mautrix.util.config import ConfigValueError
from ruamel.yaml import YAMLError
from yarl import URL

from .config_check import ConfigProblem, check_values
from .metrics import MetricsServer, refresh_bridge_gauges

if TYPE_CHECKING:
    from .__main__ import TeamsBridge

log = logging.getLogger("mau.startup")

# Exit codes (mautrix's where it has one).
EXIT_CONFIG = 11
EXIT_PORT = 13
EXIT_HOMESERVER = 16
EXIT_DATABASE = 25

PREFIX = "Cannot start: "
# Connection checks: a short timeout per try, a few tries for a server that is starting.
TRY_TIMEOUT = 5.0
RETRY_DELAYS = (0.5, 1.0, 2.0)
PING_TIMEOUT = 20.0
# The appservice ping is tried this often, this far apart, while the homeserver cannot connect.
PING_ATTEMPTS = 3
PING_RETRY_SECONDS = 1.0
REGISTRATION_HINT = (
    "List the registration file (registration.yaml, with the tokens of this config) in the "
    "homeserver's app_service_config_files and restart the homeserver"
)


class StartupError(Exception):
    """A start-up check failed: `line` says what is wrong and how to fix it."""

    def __init__(self, line: str, exit_code: int) -> None:
        super().__init__(line)
        self.line = " ".join(line.split())
        self.exit_code = exit_code

    # Whether the same check may pass when tried again.
    retry = False


class RetriableStartupError(StartupError):
    retry = True


def _has_console_handler() -> bool:
    for logger in (logging.getLogger(), logging.getLogger("mau")):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                continue
            stream = getattr(handler, "stream", None)
            if stream in (sys.stderr, sys.stdout):
                return True
    return False


def report(line: str) -> None:
    """Log the line, and write it to stderr unless the log already goes there."""
    configured = logging.getLogger().handlers or logging.getLogger("mau").handlers
    if configured:
        log.critical(line)
    if not configured or not _has_console_handler():
        print(line, file=sys.stderr, flush=True)


def fail(error: StartupError) -> NoReturn:
    report(PREFIX + error.line)
    sys.exit(error.exit_code)


# -- before the event loop -------------------------------------------------------------------


@contextlib.contextmanager
def config_file(path: str) -> Iterator[None]:
    """Reading and upgrading the config file (logging is not set up yet)."""
    try:
        yield
    except FileNotFoundError:
        fail(
            StartupError(
                f"the config file {path} does not exist. Copy example-config.yaml from the "
                "teams_bridge package to it and fill it in, or pass its path with -c.",
                EXIT_CONFIG,
            )
        )
    except OSError as e:
        fail(
            StartupError(
                f"the config file {path} cannot be read or written ({e.strerror}). Make it "
                "readable and writable by the bridge's user (it is updated with new options).",
                EXIT_CONFIG,
            )
        )
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        fail(
            StartupError(
                f"the config file {path} is not valid YAML{where} ({problem}). Fix the file.",
                EXIT_CONFIG,
            )
        )
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        fail(
            StartupError(
                f"the config file {path} does not have the layout of example-config.yaml "
                f"({type(e).__name__}: {e}). Start again from example-config.yaml.",
                EXIT_CONFIG,
            )
        )


@contextlib.contextmanager
def logging_setup() -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError, AttributeError, ImportError) as e:
        cause = e.__cause__ or e
        fail(
            StartupError(
                f"the logging section of the config is not usable ({e}: {cause}). Check "
                "logging in the config, e.g. that logging.handlers.file.filename is in a "
                "directory the bridge may write to.",
                EXIT_CONFIG,
            )
        )


def check_config(config: Any) -> None:
    """Example values left in, values missing or of the wrong kind."""
    try:
        config.check_default_values()
        check_values(config)
    except (ConfigValueError, ConfigProblem) as e:
        fail(StartupError(f"configuration error in {config.path}: {e}", EXIT_CONFIG))
    problem = encryption_packages_problem(config)
    if problem is not None:
        fail(StartupError(problem, EXIT_CONFIG))


# The packages end-to-bridge encryption needs: (module, distribution).
ENCRYPTION_PACKAGES = (
    ("olm", "python-olm"),
    ("Crypto.Cipher.AES", "pycryptodome"),
    ("unpaddedbase64", "unpaddedbase64"),
    ("base58", "base58"),
)


def encryption_packages_problem(config: Any) -> str | None:
    """With encryption allowed, what is missing to run it (None when nothing is)."""
    if not config["bridge.encryption.allow"]:
        return None
    missing = []
    for module, distribution in ENCRYPTION_PACKAGES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    if not missing:
        return None
    return (
        "bridge.encryption.allow is on, but the encryption packages are not installed "
        f"(missing: {', '.join(missing)}). Install the bridge with its e2ee extra "
        "(pip install '.[e2ee]' in the bridge's source directory, or "
        "pip install 'teams-bridge[e2ee]'), or set bridge.encryption.allow to false."
    )


# -- before anything starts ------------------------------------------------------------------


async def preflight(bridge: TeamsBridge) -> None:
    """Everything that can be checked before the bridge starts anything."""
    try:
        check_ports(bridge.config)
        await check_homeserver(bridge.config)
        await bridge.start_db()
        await check_database_writable(bridge)
    except StartupError as e:
        fail(e)


def _bind_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on; None when it can. Binds as the listener
    will (SO_REUSEADDR), so a socket in TIME_WAIT is no obstacle but a listener is."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"the address {host} cannot be resolved ({e.strerror})"
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRNOTAVAIL:
                    continue  # that address family is off here; the listener skips it too
                return e.strerror or str(e)
    return None


def check_ports(config: Any) -> None:
    listeners = [("appservice", config["appservice.hostname"], config["appservice.port"])]
    if config["metrics.enabled"]:
        listeners.append(("metrics", config["metrics.hostname"], config["metrics.listen_port"]))
    for section, host, port in listeners:
        problem = _bind_problem(host, port)
        if problem is None:
            continue
        port_key = "appservice.port" if section == "appservice" else "metrics.listen_port"
        fix = f"Stop the program that uses it (another teams-bridge?) or choose another {port_key}"
        if section == "appservice":
            fix += " (and change the url in the registration and appservice.address to match)"
        raise StartupError(
            f"cannot listen on {host}:{port} ({section}.hostname, {port_key}): {problem}. {fix}.",
            EXIT_PORT,
        )


def _client_session(config: Any) -> aiohttp.ClientSession:
    verify = config["homeserver.verify_ssl"]
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TRY_TIMEOUT),
        connector=aiohttp.TCPConnector(ssl=None if verify else False),
    )


async def _with_retries(attempt: Callable[[], Awaitable[Any]], *, retry_on: tuple) -> Any:
    """`attempt()`, tried again after a short wait while it raises one of `retry_on`."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return await attempt()
        except retry_on:
            if delay is None:
                raise
            await asyncio.sleep(delay)


class _Unavailable(Exception):
    """The homeserver answered, but as one that is starting or behind a failing proxy."""


async def check_homeserver(config: Any) -> None:
    """The homeserver answers at homeserver.address, knows the as_token, and has the
    server name of homeserver.domain."""
    address = str(config["homeserver.address"]).rstrip("/")
    async with _client_session(config) as session:

        async def versions() -> None:
            async with session.get(f"{address}/_matrix/client/versions") as resp:
                if resp.status in (502, 503, 504):
                    raise _Unavailable(f"HTTP {resp.status}")
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                if resp.status != 200 or not isinstance(body, dict) or "versions" not in body:
                    raise StartupError(
                        f"homeserver.address {address} does not look like a Matrix homeserver "
                        f"(GET /_matrix/client/versions answered HTTP {resp.status}). Set it "
                        "to the address where the bridge reaches the homeserver's client API.",
                        EXIT_HOMESERVER,
                    )

        try:
            await _with_retries(
                versions, retry_on=(aiohttp.ClientError, TimeoutError, _Unavailable)
            )
        except (aiohttp.ClientError, TimeoutError, _Unavailable) as e:
            raise StartupError(
                f"the homeserver at {address} (homeserver.address) cannot be reached "
                f"({_describe(e)}). Check that the homeserver is running and that "
                "homeserver.address is where the bridge reaches it.",
                EXIT_HOMESERVER,
            ) from e

        headers = {"Authorization": f"Bearer {config['appservice.as_token']}"}
        try:
            async with session.get(
                f"{address}/_matrix/client/v3/account/whoami", headers=headers
            ) as resp:
                body = await _json(resp)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise StartupError(
                f"the homeserver at {address} (homeserver.address) stopped answering "
                f"({_describe(e)}). Check that the homeserver is running.",
                EXIT_HOMESERVER,
            ) from e
        errcode = body.get("errcode")
        if resp.status == 401 or errcode == "M_UNKNOWN_TOKEN":
            raise StartupError(
                "the homeserver does not accept appservice.as_token (M_UNKNOWN_TOKEN): the "
                f"registration is not loaded. {REGISTRATION_HINT}.",
                EXIT_HOMESERVER,
            )
        if resp.status != 200:
            raise StartupError(
                f"the homeserver refused the appservice's whoami (HTTP {resp.status} "
                f"{errcode or ''}: {body.get('error', '')}). {REGISTRATION_HINT}.",
                EXIT_HOMESERVER,
            )
        user_id = str(body.get("user_id", ""))
        server_name = user_id.partition(":")[2]
        if server_name and server_name != config["homeserver.domain"]:
            raise StartupError(
                f"homeserver.domain is {config['homeserver.domain']} but the homeserver's "
                f"server name is {server_name}. Set homeserver.domain to {server_name}, "
                "then generate the registration again (-g) and reload it in the homeserver.",
                EXIT_HOMESERVER,
            )


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no answer in time"
    if isinstance(e, aiohttp.ClientConnectorError):
        return _os_reason(e.os_error)
    if isinstance(e, OSError):
        return _os_reason(e)
    return str(e) or type(e).__name__


def _os_reason(err: OSError) -> str:
    if isinstance(err, socket.gaierror):
        return f"its host name cannot be resolved: {err.strerror}"
    if err.errno and err.errno > 0:
        return os.strerror(err.errno).lower()
    return str(err) or type(err).__name__


# -- the database ----------------------------------------------------------------------------

# Errors of a database that may only be starting: tried again a few times.
_DB_RETRY = (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


def _database_name(url: str) -> str:
    """The database URL without its password, for messages."""
    if url.startswith("sqlite:"):
        return url
    try:
        parsed = URL(url)
        return str(parsed.with_password(None)) if parsed.password else url
    except ValueError:
        return "appservice.database"


async def start_database(start: Callable[[], Awaitable[None]], url: str) -> None:
    """Open (and upgrade) the database with `start`; a failure becomes a StartupError."""
    is_postgres = not url.startswith("sqlite:")
    try:
        if is_postgres:
            await _with_retries(start, retry_on=_DB_RETRY)
        else:
            await start()
    except StartupError:
        raise
    except Exception as e:
        raise StartupError(explain_database_error(e, url), EXIT_DATABASE) from e


def explain_database_error(e: BaseException, url: str) -> str:
    name = _database_name(url)
    if isinstance(e, UnsupportedDatabaseVersion):
        found = re.search(r"v(\d+) \(latest known is v(\d+)\)", str(e))
        versions = f" (schema v{found[1]}; this version knows up to v{found[2]})" if found else ""
        return (
            f"the database {name} was used by a newer version of teams-bridge{versions}. "
            "Downgrading is not supported: run that newer version again, or restore a backup "
            "of the database taken before the upgrade."
        )
    if isinstance(e, DatabaseNotOwned):
        return (
            f"the database {name} belongs to another program ({e}). Give teams-bridge a "
            "database of its own."
        )
    if isinstance(e, ForeignTablesFound):
        return f"{e} in {name}. Give teams-bridge a database of its own."
    if isinstance(e, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"PostgreSQL refused the login for {name} ({e}). Check the user and password in "
            "appservice.database."
        )
    if isinstance(e, asyncpg.InvalidCatalogNameError):
        return (
            f"the database of {name} does not exist ({e}). Create it (e.g. createdb -O <user> "
            "<name>) or fix appservice.database."
        )
    if isinstance(
        e,
        asyncpg.ReadOnlySQLTransactionError
        | asyncpg.InsufficientPrivilegeError
        | asyncpg.DiskFullError,
    ):
        return (
            f"the database {name} is not writable ({e}). Give the bridge's role the right to "
            "create tables in it and write to them, with room on the disk."
        )
    if isinstance(e, sqlite3.OperationalError):
        message = str(e)
        if "readonly" in message or "read-only" in message:
            return (
                f"the SQLite database {name} is not writable ({message}). Make the file and "
                "its directory writable by the bridge's user."
            )
        return (
            f"the SQLite database {name} cannot be used ({message}). Check that its "
            "directory exists and that the bridge's user may write there."
        )
    if isinstance(e, OSError | TimeoutError | asyncpg.CannotConnectNowError):
        return (
            f"the database {name} cannot be reached ({_describe(e)}). Check that PostgreSQL is "
            "running and that appservice.database names the right host and port."
        )
    return (
        f"the database {name} could not be opened ({type(e).__name__}: {e}). Check "
        "appservice.database and the database server's log."
    )


async def check_database_writable(bridge: TeamsBridge) -> None:
    """An upgraded database can still refuse writes (a read-only role or replica, a full
    disk): write a row and take it back."""
    key = "startup-write-check"
    try:
        async with bridge.db.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO bridge_state_kv (key, value) VALUES ($1, $2) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                key,
                "1",
            )
            await conn.execute("DELETE FROM bridge_state_kv WHERE key=$1", key)
    except Exception as e:
        raise StartupError(
            explain_database_error(e, bridge.config["appservice.database"]), EXIT_DATABASE
        ) from e


async def start_metrics(bridge: TeamsBridge) -> MetricsServer | None:
    """The metrics listener, when enabled (its port was found free by check_ports)."""
    config = bridge.config
    if not config["metrics.enabled"]:
        return None
    host, port = config["metrics.hostname"], config["metrics.listen_port"]

    async def refresh() -> None:
        await refresh_bridge_gauges(bridge)

    server = MetricsServer(host, port, refresh)
    try:
        await server.start()
    except OSError as e:
        fail(
            StartupError(
                f"cannot listen on {host}:{port} (metrics.hostname, metrics.listen_port): "
                f"{e.strerror or e}. Stop the program that uses it or choose another "
                "metrics.listen_port.",
                EXIT_PORT,
            )
        )
    return server


# -- once the appservice listens -------------------------------------------------------------


async def check_homeserver_reaches_bridge(bridge: TeamsBridge) -> None:
    """The appservice ping: the homeserver calls the bridge at the url of its registration
    (with its hs_token) and says how that went. Skipped where the homeserver lacks it."""
    try:
        await _ping(bridge)
    except StartupError as e:
        fail(e)


async def _ping(bridge: TeamsBridge) -> None:
    """Ping up to PING_ATTEMPTS times while the homeserver says it could not connect: its
    own connection can fail for a passing reason. A ping that reached this bridge's
    endpoint proves the point whatever the homeserver then answers."""
    for attempt in range(1, PING_ATTEMPTS + 1):
        txn_id = f"teams-bridge-startup-{secrets.token_hex(4)}"
        try:
            await _ping_once(bridge, txn_id)
            return
        except StartupError as e:
            if txn_id in getattr(bridge.az, "pings_received", ()):
                log.info("The homeserver reaches the bridge (its answer was: %s)", e)
                return
            if not e.retry or attempt == PING_ATTEMPTS:
                raise
            log.warning("Appservice ping failed (attempt %d), trying again: %s", attempt, e)
            await asyncio.sleep(PING_RETRY_SECONDS)


async def _ping_once(bridge: TeamsBridge, txn_id: str) -> None:
    config = bridge.config
    address = str(config["homeserver.address"]).rstrip("/")
    appservice_id = config["appservice.id"]
    url = f"{address}/_matrix/client/v1/appservice/{quote(appservice_id, safe='')}/ping"
    headers = {"Authorization": f"Bearer {config['appservice.as_token']}"}
    listener = f"{config['appservice.hostname']}:{config['appservice.port']}"
    async with _client_session(config) as session:
        try:
            async with session.post(
                url,
                json={"transaction_id": txn_id},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT),
            ) as resp:
                body = await _json(resp)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RetriableStartupError(
                f"the homeserver did not answer the appservice ping ({_describe(e)}): it "
                f"cannot reach the bridge. Make the url in the registration (and "
                f"appservice.address) an address where the homeserver reaches {listener}.",
                EXIT_HOMESERVER,
            ) from e
    errcode = body.get("errcode")
    if resp.status == 200:
        log.info("The homeserver reaches the bridge (%s ms)", body.get("duration_ms", "?"))
        return
    if resp.status in (404, 405) or errcode == "M_UNRECOGNIZED":
        log.warning(
            "The homeserver has no appservice ping; cannot check that it reaches the bridge"
        )
        return
    if errcode == "M_URL_NOT_SET":
        raise StartupError(
            "the registration has no url, so the homeserver sends nothing to the bridge. Set "
            f"url in the registration to appservice.address ({config['appservice.address']}) "
            "and restart the homeserver.",
            EXIT_HOMESERVER,
        )
    if errcode in ("M_CONNECTION_FAILED", "M_CONNECTION_TIMEOUT"):
        raise RetriableStartupError(
            f"the homeserver cannot reach the bridge ({errcode}: {body.get('error', '')}). "
            "Make the url in the registration (and appservice.address, "
            f"{config['appservice.address']}) an address where the homeserver reaches "
            f"{listener}, then restart the homeserver.",
            EXIT_HOMESERVER,
        )
    if errcode == "M_BAD_STATUS" and body.get("status") in (401, 403):
        raise StartupError(
            "the homeserver's hs_token is not appservice.hs_token (the bridge refused the "
            "homeserver's ping). Copy hs_token from the registration into the config, or "
            "generate the registration again (-g), reload it in the homeserver and restart it.",
            EXIT_HOMESERVER,
        )
    if errcode == "M_BAD_STATUS":
        raise StartupError(
            f"something other than this bridge answers at the url in the registration "
            f"(HTTP {body.get('status')}). Make that url (and appservice.address) an address "
            f"where the homeserver reaches {listener}.",
            EXIT_HOMESERVER,
        )
    if errcode == "M_FORBIDDEN":
        raise StartupError(
            f"appservice.id ({appservice_id}) is not the id of the registration that "
            f"appservice.as_token belongs to ({body.get('error', '')}). Set appservice.id to "
            "the registration's id.",
            EXIT_HOMESERVER,
        )
    raise StartupError(
        f"the appservice ping failed (HTTP {resp.status} {errcode or ''}: "
        f"{body.get('error', '')}). {REGISTRATION_HINT}.",
        EXIT_HOMESERVER,
    )
