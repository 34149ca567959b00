"""Link targets that are safe to put in an ``href``."""

from __future__ import annotations

import re

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# Browsers delete these anywhere in a URL, so "java\tscript:" would still run script.
_IGNORED_IN_URLS = re.compile(r"[\t\n\r]")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\"<>\\]")
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_URL_CHARS = 4096


def safe_href(raw: str | None) -> str | None:
    """Return a cleaned http(s)/mailto URL, or None when the link must not be kept."""
    if not raw:
        return None
    url = _IGNORED_IN_URLS.sub("", raw).strip(" \x0c\x0b")
    if not url or len(url) > MAX_URL_CHARS:
        return None
    match = _SCHEME.match(url)
    if not match or match.group(1).lower() not in SAFE_SCHEMES:
        return None
    url = url.replace(" ", "%20")
    if _FORBIDDEN.search(url):
        return None
    return url


def link_label(href: str) -> str:
    """What to show for a link that has no text of its own."""
    return href[len("mailto:") :] if href.lower().startswith("mailto:") else href
