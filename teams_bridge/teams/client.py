"""``TeamsClient``: the one object the bridge core talks to for a Teams login."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping

import aiohttp

from .attachments import MediaKind, MediaMessage
from .chat import ChatApi
from .credentials import Credentials
from .endpoints import Endpoints, ServiceUrls
from .errors import AuthError, InvalidId, TeamsError
from .http import RetryPolicy, TeamsHttp
from .ids import check_id, mri_from_skype_id
from .kinds import AccountKind
from .lean_http import LeanHttp
from .media import AmsApi, AmsStatus, MediaDownload, Source, UploadedMedia
from .models import Conversation, Message, Profile, ProfilePicture, SelfInfo, Thread
from .presence import PUSH_SUFFIX, Presence, PresenceApi, presence_base
from .profiles import (
    fetch_profile_picture,
    fetch_short_profiles,
    looks_like_email,
    search_consumer_emails,
    search_users,
)
from .props import ConsumptionHorizon
from .tokens import CredentialsCallback, TokenManager
from .trouter import (
    ConnectedCallback,
    EventCallback,
    PresenceCallback,
    ResyncCallback,
    StateCallback,
    Trouter,
    TrouterConfig,
)

log = logging.getLogger("teams.client")


def _user_details(raw: object) -> dict[str, object]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def presence_trouter_uri(surl: str) -> str:
    """Where the presence service pushes: the Trouter push URL plus its suffix (§6)."""
    return f"{surl.rstrip('/')}/{PUSH_SUFFIX}"


class TeamsClient:
    """One logged-in Teams account: REST calls plus the Trouter push connection."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        endpoint_id: str,
        on_credentials_changed: CredentialsCallback | None = None,
        retry_policy: RetryPolicy | None = None,
        trouter_config: TrouterConfig | None = None,
        lean: LeanHttp | None = None,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.endpoint_id = check_id(endpoint_id)
        self.tokens = TokenManager(
            session,
            endpoints,
            credentials,
            on_credentials_changed=on_credentials_changed,
            policy=retry_policy,
        )
        self.http = TeamsHttp(session, self.tokens, policy=retry_policy, lean=lean)
        self.chat = ChatApi(self.http, self.tokens, credentials.kind)
        self.media = AmsApi(session, self.tokens, policy=retry_policy)
        self.presence = PresenceApi(self.http, self.endpoint_id)
        self.trouter_config = trouter_config
        self.self_info: SelfInfo | None = None
        self._trouter: Trouter | None = None

    @property
    def credentials(self) -> Credentials:
        """The current credentials (the refresh token rotates)."""
        return self.tokens.credentials

    @property
    def services(self) -> ServiceUrls:
        return self.tokens.services

    async def connect(self) -> SelfInfo:
        """Mint tokens, discover the services and learn who we are."""
        skype = await self.tokens.skype()
        creds = self.tokens.credentials
        mri: str | None = None
        if skype.skype_id:
            try:
                mri = mri_from_skype_id(skype.skype_id)
            except InvalidId:
                log.warning("The Skype token carries an invalid skypeid")
        props: dict[str, object] = {}
        try:
            props = await self.chat.self_properties()
        except TeamsError as exc:
            if mri is None:
                raise
            log.warning("Could not read the self properties (%s); using token claims", exc)
        if mri is None:
            skype_name = _text(props.get("skypeName"))
            if skype_name:
                mri = mri_from_skype_id(skype_name)
            elif creds.user_object_id:
                mri = f"8:orgid:{creds.user_object_id}"
        if mri is None:
            raise AuthError("could not determine the signed-in user's MRI")
        details = _user_details(props.get("userDetails"))
        self.self_info = SelfInfo(
            mri=mri,
            display_name=_text(details.get("name"))
            or _text(props.get("displayname"))
            or creds.display_name,
            username=_text(details.get("upn"))
            or _text(props.get("primaryMemberName"))
            or creds.username,
        )
        log.info("Connected to Teams")
        return self.self_info

    async def list_conversations(self, limit: int = 100) -> list[Conversation]:
        """Conversations, newest activity first."""
        return await self.chat.list_conversations(limit)

    async def get_thread(self, conv_id: str) -> Thread:
        return await self.chat.get_thread(conv_id)

    async def get_conversation(self, conv_id: str) -> Conversation:
        return await self.chat.get_conversation(conv_id)

    async def create_chat(
        self, members: list[str], *, topic: str | None = None, one_to_one: bool = False
    ) -> str:
        """Start a chat with ``members`` (a 1:1 with ``one_to_one``); the new chat's id."""
        if self.self_info is None:
            raise TeamsError(None, "not_connected", "connect() first")
        return await self.chat.create_thread(
            self.self_info.mri, members, topic=topic, one_to_one=one_to_one
        )

    @property
    def personal(self) -> bool:
        return self.tokens.credentials.kind is AccountKind.PERSONAL

    async def search_users(self, text: str) -> list[Profile]:
        """People whose name or address matches ``text`` (the new-chat picker's search).
        A personal account can only look people up by their exact email address: anything
        else finds nobody."""
        services = (await self.tokens.skype()).services
        if self.personal:
            text = text.strip()
            if not looks_like_email(text):
                return []
            return await search_consumer_emails(self.http, services.middle_tier, [text])
        return await search_users(self.http, services.middle_tier, text)

    async def list_messages(
        self, conv_id: str, *, after_id: str | None = None, limit: int = 200
    ) -> list[Message]:
        """Messages oldest first; with ``after_id`` only newer ones (see ``ChatApi``)."""
        return await self.chat.list_messages(conv_id, after_id=after_id, limit=limit)

    async def send_message(
        self,
        conv_id: str,
        html: str,
        *,
        client_message_id: str,
        display_name: str | None,
        properties: Mapping[str, str] | None = None,
        message_type: str = "RichText/Html",
        thread_root_id: str | None = None,
    ) -> str:
        """Send a message (``RichText/Html`` unless ``message_type`` says otherwise);
        ``properties`` values are strings (``mentions``, ``qtdMsgs``, … hold JSON).
        ``thread_root_id`` makes it a reply in that channel thread. Returns the new
        message id."""
        return await self.chat.send_message(
            conv_id,
            html,
            client_message_id=client_message_id,
            display_name=display_name,
            message_type=message_type,
            properties=properties,
            thread_root_id=thread_root_id,
        )

    async def get_message(self, conv_id: str, message_id: str) -> Message:
        return await self.chat.get_message(conv_id, message_id)

    async def edit_message(
        self,
        conv_id: str,
        message_id: str,
        html: str,
        *,
        display_name: str | None,
        properties: Mapping[str, str] | None = None,
        client_message_id: str | None = None,
        message_type: str = "RichText/Html",
    ) -> None:
        """Replace the content of an own message (others' answer 403 ``TeamsError``)."""
        await self.chat.edit_message(
            conv_id,
            message_id,
            html,
            display_name=display_name,
            message_type=message_type,
            properties=properties,
            client_message_id=client_message_id,
        )

    async def delete_message(self, conv_id: str, message_id: str) -> None:
        """Soft-delete an own message."""
        await self.chat.delete_message(conv_id, message_id)

    async def add_reaction(self, conv_id: str, message_id: str, key: str) -> None:
        """React with a Teams emotion key (``emoji.unicode_to_reaction_key`` makes one)."""
        await self.chat.add_reaction(conv_id, message_id, key)

    async def remove_reaction(self, conv_id: str, message_id: str, key: str) -> None:
        await self.chat.remove_reaction(conv_id, message_id, key)

    async def send_typing(self, conv_id: str) -> None:
        """Say "typing"; it expires on its own (callers should send at most one per ~20 s)."""
        await self.chat.send_typing(conv_id)

    async def set_consumption_horizon(self, conv_id: str, message_id: str) -> None:
        """Mark the conversation as read up to ``message_id``."""
        await self.chat.set_consumption_horizon(conv_id, message_id)

    async def get_consumption_horizons(self, conv_id: str) -> list[ConsumptionHorizon]:
        """Every member's read position."""
        return await self.chat.get_consumption_horizons(conv_id)

    async def add_member(self, conv_id: str, mri: str) -> None:
        await self.chat.add_member(conv_id, mri)

    async def remove_member(self, conv_id: str, mri: str) -> None:
        await self.chat.remove_member(conv_id, mri)

    async def set_topic(self, conv_id: str, topic: str) -> None:
        await self.chat.set_topic(conv_id, topic)

    async def send_media_message(
        self,
        conv_id: str,
        media: MediaMessage,
        *,
        client_message_id: str,
        display_name: str | None,
        thread_root_id: str | None = None,
    ) -> str:
        """Send what a builder of ``attachments`` made (``image_message`` etc.)."""
        return await self.chat.send_message(
            conv_id,
            media.content,
            client_message_id=client_message_id,
            display_name=display_name,
            message_type=media.message_type,
            properties=media.properties,
            thread_root_id=thread_root_id,
        )

    # -- media (AMS) -----------------------------------------------------------------
    async def ams_base(self) -> str:
        """The AMS base URL the outgoing-message builders want."""
        return await self.media.base()

    async def create_ams_object(
        self,
        kind: MediaKind | str,
        filename: str,
        conversation_id: str,
        *,
        readers: Iterable[str] = (),
    ) -> str:
        """A new AMS object readable by the conversation; returns its id."""
        return await self.media.create_object(kind, filename, conversation_id, readers=readers)

    async def upload_ams_content(
        self,
        object_id: str,
        view: str,
        source: Source,
        size: int,
        content_type: str | None,
    ) -> None:
        """Stream ``size`` bytes from ``source`` into ``…/content/{view}``."""
        await self.media.upload_content(object_id, view, source, size, content_type)

    async def upload_media(
        self,
        kind: MediaKind | str,
        filename: str,
        conversation_id: str,
        source: Source,
        size: int,
        content_type: str | None,
    ) -> UploadedMedia:
        """Create an object of the right type and upload to the right view."""
        return await self.media.upload(kind, filename, conversation_id, source, size, content_type)

    def download(
        self, url_or_object_id: str, view: str | None = None, *, max_size: int
    ) -> MediaDownload:
        """A streamed, size-capped AMS download (``async with … as dl: async for …``)."""
        return self.media.download(url_or_object_id, view, max_size=max_size)

    async def ams_status(self, object_id: str, view: str) -> AmsStatus:
        return await self.media.status(object_id, view)

    async def fetch_profiles(self, mris: Iterable[str]) -> dict[str, Profile]:
        """Short profiles by MRI; missing entries mean "use imdisplayname"."""
        services = (await self.tokens.skype()).services
        return await fetch_short_profiles(self.http, services.middle_tier, mris)

    async def fetch_profile_picture(
        self, mri: str, *, size: str = "HR96x96"
    ) -> ProfilePicture | None:
        """A user's profile picture; ``None`` means they have none (errors raise)."""
        services = (await self.tokens.skype()).services
        return await fetch_profile_picture(
            self.http, services.middle_tier, self._self_object_id(), mri, size=size
        )

    def _self_object_id(self) -> str:
        """The signed-in user's AAD object id, which the picture URL is scoped to."""
        oid = self.credentials.user_object_id
        if not oid and self.self_info and self.self_info.mri.startswith("8:orgid:"):
            oid = self.self_info.mri[len("8:orgid:") :]
        if not oid:
            raise TeamsError(None, "no_object_id", "the signed-in user's object id is unknown")
        return oid

    # -- presence --------------------------------------------------------------------
    async def _presence_base(self) -> str:
        services = (await self.tokens.skype()).services
        personal = self.tokens.credentials.kind is AccountKind.PERSONAL
        return presence_base(services.presence, personal)

    async def get_presence(self, mris: Iterable[str]) -> list[Presence]:
        """The presence of many people (batched); unknown people are left out."""
        return await self.presence.get(await self._presence_base(), mris)

    async def subscribe_presence(
        self, surl: str, add: Iterable[str], remove: Iterable[str] = (), *, purge: bool = False
    ) -> None:
        """Have changes of ``add``'s presence pushed over the Trouter connection whose
        push URL is ``surl`` (``on_connected`` gives it after every connect)."""
        await self.presence.subscribe(
            await self._presence_base(),
            presence_trouter_uri(surl),
            list(add),
            list(remove),
            purge=purge,
        )

    async def set_availability(self, availability: str) -> None:
        """Set the own availability (one of ``presence.FORCEABLE``) on every device."""
        await self.presence.force_availability(await self._presence_base(), availability)

    async def set_status_note(self, text: str) -> None:
        """Set (or, with an empty text, clear) the own status note."""
        await self.presence.publish_note(await self._presence_base(), text)

    def start_trouter(
        self,
        on_event: EventCallback,
        on_state: StateCallback | None = None,
        on_resync: ResyncCallback | None = None,
        *,
        on_presence: PresenceCallback | None = None,
        on_connected: ConnectedCallback | None = None,
        on_gap: Callable[[], None] | None = None,
    ) -> None:
        """Start receiving pushes; ``on_event`` is awaited for each event in order,
        ``on_presence`` for each presence push; ``on_gap`` is called at once when pushes
        may have been missed (before ``on_resync`` runs, and before the next push)."""
        if self._trouter is not None:
            raise RuntimeError("Trouter is already running")
        self._trouter = Trouter(
            self.http,
            self.tokens,
            endpoints=self.endpoints,
            kind=self.tokens.credentials.kind,
            endpoint_id=self.endpoint_id,
            on_event=on_event,
            on_state=on_state,
            on_resync=on_resync,
            config=self.trouter_config,
            on_presence=on_presence,
            on_connected=on_connected,
            on_gap=on_gap,
        )
        self._trouter.start()

    async def stop(self) -> None:
        """Stop the push connection (REST calls keep working)."""
        trouter, self._trouter = self._trouter, None
        if trouter is not None:
            await trouter.stop()
