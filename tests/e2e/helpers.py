"""Shared steps of the end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote

import aiohttp

from teams_bridge.mxid import escape_mri

CODE_RE = re.compile(r"enter the code \*{0,2}([A-Z0-9-]+)\*{0,2}")
WORK_CLIENT_ID = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
SCOPE = "https://api.spaces.skype.com/.default openid profile offline_access"


def puppet_mxid(registration, mri: str) -> str:
    return f"@{registration.prefix}_{escape_mri(mri)}:{registration.server_name}"


async def login_through_bot(matrix_user, bridge_reg, control, mri: str) -> str:
    """Open a DM with the bot, run `login`, approve the code as `mri`; return the DM room."""
    dm = await matrix_user.create_dm(bridge_reg.bot_mxid)
    await matrix_user.wait_for_notice(dm, contains="Teams bridge bot")
    await matrix_user.send_text(dm, "login")
    prompt = await matrix_user.wait_for_notice(dm, contains="enter the code")
    match = CODE_RE.search(prompt.content.body)
    assert match, prompt.content.body
    assert "/devicelogin" in prompt.content.body
    await control.approve_device_code(match.group(1), mri)
    await matrix_user.wait_for_notice(dm, contains="Successfully logged in", timeout=60)
    return dm


async def refresh_token_for(sim_url: str, control, mri: str) -> str:
    """Run a device-code login against the simulator as another client would; the
    refresh token it hands out."""
    async with aiohttp.ClientSession() as session:
        base = f"{sim_url}/organizations/oauth2/v2.0"
        form = {"client_id": WORK_CLIENT_ID, "scope": SCOPE}
        async with session.post(f"{base}/devicecode", data=form) as resp:
            flow = await resp.json()
        await control.approve_device_code(flow["user_code"], mri)
        poll = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": WORK_CLIENT_ID,
            "device_code": flow["device_code"],
        }
        async with session.post(f"{base}/token", data=poll) as resp:
            tokens = await resp.json()
        return tokens["refresh_token"]


async def wait_for(predicate, timeout: float = 60, interval: float = 0.2):
    """Until `predicate()` (a coroutine function) returns something true; that result.
    The timeout only bounds a failure (a busy machine is slow)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(interval)


async def raw_event(matrix_user, room: str, event_id: str) -> dict:
    """An event exactly as the homeserver serves it."""
    path = f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    return await matrix_user.client.api.request("GET", path)


async def recorded(control, method: str, path: str, count: int = 1) -> list[dict]:
    """Wait for `count` requests the simulator recorded (since the last clear) whose path
    contains `path`; their JSON bodies decoded into "json"."""

    async def found():
        reqs = await control.requests(path_contains=path, method=method)
        return reqs if len(reqs) >= count else None

    reqs = await wait_for(found)
    for req in reqs:
        req["json"] = json.loads(req["body"]) if req["body"] else None
    return reqs


SEND_STATUS = "com.beeper.message_send_status"


def send_status_about(evt, event_id: str) -> dict | None:
    """The content (as JSON) of `evt` if it is a message send status about `event_id`.

    (A status with a valid `status` value is parsed into mautrix's own class, whose fields
    are attributes, so compare the serialised form.)"""
    if str(evt.type) != SEND_STATUS:
        return None
    content = evt.content.serialize()
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("event_id") == event_id:
        return content
    return None


def encryption_overrides(**extra: Any) -> dict[str, Any]:
    """Bridge config for end-to-bridge encryption against the test homeserver."""
    return {
        "bridge.encryption.allow": True,
        "bridge.encryption.default": True,
        # Appservice mode: to-device events, device lists and one-time key counts come in
        # the appservice transactions (MSC2409, MSC3202); the bot's device is made with
        # MSC4190. The test homeserver has all three.
        "bridge.encryption.appservice": True,
        "bridge.encryption.msc4190": True,
        # The test client's device is not cross-signed.
        "bridge.encryption.verification_levels.share": "unverified",
        "bridge.encryption.verification_levels.receive": "unverified",
        "bridge.encryption.verification_levels.send": "unverified",
        **extra,
    }
