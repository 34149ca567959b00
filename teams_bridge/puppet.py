"""A Teams user (MRI) as a Matrix ghost user."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, cast

from mautrix.appservice import IntentAPI
from mautrix.bridge import BasePuppet
from mautrix.types import SyncToken, UserID
from yarl import URL

from . import db as dbm
from .config import Config
from .keyed_log import KeyedLog
from .media_util import (
    SNIFF_BYTES,
    choose_mimetype,
    default_filename,
    is_inline_image,
    sniff_mimetype,
)
from .mxid import escape_mri, unescape_mri
from .names import DISPLAYNAME_MAX_BYTES, clean_name

if TYPE_CHECKING:
    from .__main__ import TeamsBridge
    from .directory import Directory
    from .teams import TeamsClient

# How often a name seen on messages may trigger a new profile lookup for one user.
PROFILE_RECHECK_SECONDS = 600.0
# The size of the profile picture fetched for a ghost (§8 lists what the service renders).
AVATAR_SIZE = "HR96x96"
# After a failed picture lookup, wait this long before trying again.
AVATAR_RETRY_SECONDS = 3600.0


class Puppet(dbm.Puppet, BasePuppet):
    directory: Directory
    hs_domain: str
    mxid_template: str
    config: Config
    bridge: TeamsBridge

    default_mxid: UserID
    default_mxid_intent: IntentAPI

    def __init__(
        self,
        mri: str,
        name: str | None = None,
        name_source: str | None = None,
        name_set: bool = False,
        avatar_url: str | None = None,
        avatar_set: bool = False,
        is_registered: bool = False,
        custom_mxid: UserID | None = None,
        access_token: str | None = None,
        next_batch: SyncToken | None = None,
        base_url: URL | None = None,
        avatar_hash: str | None = None,
        avatar_checked_at: int = 0,
    ) -> None:
        super().__init__(
            mri=mri,
            name=name,
            name_source=name_source,
            name_set=name_set,
            avatar_url=avatar_url,
            avatar_set=avatar_set,
            is_registered=is_registered,
            custom_mxid=custom_mxid,
            access_token=access_token,
            next_batch=next_batch,
            base_url=base_url,
            avatar_hash=avatar_hash,
            avatar_checked_at=avatar_checked_at,
        )
        self.log = KeyedLog(self.log, mri)
        self.default_mxid = self.get_mxid_from_mri(mri)
        self.default_mxid_intent = self.az.intent.user(self.default_mxid)
        self.intent = self._fresh_intent()
        # Never: the monotonic clock may start near zero (a freshly booted machine).
        self._profile_checked_at = float("-inf")
        self._avatar_lock = asyncio.Lock()
        self._avatar_task: asyncio.Task | None = None
        self._avatar_retry_at = 0.0

    @classmethod
    def init_cls(cls, bridge: TeamsBridge) -> AsyncGenerator:
        cls.bridge = bridge
        cls.config = bridge.config
        cls.directory = bridge.directory
        cls.loop = bridge.loop
        cls.mx = bridge.matrix
        cls.az = bridge.az
        cls.hs_domain = cls.config["homeserver.domain"]
        cls.mxid_template = f"@{cls.config['bridge.username_template']}:{cls.hs_domain}"
        cls.login_device_name = "Teams bridge"
        secrets = cls.config["bridge.login_shared_secret_map"] or {}
        cls.login_shared_secret_map = {str(k): str(v).encode() for k, v in secrets.items()}
        servers = cls.config["bridge.double_puppet_server_map"] or {}
        cls.homeserver_url_map = {str(k): URL(str(v)) for k, v in servers.items()}
        cls.allow_discover_url = bool(cls.config["bridge.double_puppet_allow_discovery"])
        return (puppet.try_start() async for puppet in cls.all_with_custom_mxid())

    def is_idle(self) -> bool:
        """Not a double puppet (whose sync runs), and no profile picture being fetched:
        the directory may drop this object, to be loaded again when next needed."""
        return (
            not self.custom_mxid
            and (self._avatar_task is None or self._avatar_task.done())
            and not self._avatar_lock.locked()
        )

    async def save(self) -> None:
        await self.update()
        self.directory.puppet_saved(self)

    @classmethod
    def get_mxid_from_mri(cls, mri: str) -> UserID:
        return UserID(cls.mxid_template.format(userid=escape_mri(mri)))

    @classmethod
    def get_mri_from_mxid(cls, mxid: UserID) -> str | None:
        prefix, _, suffix = cls.mxid_template.partition("{userid}")
        if not (mxid.startswith(prefix) and mxid.endswith(suffix)):
            return None
        return unescape_mri(mxid[len(prefix) : len(mxid) - len(suffix)])

    def format_displayname(self, name: str) -> str:
        return self.config["bridge.displayname_template"].format(displayname=name)

    def usable_name(self, name: str | None) -> str:
        """The name as the ghost may carry it: without control or bidi characters, and
        short enough that the homeserver takes it once the template is applied."""
        if not name:
            return ""
        return _usable_name(name, self.config["bridge.displayname_template"])

    async def update_name(self, name: str | None, source: str, *, force: bool = False) -> bool:
        """Set the ghost's display name. Profile names beat names seen on messages
        unless ``force`` says the profile could not be read.

        Never raises: a name that cannot be set or stored must not cost the message that
        brought it (a name the homeserver refused is tried again when next seen)."""
        name = self.usable_name(name)
        if not name:
            return False
        if self.name_source == "profile" and source != "profile" and self.name_set and not force:
            return False
        if self.name == name and self.name_set:
            return False
        self.name = name
        self.name_source = source
        try:
            await self.default_mxid_intent.set_displayname(self.format_displayname(name))
            self.name_set = True
        except Exception:
            self.log.exception("Failed to set display name")
            self.name_set = False
        try:
            await self.save()
        except Exception:
            self.log.exception("Failed to store the display name")
        await self._update_private_chats()
        return True

    async def sync_name_from_message(self, name: str | None, client: TeamsClient | None) -> None:
        """Keep the name current with the ``imdisplayname`` of the user's messages.

        A name from the profile is kept unless the profile, looked up again (at most every
        ten minutes), has no name; then the name on the message is the best there is.
        """
        name = self.usable_name(name)
        if not name or (name == self.name and self.name_set):
            return
        if self.name_source != "profile" or not self.name_set:
            await self.update_name(name, "message")
            return
        now = time.monotonic()
        if now - self._profile_checked_at < PROFILE_RECHECK_SECONDS:
            return
        self._profile_checked_at = now
        profile_name: str | None = None
        if client is not None:
            try:
                profile = (await client.fetch_profiles([self.mri])).get(self.mri)
                profile_name = profile.display_name if profile else None
            except Exception as e:
                self.log.warning("Profile lookup failed: %s", e)
        if profile_name:
            await self.update_name(profile_name, "profile")
        else:
            await self.update_name(name, "message", force=True)

    # -- profile picture ---------------------------------------------------------------

    def avatar_due(self) -> bool:
        """Whether the picture should be fetched again: never fetched, or older than
        ``bridge.avatar_refresh_hours`` (0 turns pictures off). Costs no I/O."""
        hours = float(self.config["bridge.avatar_refresh_hours"] or 0)
        if hours <= 0 or time.monotonic() < self._avatar_retry_at:
            return False
        return time.time() * 1000 - self.avatar_checked_at >= hours * 3_600_000

    def schedule_avatar_sync(self, client: TeamsClient | None) -> None:
        """Refresh the picture in the background if it is due (for hot paths)."""
        if client is None or not self.avatar_due():
            return
        if self._avatar_task is None or self._avatar_task.done():
            self._avatar_task = asyncio.create_task(self.sync_avatar(client))

    async def sync_avatar(self, client: TeamsClient | None) -> None:
        """Fetch the Teams profile picture if it is due; upload and set it only when its
        bytes changed, clear the avatar when the picture is gone. Never raises: a failure
        keeps the current avatar and is retried later."""
        if client is None:
            return
        async with self._avatar_lock:
            if not self.avatar_due():
                return
            try:
                await self._sync_avatar(client)
            except Exception as e:
                self._avatar_retry_at = time.monotonic() + AVATAR_RETRY_SECONDS
                self.log.warning("Profile picture not updated: %s", e)

    async def _sync_avatar(self, client: TeamsClient) -> None:
        picture = await client.fetch_profile_picture(self.mri, size=AVATAR_SIZE)
        digest = hashlib.sha256(picture.data).hexdigest() if picture else None
        before = self.avatar_hash
        if digest != self.avatar_hash:
            mxc = ""
            if picture is not None:
                mimetype = choose_mimetype(
                    sniff_mimetype(picture.data[:SNIFF_BYTES]), picture.content_type
                )
                if not is_inline_image(mimetype):
                    raise ValueError(f"the picture is not a usable image ({mimetype})")
                mxc = await self.default_mxid_intent.upload_media(
                    picture.data,
                    mime_type=mimetype,
                    filename=default_filename("avatar", mimetype),
                )
            self.log.debug("Profile picture %s", "changed" if mxc else "removed")
            await self.default_mxid_intent.set_avatar_url(mxc)
            self.avatar_url = mxc or None
            self.avatar_hash = digest
            self.avatar_set = True
        self.avatar_checked_at = int(time.time() * 1000)
        await self.save()
        if digest != before:
            await self._update_private_chats()

    async def _update_private_chats(self) -> None:
        """1:1 rooms shown as this person (``private_chat_portal_meta``) follow a new name
        or picture. Never raises: the rooms catch up with the next change."""
        try:
            for portal in await self.directory.private_chats_with(self.mri):
                await portal.room.peer_changed(self)
        except Exception:
            self.log.warning("Could not update the 1:1 rooms with %s", self.mri, exc_info=True)

    # -- loading (the cache is the directory's) ----------------------------------------------

    @classmethod
    async def load_by_mri(cls, mri: str) -> Puppet | None:
        return cast(Puppet, await super().get_by_mri(mri))

    @classmethod
    async def load_by_custom_mxid(cls, mxid: UserID) -> Puppet | None:
        return cast(Puppet, await super().get_by_custom_mxid(mxid))

    @classmethod
    async def get_by_mri(cls, mri: str, *, create: bool = True) -> Puppet | None:
        return await cls.directory.puppet(mri, create=create)

    @classmethod
    async def get_by_mxid(cls, mxid: UserID, create: bool = True) -> Puppet | None:
        return await cls.directory.puppet_by_mxid(mxid, create=create)

    @classmethod
    async def get_by_custom_mxid(cls, mxid: UserID) -> Puppet | None:
        return await cls.directory.puppet_by_custom_mxid(mxid)

    @classmethod
    async def all_with_custom_mxid(cls) -> AsyncGenerator[Puppet, None]:
        for row in await super().all_with_custom_mxid():
            puppet = await cls.directory.adopt_puppet(cast(Puppet, row))
            if puppet is not None:
                yield puppet


@functools.lru_cache(maxsize=4096)
def _usable_name(name: str, template: str) -> str:
    """(Every message carries its sender's name: the same few are cleaned again and again.)"""
    budget = DISPLAYNAME_MAX_BYTES - len(template.format(displayname="").encode("utf-8"))
    return clean_name(name, budget)
