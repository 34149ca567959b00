"""`FakeTeams`: the whole simulator as one aiohttp application on one loopback port."""

from __future__ import annotations

import random
from typing import Any

from aiohttp import web

from . import (
    aad,
    ams,
    authz,
    chatsvc,
    control_api,
    devicelogin,
    middletier,
    presence,
    registrar,
    trouter,
)
from .context import CTX, SimContext
from .endpoints import endpoints_for
from .options import SimOptions
from .recorder import Recorder
from .tokens import TokenStore
from .trouter import TrouterHub
from .world import World


class FakeTeams:
    """Start, point a bridge at `endpoints()`, drive it through `/_control/`, stop."""

    def __init__(self, **options: Any) -> None:
        self.options = SimOptions.from_kwargs(options)
        world = World(self.options.tenant_id)
        world.dedupe = self.options.dedupe_client_message_ids
        self.ctx = SimContext(
            options=self.options,
            world=world,
            tokens=TokenStore(self.options),
            rng=random.Random(self.options.seed),
        )
        self.hub = TrouterHub(self.ctx)
        self.ctx.trouter = self.hub
        self.ctx.presence = presence.PresenceService(self.ctx)
        world.sink = self.hub
        self.recorder = Recorder(self.options.max_recorded_requests)
        self.ams = ams.AmsStore()
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def world(self) -> World:
        return self.ctx.world

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self.recorder.middleware()], client_max_size=64 * 1024**2
        )
        app[CTX] = self.ctx
        app[control_api.RECORDER] = self.recorder
        app[ams.AMS] = self.ams
        control_api.add_routes(app)
        devicelogin.add_routes(app)
        authz.add_routes(app)
        chatsvc.add_routes(app)
        middletier.add_routes(app)
        trouter.add_routes(app)
        registrar.add_routes(app)
        presence.add_routes(app)
        ams.add_routes(app)
        aad.add_routes(app)  # last: its `/{tenant}/…` patterns are the most generic
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the simulator only listens on loopback")
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = port
        for sock in getattr(site._server, "sockets", None) or []:
            bound = sock.getsockname()[1]
            break
        self.url = f"http://{host}:{bound}"
        self.ctx.base_url = self.url
        return self.url

    def endpoints(self) -> dict[str, str]:
        return endpoints_for(self.url)

    async def stop(self) -> None:
        await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.ams.close()

    async def __aenter__(self) -> FakeTeams:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
