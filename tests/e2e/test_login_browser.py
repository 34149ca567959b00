"""Logging in where device codes are blocked: conditional access names the block and the
other ways in; `login-browser` (authorization code with PKCE) signs in through a browser
whose final address is pasted back, redacted at once, for work and personal accounts."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from mautrix.types import RoomCreatePreset, UserID

from tests.e2e.helpers import wait_for

STOP_TIMEOUT = 5
LINK = re.compile(r"\((https?://[^)\s]+/oauth2/v2\.0/authorize\?[^)\s]+)\)")
CODE_RE = re.compile(r"enter the code \*{0,2}([A-Z0-9-]+)\*{0,2}")


async def _sign_in(link: str, mri: str) -> str:
    """What a browser does: the sign-in page, a user picked; the address it ends on."""
    url = urlsplit(link)
    base = f"{url.scheme}://{url.netloc}{url.path}"
    form = dict(parse_qsl(url.query))
    async with aiohttp.ClientSession() as session:
        async with session.get(link) as page:
            assert page.status == 200 and "<form" in await page.text()
        async with session.post(base, data={**form, "mri": mri}, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            return resp.headers["Location"]


async def _management_room(mx, bot: str) -> str:
    """A DM with the bot as clients usually make one (the bot may redact in it)."""
    room = await mx.client.create_room(
        preset=RoomCreatePreset.TRUSTED_PRIVATE, is_direct=True, invitees=[UserID(bot)]
    )
    mx.joined.add(room)
    await mx.wait_for_notice(room, contains="Teams bridge bot")
    return room


async def test_device_code_blocked_and_browser_sign_in(
    backend, synapse, bridge_factory, control, fake_teams, matrix_client_factory
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    alan = await control.create_user(display_name="Alan Turing", kind="personal")
    bridge = bridge_factory()
    await bridge.astart()
    mx = await matrix_client_factory()
    dm = await _management_room(mx, reg.bot_mxid)

    async def ask(text: str, contains: str):
        sent = await mx.send_text(dm, text)
        return await mx.wait_for_notice(dm, contains=contains, after=sent)

    # Conditional access refuses the device code: the bot names the block and the way out.
    fake_teams.options.conditional_access = "block_device_code"
    prompt = await ask("login", "enter the code")
    await control.approve_device_code(CODE_RE.search(prompt.content.body).group(1), me["mri"])
    blocked = await mx.wait_for_notice(dm, contains="conditional access")
    assert "AADSTS53003" in blocked.content.body
    assert "login-browser" in blocked.content.body and "login-refresh" in blocked.content.body

    # login-browser: a sign-in link with PKCE.
    offer = await ask("login-browser", "sign-in link")
    link = LINK.search(offer.content.body).group(1)
    query = dict(parse_qsl(urlsplit(link).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["response_type"] == "code" and query["state"]
    assert "code_verifier" not in link

    # Wrong pastes are explained; the login waits for a good one.
    assert (
        "not the address of a finished sign-in"
        in (await ask("https://example.org/nothing", "not the address")).content.body
    )
    refused = await _sign_in(link, "decline")
    answer = await ask(refused, "refused the sign-in")
    assert "AADSTS65004" in answer.content.body
    landed = await _sign_in(link, me["mri"])
    forged = re.sub(r"state=[^&#]+", "state=somebody-else", landed)
    await ask(forged, "another sign-in")

    # The right address: logged in, and the pasted address (a secret) is gone at once.
    pasted = await mx.send_text(dm, landed)
    await mx.wait_for_notice(dm, contains="Successfully logged in as Grace Hopper", after=pasted)

    async def redacted() -> bool:
        event = await mx.client.get_event(dm, pasted)
        return not event.content.serialize().get("body")

    await wait_for(redacted)
    code = dict(parse_qsl(urlsplit(landed).query))["code"]
    assert code not in bridge.log_text()
    await control.wait_for_registration(me["mri"], timeout=60)

    # A personal account: the code comes back in the address's fragment.
    alan_mx = await matrix_client_factory()
    alan_dm = await _management_room(alan_mx, reg.bot_mxid)
    sent = await alan_mx.send_text(alan_dm, "login-browser personal")
    offer = await alan_mx.wait_for_notice(alan_dm, contains="sign-in link", after=sent)
    link = LINK.search(offer.content.body).group(1)
    assert "/consumers/" in link and "response_mode=fragment" in link
    landed = await _sign_in(link, alan["mri"])
    assert "#code=" in landed
    sent = await alan_mx.send_text(alan_dm, landed)
    await alan_mx.wait_for_notice(alan_dm, contains="Successfully logged in as Alan Turing")
    await control.wait_for_registration(alan["mri"], timeout=60)

    # The same address again, in a new sign-in: refused (another sign-in's state).
    sent = await alan_mx.send_text(alan_dm, "login-browser personal")
    await alan_mx.wait_for_notice(alan_dm, contains="sign-in link", after=sent)
    again = await alan_mx.send_text(alan_dm, landed)
    await alan_mx.wait_for_notice(alan_dm, contains="another sign-in", after=again)
    sent = await alan_mx.send_text(alan_dm, "cancel")
    await alan_mx.wait_for_notice(alan_dm, contains="cancelled", after=sent)
    await bridge.astop(timeout=STOP_TIMEOUT)
