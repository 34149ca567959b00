"""A scripted Trouter for edge cases the simulator cannot be told to produce
(malformed frames, silent sockets, refused handshakes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSMsgType, web

Script = Callable[["StubSocket"], Coroutine[Any, Any, None]]


class StubSocket:
    """The server side of one WebSocket: send frames, wait for client frames."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.received: list[str] = []
        self._new = asyncio.Condition()

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def request(
        self, req_id: int, body: Any, url: str = "/v4/f/abc/messaging", **headers: str
    ) -> None:
        envelope = {"id": req_id, "method": "POST", "url": url, "headers": headers, "body": body}
        await self.send("3:::" + json.dumps(envelope))

    async def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        async def find() -> str:
            async with self._new:
                while True:
                    for frame in self.received:
                        if predicate(frame):
                            return frame
                    await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    async def feed(self, text: str) -> None:
        async with self._new:
            self.received.append(text)
            self._new.notify_all()


class StubTrouter:
    """Serves /v4/a, the socket.io handshake, the WebSocket and the registrar."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.base = ""
        self.allocations = 0
        self.registrations: list[dict[str, Any]] = []
        self.sockets: list[StubSocket] = []
        self.refuse_websocket = 0
        self.answer_pings = True
        self.skype_tokens: list[str] = []
        # The WebSocket extensions each connection asked for ("" for none).
        self.extensions: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v4/a", self.allocate)
        app.router.add_get("/socket.io/1/", self.handshake)
        app.router.add_get("/socket.io/1/websocket/{sid}", self.websocket)
        app.router.add_post("/registrar", self.register)
        return app

    async def allocate(self, request: web.Request) -> web.Response:
        self.allocations += 1
        self.skype_tokens.append(request.headers.get("X-Skypetoken", ""))
        return web.json_response(
            {
                "socketio": f"{self.base}/",
                "surl": f"{self.base}/v4/f/abc/",
                "ttl": 589000,
                "connectparams": {"sig": "s1g", "sr": "abc"},
            }
        )

    async def handshake(self, request: web.Request) -> web.Response:
        assert request.query["sig"] == "s1g"
        return web.Response(text="sid123:40:40:websocket,xhr-polling")

    async def register(self, request: web.Request) -> web.Response:
        self.registrations.append(await request.json())
        return web.Response(status=202)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_websocket:
            self.refuse_websocket -= 1
            return web.Response(status=401, text="Unauthorized")
        self.extensions.append(request.headers.get("Sec-WebSocket-Extensions", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sock = StubSocket(ws)
        self.sockets.append(sock)
        await ws.send_str("1::")
        script = asyncio.create_task(self.script(sock))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                await sock.feed(msg.data)
                if self.answer_pings and msg.data.startswith("5:") and '"ping"' in msg.data:
                    frame_id = msg.data.split(":")[1].rstrip("+")
                    await ws.send_str(f'6:::{frame_id}+["pong"]')
        finally:
            script.cancel()
        return ws
