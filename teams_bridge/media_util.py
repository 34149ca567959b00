"""Moving files without holding them in memory: a stream is spooled to a temporary file
while its type is sniffed from the first bytes, then streamed on from that file.

Nothing here knows about Teams or portals; the portal's `Media` helper decides what to move.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import magic
from mautrix.api import Method
from mautrix.appservice import IntentAPI
from mautrix.types import SpecVersions
from PIL import Image

from .teams import iter_file

log = logging.getLogger("mau.media")

CHUNK_SIZE = 256 * 1024
# python-magic needs only the start of a file; a few KiB cover every common format.
SNIFF_BYTES = 8 * 1024
OCTET_STREAM = "application/octet-stream"
# Answers from libmagic that say less than what the sender declared.
GENERIC_TYPES = {
    OCTET_STREAM,
    "text/plain",
    "application/zip",
    "application/x-empty",
    "inode/x-empty",
    "application/x-ole-storage",
    "application/CDFV2",
}
# The picture formats Matrix clients may draw inline: raster images that browsers decode
# without running anything (the list Synapse serves inline). SVG is left out on purpose: it
# is a document that can carry scripts and load other resources. TIFF, BMP, HEIC, icons and
# the rest go as files too: few clients can draw them, and their decoders see little use.
INLINE_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/apng", "image/avif"}
)
_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)


class TooLarge(Exception):
    """More bytes than allowed; ``size`` is the full size when it was known."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        super().__init__(f"larger than {format_size(limit)}")
        self.limit = limit
        self.size = size


class MatrixMediaError(Exception):
    """The homeserver would not hand out a file; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def format_size(size: int) -> str:
    """1536 -> "1.5 KiB"; exact bytes below 1 KiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def sniff_mimetype(head: bytes) -> str:
    if not head:
        return OCTET_STREAM
    try:
        return str(magic.from_buffer(head, mime=True)) or OCTET_STREAM
    except Exception:  # noqa: BLE001 - libmagic trouble must not stop a transfer
        log.debug("libmagic could not identify the content", exc_info=True)
        return OCTET_STREAM


def choose_mimetype(sniffed: str, declared: str | None) -> str:
    """The sniffed type, unless libmagic only knows a generic one and the sender said more.

    Text is never taken for a picture, whatever it is declared as: every raster format has
    a binary signature libmagic knows, so "text" declared as an image is most likely an SVG
    whose start libmagic could not place.
    """
    declared = (declared or "").split(";", 1)[0].strip().lower() or None
    if sniffed in GENERIC_TYPES and declared and declared != OCTET_STREAM:
        if sniffed == "text/plain" and declared.startswith("image/"):
            return sniffed
        return declared
    return sniffed


def is_inline_image(mimetype: str) -> bool:
    """Whether content of this type may be shown as a picture (``m.image``, avatars)."""
    return mimetype.split(";", 1)[0].strip().lower() in INLINE_IMAGE_TYPES


def default_filename(stem: str, mimetype: str) -> str:
    """A file name for nameless media ("image" + ".png")."""
    ext = mimetypes.guess_extension(mimetype, strict=False) or ""
    return f"{stem}{ext}"


def _image_dimensions(path: str) -> tuple[int | None, int | None]:
    try:
        # Only the header is read; the pixels are never decoded.
        with Image.open(path) as img:
            width, height = img.size
            return int(width), int(height)
    except Exception:  # noqa: BLE001 - not an image Pillow knows, or a hostile one
        return None, None


@dataclass
class Spooled:
    """A file on disk, ready to be streamed on, with what was learnt on the way in."""

    path: str
    size: int
    mimetype: str
    width: int | None = None
    height: int | None = None

    def chunks(self) -> AsyncIterator[bytes]:
        return iter_file(self.path, CHUNK_SIZE)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def spool(
    chunks: AsyncIterable[bytes],
    *,
    max_size: int,
    declared_type: str | None = None,
    directory: str | None = None,
    dimensions: bool = False,
) -> Spooled:
    """Write ``chunks`` to a temporary file (removed again on any error).

    ``TooLarge`` as soon as more than ``max_size`` bytes arrive. ``dimensions``: read the
    width and height with Pillow (images).
    """
    fd, path = await asyncio.to_thread(
        tempfile.mkstemp, prefix="teams-bridge-", suffix=".part", dir=directory
    )
    handle = os.fdopen(fd, "wb")
    size = 0
    head = bytearray()
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_size:
                raise TooLarge(max_size)
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            await asyncio.to_thread(handle.write, chunk)
        await asyncio.to_thread(handle.close)
        mimetype = choose_mimetype(sniff_mimetype(bytes(head)), declared_type)
        spooled = Spooled(path, size, mimetype)
        if dimensions:
            spooled.width, spooled.height = await asyncio.to_thread(_image_dimensions, path)
        return spooled
    except BaseException:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


@contextlib.asynccontextmanager
async def matrix_download(
    intent: IntentAPI, mxc: str, *, max_size: int
) -> AsyncIterator[AsyncIterator[bytes]]:
    """Stream a file from the homeserver's media repository, capped at ``max_size`` bytes.

    mautrix's ``download_media`` reads the whole body into memory; this reads chunks.
    """
    api = intent.api
    try:
        authenticated = bool((await intent.versions()).supports(SpecVersions.V111))
        url = api.get_download_url(mxc, authenticated=authenticated)
    except ValueError as e:
        raise MatrixMediaError("the file has an invalid address", permanent=True) from e
    except (aiohttp.ClientError, TimeoutError) as e:
        raise MatrixMediaError(
            f"homeserver unreachable ({type(e).__name__})", permanent=False
        ) from e
    params: dict[str, str] = {"allow_redirect": "true"}
    headers: dict[str, str] = {}
    if authenticated:
        headers["Authorization"] = f"Bearer {api.token}"
        if api.as_user_id:
            params["user_id"] = api.as_user_id
    try:
        resp = await api.session.get(url, params=params, headers=headers, timeout=_DOWNLOAD_TIMEOUT)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise MatrixMediaError(f"download failed ({type(e).__name__})", permanent=False) from e
    try:
        if resp.status >= 400:
            permanent = resp.status in (400, 403, 404, 410, 413)
            raise MatrixMediaError(
                f"the homeserver answered {resp.status} for the file", permanent=permanent
            )
        declared = resp.content_length
        if declared is not None and declared > max_size:
            raise TooLarge(max_size, declared)

        async def body() -> AsyncIterator[bytes]:
            received = 0
            try:
                while True:
                    chunk = await resp.content.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > max_size:
                        raise TooLarge(max_size, declared)
                    yield chunk
            except (aiohttp.ClientError, TimeoutError) as e:
                raise MatrixMediaError(
                    f"download interrupted ({type(e).__name__})", permanent=False
                ) from e
            if declared is not None and received != declared:
                raise MatrixMediaError("download ended early", permanent=False)

        yield body()
    finally:
        resp.close()


async def homeserver_upload_limit(intent: IntentAPI) -> int | None:
    """``m.upload.size`` from the homeserver's media config, when it says."""
    for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config"):
        try:
            data: Any = await intent.api.request(Method.GET, path)
        except Exception:  # noqa: BLE001 - older servers, or none: fall back
            continue
        if isinstance(data, dict):
            value = data.get("m.upload.size")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
            return None
    return None
