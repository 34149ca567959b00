"""Following paging links without leaking tokens to other hosts."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def resolve_page_link(link: str, request_url: str) -> str | None:
    """The URL to fetch for a ``backwardLink``/``syncState`` link.

    Same-origin links are followed verbatim; a link on another host (the service
    often names a different regional host) keeps only its query string, applied
    to the URL we asked, so credentials never travel to a host we did not pick.
    """
    if not isinstance(link, str) or not link.strip():
        return None
    link = link.strip()
    try:
        absolute = urljoin(request_url, link)
        target = urlsplit(absolute)
        if target.scheme.lower() not in ("http", "https"):
            return None
        if _origin(absolute) == _origin(request_url):
            return absolute
        if not target.query:
            return None
        ours = urlsplit(request_url)
        return urlunsplit((ours.scheme, ours.netloc, ours.path, target.query, ""))
    except ValueError:
        return None
