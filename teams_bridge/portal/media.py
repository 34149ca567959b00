"""Files and media both ways: Teams attachments become Matrix media events (one part each),
Matrix media is uploaded to AMS and posted in the format the Teams client renders.

Files never sit in memory whole: each one is streamed to a temporary file (its type
sniffed from the first bytes, image dimensions read from the header) and streamed on
from there, then the file is removed.

Teams -> Matrix parts: the caption text first (when there is one), then one event per
attachment in document order, SharePoint/OneDrive files last. A part that was already sent
before a crash is not downloaded again.
"""

from __future__ import annotations

import dataclasses
import html
import time
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from mautrix.errors import MatrixRequestError
from mautrix.types import (
    AudioInfo,
    ContentURI,
    EventID,
    FileInfo,
    Format,
    ImageInfo,
    MediaMessageEventContent,
    MessageEventContent,
    MessageType,
    TextMessageEventContent,
    VideoInfo,
)

from .. import db as dbm
from ..delivery.errors import NotSupported, Permanent, Transient, call_teams, classify
from ..delivery.results import Result
from ..media_crypto import BadEncryptedFile, Encryptor, decrypt_stream
from ..media_util import (
    MatrixMediaError,
    Spooled,
    TooLarge,
    default_filename,
    format_size,
    homeserver_upload_limit,
    is_inline_image,
    matrix_download,
    spool,
)
from ..puppet import Puppet
from ..teams import (
    Attachment,
    MediaKind,
    MediaMessage,
    MediaTooLarge,
    SharePointFile,
    TeamsError,
    file_message,
    image_message,
    parse_media,
    video_message,
    voice_message,
)
from ..teams.media import UPLOAD_VIEWS, clean_filename

if TYPE_CHECKING:
    from ..teams import Message
    from ..user import User
    from .portal import Portal

MEDIA_MSGTYPES = {
    MessageType.IMAGE.value,
    MessageType.FILE.value,
    MessageType.VIDEO.value,
    MessageType.AUDIO.value,
}
VOICE_KEY = "org.matrix.msc3245.voice"
AUDIO_KEY = "org.matrix.msc1767.audio"
# How long the homeserver's upload limit is trusted before it is asked again.
HS_LIMIT_TTL = 3600.0

_MSGTYPES = {
    MediaKind.IMAGE: MessageType.IMAGE,
    MediaKind.VIDEO: MessageType.VIDEO,
    MediaKind.AUDIO: MessageType.AUDIO,
    MediaKind.FILE: MessageType.FILE,
}
_STEMS = {
    MediaKind.IMAGE: "image",
    MediaKind.VIDEO: "video",
    MediaKind.AUDIO: "Voice message",
    MediaKind.FILE: "file",
}


class _Skip(Exception):
    """An attachment that cannot be bridged for good; the text is shown instead."""


def _notice(text: str) -> TextMessageEventContent:
    return TextMessageEventContent(msgtype=MessageType.NOTICE, body=text)


def _too_large(name: str, size: int | None, limit: int) -> str:
    what = format_size(size) if size is not None else f"more than {format_size(limit)}"
    return (
        f"The file {name} ({what}) was not bridged: files larger than {format_size(limit)} "
        "are not transferred."
    )


class Media:
    """A portal's files, both ways. The homeserver's upload limit is shared by all."""

    _hs_limit: ClassVar[tuple[float, int | None] | None] = None

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.log = portal.log

    # -- limits ------------------------------------------------------------------------------

    @property
    def max_file_size(self) -> int:
        return int(self.portal.config["bridge.max_file_size"])

    @property
    def media_temp_dir(self) -> str | None:
        return self.portal.config["bridge.media_temp_dir"] or None

    async def _inbound_limit(self) -> int:
        """The configured limit, or the homeserver's upload limit when that is lower."""
        cached = Media._hs_limit
        if cached is None or time.monotonic() - cached[0] > HS_LIMIT_TTL:
            cached = (time.monotonic(), await homeserver_upload_limit(self.portal.az.intent))
            Media._hs_limit = cached
        hs_limit = cached[1]
        return min(self.max_file_size, hs_limit) if hs_limit else self.max_file_size

    # -- Teams -> Matrix ---------------------------------------------------------------------

    async def convert(
        self, source: User, message: Message, replies: dict[str, EventID]
    ) -> list[MessageEventContent] | None:
        """The parts of a message with files: its caption, then one event per file.
        ``None``: the message has no files."""
        parsed = parse_media(message)
        if not parsed.attachments:
            return None
        parts: list[MessageEventContent] = []
        if parsed.caption_html:
            mtype = message.message_type if message.message_type == "Text" else "RichText/Html"
            caption = self.portal.inbound.convert_text(
                dataclasses.replace(message, content=parsed.caption_html, message_type=mtype),
                replies,
            )
            if caption is not None and caption.body.strip():
                parts.append(caption)
        puppet = await Puppet.get_by_mri(message.sender_mri) if message.sender_mri else None
        for attachment in parsed.attachments:
            part = len(parts)
            if await dbm.Message.get(self.portal.thread_id, self.portal.receiver, message.id, part):
                # Sent before a restart: the caller skips it, so don't fetch it again.
                parts.append(_notice(attachment.filename or "attachment"))
                continue
            if isinstance(attachment, SharePointFile):
                parts.append(_sharepoint_content(attachment))
                continue
            try:
                parts.append(await self._attachment_to_matrix(source, puppet, attachment))
            except _Skip as e:
                parts.append(_notice(str(e)))
        return parts

    async def _attachment_to_matrix(
        self, source: User, puppet: Puppet | None, att: Attachment
    ) -> MediaMessageEventContent:
        assert not isinstance(att, SharePointFile)
        kind = att.kind
        limit = await self._inbound_limit()
        shown_name = att.filename or _STEMS[kind]
        if att.size is not None and att.size > limit:
            raise _Skip(_too_large(shown_name, att.size, limit))
        spooled = await self._download_attachment(source, att, shown_name, limit)
        try:
            name = clean_filename(att.filename, default_filename(_STEMS[kind], spooled.mimetype))
            intent = puppet.default_mxid_intent if puppet else self.portal.az.intent
            encryptor = Encryptor() if self._encrypted else None
            try:
                if encryptor is not None:
                    # The homeserver gets ciphertext only: no type, no name.
                    mxc = await intent.upload_media(
                        encryptor.stream(spooled.chunks()),
                        mime_type="application/octet-stream",
                        size=spooled.size,
                    )
                else:
                    mxc = await intent.upload_media(
                        spooled.chunks(),
                        mime_type=spooled.mimetype,
                        filename=name,
                        size=spooled.size,
                    )
            except MatrixRequestError as e:
                if e.http_status == 413:
                    raise _Skip(_too_large(name, spooled.size, limit)) from e
                raise
        finally:
            spooled.remove()
        content = _matrix_media(_shown_kind(kind, spooled.mimetype), att, name, mxc, spooled)
        if encryptor is not None:
            content.url = None
            content.file = encryptor.file(mxc)
        return content

    @property
    def _encrypted(self) -> bool:
        return bool(self.portal.encrypted) and self.portal.matrix.e2ee is not None

    async def _download_attachment(
        self, source: User, att: Attachment, name: str, limit: int
    ) -> Spooled:
        assert not isinstance(att, SharePointFile)
        client = source.client
        if client is None:
            raise RuntimeError("the Teams connection is gone; retrying later")
        ref = att.url if att.ams is not None else att.object_id
        views = att.views
        for index, view in enumerate(views):
            try:
                async with client.download(ref, view, max_size=limit) as download:
                    return await spool(
                        download,
                        max_size=limit,
                        declared_type=download.content_type,
                        directory=self.media_temp_dir,
                        dimensions=att.kind == MediaKind.IMAGE,
                    )
            except (MediaTooLarge, TooLarge) as e:
                raise _Skip(_too_large(name, getattr(e, "size", None) or att.size, limit)) from e
            except TeamsError as e:
                if isinstance(classify(e, "the download"), Transient):
                    raise
                if e.status == 404 and index + 1 < len(views):
                    continue  # this view has no content: try the next one
                self.log.warning("Could not download %s from Teams: %s", name, e)
                raise _Skip(f"The file {name} could not be downloaded from Teams ({e}).") from e
        raise AssertionError("unreachable: every attachment has at least one view")

    # -- Matrix -> Teams ---------------------------------------------------------------------

    async def deliver(self, sender: User, row: dbm.MatrixEvent, raw: dict[str, Any]) -> Result:
        content: dict[str, Any] = raw["content"]
        msgtype = content.get("msgtype")
        if raw["type"] == "m.sticker":
            msgtype = MessageType.IMAGE.value
        if msgtype not in MEDIA_MSGTYPES:
            raise NotSupported(f"sending {msgtype or raw['type']} to Teams is not supported yet")
        # The try is counted before the file is fetched, so a download that keeps failing
        # ends in a notice.
        return await self.portal.delivery.post(
            sender,
            row,
            lambda client_message_id: self._post_media(
                sender, row, content, str(msgtype), client_message_id
            ),
        )

    async def _post_media(
        self,
        sender: User,
        row: dbm.MatrixEvent,
        content: dict[str, Any],
        msgtype: str,
        client_message_id: str,
    ) -> str:
        """Upload the file to AMS and post the message that shows it; the new message id."""
        assert sender.client is not None and self.portal.mxid
        client = sender.client
        url = content.get("url")
        encrypted_file = content.get("file") if isinstance(content.get("file"), dict) else None
        if encrypted_file is not None:
            url = encrypted_file.get("url")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            raise Permanent("the file has no usable address")
        info = content.get("info") if isinstance(content.get("info"), dict) else {}
        assert isinstance(info, dict)
        body = content.get("body") if isinstance(content.get("body"), str) else ""
        filename = content.get("filename") if isinstance(content.get("filename"), str) else None
        name = clean_filename(filename or body, "file")
        limit = self.max_file_size
        declared_size = info.get("size")
        if isinstance(declared_size, int) and declared_size > limit:
            raise Permanent(_outgoing_too_large(name, declared_size, limit))

        kind = {
            MessageType.IMAGE.value: MediaKind.IMAGE,
            MessageType.VIDEO.value: MediaKind.VIDEO,
            MessageType.AUDIO.value: MediaKind.AUDIO,
        }.get(msgtype, MediaKind.FILE)
        if kind == MediaKind.AUDIO and VOICE_KEY not in content:
            kind = MediaKind.FILE  # Teams has voice messages, not audio players
        thread = await self.portal.threads.target(sender, content)  # before uploading anything
        spooled = await self._fetch_matrix_media(url, name, info, kind, limit, encrypted_file)
        try:
            kind = _shown_kind(kind, spooled.mimetype)
            # In a 1:1 the peer is named too, as the Teams clients do for files.
            readers = (
                [self.portal.other_user_mri]
                if self.portal.is_direct and self.portal.other_user_mri
                else []
            )
            what = "the file"
            object_id = await call_teams(
                what, client.create_ams_object(kind, name, self.portal.thread_id, readers=readers)
            )
            await call_teams(
                what,
                client.upload_ams_content(
                    object_id, UPLOAD_VIEWS[kind], spooled.chunks(), spooled.size, spooled.mimetype
                ),
            )
            ams_base = await call_teams(what, client.ams_base())
        finally:
            spooled.remove()

        caption_html: str | None = None
        properties: dict[str, str] = {}
        if filename and body and body != filename:
            # MSC2530: with a separate file name, the body is a caption.
            caption_html, properties = self.portal.outbound.convert(sender, content)
        media = _teams_media(kind, ams_base, object_id, name, spooled, info, caption_html)
        if properties:
            media = media._replace(properties={**media.properties, **properties})
        return await self.portal.outbound.posted(
            row,
            thread,
            client.send_media_message(
                self.portal.thread_id,
                media,
                client_message_id=client_message_id,
                display_name=sender.display_name or "",
                thread_root_id=thread.root_id if thread else None,
            ),
        )

    async def _fetch_matrix_media(
        self,
        url: str,
        name: str,
        info: dict[str, Any],
        kind: MediaKind,
        limit: int,
        encrypted_file: dict[str, Any] | None = None,
    ) -> Spooled:
        """The file spooled to disk; an encrypted one decrypted on the way, and its hash
        checked before anything can use it."""
        declared_type = info.get("mimetype") if isinstance(info.get("mimetype"), str) else None
        try:
            async with matrix_download(self.portal.az.intent, url, max_size=limit) as chunks:
                if encrypted_file is not None:
                    chunks = decrypt_stream(chunks, encrypted_file)
                return await spool(
                    chunks,
                    max_size=limit,
                    declared_type=declared_type,
                    directory=self.media_temp_dir,
                    dimensions=kind == MediaKind.IMAGE,
                )
        except TooLarge as e:
            raise Permanent(_outgoing_too_large(name, e.size, limit)) from e
        except BadEncryptedFile as e:
            raise Permanent(f"could not decrypt {name}: {e}") from e
        except MatrixMediaError as e:
            if e.permanent:
                raise Permanent(f"could not fetch {name} from the homeserver: {e}") from e
            raise Transient(f"could not fetch {name} from the homeserver: {e}") from e
        except (TimeoutError, aiohttp.ClientError) as e:
            raise Transient(f"network error fetching {name} ({type(e).__name__})") from e


def _shown_kind(kind: MediaKind, mimetype: str) -> MediaKind:
    """What a file is sent as: a picture only when clients can safely draw it inline. An
    SVG (or any other image type not known to be safe) is a file, whatever it came as."""
    if (kind == MediaKind.IMAGE or mimetype.startswith("image/")) and not is_inline_image(mimetype):
        return MediaKind.FILE
    return kind


def _outgoing_too_large(name: str, size: int | None, limit: int) -> str:
    what = format_size(size) if size is not None else f"more than {format_size(limit)}"
    return f"the file {name} is too large ({what}; the limit is {format_size(limit)})"


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value > 0 else None


def _matrix_media(
    kind: MediaKind, att: Attachment, name: str, mxc: ContentURI, spooled: Spooled
) -> MediaMessageEventContent:
    assert not isinstance(att, SharePointFile)
    width = spooled.width or getattr(att, "width", None)
    height = spooled.height or getattr(att, "height", None)
    duration = getattr(att, "duration_ms", None)
    info: ImageInfo | VideoInfo | AudioInfo | FileInfo
    if kind == MediaKind.IMAGE:
        info = ImageInfo(mimetype=spooled.mimetype, size=spooled.size, width=width, height=height)
    elif kind == MediaKind.VIDEO:
        info = VideoInfo(
            mimetype=spooled.mimetype,
            size=spooled.size,
            width=width,
            height=height,
            duration=duration,
        )
    elif kind == MediaKind.AUDIO:
        info = AudioInfo(mimetype=spooled.mimetype, size=spooled.size, duration=duration)
    else:
        info = FileInfo(mimetype=spooled.mimetype, size=spooled.size)
    content = MediaMessageEventContent(
        msgtype=_MSGTYPES[kind], body=name, url=mxc, info=info, filename=name
    )
    if kind == MediaKind.AUDIO:
        # Teams audio attachments are voice messages (Media_AudioMsg).
        content[VOICE_KEY] = {}
        content[AUDIO_KEY] = {"duration": duration} if duration is not None else {}
    return content


def _sharepoint_content(att: SharePointFile) -> TextMessageEventContent:
    """SharePoint/OneDrive files need a SharePoint token: send the name, size and link."""
    size = f" ({format_size(att.size)})" if att.size is not None else ""
    link = att.link
    body = f"📎 {att.file_name}{size}"
    if link:
        body += f": {link}"
    content = TextMessageEventContent(msgtype=MessageType.TEXT, body=body)
    if link:
        content.format = Format.HTML
        content.formatted_body = (
            f'📎 <a href="{html.escape(link, quote=True)}">{html.escape(att.file_name)}</a>'
            f"{html.escape(size)}"
        )
    return content


def _teams_media(
    kind: MediaKind,
    ams_base: str,
    object_id: str,
    name: str,
    spooled: Spooled,
    info: dict[str, Any],
    caption_html: str | None,
) -> MediaMessage:
    if kind == MediaKind.IMAGE:
        return image_message(
            ams_base,
            object_id,
            width=spooled.width or _positive_int(info.get("w")),
            height=spooled.height or _positive_int(info.get("h")),
            alt=name,
            caption_html=caption_html,
        )
    if kind == MediaKind.VIDEO:
        return video_message(
            ams_base,
            object_id,
            filename=name,
            size=spooled.size,
            width=_positive_int(info.get("w")),
            height=_positive_int(info.get("h")),
            duration_ms=_positive_int(info.get("duration")),
            caption_html=caption_html,
        )
    if kind == MediaKind.AUDIO:
        return voice_message(
            ams_base,
            object_id,
            filename=name,
            size=spooled.size,
            duration_ms=_positive_int(info.get("duration")),
            caption_html=caption_html,
        )
    return file_message(
        ams_base, object_id, filename=name, size=spooled.size, caption_html=caption_html
    )
