"""Raw-protocol helpers for the simulator's own tests (no bridge code on purpose)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.fake_teams import ControlClient, FakeTeams

WORK_CLIENT = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
PERSONAL_CLIENT = "4b3e8f46-56d3-427f-b1e2-d239b2ea6bca"
WORK_SCOPE = "https://api.spaces.skype.com/.default openid profile offline_access"
PERSONAL_SCOPE = "service::api.fl.spaces.skype.com::MBI_SSL openid profile offline_access"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@dataclass
class Login:
    mri: str
    access_token: str
    refresh_token: str
    skype_token: str
    authz: dict[str, Any]


async def device_login(
    sim: FakeTeams,
    http: aiohttp.ClientSession,
    control: ControlClient,
    mri: str,
    kind: str = "work",
) -> dict[str, Any]:
    """Start a device code, approve it through the control API, redeem it."""
    client, tenant, scope = (
        (WORK_CLIENT, "organizations", WORK_SCOPE)
        if kind == "work"
        else (PERSONAL_CLIENT, "consumers", PERSONAL_SCOPE)
    )
    async with http.post(
        f"{sim.url}/{tenant}/oauth2/v2.0/devicecode", data={"client_id": client, "scope": scope}
    ) as resp:
        assert resp.status == 200, await resp.text()
        flow = await resp.json()
    await control.approve_device_code(flow["user_code"], mri)
    async with http.post(
        f"{sim.url}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": DEVICE_GRANT,
            "client_id": client,
            "device_code": flow["device_code"],
        },
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def login(
    sim: FakeTeams,
    http: aiohttp.ClientSession,
    control: ControlClient,
    mri: str,
    kind: str = "work",
) -> Login:
    tokens = await device_login(sim, http, control, mri, kind)
    url = sim.endpoints()["authz_enterprise" if kind == "work" else "authz_consumer"]
    async with http.post(
        url, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        authz = await resp.json()
    skype = (
        authz["tokens"]["skypeToken"] if "tokens" in authz else authz["skypeToken"]["skypetoken"]
    )
    return Login(mri, tokens["access_token"], tokens["refresh_token"], skype, authz)


def chat_base(login: Login) -> str:
    return login.authz["regionGtms"]["chatService"].rstrip("/") + "/v1"


def decode_body(envelope: dict[str, Any]) -> dict[str, Any]:
    body = envelope["body"]
    if envelope["headers"].get("X-Microsoft-Skype-Content-Encoding") == "gzip":
        body = gzip.decompress(base64.b64decode(body)).decode()
    return json.loads(body)


class RawTrouter:
    """Just enough of the classic Trouter flow (§5.3) to receive pushes in a test."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        sim: FakeTeams,
        skype_token: str,
        epid: str,
        consumer: bool = False,
    ) -> None:
        self.flavour = "consumer" if consumer else "enterprise"
        self.http = http
        self.sim = sim
        self.token = skype_token
        self.epid = epid
        self.info: dict[str, Any] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        headers = {"X-Skypetoken": self.token}
        url = self.sim.endpoints()[f"trouter_{self.flavour}"]
        async with self.http.post(url, params={"epid": self.epid}, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            self.info = await resp.json()
        query = {
            "v": "v4",
            **self.info["connectparams"],
            "epid": self.epid,
            "ccid": self.info.get("ccid", ""),
            "auth": "true",
            "timeout": "40",
        }
        async with self.http.get(
            self.info["socketio"] + "socket.io/1/", params=query, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            sid = (await resp.text()).split(":")[0]
        ws_url = self.info["socketio"].replace("http", "ws", 1) + f"socket.io/1/websocket/{sid}"
        self.ws = await self.http.ws_connect(ws_url, params=query, headers=headers)
        assert await self.next_frame() == "1::"

    async def register(self, ttl: int = 86400, registration_id: str | None = None) -> int:
        body = {
            "clientDescription": {
                "appId": "TeamsCDLWebWorker",
                "aesKey": "",
                "languageId": "en-US",
                "platform": "edge",
                "templateKey": "TeamsCDLWebWorker_2.1",
                "platformUIVersion": "49/25113001312",
            },
            "registrationId": registration_id or self.epid,
            "nodeId": "",
            "transports": {"TROUTER": [{"context": "", "path": self.info["surl"], "ttl": ttl}]},
        }
        async with self.http.post(
            self.sim.endpoints()[f"registrar_{self.flavour}"],
            json=body,
            headers={"X-Skypetoken": self.token},
        ) as resp:
            return resp.status

    async def send(self, frame: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(frame)

    async def next_frame(self, timeout: float = 10.0) -> str:
        assert self.ws is not None
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return msg.data

    async def next_request(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `3:::` envelope, skipping heartbeats and other frames."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.next_frame(max(0.01, deadline - loop.time()))
            if frame.startswith("3:::"):
                return json.loads(frame[4:])

    async def next_event(
        self, resource_type: str = "NewMessage", timeout: float = 10.0, ack: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(envelope, decoded EventMessage) of the next event of `resource_type`, acking all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            envelope = await self.next_request(max(0.01, deadline - loop.time()))
            if ack:
                await self.reply(envelope)
            event = decode_body(envelope)
            if event["resourceType"] == resource_type:
                return envelope, event

    async def reply(self, envelope: dict[str, Any], status: int = 200) -> None:
        await self.send(
            "3:::" + json.dumps({"id": envelope["id"], "status": status, "headers": {}, "body": ""})
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
