"""Microsoft Teams protocol client: auth, chat service, profiles and Trouter push.

Independent of Matrix and of the bridge core; raw JSON stops here.
"""

from .auth import AuthClient
from .client import TeamsClient
from .credentials import Credentials, DeviceCodeFlow
from .endpoints import Endpoints, ServiceUrls
from .errors import (
    AuthError,
    InvalidId,
    LoginDeclined,
    LoginExpired,
    ParseError,
    ReloginRequired,
    TeamsError,
)
from .kinds import AccountKind
from .models import (
    Conversation,
    ConversationKind,
    EventMessage,
    Message,
    Profile,
    ResourceType,
    SelfInfo,
    Thread,
    ThreadMember,
)
from .trouter import TrouterConfig, TrouterState

__all__ = [
    "AccountKind",
    "AuthClient",
    "AuthError",
    "Conversation",
    "ConversationKind",
    "Credentials",
    "DeviceCodeFlow",
    "Endpoints",
    "EventMessage",
    "InvalidId",
    "LoginDeclined",
    "LoginExpired",
    "Message",
    "ParseError",
    "Profile",
    "ReloginRequired",
    "ResourceType",
    "SelfInfo",
    "ServiceUrls",
    "TeamsClient",
    "TeamsError",
    "Thread",
    "ThreadMember",
    "TrouterConfig",
    "TrouterState",
]
