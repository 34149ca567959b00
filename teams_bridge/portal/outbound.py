"""Matrix -> Teams: messages from the portal's room are posted through the chat service."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from mautrix.types import EventID, MessageEventContent, MessageType, TextMessageEventContent

from .. import db as dbm
from ..formatter import matrix_to_teams
from ..puppet import Puppet

if TYPE_CHECKING:
    from ..user import User
    from .portal import Portal

TEXT_MSGTYPES = {MessageType.TEXT, MessageType.NOTICE, MessageType.EMOTE}


def new_client_message_id() -> str:
    """A fresh numeric clientmessageid, as Teams clients send (19 digits)."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


class OutboundMixin:
    async def handle_matrix_message(
        self: Portal, sender: User, message: MessageEventContent, event_id: EventID
    ) -> None:
        if not await sender.is_logged_in() or sender.client is None:
            await self._notice("You are not logged in to Teams, so your message was not sent.")
            return
        if message.msgtype not in TEXT_MSGTYPES:
            await self._notice(f"Sending {message.msgtype} to Teams is not supported yet.")
            return
        async with self._send_lock:
            await self._send_text(sender, message, event_id)

    async def _send_text(
        self: Portal, sender: User, message: MessageEventContent, event_id: EventID
    ) -> None:
        assert sender.client is not None and self.mxid
        if await dbm.Message.get_by_mxid(event_id, self.mxid):
            return
        body = message.body or ""
        formatted = message.formatted_body if message.format else None
        if message.msgtype == MessageType.EMOTE:
            name = sender.display_name or sender.mxid
            body = f"* {name} {body}"
            formatted = f"* {name} {formatted}" if formatted else None
        mentions = message.get("m.mentions") or {}
        converted = matrix_to_teams(
            body,
            formatted,
            resolve_user=self._resolve_matrix_user,
            mentioned_user_ids=list(mentions.get("user_ids") or []) if mentions else None,
        )
        properties: dict[str, str] = {}
        if converted.mentions:
            properties["mentions"] = json.dumps(converted.mentions)
        client_message_id = new_client_message_id()
        sent = dbm.SentMessage.new(
            client_message_id, self.thread_id, self.receiver, event_id, self.mxid
        )
        await sent.insert()
        try:
            message_id = await sender.client.send_message(
                self.thread_id,
                converted.html,
                client_message_id=client_message_id,
                display_name=sender.display_name or "",
                properties=properties,
            )
        except Exception as e:
            self.log.warning("Failed to send %s to Teams: %s", event_id, e)
            await self._notice(f"Your message could not be delivered to Teams: {e}")
            return
        await sent.set_message_id(message_id)
        await dbm.Message(
            thread_id=self.thread_id,
            receiver=self.receiver,
            message_id=message_id,
            part=0,
            mxid=event_id,
            mx_room=self.mxid,
            sender_mri=sender.mri,
            timestamp=sent.created_at,
            version=message_id,
        ).insert()

    def _resolve_matrix_user(self: Portal, user_id: str) -> tuple[str, str] | None:
        from ..user import User

        mri = Puppet.get_mri_from_mxid(user_id)
        if mri:
            puppet = Puppet.by_mri.get(mri)
            return mri, (puppet.name if puppet and puppet.name else mri)
        user = User.by_mxid.get(user_id)
        if user and user.mri:
            return user.mri, user.display_name or user.mri
        return None

    async def _notice(self: Portal, text: str) -> None:
        if not self.mxid:
            return
        try:
            await self.az.intent.send_message(
                self.mxid, TextMessageEventContent(msgtype=MessageType.NOTICE, body=text)
            )
        except Exception:
            self.log.warning("Failed to send a notice", exc_info=True)
