"""The config upgrade on start keeps every user value and comment (config_dumps/README.md).

Each old config is upgraded the way start-up does it (Bridge.prepare_config: the Config class
with the example config from the package as base, load(), update() which writes the file back).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from teams_bridge import config as config_module
from teams_bridge.__main__ import TeamsBridge
from teams_bridge.appservice import MIB, body_limit_bytes
from teams_bridge.config import Config

DUMPS = Path(__file__).resolve().parent / "config_dumps"
EXAMPLE = Path(config_module.__file__).resolve().parent / "example-config.yaml"
OLD_CONFIGS = sorted(p.name for p in DUMPS.glob("*.yaml"))

USER_VALUES = {
    "homeserver.address": "http://localhost:8008",
    "homeserver.domain": "chat.example.org",
    "appservice.address": "http://localhost:29341",
    "appservice.port": 29341,
    "appservice.database": "postgres://teams:secret-pw@localhost/teams",
    "appservice.as_token": "as-token-from-registration",
    "appservice.hs_token": "hs-token-from-registration",
    "appservice.max_body_size": 1,
    "bridge.initial_chat_sync": 50,
}
PERMISSIONS = {"chat.example.org": "user", "@ops:chat.example.org": "admin"}
# Each user comment and the line that must follow it (or carry it, for end-of-line comments).
USER_COMMENTS = {
    "# user: production bridge, managed by ops": "homeserver:",
    "# user: our Synapse, reached over the loopback": "    address: http://localhost:8008",
    "# user: server_name in homeserver.yaml": "    domain: chat.example.org",
    "# user: 29340 is taken by another bridge here": "    port: 29341",
    "# user: everyone on our server may log in": "        chat.example.org: user",
    "# user: the on-call account": "        '@ops:chat.example.org': admin",
    # In maps and lists that are copied whole (manhole.whitelist, logging).
    "# user: root only": "    whitelist:",
    "# user: first formatter": "        colored:",
    "# user: inside colored": "            (): mautrix.util.logging.color.ColorFormatter",
    "# user: our handlers": "    handlers:",
}
# Keys none of the old configs has, with the example's value.
NEW_KEYS = ["bridge.provisioning.prefix", "metrics.listen_port", "bridge.cache.portals"]


def upgrade(path: Path) -> Config:
    config = Config(
        str(path),
        str(path.parent / "registration.yaml"),
        f"pkg://{TeamsBridge.module}/example-config.yaml",
        env_prefix=TeamsBridge.module.upper(),
    )
    config.load()
    config.update()
    return config


def comment_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def test_fixtures_exist():
    assert len(OLD_CONFIGS) >= 2


@pytest.mark.parametrize("name", OLD_CONFIGS)
def test_upgrade_keeps_user_values_and_comments(name: str, tmp_path: Path):
    path = tmp_path / "config.yaml"
    shutil.copy(DUMPS / name, path)
    old_text = path.read_text()
    assert all(comment in old_text for comment in USER_COMMENTS)

    config = upgrade(path)
    text = path.read_text()
    lines = text.splitlines()

    # Every user value, read back from the written file.
    reread = YAML().load(text)
    for key, value in USER_VALUES.items():
        node = reread
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert dict(reread["bridge"]["permissions"]) == PERMISSIONS

    # Every user comment, still on its key.
    for comment, key_line in USER_COMMENTS.items():
        carrying = [i for i, line in enumerate(lines) if comment in line]
        assert len(carrying) == 1, comment
        i = carrying[0]
        if lines[i].strip().startswith("#"):
            following = next(line for line in lines[i + 1 :] if not line.strip().startswith("#"))
            assert following == key_line, comment
        else:
            assert lines[i].startswith(key_line + " "), comment

    # New keys arrive with the example's values, and the file has exactly the example's
    # comments (none lost, none doubled, none stale from the old example) plus the user's.
    example_text = EXAMPLE.read_text()
    example = YAML().load(example_text)
    for key in NEW_KEYS:
        assert key not in old_text.replace(": ", ".")
        node, expected = reread, example
        for part in key.split("."):
            node, expected = node[part], expected[part]
        assert node == expected, key
    user = [line for line in lines if "# user:" in line]
    rest = [c for c in comment_lines(text) if "# user:" not in c]
    assert len(user) == len(USER_COMMENTS)
    assert rest == comment_lines(example_text)

    # The generated provisioning secret, and the old body limit kept as written but raised.
    assert len(config["bridge.provisioning.shared_secret"]) >= 16
    assert config["bridge.provisioning.shared_secret"] != "generate"
    assert re.search(r"^    max_body_size: 1$", text, re.M)
    assert body_limit_bytes(config["appservice.max_body_size"]) == 100 * MIB

    # Upgrading the upgraded file changes nothing.
    upgrade(path)
    assert path.read_text() == text


def test_upgrading_the_example_adds_nothing(tmp_path: Path):
    path = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE, path)
    upgrade(path)
    text = path.read_text()
    assert comment_lines(text) == comment_lines(EXAMPLE.read_text())
    secret = re.search(r"shared_secret: (\S+)", text)
    assert secret and secret.group(1) != "generate"
    assert YAML().load(text) == {
        **YAML().load(EXAMPLE.read_text()),
        "bridge": {
            **YAML().load(EXAMPLE.read_text())["bridge"],
            "provisioning": {
                **YAML().load(EXAMPLE.read_text())["bridge"]["provisioning"],
                "shared_secret": secret.group(1),
            },
        },
    }
