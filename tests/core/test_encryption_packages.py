"""With encryption allowed, a missing crypto package is named at start-up with how to
install it, instead of a crash inside mautrix."""

from __future__ import annotations

import sys

import pytest

from teams_bridge import startup


class _Config(dict):
    pass


def _config(allow: bool) -> _Config:
    return _Config({"bridge.encryption.allow": allow})


def test_nothing_is_asked_of_a_bridge_without_encryption(monkeypatch):
    monkeypatch.setitem(sys.modules, "olm", None)
    assert startup.encryption_packages_problem(_config(False)) is None


def test_the_installed_packages_are_enough():
    assert startup.encryption_packages_problem(_config(True)) is None


@pytest.mark.parametrize(
    ("modules", "named"),
    [
        (["olm"], "python-olm"),
        (["olm", "base58"], "python-olm, base58"),
        (["Crypto.Cipher.AES", "Crypto.Cipher", "Crypto"], "pycryptodome"),
    ],
)
def test_a_missing_package_is_named_with_the_fix(monkeypatch, modules, named):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
    problem = startup.encryption_packages_problem(_config(True))
    assert problem is not None
    assert f"(missing: {named})" in problem
    assert "pip install '.[e2ee]'" in problem and "bridge.encryption.allow" in problem
