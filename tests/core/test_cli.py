"""The command line an operator uses: -g writes a registration, start-up upgrades the config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "teams_bridge" / "example-config.yaml"


def _write_config(path: Path, drop: tuple[str, ...] = ()) -> None:
    yaml = YAML()
    config = yaml.load(EXAMPLE.read_text())
    config["homeserver"]["address"] = "http://127.0.0.1:1"
    config["homeserver"]["domain"] = "matrix.test"
    config["bridge"]["permissions"] = {"matrix.test": "user"}
    for dotted in drop:
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]
    with path.open("w") as f:
        yaml.dump(config, f)


def test_generate_registration(tmp_path: Path):
    config_path, reg_path = tmp_path / "config.yaml", tmp_path / "registration.yaml"
    _write_config(
        config_path,
        drop=(
            "bridge.initial_chat_sync",
            "teams.endpoints.trouter_consumer",
            "bridge.provisioning.shared_secret",
        ),
    )
    command = [sys.executable, "-m", "teams_bridge", "-c", str(config_path)]
    command += ["-g", "-r", str(reg_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    yaml = YAML()
    registration = yaml.load(reg_path.read_text())
    config = yaml.load(config_path.read_text())
    assert registration["id"] == "teams"
    assert registration["as_token"] == config["appservice"]["as_token"]
    assert registration["hs_token"] == config["appservice"]["hs_token"]
    assert len(registration["as_token"]) >= 32
    regexes = [ns["regex"] for ns in registration["namespaces"]["users"]]
    assert r"@teams_.*:matrix\.test" in regexes
    assert r"@teamsbot:matrix\.test" in regexes
    assert registration["url"] == "http://localhost:29340"
    # The config was upgraded against the shipped example: dropped keys are back.
    assert config["bridge"]["initial_chat_sync"] == 20
    assert config["teams"]["endpoints"]["trouter_consumer"] == "https://go.trouter.skype.com/v4/a"
    assert config["bridge"]["permissions"] == {"matrix.test": "user"}
    # A random provisioning secret is made once and then kept.
    secret = config["bridge"]["provisioning"]["shared_secret"]
    assert secret != "generate" and len(secret) >= 32
    assert config["bridge"]["provisioning"]["prefix"] == "/_matrix/provision"
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.load(config_path.read_text())
    assert config["bridge"]["provisioning"]["shared_secret"] == secret


def test_refuses_to_start_with_placeholder_tokens(tmp_path: Path):
    config_path = tmp_path / "config.yaml"
    _write_config(config_path)
    result = subprocess.run(
        [sys.executable, "-m", "teams_bridge", "-c", str(config_path), "-n"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "generate the registration" in (result.stdout + result.stderr)
