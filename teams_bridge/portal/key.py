"""Which portal a Teams conversation is: its thread id and its receiver.

The receiver says whose view of the conversation a portal is:

* ``""`` for group chats, meetings and channels: they look the same to every member, so
  all bridge users in one share one room.
* the bridge user's MRI for a 1:1 chat: each side sees it as a chat with the other
  person, so each bridge user in it gets a room of their own, named and pictured after
  the other person, marked as a direct chat, and fed by their own Teams connection.
"""

from __future__ import annotations

from typing import NamedTuple


class PortalKey(NamedTuple):
    thread_id: str
    receiver: str = ""

    @classmethod
    def for_user(cls, thread_id: str, user_mri: str | None, *, one_to_one: bool) -> PortalKey:
        """The key of a conversation for the bridge user ``user_mri``."""
        return cls(thread_id, user_mri or "") if one_to_one else cls(thread_id)

    @classmethod
    def candidates(
        cls, thread_id: str, user_mri: str | None, *, one_to_one: bool
    ) -> tuple[PortalKey, ...]:
        """The keys a conversation's portal may have for a user; a missing portal is made
        with the first. A chat whose id does not show it is 1:1 may be known as one (from
        its properties, at the chat sync), so its user's own portal is looked for too."""
        if one_to_one or not user_mri:
            return (cls.for_user(thread_id, user_mri, one_to_one=one_to_one),)
        return (cls(thread_id), cls(thread_id, user_mri))
