"""Presence service (teams-protocol.md §6): availability of many people per request, push
subscriptions delivered over Trouter, and the own availability and status note.

The availability strings pass through as Teams spells them (unknown ones too); what they
mean in another system is decided above this package.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from .errors import InvalidId, TeamsError
from .http import Auth, TeamsHttp
from .ids import parse_mri

log = logging.getLogger("teams.presence")

# PT and SQA send up to 650 people per getpresence request.
GET_BATCH = 650
# PT subscribes 100 at a time.
SUBSCRIBE_BATCH = 100
# The Trouter path suffix the presence service pushes to (§5.7 dispatches on it).
PUSH_SUFFIX = "unifiedPresenceService"
PUSH_PATH_ENDS = ("/unifiedpresenceservice", "/teamsunifiedpresenceservice")
# What `forceavailability` takes: the choices of the Teams status menu.
FORCEABLE = ("Available", "Busy", "DoNotDisturb", "BeRightBack", "Away", "Offline")
FAR_EXPIRY = "9999-12-31T00:00:00.000Z"
MAX_NOTE = 280
# The presence host when discovery names none (work accounts only, §1.3).
DEFAULT_ENTERPRISE_HOST = "https://presence.teams.microsoft.com"
_CLIENT_HEADERS = {
    "x-ms-client-user-agent": "Teams-V2-Web",
    "x-ms-client-type": "cdlworker",
    "x-ms-client-version": "1415/25113001312",
}
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Presence:
    """One person's presence as the service reported it."""

    mri: str
    availability: str
    activity: str | None = None
    note: str | None = None  # plain text
    etag: str | None = None
    out_of_office: bool = False


def note_text(raw: object) -> str | None:
    """A note's HTML as one line of plain text (``None`` when empty)."""
    if not isinstance(raw, str):
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", raw))).strip()
    return text or None


def is_mri(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_mri(value)
    except InvalidId:
        return False
    return True


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) and value.strip() else None


def parse_entry(raw: object) -> Presence | None:
    """One entry of a getpresence answer or a push; ``None`` when it carries no state
    (an unknown person, an ``etagMatch`` without a body, or garbage)."""
    if not isinstance(raw, Mapping):
        return None
    mri = raw.get("mri")
    if not isinstance(mri, str) or not is_mri(mri):
        return None
    body = raw.get("presence")
    if not isinstance(body, Mapping):
        return None
    availability = _text(body.get("availability"))
    if availability is None:
        return None
    note = body.get("note")
    calendar = body.get("calendarData")
    return Presence(
        mri=mri,
        availability=availability,
        activity=_text(body.get("activity")),
        note=note_text(note.get("message")) if isinstance(note, Mapping) else None,
        etag=_text(raw.get("etag")),
        out_of_office=isinstance(calendar, Mapping) and calendar.get("isOutOfOffice") is True,
    )


def parse_entries(data: object) -> list[Presence]:
    entries = data if isinstance(data, list) else []
    if isinstance(data, Mapping):
        for key in ("presence", "value", "presences"):
            if isinstance(data.get(key), list):
                entries = data[key]
                break
    return [p for p in (parse_entry(e) for e in entries) if p is not None]


def is_presence_path(path: str) -> bool:
    """Whether a Trouter push path is a presence push (``…/unifiedPresenceService``)."""
    return path.rstrip("/").lower().endswith(PUSH_PATH_ENDS)


def parse_push(body: object) -> tuple[list[Presence], bool]:
    """A decoded presence push: its entries and whether it is a full snapshot."""
    snapshot = isinstance(body, Mapping) and body.get("isSnapshot") is True
    return parse_entries(body), snapshot


class PresenceApi:
    """Calls to the presence service; ``base`` is the discovered ``unifiedPresence`` URL."""

    def __init__(self, http: TeamsHttp, endpoint_id: str) -> None:
        self.http = http
        self.endpoint_id = endpoint_id

    def _headers(self) -> dict[str, str]:
        return {**_CLIENT_HEADERS, "x-ms-endpoint-id": self.endpoint_id}

    async def get(self, base: str, mris: Iterable[str]) -> list[Presence]:
        """The presence of everyone in ``mris`` (batched); people the service does not
        know are left out. Errors raise ``TeamsError``."""
        wanted = list(dict.fromkeys(m for m in mris if is_mri(m)))
        result: list[Presence] = []
        url = f"{base}/v1/presence/getpresence/"
        for start in range(0, len(wanted), GET_BATCH):
            batch = wanted[start : start + GET_BATCH]
            resp = await self.http.request(
                "POST",
                url,
                auth=Auth.SKYPE,
                json_body=[{"mri": m} for m in batch],
                headers=self._headers(),
            )
            result.extend(parse_entries(resp.json()))
        return result

    async def subscribe(
        self,
        base: str,
        trouter_uri: str,
        add: Sequence[str],
        remove: Sequence[str] = (),
        *,
        purge: bool = False,
    ) -> None:
        """Ask for pushes about ``add`` (and none about ``remove``) at ``trouter_uri``, in
        batches; ``purge`` drops the endpoint's earlier subscriptions first."""
        adds = [m for m in dict.fromkeys(add) if is_mri(m)]
        removes = [m for m in dict.fromkeys(remove) if is_mri(m)]
        url = f"{base}/v1/pubsub/subscriptions/{quote(self.endpoint_id, safe='')}"
        first = True
        while adds or removes or first:
            batch_add, adds = adds[:SUBSCRIBE_BATCH], adds[SUBSCRIBE_BATCH:]
            room = SUBSCRIBE_BATCH - len(batch_add)
            batch_remove, removes = removes[:room], removes[room:]
            await self.http.request(
                "POST",
                url,
                auth=Auth.SKYPE,
                json_body={
                    "trouterUri": trouter_uri,
                    "shouldPurgePreviousSubscriptions": purge and first,
                    "subscriptionsToAdd": [{"mri": m, "source": "ups"} for m in batch_add],
                    "subscriptionsToRemove": [{"mri": m, "source": "ups"} for m in batch_remove],
                },
                headers=self._headers(),
            )
            first = False

    async def force_availability(self, base: str, availability: str) -> None:
        """Set the own availability on every device (one of ``FORCEABLE``)."""
        if availability not in FORCEABLE:
            raise ValueError(f"availability {availability!r} cannot be set")
        await self.http.request(
            "PUT",
            f"{base}/v1/me/forceavailability/",
            auth=Auth.SKYPE,
            json_body={"availability": availability},
            headers=self._headers(),
        )

    async def publish_note(self, base: str, text: str) -> None:
        """Set the own status note (plain text; empty clears it)."""
        text = text.strip()
        if len(text) > MAX_NOTE:
            raise ValueError(f"a note is at most {MAX_NOTE} characters")
        await self.http.request(
            "PUT",
            f"{base}/v1/me/publishnote",
            auth=Auth.SKYPE,
            json_body={"message": html.escape(text, quote=False), "expiry": FAR_EXPIRY},
            headers=self._headers(),
        )


def presence_base(discovered: str | None, personal: bool) -> str:
    """The presence service base URL; raises ``TeamsError`` when there is none to use."""
    if discovered:
        return discovered.rstrip("/")
    if not personal:
        return DEFAULT_ENTERPRISE_HOST
    raise TeamsError(None, "no_presence", "no presence service was discovered at login")
