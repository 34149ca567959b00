"""``TeamsClient``: the one object the bridge core talks to for a Teams login."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping

import aiohttp

from .chat import ChatApi
from .credentials import Credentials
from .endpoints import Endpoints, ServiceUrls
from .errors import AuthError, InvalidId, TeamsError
from .http import RetryPolicy, TeamsHttp
from .ids import check_id, mri_from_skype_id
from .models import Conversation, Message, Profile, SelfInfo, Thread
from .profiles import fetch_short_profiles
from .tokens import CredentialsCallback, TokenManager
from .trouter import EventCallback, ResyncCallback, StateCallback, Trouter, TrouterConfig

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
        self.http = TeamsHttp(session, self.tokens, policy=retry_policy)
        self.chat = ChatApi(self.http, self.tokens, credentials.kind)
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
    ) -> str:
        """Send a ``RichText/Html`` message; returns the new message id."""
        return await self.chat.send_message(
            conv_id,
            html,
            client_message_id=client_message_id,
            display_name=display_name,
            properties=properties,
        )

    async def fetch_profiles(self, mris: Iterable[str]) -> dict[str, Profile]:
        """Short profiles by MRI; missing entries mean "use imdisplayname"."""
        services = (await self.tokens.skype()).services
        return await fetch_short_profiles(self.http, services.middle_tier, mris)

    def start_trouter(
        self,
        on_event: EventCallback,
        on_state: StateCallback | None = None,
        on_resync: ResyncCallback | None = None,
    ) -> None:
        """Start receiving pushes; ``on_event`` is awaited for each event in order."""
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
        )
        self._trouter.start()

    async def stop(self) -> None:
        """Stop the push connection (REST calls keep working)."""
        trouter, self._trouter = self._trouter, None
        if trouter is not None:
            await trouter.stop()
