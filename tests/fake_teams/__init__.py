"""A Microsoft Teams simulator speaking the real wire protocol on loopback, plus a control API.

See `teams-protocol.md` for the protocol; `FakeTeams` serves it, `ControlClient` drives it.
"""

from .app import FakeTeams
from .control import ControlClient
from .options import SimOptions

__all__ = ["ControlClient", "FakeTeams", "SimOptions"]
