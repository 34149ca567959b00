"""Small doubles shared by the unit tests (the full simulator lives in tests/fake_teams)."""

from __future__ import annotations

from teams_bridge.teams.http import RetryPolicy

FAST_RETRY = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.01, max_retry_after=0.05)


class StaticTokens:
    """A TokenSource whose tokens change every time one is invalidated."""

    def __init__(self) -> None:
        self.skype_generation = 1
        self.access_generation = 1
        self.invalidated: list[str] = []

    async def skype_token(self) -> str:
        return f"skype-{self.skype_generation}"

    async def access_token(self) -> str:
        return f"access-{self.access_generation}"

    async def invalidate_skype_token(self, token: str) -> None:
        self.invalidated.append(token)
        if token == f"skype-{self.skype_generation}":
            self.skype_generation += 1

    async def invalidate_access_token(self, token: str) -> None:
        self.invalidated.append(token)
        if token == f"access-{self.access_generation}":
            self.access_generation += 1
