"""The protocol client stands alone: no Matrix library, no bridge core."""

from __future__ import annotations

import ast
from pathlib import Path

import teams_bridge.teams as package

PACKAGE_DIR = Path(package.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_never_imports_mautrix_or_the_bridge_core() -> None:
    offenders = {}
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        bad = {
            name
            for name in imported_modules(path)
            if name.split(".")[0] == "mautrix"
            or (name.startswith("teams_bridge") and not name.startswith("teams_bridge.teams"))
        }
        if bad:
            offenders[path.name] = bad
    assert not offenders


def test_exports_the_documented_surface() -> None:
    from teams_bridge.teams import (  # noqa: F401
        AccountKind,
        AuthClient,
        AuthError,
        Conversation,
        ConversationKind,
        Credentials,
        DeviceCodeFlow,
        Endpoints,
        EventMessage,
        LoginDeclined,
        LoginExpired,
        Message,
        Profile,
        SelfInfo,
        TeamsClient,
        TeamsError,
        Thread,
        ThreadMember,
        TrouterState,
    )

    assert set(package.__all__) >= {
        "Endpoints", "AccountKind", "Credentials", "DeviceCodeFlow", "AuthClient", "TeamsClient",
        "Message", "Conversation", "ConversationKind", "Thread", "ThreadMember", "EventMessage",
        "Profile", "SelfInfo", "TrouterState", "TeamsError", "AuthError", "LoginDeclined",
        "LoginExpired",
    }  # fmt: skip
    assert [k.name for k in ConversationKind] == [
        "ONE_TO_ONE",
        "GROUP",
        "MEETING",
        "CHANNEL",
        "OTHER",
    ]
    assert [s.name for s in TrouterState] == ["CONNECTING", "CONNECTED", "DISCONNECTED", "STOPPED"]
