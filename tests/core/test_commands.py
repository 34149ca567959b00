"""Which commands exist and who may run them; secret-carrying commands are recognised."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from mautrix.bridge.commands.handler import HelpCacheKey, command_aliases, command_handlers

import teams_bridge.commands  # noqa: F401  (registers and restricts the commands)
from teams_bridge import log_filter
from teams_bridge.commands.builtin import KEPT, PortalAdminCommand, is_builtin
from teams_bridge.commands.secrets import forget_in_logs, secret_arguments, secret_command
from teams_bridge.db.files import restrict_sqlite_files, sqlite_path

PREFIX = "!teams"


def test_only_the_kept_builtins_remain_each_behind_its_check():
    builtins = {name: h for name, h in command_handlers.items() if is_builtin(h)}
    assert set(builtins) == set(KEPT)
    for gone in ("open-manhole", "close-manhole"):
        assert gone not in command_handlers
    for name, rule in KEPT.items():
        handler = builtins[name]
        assert handler.needs_admin == (rule == "admin"), name
        assert isinstance(handler, PortalAdminCommand) == (rule == "portal-admin"), name
    assert all(not is_builtin(h) or h.name in KEPT for h in command_aliases.values())
    own = {name for name, h in command_handlers.items() if not is_builtin(h)}
    assert own == {
        "login",
        "login-refresh",
        "cancel",
        "logout",
        "ping",
        "sync",
        "search-users",
        "contacts",
        "start-chat",
        "create-group",
        "login-browser",
        "search",
        "leave",
        "status",
    }


def test_portal_commands_are_listed_only_for_those_who_may_run_them():
    unbridge = command_handlers["unbridge"]

    def key(admin: bool, logged_in: bool, portal: bool = True) -> HelpCacheKey:
        return HelpCacheKey(
            is_management=False, is_portal=portal, is_admin=admin, is_logged_in=logged_in
        )

    assert unbridge.has_permission(key(admin=True, logged_in=False))
    assert unbridge.has_permission(key(admin=False, logged_in=True))
    assert not unbridge.has_permission(key(admin=False, logged_in=False))
    assert not unbridge.has_permission(key(admin=False, logged_in=True, portal=False))


@pytest.mark.parametrize(
    ("body", "in_portal", "expected"),
    [
        ("login-refresh 0.AXYZ", False, "login-refresh"),
        ("!teams login-refresh 0.AXYZ", True, "login-refresh"),
        ("!teams login-refresh 0.AXYZ", False, "login-refresh"),
        ("  !teams   LOGIN-REFRESH\n0.AXYZ", True, "login-refresh"),
        ("!teamslogin-refresh 0.AXYZ", True, "login-refresh"),
        ("login-matrix syt_abc", False, "login-matrix"),
        ("!teams login-matrix syt_abc", True, "login-matrix"),
        # In a portal a bare message is a chat message for Teams, not a command.
        ("login-refresh 0.AXYZ", True, None),
        ("!teams login 0.AXYZ", False, None),
        ("please login-refresh", False, None),
        ("", False, None),
        ("!teams", True, None),
    ],
)
def test_secret_commands_are_recognised(body: str, in_portal: bool, expected: str | None):
    assert secret_command(body, PREFIX, in_portal=in_portal) == expected


def test_the_secret_is_what_follows_the_command():
    assert secret_arguments("!teams login-refresh personal 0.AXYZ", PREFIX) == ["0.AXYZ"]
    assert secret_arguments("login-refresh 0.AXYZ extra", PREFIX) == ["0.AXYZ", "extra"]
    assert secret_arguments("login-matrix", PREFIX) == []


def test_a_registered_secret_is_removed_from_log_lines_but_the_command_name_stays():
    token = "0.AQ" + "x" * 60
    forget_in_logs(f"!teams login-refresh {token}", PREFIX)
    assert log_filter.redact(f"command login-refresh {token}") == (
        "command login-refresh <redacted>"
    )


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_files_are_private_whatever_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        # An existing database with loose side files, as an older version left them.
        existing = tmp_path / "old.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{existing}{suffix}").touch()
            os.chmod(f"{existing}{suffix}", 0o644)
        restrict_sqlite_files(f"sqlite:{existing}")
        assert {_mode(f"{existing}{s}") for s in ("", "-wal", "-shm")} == {0o600}

        # A new database: created private, and SQLite's side files follow its mode.
        new = tmp_path / "new.db"
        restrict_sqlite_files(f"sqlite:{new}")
        conn = sqlite3.connect(new)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE t (x TEXT)")
            conn.execute("INSERT INTO t VALUES ('secret')")
            conn.commit()
            assert {_mode(f"{new}{s}") for s in ("", "-wal", "-shm")} == {0o600}
        finally:
            conn.close()
    finally:
        os.umask(old)


def test_only_sqlite_file_urls_are_touched(tmp_path: Path):
    assert sqlite_path("postgres://u:p@localhost/db") is None
    assert sqlite_path("sqlite::memory:") is None
    assert sqlite_path(f"sqlite://{tmp_path}/a.db") == f"{tmp_path}/a.db"
    assert sqlite_path("sqlite:relative.db") == "relative.db"
    restrict_sqlite_files("postgres://u:p@localhost/db")
    # A missing directory is left for the database to report.
    restrict_sqlite_files(f"sqlite:{tmp_path}/missing/a.db")
    assert not (tmp_path / "missing").exists()


def test_every_command_has_a_one_line_description_in_help():
    for name, handler in command_handlers.items():
        if name == "unknown-command":
            continue  # the fallback, never listed
        text = handler._help_text or ""
        assert text.strip(), f"{name} has no description"
        assert "\n" not in text.strip(), f"{name}: the description is more than one line"
        assert handler.help_section is not None, name
