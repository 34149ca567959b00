"""The protocol client must stay independent of Matrix and of the bridge core."""

import ast
from pathlib import Path

TEAMS = Path(__file__).resolve().parents[2] / "teams_bridge" / "teams"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2:
                names.append("teams_bridge." + (node.module or ""))
            elif node.level == 0 and node.module:
                names.append(node.module)
    return names


def test_protocol_client_imports_neither_mautrix_nor_core():
    files = sorted(TEAMS.rglob("*.py"))
    assert files, "teams_bridge/teams has no modules"
    offenders = []
    for path in files:
        for name in _imports(path):
            if name == "mautrix" or name.startswith("mautrix."):
                offenders.append(f"{path.name}: {name}")
            elif name.startswith("teams_bridge") and not name.startswith("teams_bridge.teams"):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []
