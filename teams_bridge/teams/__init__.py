"""Microsoft Teams protocol client: auth, chat service, profiles and Trouter push.

Independent of Matrix and of the bridge core; raw JSON stops here.
"""

from .activity import parse_call_event, parse_thread_activity
from .attachments import (
    AmsImage,
    AmsVideo,
    Attachment,
    MediaKind,
    MediaMessage,
    ParsedMedia,
    SharePointFile,
    UriObject,
    file_message,
    image_message,
    parse_attachments,
    parse_media,
    video_message,
    voice_message,
)
from .auth import AuthClient
from .client import TeamsClient
from .credentials import Credentials, DeviceCodeFlow
from .emoji import reaction_key_to_unicode, unicode_to_reaction_key
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
from .media import AmsStatus, MediaDownload, MediaError, MediaTooLarge, UploadedMedia, iter_file
from .models import (
    ActivityMember,
    CallEvent,
    CallEventKind,
    CallParticipant,
    Conversation,
    ConversationKind,
    EventMessage,
    Message,
    Profile,
    ProfilePicture,
    ResourceType,
    SelfInfo,
    Thread,
    ThreadActivity,
    ThreadActivityKind,
    ThreadMember,
)
from .props import ConsumptionHorizon, Mention, Reaction, parse_consumption_horizon
from .trouter import TrouterConfig, TrouterState

__all__ = [
    "AccountKind",
    "ActivityMember",
    "AmsImage",
    "AmsStatus",
    "AmsVideo",
    "Attachment",
    "AuthClient",
    "AuthError",
    "CallEvent",
    "CallEventKind",
    "CallParticipant",
    "ConsumptionHorizon",
    "Conversation",
    "ConversationKind",
    "Credentials",
    "DeviceCodeFlow",
    "Endpoints",
    "EventMessage",
    "InvalidId",
    "LoginDeclined",
    "LoginExpired",
    "MediaDownload",
    "MediaError",
    "MediaKind",
    "MediaMessage",
    "MediaTooLarge",
    "Mention",
    "Message",
    "ParseError",
    "ParsedMedia",
    "Profile",
    "ProfilePicture",
    "Reaction",
    "ReloginRequired",
    "ResourceType",
    "SelfInfo",
    "ServiceUrls",
    "SharePointFile",
    "TeamsClient",
    "TeamsError",
    "Thread",
    "ThreadActivity",
    "ThreadActivityKind",
    "ThreadMember",
    "TrouterConfig",
    "TrouterState",
    "UploadedMedia",
    "UriObject",
    "file_message",
    "image_message",
    "iter_file",
    "parse_attachments",
    "parse_call_event",
    "parse_consumption_horizon",
    "parse_media",
    "parse_thread_activity",
    "reaction_key_to_unicode",
    "unicode_to_reaction_key",
    "video_message",
    "voice_message",
]
