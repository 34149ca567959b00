"""Finding Teams people and starting chats with them from Matrix.

Used by the provisioning API (contacts, search, resolve identifier, create DM, create group).
An identifier is a Teams user id (MRI, `8:orgid:…`), the Matrix ghost of one, or an email
address (looked up with the people search). Rooms are created through the portal's normal
room creation, so a chat started here looks like one that arrived from Teams.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mautrix.types import RoomID, UserID

from .portal import Portal
from .puppet import Puppet
from .teams import ConversationKind, InvalidId, Profile
from .teams.ids import one_to_one_peer, parse_mri

if TYPE_CHECKING:
    from .user import User

log = logging.getLogger("mau.start_chat")

# How many recent chats are scanned for 1:1 partners (contacts) and for an existing 1:1.
CHAT_SCAN = 200
MAX_NAME = 256
MAX_PARTICIPANTS = 250


class BadInput(ValueError):
    """The request cannot be carried out as given (told to the caller as it is)."""


class UnknownGroupType(LookupError):
    pass


@dataclass
class Contact:
    mri: str
    name: str | None
    email: str | None
    mxid: UserID
    avatar_url: str | None = None
    dm_room: RoomID | None = None
    # A work account of another organisation (the middle tier's `type: Federated`).
    external: bool = False

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.mri, "mxid": self.mxid}
        if self.name:
            data["name"] = self.name
        if self.avatar_url:
            data["avatar_url"] = self.avatar_url
        if self.email:
            data["identifiers"] = [f"mailto:{self.email}"]
        if self.dm_room:
            data["dm_room_mxid"] = self.dm_room
        return data


def user_mri(identifier: str) -> str | None:
    """The MRI an identifier names directly (an MRI or a ghost's MXID), else None."""
    try:
        if identifier.startswith("@"):
            ghost_of = Puppet.get_mri_from_mxid(UserID(identifier))
            if ghost_of is None:
                return None
            identifier = ghost_of
        mri = parse_mri(identifier)
    except (InvalidId, ValueError):
        return None
    return mri.raw if mri.is_user else None


async def _dm_rooms(user: User) -> dict[str, RoomID]:
    """The user's 1:1 rooms by the other person's MRI."""
    rooms: dict[str, RoomID] = {}
    for row in await Portal.for_user(user.mxid):
        if row.kind == "one_to_one" and row.other_user_mri and row.mxid:
            rooms.setdefault(row.other_user_mri, row.mxid)
    return rooms


async def _contact(
    profile: Profile | None, mri: str, dm_rooms: dict[str, RoomID], *, update: bool = True
) -> Contact:
    puppet = await Puppet.get_by_mri(mri)
    assert puppet is not None
    if update and profile and profile.display_name:
        await puppet.update_name(profile.display_name, "profile")
    name = (profile.display_name if profile else None) or puppet.name
    email = (profile.email or profile.user_principal_name) if profile else None
    return Contact(
        mri=mri,
        name=name,
        email=email,
        mxid=puppet.default_mxid,
        avatar_url=puppet.avatar_url or None,
        dm_room=dm_rooms.get(mri),
        external=bool(profile and (profile.user_type or "").lower() == "federated"),
    )


async def resolve(user: User, identifier: str) -> Contact | None:
    """The Teams user an identifier names, or None when Teams knows nobody by it.

    Raises BadInput when it is not an identifier at all.
    """
    assert user.client is not None
    identifier = identifier.strip()
    mri = user_mri(identifier)
    if mri is None:
        if "@" in identifier and not identifier.startswith("@"):
            address = identifier.lower().removeprefix("mailto:")
            for profile in await user.client.search_users(address):
                known = (profile.email or "", profile.user_principal_name or "")
                if address in (a.lower() for a in known):
                    return await _contact(profile, profile.mri, await _dm_rooms(user))
            return None
        raise BadInput("Not a Teams user ID, a Matrix ID of a Teams user or an email address")
    found = (await user.client.fetch_profiles([mri])).get(mri)
    if found is None:
        known = await Puppet.get_by_mri(mri, create=False)
        if known is None or not known.name:
            return None
    return await _contact(found, mri, await _dm_rooms(user))


async def search(user: User, query: str) -> list[Contact]:
    assert user.client is not None
    dm_rooms = await _dm_rooms(user)
    return [
        await _contact(p, p.mri, dm_rooms)
        for p in await user.client.search_users(query)
        if p.mri != user.mri
    ]


async def contacts(user: User) -> list[Contact]:
    """The people the user has 1:1 chats with (Teams has no contact list of its own for
    work accounts; the chat list is what the Teams client offers)."""
    assert user.client is not None
    peers: list[str] = []
    for conversation in await user.client.list_conversations(limit=CHAT_SCAN):
        peer = _peer(user, conversation.id, conversation.kind, conversation.members)
        if peer and peer not in peers:
            peers.append(peer)
    profiles = await user.client.fetch_profiles(peers) if peers else {}
    dm_rooms = await _dm_rooms(user)
    return [await _contact(profiles.get(mri), mri, dm_rooms, update=False) for mri in peers]


def _peer(user: User, conv_id: str, kind: ConversationKind, members: tuple[str, ...]) -> str | None:
    if kind is not ConversationKind.ONE_TO_ONE:
        return None
    peer = one_to_one_peer(conv_id, user.mri)
    if peer is None:
        others = [m for m in members if m != user.mri]
        peer = others[0] if len(others) == 1 else None
    return peer if peer != user.mri else None


async def open_dm(user: User, contact: Contact) -> bool:
    """Make sure the user has a room for their 1:1 with `contact`; True when the room was
    created now. The Teams 1:1 is reused when it exists, created otherwise."""
    assert user.client is not None
    if contact.dm_room:
        return False
    chat_id = None
    for conversation in await user.client.list_conversations(limit=CHAT_SCAN):
        if _peer(user, conversation.id, conversation.kind, conversation.members) == contact.mri:
            chat_id = conversation.id
            break
    if chat_id is None:
        chat_id = await user.client.create_chat([contact.mri], one_to_one=True)
        log.info("%s started a Teams 1:1 %s", user.mxid, chat_id)
    portal = await _portal_for(user, chat_id)
    created = contact.dm_room is None
    contact.dm_room = portal.mxid
    return created


@dataclass(frozen=True)
class GroupParams:
    participants: tuple[str, ...]
    name: str | None

    @classmethod
    def parse(cls, group_type: str, body: dict[str, Any]) -> GroupParams:
        """From bridgev2's `GroupCreateParams` (BadInput, UnknownGroupType)."""
        if group_type != "group":
            raise UnknownGroupType(f"Unrecognized group type {group_type}")
        raw = body.get("participants")
        if not isinstance(raw, list) or not raw:
            raise BadInput("Must have at least 1 members")
        if len(raw) > MAX_PARTICIPANTS:
            raise BadInput(f"Must have at most {MAX_PARTICIPANTS} members")
        participants: list[str] = []
        for item in raw:
            mri = user_mri(item) if isinstance(item, str) else None
            if mri is None:
                raise BadInput(f"User ID {item!r} is not valid on this network")
            if mri not in participants:
                participants.append(mri)
        name_obj = body.get("name")
        name = None
        if name_obj is not None:
            name = name_obj.get("name") if isinstance(name_obj, dict) else None
            if name is not None and not isinstance(name, str):
                raise BadInput("name.name must be a string")
            if name and len(name) > MAX_NAME:
                raise BadInput(f"Name must be at most {MAX_NAME} characters")
        return cls(tuple(participants), name or None)


async def create_group(user: User, params: GroupParams) -> Portal:
    assert user.client is not None
    members = [m for m in params.participants if m != user.mri]
    if not members:
        raise BadInput("Must have at least 1 members")
    chat_id = await user.client.create_chat(members, topic=params.name)
    log.info("%s created the Teams group chat %s", user.mxid, chat_id)
    return await _portal_for(user, chat_id)


async def _portal_for(user: User, chat_id: str) -> Portal:
    """The chat's portal, with its room created (or refreshed) and the user invited."""
    assert user.client is not None
    conversation = await user.client.get_conversation(chat_id)
    portal = await Portal.get_by_thread(conversation.id, create=True)
    assert portal is not None
    await portal.sync_with_teams(user, conversation)
    return portal
