"""Middle-tier short profiles (display names, emails).

The consumer middle tier refuses device-code tokens, so failures return what
was resolved so far; the core falls back to ``imdisplayname`` from messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .errors import ParseError, TeamsError
from .http import Auth, TeamsHttp
from .ids import is_valid_id
from .models import Profile
from .parse import parse_profile

log = logging.getLogger("teams.profiles")

BATCH_SIZE = 100
_QUERY = (
    "isMailAddress=false&canBeSmtpAddress=false&enableGuest=true"
    "&includeIBBarredUsers=true&skypeTeamsInfo=true&includeBots=true"
)


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
