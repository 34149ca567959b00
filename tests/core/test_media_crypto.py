"""Encrypted attachments, streamed: what we encrypt any Matrix client can decrypt (checked
with mautrix's own decrypt), what a client encrypted we decrypt, and a tampered or
malformed file is refused."""

from __future__ import annotations

import os

import pytest
from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.types import ContentURI

from teams_bridge.media_crypto import BadEncryptedFile, Encryptor, decrypt_stream


async def _chunks(data: bytes, size: int = 1000):
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _collect(stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_what_we_encrypt_decrypts_with_mautrix():
    plain = os.urandom(10_007)
    enc = Encryptor()
    cipher = await _collect(enc.stream(_chunks(plain)))
    assert len(cipher) == len(plain) and cipher != plain
    info = enc.file(ContentURI("mxc://example.org/abc"))
    assert info.url == "mxc://example.org/abc" and info.version == "v2"
    assert decrypt_attachment(cipher, info.key.key, info.hashes["sha256"], info.iv) == plain


async def test_what_a_client_encrypted_we_decrypt_in_chunks():
    plain = os.urandom(70_001)
    cipher, info = encrypt_attachment(plain)
    got = await _collect(decrypt_stream(_chunks(cipher, 4096), info.serialize()))
    assert got == plain


async def test_a_tampered_file_is_refused_at_its_end():
    cipher, info = encrypt_attachment(b"a" * 5000)
    tampered = cipher[:-1] + bytes([cipher[-1] ^ 1])
    with pytest.raises(BadEncryptedFile, match="hash"):
        await _collect(decrypt_stream(_chunks(tampered), info.serialize()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.pop("key"), "key"),
        (lambda f: f["key"].update(k="c2hvcnQ"), "AES-256"),
        (lambda f: f.update(iv="AAAA"), "IV"),
        (lambda f: f.update(hashes={}), "hash"),
        (lambda f: f.update(iv="!!not base64!!"), "IV"),
    ],
)
async def test_a_malformed_file_description_is_refused(change, message):
    cipher, info = encrypt_attachment(b"data")
    described = info.serialize()
    change(described)
    with pytest.raises(BadEncryptedFile, match=message):
        await _collect(decrypt_stream(_chunks(cipher), described))


async def test_the_file_is_described_only_once_encrypted_to_its_end():
    with pytest.raises(RuntimeError):
        Encryptor().file(ContentURI("mxc://example.org/abc"))
