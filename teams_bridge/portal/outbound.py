"""Matrix -> Teams text: the handler that posts a Matrix text message to Teams, and the
conversion that messages, captions and edits share. The delivery loop and its bookkeeping
are the delivery package's (`teams_bridge/delivery/worker.py`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mautrix.types import MessageType, UserID

from .. import db as dbm
from ..delivery.errors import call_teams
from ..delivery.results import Result
from ..formatter import matrix_to_teams
from ..puppet import Puppet
from .replies import reply_event_id, strip_reply_fallback, teams_quote_for

if TYPE_CHECKING:
    from ..user import User
    from .channels import ThreadTarget
    from .portal import Portal


class Outbound:
    """Matrix text to Teams, and the conversion that messages, captions and edits share."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    async def text(self, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]) -> Result:
        assert sender.client is not None and self.portal.mxid
        client = sender.client
        content = raw["content"]

        async def send(client_message_id: str) -> str:
            await self.load_mentioned(content)
            html, properties = self.convert(sender, content)
            thread = await self.portal.threads.target(sender, content)
            quote = await teams_quote_for(self.portal, content)
            if quote is not None and (thread is None or quote.message_id != thread.root_id):
                # A reply: Teams shows the quoted message above the text (in a channel
                # thread only when it answers one reply rather than the thread's root post).
                html = quote.html + html
                properties["qtdMsgs"] = quote.qtd_msgs
            return await self.posted(
                row,
                thread,
                client.send_message(
                    self.portal.thread_id,
                    html,
                    client_message_id=client_message_id,
                    display_name=sender.display_name or "",
                    properties=properties,
                    thread_root_id=thread.root_id if thread else None,
                ),
            )

        return await self.portal.delivery.post(sender, row, send)

    async def posted(
        self, row: dbm.MatrixEvent, thread: ThreadTarget | None, sending: Awaitable[str]
    ) -> str:
        """Post a new message (``sending``: the chat service call, text or media) and
        remember its channel thread; the new message's id."""
        message_id = await call_teams("the message", sending)
        self.portal.threads.note_sent(thread, message_id, row.event_id)
        return message_id

    def convert(self, sender: User, content: dict[str, Any]) -> tuple[str, dict[str, str]]:
        body = content.get("body") or ""
        if reply_event_id(content) is not None:
            body = strip_reply_fallback(str(body))
        formatted = None
        if content.get("format") == "org.matrix.custom.html":
            formatted = content.get("formatted_body")
        if content.get("msgtype") == MessageType.EMOTE.value:
            name = sender.display_name or sender.mxid
            body = f"* {name} {body}"
            formatted = f"* {name} {formatted}" if formatted else None
        mentions = content.get("m.mentions")
        converted = matrix_to_teams(
            str(body),
            formatted if isinstance(formatted, str) else None,
            resolve_user=self._resolve_matrix_user,
            mentioned_user_ids=list(mentions.get("user_ids") or [])
            if isinstance(mentions, dict)
            else None,
            room_mention=self.portal.threads.outgoing_room_mention(content),
        )
        properties: dict[str, str] = {}
        if converted.mentions:
            properties["mentions"] = json.dumps(converted.mentions)
        return converted.html, properties

    def _resolve_matrix_user(self, user_id: str) -> tuple[str, str] | None:
        mri = Puppet.get_mri_from_mxid(user_id)
        if mri:
            puppet = self.portal.directory.cached_puppet(mri)
            return mri, (puppet.name if puppet and puppet.name else mri)
        user = self.portal.directory.cached_user(UserID(user_id))
        if user and user.mri:
            return user.mri, user.display_name or user.mri
        return None

    async def load_mentioned(self, content: dict[str, Any]) -> None:
        """Load the puppets a message mentions, so their pills get their Teams names."""
        mentions = content.get("m.mentions")
        user_ids = mentions.get("user_ids") if isinstance(mentions, dict) else None
        for user_id in user_ids if isinstance(user_ids, list) else []:
            if isinstance(user_id, str) and Puppet.get_mri_from_mxid(UserID(user_id)):
                await Puppet.get_by_mxid(UserID(user_id), create=False)
