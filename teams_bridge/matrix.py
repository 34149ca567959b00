"""The thin Matrix event router.

Messages, edits, reactions and redactions (encrypted or not) reach Teams through the durable
appservice endpoint (see ``appservice.py``) and the delivery worker; this routes what needs
no durability: typing, read receipts and room renames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mautrix.appservice import IntentAPI
from mautrix.bridge import BaseMatrixHandler, BasePortal, BaseUser
from mautrix.errors import DecryptionError, MForbidden
from mautrix.types import (
    EncryptedEvent,
    Event,
    EventID,
    EventType,
    MessageEvent,
    MessageType,
    PresenceEvent,
    ReceiptEvent,
    RoomID,
    RoomNameStateEventContent,
    SingleReceiptEventContent,
    StateEvent,
    TextMessageEventContent,
    TypingEvent,
    UserID,
)

from . import (
    commands,  # noqa: F401  (registers the command handlers)
    startup,
)
from .bot_intent import EncryptingBotIntent
from .commands.secrets import forget_in_logs, secret_command
from .portal import Portal
from .puppet import Puppet
from .user import User

if TYPE_CHECKING:
    from .__main__ import TeamsBridge


def _not_allowed(command: str) -> str:
    return f"You are not allowed to use this bridge, so `{command}` was refused."


class MatrixHandler(BaseMatrixHandler):
    def __init__(self, bridge: TeamsBridge) -> None:
        prefix, suffix = bridge.config["bridge.username_template"].format(userid=":").split(":")
        homeserver = bridge.config["homeserver.domain"]
        self.user_id_prefix = f"@{prefix}"
        self.user_id_suffix = f"{suffix}:{homeserver}"
        super().__init__(bridge=bridge)

    async def wait_for_connection(self) -> None:
        """What mautrix checks here, with the appservice ping done once: by the start-up
        check, which explains a failure. (A second ping while Synapse is retrying
        transactions it could not deliver fails there with HTTP 502, and mautrix would
        wait 4 s before trying it again.) The homeserver answered the start-up checks
        already, so nothing is retried here."""
        await startup.check_homeserver_reaches_bridge(self.bridge)
        intent = self.az.intent
        try:
            self.versions = await intent.versions()
        except MForbidden:
            # The bot's account does not exist yet (the first start).
            await intent.ensure_registered()
            self.versions = await intent.versions()
        await self.check_versions()
        try:
            await intent.whoami()
        except MForbidden:
            await intent.ensure_registered()
            await intent.whoami()
        try:
            self.media_config = await intent.get_media_repo_config()
        except Exception:
            self.log.warning("Could not read the homeserver's media limits", exc_info=True)

    async def handle_message(self, evt: MessageEvent, was_encrypted: bool = False) -> None:
        """A message carrying a secret is redacted before any check can refuse it."""
        if await self._remove_secret(evt) or await self._refuse_command(evt):
            return
        await super().handle_message(evt, was_encrypted)

    async def _refuse_command(self, evt: MessageEvent) -> bool:
        """A command (with the prefix) from someone not allowed to run commands is answered
        with why, where mautrix would ignore it in silence; True when refused here."""
        content = evt.content
        if not isinstance(content, TextMessageEventContent) or content.msgtype != MessageType.TEXT:
            return False
        prefix = self.config["bridge.command_prefix"]
        body = (content.body or "").strip()
        if not body.startswith(prefix) or evt.sender == self.az.bot_mxid:
            return False
        if Puppet.get_mri_from_mxid(evt.sender) is not None:
            return False
        user = await self.bridge.get_user(evt.sender)
        if user is not None and await self.allow_command(user):
            return False
        words = body[len(prefix) :].split()
        command = words[0][:40] if words else ""
        portal = await Portal.get_by_mxid(evt.room_id)
        await self._notice(
            evt.room_id,
            _not_allowed(command),
            portal,
        )
        return True

    async def _remove_secret(self, evt: MessageEvent) -> bool:
        """Redact a secret-carrying command; True when it was refused here (no permission)."""
        content = evt.content
        if isinstance(content, TextMessageEventContent):
            # As mautrix does before it parses a command.
            content.trim_reply_fallback()
        body = getattr(content, "body", None)
        if not isinstance(body, str):
            return False
        prefix = self.config["bridge.command_prefix"]
        portal = await Portal.get_by_mxid(evt.room_id)
        command = secret_command(body, prefix, in_portal=portal is not None)
        if command is None:
            return False
        forget_in_logs(body, prefix)
        redacted = False
        user = await self.bridge.get_user(evt.sender)
        for intent in self._room_intents(portal) + await self._own_intents(user, command, body):
            try:
                await intent.redact(evt.room_id, evt.event_id, reason="contained a secret")
                redacted = True
                break
            except Exception as e:
                self.log.warning(
                    "Could not redact %s (%s) as %s: %s",
                    evt.event_id,
                    command,
                    intent.mxid,
                    type(e).__name__,
                )
        allowed = user is not None and await self.allow_command(user)
        notes = []
        if not allowed:
            notes.append(_not_allowed(command))
        if redacted:
            notes.append("Your message was removed from the room because it contains a secret.")
        else:
            notes.append(
                "Your message contains a secret and I could not remove it: "
                "please delete it yourself."
            )
        if not allowed or not redacted:
            await self._notice(evt.room_id, " ".join(notes), portal)
        return not allowed

    def _room_intents(self, portal: Portal | None) -> list[IntentAPI]:
        """Who may act in a room: the bot, then a 1:1 portal's ghost (the room's creator)."""
        intents = [self.az.intent]
        if portal is not None and portal.main_intent is not self.az.intent:
            intents.append(portal.main_intent)
        return intents

    async def _own_intents(self, user: User | None, command: str, body: str) -> list[IntentAPI]:
        """Where the bot may not redact (a room the user made, without power for the bot),
        the user's own account may: through their double puppet, or, for `login-matrix`,
        the access token the message gives."""
        if user is None:
            return []
        intents = []
        puppet = await user.double_puppet()
        if puppet is not None:
            intents.append(puppet.intent)
        words = body.split()
        if command == "login-matrix" and len(words) >= 2:
            intents.append(self.az.intent.user(user.mxid, words[-1]))
        return intents

    async def _notice(self, room_id: RoomID, text: str, portal: Portal | None) -> None:
        for intent in self._room_intents(portal):
            try:
                await intent.send_notice(room_id, text)
                return
            except Exception as e:
                self.log.warning("Could not send a notice to %s: %s", room_id, type(e).__name__)

    async def handle_invite(
        self, room_id: RoomID, user_id: UserID, invited_by: BaseUser, evt: StateEvent
    ) -> None:
        """The ghost of a Teams user the bridge has not met yet: it is made, then handled as
        any ghost invite (in a portal, the person is added to the Teams chat)."""
        if Puppet.get_mri_from_mxid(user_id) is None:
            return
        puppet = await Puppet.get_by_mxid(user_id, create=True)
        if puppet is not None:
            await self.handle_puppet_invite(room_id, puppet, invited_by, evt)

    async def handle_kick(
        self, room_id: RoomID, user_id: UserID, kicked_by: UserID, reason: str, event_id: EventID
    ) -> None:
        """A bridge user kicking a ghost removes that person from the Teams chat."""
        if kicked_by == self.az.bot_mxid or Puppet.get_mri_from_mxid(kicked_by):
            return  # the bridge's own doing (a removal that came from Teams)
        portal = await Portal.get_by_mxid(room_id)
        puppet = await Puppet.get_by_mxid(user_id, create=False)
        user = await self.bridge.get_user(kicked_by, create=False)
        if portal is None or puppet is None or user is None or not await user.is_logged_in():
            return
        await portal.roster.matrix_kick(user, puppet)

    async def handle_leave(self, room_id: RoomID, user_id: UserID, event_id: EventID) -> None:
        """A bridge user leaving a room leaves the Teams chat only where the config says so
        (`bridge.leave_teams_chat_on_leave`); otherwise use `leave` in the room."""
        if not self.config["bridge.leave_teams_chat_on_leave"]:
            return
        portal = await Portal.get_by_mxid(room_id)
        user = await self.bridge.get_user(user_id, create=False)
        if portal is None or user is None or not await user.is_logged_in():
            return
        refusal = await portal.roster.leave_teams_chat(user)
        if refusal is not None:
            await user.send_management_notice(
                f"You left the room {portal.name or ''}, but not the Teams chat: {refusal}."
            )

    async def handle_encryption(self, evt: StateEvent) -> None:
        """A room became encrypted: a portal's sends are encrypted from now on (its
        writer), and so are the bot's anywhere else."""
        await super().handle_encryption(evt)
        intent = self.az.intent
        if isinstance(intent, EncryptingBotIntent):
            intent.room_encrypted(evt.room_id)

    async def _send_crypto_status_error(
        self, evt: Event, err: DecryptionError | None = None, *args: Any, **kwargs: Any
    ) -> EventID | None:
        """In a portal the delivery worker tells the room about key trouble (once, and
        retries the event when the keys come); mautrix's own notices are for other rooms."""
        if await Portal.get_by_mxid(evt.room_id) is not None:
            return None
        return await super()._send_crypto_status_error(evt, err, *args, **kwargs)

    async def handle_encrypted(self, evt: EncryptedEvent) -> None:
        """In a portal an encrypted event is the delivery worker's, which decrypts it, or
        tells the room why it cannot (so the room is told once, not here as well)."""
        if not self.e2ee and await Portal.get_by_mxid(evt.room_id) is not None:
            return
        await super().handle_encrypted(evt)

    async def handle_ephemeral_event(self, evt: ReceiptEvent | PresenceEvent | TypingEvent) -> None:
        if evt.type == EventType.TYPING:
            await self.handle_typing(evt)  # type: ignore[arg-type]
        else:
            await super().handle_ephemeral_event(evt)

    async def handle_typing(self, evt: TypingEvent) -> None:
        portal = await Portal.get_by_mxid(evt.room_id)
        if portal is None:
            return
        for user_id in evt.content.user_ids:
            user = await self._logged_in_user(user_id)
            if user is not None:
                await portal.handle_matrix_typing(user, True)

    async def handle_read_receipt(
        self,
        user: BaseUser,
        portal: BasePortal,
        event_id: EventID,
        data: SingleReceiptEventContent,
    ) -> None:
        if isinstance(user, User) and isinstance(portal, Portal):
            await portal.handle_matrix_read(user, event_id)

    async def handle_state_event(self, evt: StateEvent) -> None:
        if evt.type != EventType.ROOM_NAME or not isinstance(
            evt.content, RoomNameStateEventContent
        ):
            return
        portal = await Portal.get_by_mxid(evt.room_id)
        user = await self._logged_in_user(evt.sender)
        if portal is not None and user is not None:
            await portal.handle_matrix_name(user, evt.content.name or "")

    @staticmethod
    async def _logged_in_user(user_id: UserID) -> User | None:
        user = await User.get_by_mxid(user_id, create=False)
        if user is None or not user.is_whitelisted or not await user.is_logged_in():
            return None
        return user
