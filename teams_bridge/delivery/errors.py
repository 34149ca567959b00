"""Why a Matrix -> Teams delivery failed, sorted once: worth retrying, or not.

Every handler and every Teams call on the delivery path asks `classify`, so the same
failure is retried (or reported) the same way wherever it happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from ..teams import AuthError, TeamsError

T = TypeVar("T")

# Errors the protocol client raises without asking Teams, for a request that can never
# work: a file over the limit, an address that is not AMS or not trusted with a token, an
# id or view that cannot be valid.
REFUSED_LOCALLY = {"media_too_large", "not_ams", "untrusted_host", "invalid_id", "invalid_view"}


class Transient(Exception):
    """Worth retrying: the network, Teams or the login will probably come back."""


class Permanent(Exception):
    """Retrying cannot help; the user is told why."""


class NotSupported(Permanent):
    """An event kind (or a change) that is not bridged; the user is told."""


def classify(error: BaseException, what: str = "the message") -> Transient | Permanent | None:
    """Whether ``error`` (met while delivering ``what``) is worth retrying.

    * An authentication failure is transient: the login may refresh (an `AuthError`, or a
      401 from a service that still refuses the token after the client refreshed it).
    * A Teams error without an answer (status None), a 5xx, 408 or 429 is transient; any
      other 4xx is permanent ("Teams refused ..."), as is a request the client refused to
      make (`REFUSED_LOCALLY`).
    * Network errors (timeouts, aiohttp, OS errors) are transient.
    * `Transient` and `Permanent` (`NotSupported` too) are what they say.

    None: not a delivery failure but a bug, which the caller lets through.
    """
    if isinstance(error, (Transient, Permanent)):
        return error
    if isinstance(error, AuthError) or (isinstance(error, TeamsError) and error.status == 401):
        return Transient(f"Teams rejected the login ({error})")
    if isinstance(error, TeamsError):
        status = error.status
        if status is None and error.error_code in REFUSED_LOCALLY:
            return Permanent(f"{what} cannot be sent to Teams ({error})")
        if status is None or status >= 500 or status in (408, 429):
            return Transient(f"Teams could not take {what} for now ({error})")
        return Permanent(f"Teams refused {what} ({error})")
    if isinstance(error, (TimeoutError, aiohttp.ClientError, OSError)):
        return Transient(f"network error ({type(error).__name__})")
    return None


async def call_teams(
    what: str,
    call: Awaitable[T],
    *,
    undo: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """Await a Teams request made for ``what``; a failure comes out as `Transient` or
    `Permanent` (a bug as itself). ``undo`` runs when the failure is permanent, to take
    back what was written in advance of the request."""
    try:
        return await call
    except Exception as e:
        failure = classify(e, what)
        if failure is None or failure is e:
            raise
        if undo is not None and isinstance(failure, Permanent):
            await undo()
        raise failure from e
