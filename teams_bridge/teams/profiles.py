"""Middle-tier short profiles (display names, emails) and profile pictures.

The consumer middle tier refuses device-code tokens, so failures return what
was resolved so far; the core falls back to ``imdisplayname`` from messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from .errors import ParseError, TeamsError
from .http import Auth, TeamsHttp, error_from_response
from .ids import check_id, is_valid_id
from .models import Profile, ProfilePicture
from .parse import parse_profile

log = logging.getLogger("teams.profiles")

BATCH_SIZE = 100
_QUERY = (
    "isMailAddress=false&canBeSmtpAddress=false&enableGuest=true"
    "&includeIBBarredUsers=true&skypeTeamsInfo=true&includeBots=true"
)


# Sizes the service renders (§8); the bridge asks for one.
PICTURE_SIZES = ("HR64x64", "HR96x96", "HR128x128", "HR196x196")
# A profile picture of this size is already far larger than any the service renders.
MAX_PICTURE_BYTES = 4 * 1024 * 1024
_OBJECT_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def looks_like_email(text: str) -> bool:
    return _EMAIL_RE.fullmatch(text.strip()) is not None


def _entries(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("value", "resolvedUsers", "users"):
            value = data.get(key)
            if isinstance(value, list):
                return value
    return []


async def fetch_short_profiles(
    http: TeamsHttp, middle_tier: str | None, mris: Iterable[str]
) -> dict[str, Profile]:
    """Profiles keyed by the MRI as requested; unknown or failed ones are left out."""
    wanted: list[str] = []
    for mri in mris:
        if is_valid_id(mri) and mri not in wanted:
            wanted.append(mri)
    if not wanted or not middle_tier:
        return {}
    url = f"{middle_tier.rstrip('/')}/beta/users/fetchShortProfile?{_QUERY}"
    by_lower = {m.lower(): m for m in wanted}
    result: dict[str, Profile] = {}
    for start in range(0, len(wanted), BATCH_SIZE):
        batch = wanted[start : start + BATCH_SIZE]
        try:
            resp = await http.request("POST", url, auth=Auth.SKYPE_BEARER, json_body=batch)
            data = resp.json()
        except TeamsError as exc:
            log.warning("fetchShortProfile failed (%s); returning %d profiles", exc, len(result))
            return result
        for raw in _entries(data):
            try:
                profile = parse_profile(raw)
            except ParseError as exc:
                log.debug("Skipping an unparsable profile: %s", exc)
                continue
            requested = by_lower.get(profile.mri.lower())
            if requested is not None:
                result[requested] = profile
    return result


SEARCH_QUERY = (
    "includeDLs=true&includeBots=true&enableGuest=true&source=newChat&skypeTeamsInfo=true"
)
MAX_SEARCH_TEXT = 256


async def search_users(http: TeamsHttp, middle_tier: str | None, text: str) -> list[Profile]:
    """Middle-tier people search (``searchV2``, §8): the body is the raw search text.

    Errors raise ``TeamsError``: an empty list must mean "nobody matched".
    """
    text = text.strip()[:MAX_SEARCH_TEXT]
    if not text:
        return []
    if not middle_tier:
        raise TeamsError(None, "no_middle_tier", "no middle tier was discovered at login")
    url = f"{middle_tier.rstrip('/')}/beta/users/searchV2?{SEARCH_QUERY}"
    resp = await http.request(
        "POST",
        url,
        auth=Auth.SKYPE_BEARER,
        data=text.encode(),
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    result: list[Profile] = []
    for raw in _entries(resp.json()):
        try:
            result.append(parse_profile(raw))
        except ParseError as exc:
            log.debug("Skipping an unparsable search result: %s", exc)
    return result


async def search_consumer_emails(
    http: TeamsHttp, middle_tier: str | None, emails: list[str]
) -> list[Profile]:
    """Consumer people search (``searchUsers``, §8): personal accounts are found by their
    exact email address. The answer maps each address to ``{"userProfiles": [...]}``."""
    wanted = [e.strip()[:MAX_SEARCH_TEXT] for e in emails if e.strip()]
    if not wanted:
        return []
    if not middle_tier:
        raise TeamsError(None, "no_middle_tier", "no middle tier was discovered at login")
    url = f"{middle_tier.rstrip('/')}/beta/users/searchUsers"
    resp = await http.request(
        "POST", url, auth=Auth.SKYPE_BEARER, json_body={"emails": wanted, "phones": []}
    )
    data = resp.json()
    result: list[Profile] = []
    if not isinstance(data, dict):
        return result
    for entry in data.values():
        found = entry.get("userProfiles") if isinstance(entry, dict) else None
        for raw in found if isinstance(found, list) else []:
            try:
                profile = parse_profile(raw)
            except ParseError as exc:
                log.debug("Skipping an unparsable search result: %s", exc)
                continue
            if all(p.mri != profile.mri for p in result):
                result.append(profile)
    return result


async def fetch_profile_picture(
    http: TeamsHttp,
    middle_tier: str | None,
    self_object_id: str,
    mri: str,
    *,
    size: str = "HR96x96",
) -> ProfilePicture | None:
    """``mri``'s picture, or ``None`` when the user has none (404 or an empty body).

    Any other failure raises ``TeamsError``: "could not tell" must not read as "no picture".
    """
    check_id(mri)
    if size not in PICTURE_SIZES:
        raise ValueError(f"unknown picture size {size!r}")
    if not _OBJECT_ID_RE.fullmatch(self_object_id):
        raise ValueError("the signed-in user's object id is not a plain path segment")
    if not middle_tier:
        raise TeamsError(None, "no_middle_tier", "no middle tier was discovered at login")
    url = (
        f"{middle_tier.rstrip('/')}/beta/users/{self_object_id}/profilepicturev2/"
        f"{quote(mri, safe=':')}?size={size}"
    )
    resp = await http.request(
        "GET",
        url,
        auth=Auth.MT_COOKIE,
        headers={"Accept": "image/*"},
        raise_for_status=False,
        max_body=MAX_PICTURE_BYTES,
    )
    if resp.status == 404 or (resp.ok and not resp.body):
        return None
    if not resp.ok:
        raise error_from_response(resp)
    content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return ProfilePicture(resp.body, content_type or None)
