"""Logging in to Teams as a sequence of steps, shared by the bot's `login` commands and the
provisioning API.

A `LoginProcess` knows nothing of chat messages or HTTP: it starts a flow, hands back the
first step (a code to show and wait on, or fields to fill in), advances on `wait()` or
`submit()`, and ends with a `complete` step naming the login (the user's MRI). Failures are
the protocol client's own exceptions (`LoginExpired`, `LoginDeclined`, `AuthError`, …) and
`LoginInputError`; each front end words them its own way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .log_filter import register_secret
from .teams import AccountKind, AuthClient, Credentials, DeviceCodeFlow

if TYPE_CHECKING:
    import aiohttp
    from mautrix.types import RoomID

    from .teams import Endpoints
    from .user import User

log = logging.getLogger("mau.login")

STEP_DEVICE_CODE = "teams.device_code"
STEP_REFRESH_TOKEN = "teams.refresh_token"
STEP_COMPLETE = "teams.complete"

REFRESH_TOKEN_FIELD = "refresh_token"


class StepType(Enum):
    DISPLAY_AND_WAIT = "display_and_wait"
    USER_INPUT = "user_input"
    COMPLETE = "complete"


@dataclass(frozen=True)
class LoginFlow:
    id: str
    name: str
    description: str
    kind: AccountKind
    device_code: bool

    def serialize(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description, "id": self.id}


FLOWS: tuple[LoginFlow, ...] = (
    LoginFlow(
        "work",
        "Work or school account",
        "Sign in with a code at Microsoft's device login page (organisation accounts).",
        AccountKind.ENTERPRISE,
        True,
    ),
    LoginFlow(
        "personal",
        "Personal account",
        "Sign in with a code at Microsoft's device login page (Teams free, Microsoft accounts).",
        AccountKind.PERSONAL,
        True,
    ),
    LoginFlow(
        "refresh-token",
        "Refresh token (work or school)",
        "Paste a refresh token obtained elsewhere, when device codes are blocked.",
        AccountKind.ENTERPRISE,
        False,
    ),
    LoginFlow(
        "refresh-token-personal",
        "Refresh token (personal)",
        "Paste a refresh token of a personal account obtained elsewhere.",
        AccountKind.PERSONAL,
        False,
    ),
)
FLOWS_BY_ID = {flow.id: flow for flow in FLOWS}


def flow_for(kind: AccountKind, *, device_code: bool) -> LoginFlow:
    return next(f for f in FLOWS if f.kind is kind and f.device_code is device_code)


@dataclass(frozen=True)
class InputField:
    type: str
    id: str
    name: str
    description: str

    def serialize(self) -> dict[str, str]:
        return {
            "type": self.type,
            "id": self.id,
            "name": self.name,
            "description": self.description,
        }


REFRESH_TOKEN_INPUT = InputField(
    "token",
    REFRESH_TOKEN_FIELD,
    "Refresh token",
    "A refresh token for the Teams web client, obtained from another sign-in.",
)


@dataclass(frozen=True)
class LoginStep:
    type: StepType
    step_id: str
    instructions: str
    # display_and_wait: the code to show, and where to enter it.
    code: str | None = None
    verification_uri: str | None = None
    expires_in: int | None = None
    # user_input
    fields: tuple[InputField, ...] = ()
    # complete: the login's id (the user's MRI) and the Teams display name.
    login_id: str | None = None
    name: str | None = None

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type.value,
            "step_id": self.step_id,
            "instructions": self.instructions,
        }
        if self.type is StepType.DISPLAY_AND_WAIT:
            data["display_and_wait"] = {"type": "code", "data": self.code}
        elif self.type is StepType.USER_INPUT:
            data["user_input"] = {"fields": [f.serialize() for f in self.fields]}
        elif self.type is StepType.COMPLETE:
            data["complete"] = {"user_login_id": self.login_id}
        return data


class LoginInputError(ValueError):
    """What the user supplied cannot be used (a missing or empty field)."""


class LoginCancelled(Exception):
    """The process was cancelled before it finished."""


@dataclass
class LoginProcess:
    """One attempt of one user to log in with one flow.

    `management_room` becomes the user's management room when the login completes (the bot
    passes the room the command came from; the provisioning API passes None to keep it).
    """

    user: User
    flow: LoginFlow
    session: aiohttp.ClientSession
    endpoints: Endpoints
    tenant: str | None = None
    management_room: RoomID | None = None
    _auth: AuthClient | None = field(default=None, init=False)
    _device_login: asyncio.Task[LoginStep] | None = field(default=None, init=False)
    _finished: LoginStep | None = field(default=None, init=False)
    _cancelled: bool = field(default=False, init=False)
    _storing: bool = field(default=False, init=False)
    _completing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def start(self) -> LoginStep:
        """The first step. A device-code flow asks Microsoft for a code first (errors are
        the protocol client's); waiting for its approval starts at once, in the
        background, and the login is stored as soon as it is approved."""
        self._auth = AuthClient(self.session, self.endpoints)
        if not self.flow.device_code:
            return LoginStep(
                StepType.USER_INPUT,
                STEP_REFRESH_TOKEN,
                "Paste a refresh token of the Teams web client. It is used once, rotated "
                "and stored by the bridge.",
                fields=(REFRESH_TOKEN_INPUT,),
            )
        tenant = None if self.flow.kind is AccountKind.PERSONAL else self.tenant
        flow = await self._auth.start_device_code(self.flow.kind, tenant)
        self._device_login = asyncio.create_task(self._finish_device_code(flow))
        # Nobody may be waiting when it fails (the code expires unseen): not an error.
        self._device_login.add_done_callback(lambda t: t.cancelled() or t.exception())
        minutes = max(1, flow.expires_in // 60)
        return LoginStep(
            StepType.DISPLAY_AND_WAIT,
            STEP_DEVICE_CODE,
            f"Open {flow.verification_uri} in a browser and enter the code {flow.user_code}. "
            f"The code is valid for {minutes} minutes.",
            code=flow.user_code,
            verification_uri=flow.verification_uri,
            expires_in=flow.expires_in,
        )

    async def _finish_device_code(self, flow: DeviceCodeFlow) -> LoginStep:
        assert self._auth is not None
        credentials = await self._auth.poll_device_code(flow)
        # From here on the login is stored even if the process is cancelled meanwhile:
        # stopping halfway would leave the user disconnected with half-saved state.
        self._storing = True
        return await self._complete(credentials)

    async def wait(self) -> LoginStep:
        """Until the code is approved and the login stored: the `complete` step.

        The login goes on when the caller stops waiting (a closed HTTP request); a later
        `wait()` picks it up again.
        """
        if self._finished is not None:
            return self._finished
        if self._device_login is None:
            raise RuntimeError("this login does not wait for anything")
        if self._cancelled and not self._storing:
            raise LoginCancelled()
        try:
            return await asyncio.shield(self._device_login)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the waiter was cancelled, not the login
            raise LoginCancelled() from None

    async def submit(self, values: dict[str, str]) -> LoginStep:
        """Log in with the fields of a `user_input` step; the `complete` step."""
        if self._finished is not None:
            return self._finished
        if self._cancelled:
            raise LoginCancelled()
        assert self._auth is not None, "start() first"
        token = values.get(REFRESH_TOKEN_FIELD)
        if isinstance(token, str):
            token = token.strip()
            register_secret(token)
        if not token:
            raise LoginInputError(f"`{REFRESH_TOKEN_FIELD}` is missing or empty")
        tenant = None if self.flow.kind is AccountKind.PERSONAL else self.tenant
        credentials = await self._auth.login_with_refresh_token(token, self.flow.kind, tenant)
        return await self._complete(credentials)

    def cancel(self) -> None:
        """Stop waiting for approval; a login already being stored is finished."""
        self._cancelled = True
        task = self._device_login
        if task is not None and not task.done() and not self._storing:
            task.cancel()

    async def _complete(self, credentials: Credentials) -> LoginStep:
        async with self._completing:
            if self._finished is not None:
                return self._finished
            if self._cancelled and not self._storing:
                raise LoginCancelled()
            name = await self.user.login(credentials, self.management_room)
            self._finished = LoginStep(
                StepType.COMPLETE,
                STEP_COMPLETE,
                f"Successfully logged in as {name}.",
                login_id=self.user.mri,
                name=name,
            )
        log.info("%s logged in to Teams as %s", self.user.mxid, self.user.mri)
        return self._finished
