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
_lock = threading.Lock()

# Every log line is searched for every known secret, and a bridge with a thousand users
# knows a thousand tokens of a thousand or more characters each: one regular expression of
# them all took longer to build than most log lines take to write, and was built again
# after every login. Instead, each secret of at least 2 * WINDOW - 1 characters is indexed
# by its WINDOW-character pieces at offsets 0 .. WINDOW - 1, so that a line is read in steps
# of WINDOW: any occurrence of such a secret covers one of those steps with an indexed
# piece. Shorter secrets (a pasted code) are few, and looked for one by one.
WINDOW = 8
_pieces: dict[str, list[tuple[str, int]]] = {}
_short: set[str] = set()


def _index(value: str) -> None:
    if len(value) < 2 * WINDOW - 1:
        _short.add(value)
        return
    for offset in range(WINDOW):
        _pieces.setdefault(value[offset : offset + WINDOW], []).append((value, offset))


def _unindex(value: str) -> None:
    if len(value) < 2 * WINDOW - 1:
        _short.discard(value)
        return
    for offset in range(WINDOW):
        piece = value[offset : offset + WINDOW]
        entries = [e for e in _pieces.get(piece, []) if e != (value, offset)]
        if entries:
            _pieces[piece] = entries
        else:
            _pieces.pop(piece, None)


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is redacted even if it matches no pattern."""
    if value and len(value) >= 8:
        with _lock:
            if value in _known:
                _known.move_to_end(value)
                return
            _known[value] = None
            _index(value)
            while len(_known) > MAX_KNOWN:
                old, _ = _known.popitem(last=False)
                _unindex(old)


def known_secret_count() -> int:
    return len(_known)


def _known_spans(text: str) -> list[tuple[int, int]]:
    """Where known secrets are in ``text``: (start, end), in no order, maybe overlapping."""
    spans: list[tuple[int, int]] = []
    with _lock:
        if _pieces:
            get = _pieces.get
            for step in range(0, len(text) - WINDOW + 1, WINDOW):
                found = get(text[step : step + WINDOW])
                if found:
                    for secret, offset in found:
                        start = step - offset
                        if start >= 0 and text.startswith(secret, start):
                            spans.append((start, start + len(secret)))
        for secret in _short:
            start = text.find(secret)
            while start != -1:
                spans.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
    return spans


def _remove_known(text: str) -> str:
    spans = _known_spans(text)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    for start, end in spans:
        if end <= done:
            continue  # inside one removed already
        if start >= done:
            out.append(text[done:start])
            out.append("<redacted>")
        done = end
    out.append(text[done:])
    return "".join(out)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: f"{m.group(1)}<redacted>", text)
        else:
            text = pattern.sub("<redacted>", text)
    return _remove_known(text)


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
