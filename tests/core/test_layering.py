"""The protocol client must stay independent of Matrix and of the bridge core, and the
core independent of what Teams ids look like."""

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


PORTAL = TEAMS.parent / "portal"
# Intent methods that write to a room. Only the portal's RoomWriter calls them, so that the
# sender, encryption and transaction ids are decided in one place.
ROOM_WRITES = {"send_message_event", "send_message", "send_notice", "send_text", "redact"}
ROOM_WRITES |= {"react", "set_typing", "mark_read", "send_receipt", "_send_message"}


def _room_writes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        call = node.func
        # `self.writer.x(...)` is the writer itself; `client.send_message` goes to Teams.
        owner = ast.unparse(call.value)
        if call.attr in ROOM_WRITES and not owner.endswith("writer") and "client" not in owner:
            found.append(f"{path.name}:{node.lineno}: {owner}.{call.attr}")
    return found


DELIVERY = TEAMS.parent / "delivery"


def test_portal_writes_to_matrix_only_through_its_writer():
    files = sorted(PORTAL.glob("*.py")) + sorted(DELIVERY.glob("*.py"))
    assert any(p.name == "writer.py" for p in files)
    assert any(p.name == "worker.py" for p in files)
    offenders = [w for p in files if p.name != "writer.py" for w in _room_writes(p)]
    assert offenders == []


CORE = TEAMS.parent
# What Teams ids look like: MRI and conversation prefixes, and the telling parts of
# conversation ids. Only teams_bridge/teams/ knows them; the core asks it (teams/ids.py).
ID_PREFIXES = ("8:", "19:", "28:", "48:")
ID_PARTS = ("@thread.", "@unq.gbl.spaces", "uni01_", "orgid:", "meeting_")


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants (documentation may show ids)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _id_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in docs:
            continue
        text = node.value.lower()
        if text.startswith(ID_PREFIXES) or any(part in text for part in ID_PARTS):
            found.append(f"{path.relative_to(CORE)}:{node.lineno}: {node.value!r}")
    return found


def test_teams_ids_are_known_only_to_the_protocol_client():
    files = [p for p in sorted(CORE.rglob("*.py")) if TEAMS not in p.parents]
    assert any(p.name == "user.py" for p in files)
    offenders = [found for path in files for found in _id_literals(path)]
    assert offenders == []


def test_the_matrix_event_queue_is_read_only_by_the_delivery_package():
    """Finished `matrix_event` rows are pruned: what outlives delivery (where a message came
    from) is in `message.origin`, so nothing outside delivery/ looks events up there."""
    offenders = [
        f"{path.relative_to(CORE)}:{number}"
        for path in sorted(CORE.rglob("*.py"))
        if path.parent.name not in ("delivery", "db")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "MatrixEvent.get(" in line or "MatrixEvent.known_ids(" in line
    ]
    assert offenders == []


def _imports_in_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append(f"{path.relative_to(CORE)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_imports_inside_functions():
    """An import inside a function hides a dependency (usually a cycle worked around);
    what a module needs at run time comes from its top, or from what it is given."""
    offenders = [i for p in sorted(CORE.rglob("*.py")) for i in _imports_in_functions(p)]
    assert offenders == []


# The caches of loaded users, portals and puppets: only the directory holds them.
REGISTRIES = {"by_mxid", "by_mri", "by_thread", "by_custom_mxid"}


def test_only_the_directory_holds_the_caches():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name == "directory.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name = node.target.id
            if name in REGISTRIES:
                offenders.append(f"{path.relative_to(CORE)}:{node.lineno}: {name}")
    assert offenders == []


# Each stored field of a portal has one writer: the helper that owns it.
FIELD_OWNERS = {
    "mxid": "room.py",
    "kind": "room.py",
    "name": "room.py",
    "name_set": "room.py",
    "topic": "room.py",
    "avatar_url": "room.py",
    "avatar_source": "room.py",
    "team_id": "room.py",
    "team_name": "room.py",
    "other_user_mri": "room.py",
    "last_message_id": "inbound.py",
}


def _field_writes(path: Path) -> list[tuple[str, int]]:
    """(field, line) of every assignment to `portal.<field>` or `self.<field>`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(element, ast.Attribute)
                    and isinstance(element.value, ast.Name)
                    and element.value.id in ("self", "portal")
                ):
                    found.append((element.attr, node.lineno))
    return found


def test_each_portal_field_has_one_writer():
    """Renames from Teams and from Matrix, room creation and the avatar all go through the
    portal's `Room`; the cursor moves only in `Inbound`."""
    offenders = []
    for path in sorted(PORTAL.glob("*.py")):
        for field, line in _field_writes(path):
            owner = FIELD_OWNERS.get(field)
            if owner is not None and path.name != owner:
                offenders.append(f"{path.name}:{line}: {field} (written by {owner} only)")
    assert offenders == []
    assert any(f == "name" for f, _ in _field_writes(PORTAL / "room.py"))


def test_the_portal_is_composed_not_mixed_in():
    """The portal's behaviour lives in helpers it owns; its bases are only the stored row
    and mautrix's portal contract, so no base-class order decides what happens."""
    tree = ast.parse((PORTAL / "portal.py").read_text())
    portal = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Portal")
    assert [ast.unparse(b) for b in portal.bases] == ["dbm.Portal", "BasePortal"]
    mixins = [
        f"{path.name}: {node.name}"
        for path in sorted(PORTAL.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin")
    ]
    assert mixins == []
