"""Keeps secrets out of the logs, whatever a library or a stray repr prints."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

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

# Secrets registered at run time, oldest first. Refresh tokens rotate on every use, so only
# the most recent ones are kept (a rotated-out token no longer works anyway).
MAX_KNOWN = 1024
_known: OrderedDict[str, None] = OrderedDict()
_known_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is redacted even if it matches no pattern."""
    global _known_pattern
    if value and len(value) >= 8:
        with _lock:
            if value in _known:
                _known.move_to_end(value)
                return
            _known[value] = None
            while len(_known) > MAX_KNOWN:
                _known.popitem(last=False)
            _known_pattern = None  # rebuilt on next use


def _pattern() -> re.Pattern[str] | None:
    global _known_pattern
    if _known_pattern is None and _known:
        with _lock:
            # Longest first, so a secret containing another is removed whole.
            ordered = sorted(_known, key=len, reverse=True)
            _known_pattern = re.compile("|".join(re.escape(v) for v in ordered))
    return _known_pattern


def known_secret_count() -> int:
    return len(_known)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: f"{m.group(1)}<redacted>", text)
        else:
            text = pattern.sub("<redacted>", text)
    pattern = _pattern()
    if pattern is not None:
        text = pattern.sub("<redacted>", text)
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
