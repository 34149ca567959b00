"""Bridge configuration: the example config is the source of truth, upgraded on start."""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator
from typing import Any, NamedTuple

from mautrix.bridge.config import BaseBridgeConfig
from mautrix.client import Client
from mautrix.types import UserID
from mautrix.util.config import ConfigUpdateHelper, ForbiddenDefault, ForbiddenKey
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

# Comment lines that earlier versions of example-config.yaml had and the current one does
# not. The upgrade keeps the comments a user wrote, which are told apart from the example's
# own by their text: when a comment is reworded or removed in example-config.yaml, add its
# old lines here, or configs written from the old example keep the stale text forever.
RETIRED_EXAMPLE_COMMENTS = frozenset(
    {
        "The maximum body size of appservice API requests (from the homeserver) in mebibytes.",
        "When the homeserver delivers an appservice transaction late (e.g. after it restarted),",
        "messages from later transactions wait this long for it, so they reach Teams in order.",
        "Whether to update m.direct for the user's direct chats (needs double puppeting).",
        "A homeserver that restarts can deliver an event late or not at all. For this long after",
        "the homeserver failed to answer, each room compares its timeline with what the bridge",
        "received, once, before sending newer messages to Teams, so none is lost or reordered.",
        "0 disables the check.",
    }
)

Path = tuple[Any, ...]


class Permissions(NamedTuple):
    relay: bool
    user: bool
    admin: bool
    level: str


class Config(BaseBridgeConfig):
    @property
    def forbidden_defaults(self) -> list[ForbiddenDefault]:
        """Example values that must have been replaced, each with how to fix it."""
        address = (
            "Set it to the address where the bridge reaches your homeserver, "
            "e.g. http://localhost:8008."
        )
        registration = (
            "It is written when you generate the registration: "
            "python -m teams_bridge -c config.yaml -g -r registration.yaml"
        )
        defaults = [
            ForbiddenDefault("homeserver.address", "https://example.com", address),
            ForbiddenDefault("homeserver.address", "https://matrix.example.com", address),
            ForbiddenDefault(
                "homeserver.domain",
                "example.com",
                "Set it to your homeserver's server name (what follows ':' in user IDs).",
            ),
        ]
        if self._check_tokens:
            placeholder = "This value is generated when generating the registration"
            defaults += [
                ForbiddenDefault("appservice.as_token", placeholder, registration),
                ForbiddenDefault("appservice.hs_token", placeholder, registration),
            ]
        defaults.append(
            ForbiddenDefault(
                "bridge.permissions",
                ForbiddenKey("example.com"),
                "Replace the example entries with your own users or homeserver domain.",
            )
        )
        return defaults

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        user = user_comments(self._data, _example_comments(self.base_path))
        tails: dict[Path, CommentToken] = {}
        _tails(helper.base._data, (), tails)
        super().do_update(helper)
        copy, copy_dict = helper.copy, helper.copy_dict

        for key in (
            "login",
            "authz_enterprise",
            "authz_consumer",
            "trouter_enterprise",
            "trouter_consumer",
            "registrar_enterprise",
            "registrar_consumer",
        ):
            copy(f"teams.endpoints.{key}")
        copy("teams.default_tenant")
        copy("teams.trouter.ping_interval")
        copy("teams.trouter.pong_timeout")
        copy("teams.trouter.backoff_max")

        copy("bridge.username_template")
        copy("bridge.displayname_template")
        copy("bridge.avatar_refresh_hours")
        copy("bridge.initial_chat_sync")
        copy("bridge.backfill.initial_messages")
        copy("bridge.backfill.parallel_chats")
        copy("bridge.portal_queue_size")
        copy("bridge.cache.portals")
        copy("bridge.cache.puppets")
        copy("bridge.cache.users")
        copy("bridge.matrix_order_hold_seconds")
        copy("bridge.homeserver_watch_seconds")
        copy("bridge.matrix_event_retention_hours")
        copy("bridge.private_chat_portal_meta")
        copy("bridge.spaces")
        copy("bridge.leave_teams_chat_on_leave")
        copy("bridge.sync_presence")
        copy("bridge.presence_refresh_seconds")
        copy("bridge.message_status_events")
        copy("bridge.uvloop")
        copy("bridge.cluster.enabled")
        copy("bridge.cluster.lease_seconds")
        copy("bridge.cluster.renew_seconds")
        copy("bridge.sync_direct_chat_list")
        copy("bridge.login_shared_secret_map")
        copy("bridge.double_puppet_server_map")
        copy("bridge.double_puppet_allow_discovery")
        copy("bridge.command_prefix")
        copy("bridge.max_file_size")
        copy("bridge.media_temp_dir")
        copy_dict("bridge.permissions")

        copy("metrics.enabled")
        copy("metrics.listen_port")
        copy("metrics.hostname")

        copy("bridge.provisioning.enabled")
        copy("bridge.provisioning.prefix")
        secret = self["bridge.provisioning.shared_secret"]
        if not secret or secret == "generate":
            helper.base["bridge.provisioning.shared_secret"] = self._new_token()
        else:
            copy("bridge.provisioning.shared_secret")

        _restore_tails(helper.base._data, tails)
        put_user_comments(helper.base._data, user)

    def _get_permissions(self, key: str) -> Permissions:
        level = self["bridge.permissions"].get(key, "")
        admin = level == "admin"
        user = level == "user" or admin
        relay = level == "relay" or user
        return Permissions(relay, user, admin, level)

    def get_permissions(self, mxid: UserID) -> Permissions:
        permissions = self["bridge.permissions"] or {}
        if mxid in permissions:
            return self._get_permissions(mxid)
        _, homeserver = Client.parse_user_id(mxid)
        if homeserver in permissions:
            return self._get_permissions(homeserver)
        return self._get_permissions("*")


# -- keeping the user's comments through the upgrade ---------------------------------------------
#
# The upgrade builds a fresh copy of the example config and copies the user's values into it, so
# the file keeps the example's current comments. Comments the user added are carried over too:
# each one belongs to the key on its line (end-of-line comment) or to the next key below it, and
# is put back on that key if the key is still there. Comments on keys that no longer exist go.


def _tail_slot(node: Any) -> list | None:
    """Where ruamel keeps the comments after a container: on its last element."""
    if isinstance(node, CommentedMap) and len(node):
        return node.ca.items.setdefault(list(node)[-1], [None, None, None, None])
    if isinstance(node, CommentedSeq) and len(node):
        return node.ca.items.setdefault(len(node) - 1, [None, None, None, None])
    return None


def _tails(node: Any, path: Path, out: dict[Path, CommentToken]) -> None:
    """The comments after each container of the example (they head the key that follows)."""
    slot = _tail_slot(node)
    if slot is not None:
        token = slot[2] if isinstance(node, CommentedMap) else slot[0]
        if isinstance(token, CommentToken) and "#" in token.value:
            out[path] = token
    if isinstance(node, (dict, list)):
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            _tails(value, (*path, key), out)


def _restore_tails(root: Any, tails: dict[Path, CommentToken]) -> None:
    """Put back the example's comments lost where a user's container replaced the example's."""
    for path, tail in tails.items():
        node = root
        for key in path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        slot = _tail_slot(node)
        if slot is None:
            continue
        index = 2 if isinstance(node, CommentedMap) else 0
        token = slot[index]
        if token is None:
            slot[index] = CommentToken(tail.value, CommentMark(tail.column))
        elif not _comment_texts(tail.value) <= _comment_texts(token.value):
            token.value = token.value.rstrip("\n") + tail.value


def _comment_texts(value: str) -> set[str]:
    return {_norm(line) for line in value.split("\n") if line.strip().startswith("#")}


def _example_comments(base_path: str) -> frozenset[str]:
    if base_path.startswith("pkg://"):
        package, _, resource = base_path[len("pkg://") :].partition("/")
        data = pkgutil.get_data(package, resource) or b""
        text = data.decode("utf-8")
    else:
        with open(base_path, encoding="utf-8") as stream:
            text = stream.read()
    found = {_norm(line[line.index("#") :]) for line in text.splitlines() if "#" in line}
    return frozenset(found | RETIRED_EXAMPLE_COMMENTS)


def _norm(comment: str) -> str:
    return comment.strip().lstrip("#").strip()


def _tokens(node: Any) -> Iterator[CommentToken]:
    if isinstance(node, CommentToken):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _tokens(item)


def _comments_by_line(node: Any, out: dict[int, tuple[int, str]]) -> None:
    """Every comment line in the loaded tree: line number -> (column, text)."""
    ca = getattr(node, "ca", None)
    if ca is not None:
        for token in _tokens([ca.comment, list(ca.items.values()), ca.end]):
            line = getattr(token.start_mark, "line", None)
            if line is None:
                continue
            column = token.start_mark.column
            if token.value.startswith("\n"):
                # No end-of-line comment: the token starts at the first comment line below.
                line -= 1
            for i, text in enumerate(token.value.split("\n")):
                if text.strip().startswith("#"):
                    out.setdefault(line + i, (column if i == 0 else 0, text.strip()))
    if isinstance(node, dict):
        for value in node.values():
            _comments_by_line(value, out)
    elif isinstance(node, list):
        for value in node:
            _comments_by_line(value, out)


def _keys_by_line(node: Any, path: Path, out: dict[int, tuple[Path, int]]) -> None:
    """Every mapping key in the loaded tree: line number -> (path, column)."""
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            try:
                line, column = node.lc.key(key)
            except (KeyError, TypeError):
                continue
            out[line] = ((*path, key), column)
            _keys_by_line(value, (*path, key), out)
            if isinstance(value, CommentedSeq):
                # A comment among the items of a list is kept above the list's key.
                for i in range(len(value)):
                    try:
                        out.setdefault(value.lc.item(i)[0], ((*path, key), column))
                    except (KeyError, TypeError):
                        pass


def _lookup(root: Any, path: Path) -> tuple[CommentedMap, Any] | None:
    node = root
    for key in path[:-1]:
        if not isinstance(node, CommentedMap) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, CommentedMap) or path[-1] not in node:
        return None
    return node, path[-1]


def _present(mapping: CommentedMap) -> set[str]:
    return {
        _norm(text)
        for token in _tokens([mapping.ca.comment, list(mapping.ca.items.values()), mapping.ca.end])
        for text in token.value.split("\n")
        if text.strip().startswith("#")
    }


class UserComments(NamedTuple):
    before: dict[Path, list[tuple[int, str]]]  # full-line comments above a key (column, text)
    after: dict[Path, tuple[int, str]]  # the comment at the end of a key's line


def user_comments(source: Any, example: frozenset[str]) -> UserComments:
    """The comments of a loaded config that are not the example's own, by the key they are on."""
    found = UserComments({}, {})
    if not isinstance(source, CommentedMap):
        return found
    comments: dict[int, tuple[int, str]] = {}
    _comments_by_line(source, comments)
    keys: dict[int, tuple[Path, int]] = {}
    _keys_by_line(source, (), keys)
    key_lines = sorted(keys)
    for line in sorted(comments):
        _, text = comments[line]
        if not _norm(text) or _norm(text) in example:
            continue
        if line in keys:
            path, column = keys[line]
            found.after[path] = (column, text)
            continue
        following = next((n for n in key_lines if n > line), None)
        if following is not None:
            path, column = keys[following]
            found.before.setdefault(path, []).append((column, text))
    return found


def _strip_token(token: CommentToken, texts: set[str]) -> None:
    lines = token.value.split("\n")
    kept = [
        line
        for i, line in enumerate(lines)
        if i == 0 or not (line.strip().startswith("#") and _norm(line) in texts)
    ]
    if kept[0].strip().startswith("#") and _norm(kept[0]) in texts:
        kept[0] = ""  # an end-of-line comment: the line break after the value stays
    token.value = "\n".join(kept)


def _strip_slots(slots: list, texts: set[str]) -> None:
    for slot in slots:
        if isinstance(slot, CommentToken):
            _strip_token(slot, texts)
        elif isinstance(slot, list):
            slot[:] = [
                t
                for t in slot
                if not (
                    isinstance(t, CommentToken)
                    and _comment_texts(t.value)
                    and _comment_texts(t.value) <= texts
                )
            ]
            _strip_slots(slot, texts)


def _strip_user_comments(node: Any, texts: set[str]) -> None:
    """Remove the user's comments where they are still attached (containers copied whole), so
    that each is put back once, on its key."""
    ca = getattr(node, "ca", None)
    if ca is not None:
        _strip_slots([ca.comment, *ca.items.values(), ca.end], texts)
    if isinstance(node, dict):
        for value in node.values():
            _strip_user_comments(value, texts)
    elif isinstance(node, list):
        for value in node:
            _strip_user_comments(value, texts)


def put_user_comments(target: Any, found: UserComments) -> None:
    """Put the comments found by user_comments() on the same keys of the upgraded config."""
    texts = {_norm(text) for entries in found.before.values() for _, text in entries}
    texts |= {_norm(text) for _, text in found.after.values()}
    _strip_user_comments(target, texts)
    for path, texts in found.before.items():
        located = _lookup(target, path)
        if located is None:
            continue
        mapping, key = located
        present = _present(mapping)
        new = [(column, text) for column, text in texts if _norm(text) not in present]
        if new:
            entry = mapping.ca.items.setdefault(key, [None, None, None, None])
            tokens = [CommentToken(text + "\n", CommentMark(column)) for column, text in new]
            entry[1] = [*(entry[1] or []), *tokens]
    for path, (column, text) in found.after.items():
        located = _lookup(target, path)
        if located is None:
            continue
        mapping, key = located
        if _norm(text) in _present(mapping):
            continue
        entry = mapping.ca.items.setdefault(key, [None, None, None, None])
        if isinstance(mapping[key], (dict, list)):
            # Kept above the key: after a container's key ruamel has no place for it.
            token = CommentToken(text + "\n", CommentMark(column))
            entry[1] = [*(entry[1] or []), token]
        elif entry[2] is None:
            entry[2] = CommentToken(" " + text + "\n", CommentMark(0))
        elif entry[2].value.startswith("\n"):
            entry[2].value = " " + text + entry[2].value
