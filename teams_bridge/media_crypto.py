"""Encrypted Matrix attachments, streamed: AES-256-CTR with a SHA-256 of the ciphertext, as
the Matrix spec describes for `m.room.encrypted` rooms (an `EncryptedFile`, version v2).

A file is encrypted or decrypted one chunk at a time as it streams between Teams, the
spool file and the homeserver, so memory stays bounded whatever the size of the file.
Decryption checks the hash once the last chunk is through; nothing may be used before
that (the callers spool to disk first and only upload a spool that finished).
"""

from __future__ import annotations

import binascii
import os
import struct
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import unpaddedbase64
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Util import Counter
from mautrix.types import ContentURI, EncryptedFile, JSONWebKey


class BadEncryptedFile(ValueError):
    """The file's key, IV or hash is unusable, or the content does not match its hash."""


class Encryptor:
    """Encrypts one file as its chunks pass through ``stream``; ``file`` then describes it."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        # The upper 64 bits random, the counter (lower 64 bits) starting at zero.
        self._iv = os.urandom(8) + b"\x00" * 8
        counter = Counter.new(64, prefix=self._iv[:8], initial_value=0)
        self._cipher = AES.new(self._key, AES.MODE_CTR, counter=counter)
        self._hash = SHA256.new()
        self._done = False

    async def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            encrypted = self._cipher.encrypt(chunk)
            self._hash.update(encrypted)
            yield encrypted
        self._done = True

    def file(self, url: ContentURI) -> EncryptedFile:
        if not self._done:
            raise RuntimeError("the file was not encrypted to its end")
        return EncryptedFile(
            url=url,
            version="v2",
            iv=unpaddedbase64.encode_base64(self._iv),
            hashes={"sha256": unpaddedbase64.encode_base64(self._hash.digest())},
            key=JSONWebKey(
                key_type="oct",
                algorithm="A256CTR",
                extractable=True,
                key_ops=["encrypt", "decrypt"],
                key=unpaddedbase64.encode_base64(self._key, urlsafe=True),
            ),
        )


def _decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadEncryptedFile(f"the file's {what} is missing")
    try:
        return unpaddedbase64.decode_base64(value.replace("-", "+").replace("_", "/"))
    except (binascii.Error, ValueError) as e:
        raise BadEncryptedFile(f"the file's {what} is not base64") from e


async def decrypt_stream(
    chunks: AsyncIterable[bytes], file: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The plaintext of an encrypted attachment (``file`` as in the event's content),
    chunk by chunk; raises ``BadEncryptedFile`` at the end when the hash does not match."""
    key_obj = file.get("key")
    key = _decode(key_obj.get("k") if isinstance(key_obj, dict) else None, "key")
    if len(key) != 32:
        raise BadEncryptedFile("the file's key is not an AES-256 key")
    iv = _decode(file.get("iv"), "IV")
    if len(iv) != 16:
        raise BadEncryptedFile("the file's IV is not 16 bytes")
    hashes = file.get("hashes")
    expected = _decode(hashes.get("sha256") if isinstance(hashes, dict) else None, "hash")
    # Some clients start the counter part away from zero; it is part of the IV either way.
    counter = Counter.new(64, prefix=iv[:8], initial_value=struct.unpack(">Q", iv[8:])[0])
    cipher = AES.new(key, AES.MODE_CTR, counter=counter)
    digest = SHA256.new()
    async for chunk in chunks:
        digest.update(chunk)
        yield cipher.decrypt(chunk)
    if digest.digest() != expected:
        raise BadEncryptedFile("the file does not match its hash")
