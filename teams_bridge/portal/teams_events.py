"""Teams -> Matrix for everything that is not a new chat message: edits, deletes and
reactions (MessageUpdate), typing (Control/*), membership and topics (ThreadActivity/*),
read positions and conversation/thread updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..teams import Conversation, Message, Thread
    from ..user import User
    from .portal import Portal


class TeamsEventsMixin:
    async def handle_teams_update(self: Portal, source: User, message: Message) -> None:
        self.log.debug("MessageUpdate for %s not bridged yet", message.id)

    async def handle_teams_control(self: Portal, source: User, message: Message) -> None:
        """Control/Typing and friends: never stored, never advance the cursor."""

    async def handle_thread_activity(self: Portal, source: User, message: Message) -> None:
        self.log.debug("%s %s not bridged yet", message.message_type, message.id)

    async def handle_conversation_update(
        self: Portal, source: User, conversation: Conversation
    ) -> None:
        pass

    async def handle_thread_update(self: Portal, source: User, thread: Thread) -> None:
        pass
