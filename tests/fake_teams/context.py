"""The state every route shares, kept on the aiohttp application."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from .devicecodes import DeviceCodes
from .options import SimOptions
from .tokens import TokenStore
from .world import World

if TYPE_CHECKING:
    from .presence import PresenceService
    from .trouter import TrouterHub


@dataclass
class SimContext:
    options: SimOptions
    world: World
    tokens: TokenStore
    device_codes: DeviceCodes = field(default_factory=DeviceCodes)
    # Browser sign-ins: authorization code -> what it was issued for.
    auth_codes: dict[str, dict] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    base_url: str = ""
    trouter: TrouterHub | None = None
    presence: PresenceService | None = None

    def __post_init__(self) -> None:
        # The world renders events and picks wire variants itself, so it shares these.
        self.world.options = self.options
        self.world.rng = self.rng

    def variant(self, setting: str) -> bool:
        """Resolve a random/always/never option to one yes-or-no."""
        if setting == "random":
            return self.rng.random() < 0.5
        return setting == "always"


CTX: web.AppKey[SimContext] = web.AppKey("fake_teams_ctx", SimContext)


def ctx(request: web.Request) -> SimContext:
    return request.app[CTX]
