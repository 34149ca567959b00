"""The provisioning API: bridge managers log users in and start chats over HTTP.

Routes, request and answer shapes follow the v3 provisioning API of mautrix-go's bridgev2,
so existing managers work unchanged (docs/provisioning.md lists them). It is served on the
appservice listener under `bridge.provisioning.prefix`. Every request carries
`Authorization: Bearer <shared secret>` and `?user_id=<mxid>`, and acts as that user, who
needs the `user` permission, as for bot commands. Errors are Matrix-style
`{"errcode", "error"}` objects.

Logging in goes through the same `LoginProcess` as the bot's `login` commands.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from mautrix.types import UserID

from .. import start_chat as chats
from ..log_filter import register_secret
from ..login import (
    FLOWS,
    FLOWS_BY_ID,
    LoginCancelled,
    LoginInputError,
    LoginProcess,
    LoginStep,
    StepType,
)
from ..teams import AuthError, LoginDeclined, LoginExpired, TeamsError
from ..user import User

if TYPE_CHECKING:
    from ..__main__ import TeamsBridge

log = logging.getLogger("mau.provisioning")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A login process left alone this long is cancelled (as bridgev2 does).
LOGIN_TIMEOUT = 30 * 60
# Request bodies are small JSON objects.
MAX_BODY = 64 * 1024
MIN_SECRET_LENGTH = 16

NETWORK = {
    "displayname": "Microsoft Teams",
    "network_url": "https://teams.microsoft.com",
    "network_icon": "",
    "network_id": "teams",
    "beeper_bridge_type": "teams-bridge",
    "default_port": 29340,
    "default_command_prefix": "!teams",
}


class ApiError(Exception):
    """Answered as `{"errcode", "error"}` with `status`."""

    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message

    def response(self) -> web.Response:
        return error_response(self.status, self.errcode, self.message)


def error_response(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


NOT_LOGGED_IN = ApiError(400, "FI.MAU.NOT_LOGGED_IN", "Not logged in")
LOGIN_NOT_FOUND = ApiError(404, "M_NOT_FOUND", "Login not found")


@dataclass
class ProvLogin:
    """A login process started over the API, between its steps."""

    id: str
    owner: UserID
    process: LoginProcess
    next_step: LoginStep
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expiry: asyncio.TimerHandle | None = None


def login_error(e: Exception) -> ApiError:
    """How a failed login step is answered."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, LoginInputError):
        return ApiError(400, "M_BAD_JSON", str(e))
    if isinstance(e, LoginCancelled):
        return ApiError(400, "FI.MAU.BRIDGE.LOGIN_CANCELLED", "Login process was cancelled")
    if isinstance(e, LoginExpired):
        return ApiError(400, "FI.MAU.BRIDGE.LOGIN_TIMED_OUT", "The login code expired")
    if isinstance(e, LoginDeclined):
        return ApiError(403, "M_FORBIDDEN", "The login was declined")
    if isinstance(e, AuthError):
        return ApiError(403, "M_FORBIDDEN", f"Login failed: {e}")
    if isinstance(e, TeamsError):
        return ApiError(502, "M_UNKNOWN", f"Teams answered with an error: {e}")
    return ApiError(500, "M_UNKNOWN", "Internal error in login step")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (M_NOT_JSON when it is not), at most `MAX_BODY` bytes."""
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ApiError(413, "M_TOO_LARGE", "Request body too large")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise ApiError(400, "M_NOT_JSON", "Failed to decode request body") from None


class ProvisioningAPI:
    def __init__(self, bridge: TeamsBridge, shared_secret: str) -> None:
        self.bridge = bridge
        self.shared_secret = shared_secret
        self.logins: dict[str, ProvLogin] = {}
        self.app = web.Application(middlewares=[self._cors, self._errors, self._auth])
        add = self.app.router.add_route
        add("GET", "/v3/whoami", self.whoami)
        add("GET", "/v3/login/flows", self.login_flows)
        add("POST", "/v3/login/start/{flowID}", self.login_start)
        add("POST", "/v3/login/step/{loginProcessID}/{stepID}/{stepType}", self.login_step)
        add("POST", "/v3/login/cancel/{loginProcessID}", self.login_cancel)
        add("POST", "/v3/logout/{loginID}", self.logout)
        add("GET", "/v3/logins", self.get_logins)
        add("GET", "/v3/contacts", self.contacts)
        add("POST", "/v3/search_users", self.search_users)
        add("GET", "/v3/resolve_identifier/{identifier}", self.resolve_identifier)
        add("POST", "/v3/create_dm/{identifier}", self.create_dm)
        add("POST", "/v3/create_group/{type}", self.create_group)
        # Before the group type was in the path.
        add("POST", "/v3/create_group", self.create_group)

    # -- middleware --------------------------------------------------------------------------

    @web.middleware
    async def _cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=200)
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = (
            "X-Requested-With, Content-Type, Authorization"
        )
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return e.response()
        except web.HTTPNotFound:
            return error_response(404, "M_UNRECOGNIZED", "Unrecognized endpoint")
        except web.HTTPMethodNotAllowed:
            return error_response(405, "M_UNRECOGNIZED", "Invalid method for endpoint")
        except web.HTTPException:
            raise
        except asyncio.CancelledError:
            raise
        except TeamsError as e:
            log.warning("Teams failed a provisioning request %s: %s", request.path, e)
            return error_response(502, "M_UNKNOWN", f"Teams answered with an error: {e}")
        except Exception:
            log.exception("Provisioning request %s %s failed", request.method, request.path)
            return error_response(500, "M_UNKNOWN", "Internal error")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if len(self.shared_secret) < MIN_SECRET_LENGTH:
            raise ApiError(403, "M_FORBIDDEN", "Provisioning API is disabled")
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else header
        if not token:
            raise ApiError(401, "M_MISSING_TOKEN", "Missing auth token")
        if not hmac.compare_digest(token.encode(), self.shared_secret.encode()):
            log.warning("Provisioning request with an invalid token from %s", request.remote)
            raise ApiError(401, "M_UNKNOWN_TOKEN", "Invalid auth token")
        request["user"] = await self._user(request.query.get("user_id", ""))
        return await handler(request)

    async def _user(self, user_id: str) -> User:
        if not user_id:
            raise ApiError(400, "M_MISSING_PARAM", "Missing user_id query parameter")
        localpart, _, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not server or len(user_id) > 255:
            raise ApiError(400, "M_INVALID_PARAM", "user_id is not a valid Matrix user ID")
        mxid = UserID(user_id)
        # Checked before the lookup, which would store a row for any user.
        if not self.bridge.config.get_permissions(mxid).user:
            raise ApiError(403, "M_FORBIDDEN", "User does not have login permissions")
        user = await User.get_by_mxid(mxid)
        if user is None:  # the bridge bot or a ghost
            raise ApiError(403, "M_FORBIDDEN", "User does not have login permissions")
        return user

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _login_id(user: User) -> str | None:
        """The id of the user's Teams login (the MRI), or None without one."""
        return user.mri if user.credentials and user.mri else None

    def _login_for_request(self, request: web.Request) -> User:
        """The user of a request that acts through their Teams login (`?login_id=` may
        name it)."""
        user: User = request["user"]
        login_id = self._login_id(user)
        wanted = request.query.get("login_id")
        if wanted and wanted != login_id:
            raise LOGIN_NOT_FOUND
        if login_id is None:
            raise NOT_LOGGED_IN
        if user.client is None:
            raise ApiError(403, "M_FORBIDDEN", "Not logged in")
        return user

    # -- who am I ----------------------------------------------------------------------------

    async def whoami(self, request: web.Request) -> web.Response:
        user: User = request["user"]
        answer: dict[str, Any] = {
            "network": NETWORK,
            "login_flows": [flow.serialize() for flow in FLOWS],
            "homeserver": self.bridge.az.domain,
            "bridge_bot": self.bridge.az.bot_mxid,
            "command_prefix": self.bridge.config["bridge.command_prefix"],
            "logins": [],
        }
        if user.management_room:
            answer["management_room"] = user.management_room
        login_id = self._login_id(user)
        if login_id:
            answer["logins"].append(await self._login_info(user, login_id))
        return web.json_response(answer)

    @staticmethod
    async def _login_info(user: User, login_id: str) -> dict[str, Any]:
        states = await user.get_bridge_states()
        state = states[0] if states else None
        data: dict[str, Any]
        if state is not None:
            await user.fill_bridge_state(state)
            data = dict(state.serialize())
        else:
            data = {"state_event": "UNKNOWN_ERROR", "timestamp": int(time.time())}
        for redundant in ("user_id", "remote_id", "remote_name", "remote_profile"):
            data.pop(redundant, None)
        info: dict[str, Any] = {
            "state_event": data.get("state_event"),
            "state_ts": data.get("timestamp"),
            "state": data,
            "id": login_id,
            "name": user.display_name or login_id,
            "profile": {"name": user.display_name} if user.display_name else {},
        }
        if data.get("reason"):
            info["state_reason"] = data["reason"]
        if data.get("info"):
            info["state_info"] = data["info"]
        return info

    async def get_logins(self, request: web.Request) -> web.Response:
        login_id = self._login_id(request["user"])
        return web.json_response({"login_ids": [login_id] if login_id else []})

    # -- logging in --------------------------------------------------------------------------

    async def login_flows(self, request: web.Request) -> web.Response:
        return web.json_response({"flows": [flow.serialize() for flow in FLOWS]})

    async def login_start(self, request: web.Request) -> web.Response:
        user: User = request["user"]
        wanted = request.query.get("login_id")
        if wanted and wanted != self._login_id(user):
            raise LOGIN_NOT_FOUND
        flow = FLOWS_BY_ID.get(request.match_info["flowID"])
        if flow is None:
            raise ApiError(404, "M_NOT_FOUND", "Invalid login flow ID")
        process = LoginProcess(
            user=user,
            flow=flow,
            session=self.bridge.teams_session,
            endpoints=self.bridge.teams_endpoints,
            tenant=self.bridge.config["teams.default_tenant"],
        )
        try:
            step = await process.start()
        except Exception as e:
            log.warning("Could not start a %s login for %s: %s", flow.id, user.mxid, e)
            raise ApiError(502, "M_UNKNOWN", f"Could not start the login: {e}") from None
        login = ProvLogin(secrets.token_urlsafe(15), user.mxid, process, step)
        login.expiry = asyncio.get_running_loop().call_later(LOGIN_TIMEOUT, self._drop, login, True)
        self.logins[login.id] = login
        log.info("Started %s login %s for %s", flow.id, login.id, user.mxid)
        return web.json_response({"login_id": login.id, **step.serialize()})

    def _drop(self, login: ProvLogin, cancel: bool) -> None:
        if cancel:
            login.process.cancel()
        if login.expiry is not None:
            login.expiry.cancel()
        self.logins.pop(login.id, None)

    def _own_login(self, request: web.Request) -> ProvLogin:
        login = self.logins.get(request.match_info["loginProcessID"])
        if login is None or login.owner != request["user"].mxid:
            raise LOGIN_NOT_FOUND
        return login

    async def login_step(self, request: web.Request) -> web.Response:
        login = self._own_login(request)
        step_id = request.match_info["stepID"]
        step_type = request.match_info["stepType"]
        values: dict[str, str] = {}
        if step_type == StepType.USER_INPUT.value:
            body = await read_json(request)
            if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
                raise ApiError(400, "M_BAD_JSON", "The body must be an object of strings")
            for value in body.values():
                register_secret(value)
            values = body
        elif step_type == StepType.COMPLETE.value:
            raise ApiError(
                400, "FI.MAU.BRIDGE.LOGIN_ALREADY_FINISHED", "Login process was already finished"
            )
        elif step_type not in (StepType.DISPLAY_AND_WAIT.value, "cookies"):
            raise ApiError(404, "M_UNRECOGNIZED", f"Invalid step type {step_type!r}")
        async with login.lock:
            if self.logins.get(login.id) is not login:
                raise LOGIN_NOT_FOUND
            if login.next_step.step_id != step_id:
                raise ApiError(400, "M_BAD_STATE", "Step ID does not match")
            if login.next_step.type.value != step_type:
                raise ApiError(400, "M_BAD_STATE", "Step type does not match")
            try:
                if login.next_step.type is StepType.USER_INPUT:
                    step = await login.process.submit(values)
                else:
                    step = await login.process.wait()
            except asyncio.CancelledError:
                raise  # the client went away; the login goes on
            except LoginInputError as e:
                # The same step may be submitted again with the field filled in.
                raise login_error(e) from None
            except Exception as e:
                # Any other failure ends the process (as in bridgev2): start a new one.
                error = login_error(e)
                if error.status >= 500:
                    log.warning("Login %s failed: %s", login.id, e)
                self._drop(login, True)
                raise error from None
            login.next_step = step
            if step.type is StepType.COMPLETE:
                self._drop(login, False)
        return web.json_response({"login_id": login.id, **step.serialize()})

    async def login_cancel(self, request: web.Request) -> web.Response:
        self._drop(self._own_login(request), True)
        return web.json_response({})

    async def logout(self, request: web.Request) -> web.Response:
        user: User = request["user"]
        login_id = self._login_id(user)
        wanted = request.match_info["loginID"]
        if wanted == "all":
            if login_id is not None:
                await user.logout()
        elif wanted == login_id:
            await user.logout()
        else:
            raise LOGIN_NOT_FOUND
        return web.json_response({})

    # -- starting chats ----------------------------------------------------------------------

    async def contacts(self, request: web.Request) -> web.Response:
        user = self._login_for_request(request)
        found = await chats.contacts(user)
        return web.json_response({"contacts": [c.serialize() for c in found]})

    async def search_users(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ApiError(400, "M_BAD_JSON", "The body must be an object with a `query` string")
        user = self._login_for_request(request)
        found = await chats.search(user, body["query"])
        return web.json_response({"results": [c.serialize() for c in found]})

    async def _resolve(self, user: User, identifier: str) -> chats.Contact:
        try:
            contact = await chats.resolve(user, identifier)
        except chats.BadInput as e:
            raise ApiError(400, "M_INVALID_PARAM", str(e)) from None
        if contact is None:
            raise ApiError(404, "M_NOT_FOUND", "Identifier not found")
        return contact

    async def resolve_identifier(self, request: web.Request) -> web.Response:
        user = self._login_for_request(request)
        contact = await self._resolve(user, request.match_info["identifier"])
        return web.json_response(contact.serialize())

    async def create_dm(self, request: web.Request) -> web.Response:
        user = self._login_for_request(request)
        contact = await self._resolve(user, request.match_info["identifier"])
        if contact.mri == user.mri:
            raise ApiError(400, "M_INVALID_PARAM", "Cannot start a chat with yourself")
        created = await chats.open_dm(user, contact)
        return web.json_response(contact.serialize(), status=201 if created else 200)

    async def create_group(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "M_BAD_JSON", "The body must be an object")
        group_type = request.match_info.get("type", "group")
        user = self._login_for_request(request)
        try:
            params = chats.GroupParams.parse(group_type, body)
            portal = await chats.create_group(user, params)
        except chats.BadInput as e:
            raise ApiError(400, "M_INVALID_PARAM", str(e)) from None
        except chats.UnknownGroupType as e:
            raise ApiError(404, "M_UNRECOGNIZED", str(e)) from None
        return web.json_response({"id": portal.thread_id, "mxid": portal.mxid})


def setup(bridge: TeamsBridge) -> ProvisioningAPI | None:
    """Mount the API on the appservice listener when `bridge.provisioning.enabled`."""
    config = bridge.config
    if not config["bridge.provisioning.enabled"]:
        return None
    secret = str(config["bridge.provisioning.shared_secret"] or "")
    if len(secret) < MIN_SECRET_LENGTH:
        log.warning(
            "bridge.provisioning.shared_secret is shorter than %d characters: the "
            "provisioning API refuses every request",
            MIN_SECRET_LENGTH,
        )
    api = ProvisioningAPI(bridge, secret)
    prefix = "/" + str(config["bridge.provisioning.prefix"]).strip("/")
    bridge.az.app.add_subapp(prefix, api.app)
    return api
