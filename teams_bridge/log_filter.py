"""Keeps secrets out of the logs, whatever a library or a stray repr prints."""

from __future__ import annotations

import logging
import re
import threading

_PATTERNS = [
    # JWTs (AAD access/id tokens, Skype tokens).
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Opaque MSA tokens.
    re.compile(r"\bEw[A-Za-z0-9+/=_-]{20,}"),
    # Header and form styles.
    # (`authtoken=Bearer=<token>&…` is the middle tier's picture cookie.)
    re.compile(r"(?i)(skypetoken=|skype_token |x-skypetoken: ?|bearer[ =])[^\s\"',;&]+"),
    re.compile(
        r"(?i)((?:refresh|access|id)_token|device_code|as_token|hs_token|access_token)"
        r"([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
    ),
]

_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is redacted even if it matches no pattern."""
    if value and len(value) >= 8:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: f"{m.group(1)}<redacted>", text)
        else:
            text = pattern.sub("<redacted>", text)
    if _known:
        with _lock:
            known = list(_known)
        for secret in known:
            if secret in text:
                text = text.replace(secret, "<redacted>")
    return text


class SecretFilter(logging.Filter):
    """A logging filter that rewrites records with every known token shape removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True
