"""One rule sorts what goes wrong on the way to Teams into worth retrying or not."""

from __future__ import annotations

import aiohttp
import pytest

from teams_bridge.delivery.errors import (
    NotSupported,
    Permanent,
    Transient,
    call_teams,
    classify,
)
from teams_bridge.teams import AuthError, MediaError, MediaTooLarge, TeamsError

TRANSIENT: list[BaseException] = [
    AuthError("token expired", status=401),
    AuthError("still unauthorised after a token refresh", status=401, relogin_required=True),
    MediaError(401, None, "AMS still refuses the token"),  # the login may refresh
    TeamsError(None, "connection_error", "ClientConnectorError"),
    TeamsError(None, "invalid_response", "message list is not an object"),
    MediaError(None, "truncated", "the download ended early"),
    MediaError(None, "size_mismatch", "fewer bytes than declared"),
    TeamsError(500, None, "boom"),
    TeamsError(503, "ServiceUnavailable", "later"),
    TeamsError(408, None, "timeout"),
    TeamsError(429, None, "slow down"),
    MediaError(502, None, "bad gateway"),
    TimeoutError(),
    aiohttp.ClientConnectionError(),
    aiohttp.ServerDisconnectedError(),
    ConnectionResetError(),
    OSError("network is unreachable"),
    Transient("already sorted"),
]
PERMANENT: list[BaseException] = [
    TeamsError(400, "BadRequest", "no"),
    TeamsError(403, "Forbidden", "not a member"),
    TeamsError(404, "NotFound", "gone"),
    TeamsError(413, None, "too big"),
    MediaError(400, None, "bad object"),
    MediaTooLarge(limit=10, size=20),
    MediaError(None, "untrusted_host", "refusing to send the token to that host"),
    MediaError(None, "not_ams", "not an AMS object id or URL"),
    NotSupported("sending m.location to Teams is not supported yet"),
    Permanent("already sorted"),
]
BUGS: list[BaseException] = [KeyError("x"), TypeError("unhashable"), ValueError(), AssertionError()]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_worth_retrying(error):
    assert isinstance(classify(error), Transient)


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_not_worth_retrying(error):
    assert isinstance(classify(error), Permanent)


@pytest.mark.parametrize("error", BUGS, ids=repr)
def test_a_bug_is_not_sorted(error):
    assert classify(error) is None


def test_the_reasons_say_what_happened():
    assert str(classify(TeamsError(403, "Forbidden", "nope"), "the edit")) == (
        "Teams refused the edit (HTTP 403 Forbidden: nope)"
    )
    assert "rejected the login" in str(classify(AuthError("expired", status=401)))
    assert str(classify(ConnectionResetError())) == "network error (ConnectionResetError)"
    sorted_already = NotSupported("only text can be edited in Teams")
    assert classify(sorted_already) is sorted_already


async def test_a_call_that_fails_for_good_is_undone():
    undone: list[str] = []

    async def undo() -> None:
        undone.append("undo")

    async def refused() -> None:
        raise TeamsError(404, None, "gone")

    async def busy() -> None:
        raise TeamsError(503, None, "busy")

    async def buggy() -> None:
        raise KeyError("x")

    with pytest.raises(Permanent, match="Teams refused the reaction"):
        await call_teams("the reaction", refused(), undo=undo)
    assert undone == ["undo"]
    with pytest.raises(Transient):
        await call_teams("the reaction", busy(), undo=undo)
    with pytest.raises(KeyError):
        await call_teams("the reaction", buggy(), undo=undo)
    assert undone == ["undo"]  # only a permanent failure is undone

    async def fine() -> str:
        return "1700000000001"

    assert await call_teams("the message", fine()) == "1700000000001"
