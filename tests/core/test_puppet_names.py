"""A ghost's name from the names on messages: when the profile is looked up again."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from teams_bridge import puppet as puppet_module
from teams_bridge.puppet import PROFILE_RECHECK_SECONDS, Puppet
from teams_bridge.teams.models import Profile

ADA = "8:orgid:00000000-0000-0000-0000-00000000000a"


class FakeIntent:
    def __init__(self) -> None:
        self.names: list[str] = []

    async def set_displayname(self, name: str) -> None:
        self.names.append(name)


class FakeClient:
    def __init__(self, profile_name: str | None) -> None:
        self.profile_name = profile_name
        self.lookups: list[list[str]] = []

    async def fetch_profiles(self, mris: list[str]) -> dict[str, Profile]:
        self.lookups.append(list(mris))
        if self.profile_name is None:
            return {}  # the lookup failed
        return {mri: Profile(mri=mri, display_name=self.profile_name) for mri in mris}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The monotonic clock as the puppet module reads it; starts near zero, as it does on
    a machine that has just booted."""
    now = SimpleNamespace(value=5.0)
    fake_time = SimpleNamespace(monotonic=lambda: now.value, time=time.time)
    monkeypatch.setattr(puppet_module, "time", fake_time)
    return now


@pytest.fixture
def ghost(monkeypatch: pytest.MonkeyPatch) -> tuple[Puppet, FakeIntent]:
    intent = FakeIntent()
    az = SimpleNamespace(intent=SimpleNamespace(user=lambda mxid: intent))
    monkeypatch.setattr(Puppet, "az", az, raising=False)
    monkeypatch.setattr(Puppet, "mxid_template", "@teams_{userid}:example.org", raising=False)
    config = {"bridge.displayname_template": "{displayname} (Teams)"}
    monkeypatch.setattr(Puppet, "config", config, raising=False)
    puppet = Puppet(ADA, name="Ada Lovelace", name_source="profile", name_set=True)

    async def save() -> None:
        pass

    monkeypatch.setattr(puppet, "save", save)
    return puppet, intent


async def test_first_new_name_looks_the_profile_up_even_right_after_boot(clock, ghost):
    puppet, intent = ghost
    client = FakeClient(profile_name=None)
    await puppet.sync_name_from_message("Ada Byron", client)
    assert client.lookups == [[ADA]]
    assert (puppet.name, puppet.name_source) == ("Ada Byron", "message")
    assert intent.names == ["Ada Byron (Teams)"]


async def test_profile_name_wins_and_is_looked_up_again_only_after_a_while(clock, ghost):
    puppet, intent = ghost
    client = FakeClient(profile_name="Ada Lovelace")
    await puppet.sync_name_from_message("Ada Byron", client)
    assert client.lookups == [[ADA]]
    clock.value += PROFILE_RECHECK_SECONDS - 1
    await puppet.sync_name_from_message("Countess Lovelace", client)
    assert len(client.lookups) == 1
    clock.value += 1
    client.profile_name = "Ada King"
    await puppet.sync_name_from_message("Countess Lovelace", client)
    assert len(client.lookups) == 2
    assert (puppet.name, puppet.name_source) == ("Ada King", "profile")
    assert intent.names == ["Ada King (Teams)"]
