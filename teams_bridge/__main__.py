"""Entry point: `python -m teams_bridge -c config.yaml [-g -r registration.yaml]`."""

from __future__ import annotations

import aiohttp
from mautrix.bridge import Bridge
from mautrix.types import RoomID, UserID

from . import __version__
from . import db as dbm
from .config import Config
from .db import upgrade_table
from .matrix import MatrixHandler
from .portal import Portal
from .puppet import Puppet
from .teams import Endpoints
from .user import User


class TeamsBridge(Bridge):
    name = "teams-bridge"
    module = "teams_bridge"
    command = "python -m teams_bridge"
    description = "A Matrix-Microsoft Teams puppeting bridge."
    repo_url = "https://example.invalid/teams-bridge"
    version = __version__
    markdown_version = __version__
    config_class = Config
    matrix_class = MatrixHandler
    upgrade_table = upgrade_table

    config: Config
    matrix: MatrixHandler
    teams_session: aiohttp.ClientSession
    teams_endpoints: Endpoints

    def prepare_db(self) -> None:
        super().prepare_db()
        dbm.init(self.db)

    def prepare_bridge(self) -> None:
        super().prepare_bridge()
        self.teams_endpoints = Endpoints.from_dict(dict(self.config["teams.endpoints"]))

    async def start(self) -> None:
        self.teams_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120, connect=30),
            headers={"User-Agent": f"teams-bridge/{__version__}"},
        )
        Portal.init_cls(self)
        self.add_startup_actions(Puppet.init_cls(self))
        self.add_startup_actions(User.init_cls(self))
        await super().start()

    def prepare_stop(self) -> None:
        for user in User.by_mxid.values():
            self.add_shutdown_actions(user.disconnect())

    async def stop(self) -> None:
        await super().stop()
        if hasattr(self, "teams_session"):
            await self.teams_session.close()

    async def get_user(self, user_id: UserID, create: bool = True) -> User | None:
        return await User.get_by_mxid(user_id, create=create)

    async def get_portal(self, room_id: RoomID) -> Portal | None:
        return await Portal.get_by_mxid(room_id)

    async def get_puppet(self, user_id: UserID, create: bool = False) -> Puppet | None:
        return await Puppet.get_by_mxid(user_id, create=create)

    async def get_double_puppet(self, user_id: UserID) -> Puppet | None:
        return await Puppet.get_by_custom_mxid(user_id)

    def is_bridge_ghost(self, user_id: UserID) -> bool:
        return Puppet.get_mri_from_mxid(user_id) is not None

    async def count_logged_in_users(self) -> int:
        return sum(1 for user in User.by_mxid.values() if user.client is not None)


def main() -> None:
    TeamsBridge().run()


if __name__ == "__main__":
    main()
