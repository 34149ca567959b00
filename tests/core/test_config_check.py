"""Config values are checked at start-up, each problem named by its key."""

from __future__ import annotations

import pytest
from mautrix.util.config import RecursiveDict
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from teams_bridge.config_check import ConfigProblem, check_values
from tests.e2e.bridge_process import EXAMPLE_CONFIG


def _config(**overrides) -> RecursiveDict:
    config = RecursiveDict(YAML().load(EXAMPLE_CONFIG.read_text()), CommentedMap)
    config["homeserver.address"] = "http://127.0.0.1:8008"
    for key, value in overrides.items():
        config[key.replace("__", ".")] = value
    return config


def test_the_example_config_passes():
    check_values(_config())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("appservice.port", 0, "appservice.port must be a whole number from 1 to 65535, not 0"),
        ("appservice.port", True, "appservice.port must be a whole number"),
        ("homeserver.domain", "https://example.com", "homeserver.domain must be"),
        ("homeserver.verify_ssl", "yes", "homeserver.verify_ssl must be true or false"),
        ("homeserver.software", "dendrite", "must be one of standard, asmux, hungry"),
        ("appservice.bot_username", "@bot:example.com", "appservice.bot_username must be"),
        ("bridge.username_template", "teams_{mri}", "must be a string containing {userid}"),
        ("bridge.portal_queue_size", 0, "bridge.portal_queue_size must be a whole number"),
        ("bridge.cache.portals", -1, "bridge.cache.portals must be a whole number"),
        ("bridge.media_temp_dir", "/no/such/dir", "must be an existing directory"),
        ("teams.trouter.ping_interval", 0, "must be a number above 0"),
        ("metrics.listen_port", 70000, "metrics.listen_port must be a whole number"),
        ("bridge.permissions", {}, "bridge.permissions must map"),
    ],
)
def test_wrong_values_are_named(key, value, message):
    with pytest.raises(ConfigProblem) as raised:
        check_values(_config(**{key.replace(".", "__"): value}))
    assert message in str(raised.value)
    assert raised.value.key == key


def test_secrets_are_not_repeated():
    with pytest.raises(ConfigProblem) as raised:
        check_values(_config(appservice__database="mysql://user:hunter2@db/bridge"))
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigProblem) as raised:
        check_values(_config(appservice__as_token=""))
    assert str(raised.value) == "appservice.as_token must be a non-empty string"


def test_metrics_port_must_not_be_the_appservice_port():
    check_values(_config(metrics__listen_port=29340))  # disabled: no clash
    with pytest.raises(ConfigProblem, match="must differ from appservice.port"):
        check_values(_config(metrics__enabled=True, metrics__listen_port=29340))


def test_standby_processes_need_postgresql_and_room_for_a_failed_renewal():
    config = _config(bridge__cluster__enabled=True)  # the example's database is SQLite
    with pytest.raises(ConfigProblem) as raised:
        check_values(config)
    assert raised.value.key == "bridge.cluster.enabled"
    assert "needs a PostgreSQL database" in str(raised.value)
    pg = "postgres://bridge:secret@localhost/bridge"
    check_values(_config(bridge__cluster__enabled=True, appservice__database=pg))
    with pytest.raises(ConfigProblem) as raised:
        check_values(
            _config(
                bridge__cluster__enabled=True,
                appservice__database=pg,
                bridge__cluster__renew_seconds=20,
            )
        )
    assert raised.value.key == "bridge.cluster.renew_seconds"
    assert "at most half of bridge.cluster.lease_seconds" in str(raised.value)
    # Off, the values are still checked but not against each other.
    check_values(_config(bridge__cluster__renew_seconds=20))
    with pytest.raises(ConfigProblem):
        check_values(_config(bridge__cluster__lease_seconds=0))
