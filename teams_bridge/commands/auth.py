"""Logging in and out, and seeing the state of the connection."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mautrix.bridge.commands import HelpSection, command_handler
from mautrix.types import EventID

from ..login import (
    REFRESH_TOKEN_FIELD,
    LoginCancelled,
    LoginFlow,
    LoginProcess,
    flow_for,
)
from ..teams import (
    AccountKind,
    AuthClient,
    AuthError,
    LoginBlocked,
    LoginDeclined,
    LoginExpired,
    PastedAddressError,
)
from .secrets import is_sign_in_address

if TYPE_CHECKING:
    from mautrix.bridge.commands import CommandEvent

    from ..user import User

SECTION_AUTH = HelpSection("Authentication", 10, "")


@command_handler(
    needs_auth=False,
    management_only=True,
    help_section=SECTION_AUTH,
    help_text="Log in to Teams with a device code. Add `personal` for a personal (Teams free) "
    "account, or a tenant name/ID for a specific work or school tenant.",
    help_args="[personal | <tenant>]",
)
async def login(evt: CommandEvent) -> EventID | None:
    user: User = evt.sender  # type: ignore[assignment]
    refusal = _cannot_log_in(user)
    if refusal:
        return await evt.reply(refusal)
    kind, tenant = _login_target(evt)
    process = _process(evt, user, flow_for(kind, device_code=True), tenant)
    try:
        step = await process.start()
    except Exception as e:
        evt.log.warning("Could not start the device code login: %s", e)
        return await evt.reply(f"Could not start the login: {e}")
    user.command_status = {"action": "Login"}
    await evt.reply(
        f"To log in, open {step.verification_uri} in a browser and enter the code "
        f"**{step.code}**. The code is valid for {max(1, (step.expires_in or 0) // 60)} "
        "minutes. Send `cancel` to stop."
    )
    user.login_task = asyncio.create_task(_finish_login(evt, user, process))
    return None


def _cannot_log_in(user: User) -> str | None:
    if not user.is_whitelisted:
        return "You are not allowed to use this bridge to log in to Teams."
    if user.login_task and not user.login_task.done():
        return "A login is already in progress. Send `cancel` to stop it."
    return None


def _login_target(evt: CommandEvent) -> tuple[AccountKind, str | None]:
    """The account kind and tenant a login command's argument names (`personal`, a
    tenant, or nothing: a work account of the configured default tenant)."""
    if evt.args and evt.args[0].lower() in ("personal", "consumer", "live"):
        return AccountKind.PERSONAL, None
    if evt.args and evt.args[0].lower() not in ("work", "school"):
        return AccountKind.WORK, evt.args[0]
    return AccountKind.WORK, evt.config["teams.default_tenant"]


def _process(evt: CommandEvent, user: User, flow: LoginFlow, tenant: str | None) -> LoginProcess:
    return LoginProcess(
        user=user,
        flow=flow,
        session=evt.bridge.teams_session,  # type: ignore[attr-defined]
        endpoints=evt.bridge.teams_endpoints,  # type: ignore[attr-defined]
        tenant=tenant,
        management_room=evt.room_id,
    )


OTHER_WAYS = (
    "Other ways in: `login-browser` (sign in in a browser and paste back the address it "
    "ends on) or `login-refresh <refresh token>`."
)


@command_handler(
    needs_auth=False,
    management_only=True,
    help_section=SECTION_AUTH,
    help_text="Log in to Teams in a browser (for when device codes are blocked): open the "
    "link, sign in, and paste back the address the browser ends on.",
    help_args="[personal | <tenant>]",
)
async def login_browser(evt: CommandEvent) -> EventID | None:
    user: User = evt.sender  # type: ignore[assignment]
    refusal = _cannot_log_in(user)
    if refusal:
        return await evt.reply(refusal)
    kind, tenant = _login_target(evt)
    auth = AuthClient(evt.bridge.teams_session, evt.bridge.teams_endpoints)  # type: ignore[attr-defined]
    flow = auth.start_auth_code(kind, tenant)

    async def pasted(next_evt: CommandEvent) -> EventID | None:
        # The message was redacted before this ran (a sign-in address is a secret).
        address = " ".join(next_evt.args).strip()
        if not is_sign_in_address(address) and "error=" not in address:
            return await next_evt.reply(
                "That is not the address of a finished sign-in: paste the whole address "
                "from the browser's address bar (it has `code=` in it), or send `cancel`."
            )
        try:
            credentials = await auth.finish_auth_code(flow, address)
            name = await user.login(credentials, next_evt.room_id)
        except PastedAddressError as e:
            return await next_evt.reply(f"{e}. Try again, or send `cancel`.")
        except LoginBlocked:
            user.command_status = None
            return await next_evt.reply(_blocked("browser sign-in"))
        except AuthError as e:
            user.command_status = None
            return await next_evt.reply(f"Login failed: {e}. Send `login-browser` to start over.")
        user.command_status = None
        return await next_evt.reply(f"Successfully logged in as {name}.")

    user.command_status = {"action": "Login", "next": pasted}
    return await evt.reply(
        f"Open [this sign-in link]({flow.url}) in a browser and sign in. When the browser "
        "ends on a page that does not load (or a blank page), copy the whole address from "
        "its address bar and send it here; it is removed from the room at once. Send "
        "`cancel` to stop."
    )


def _blocked(what: str) -> str:
    return (
        f"Your organisation's conditional access policies do not allow the {what} here "
        f"(AADSTS53003). {OTHER_WAYS}"
    )


async def _finish_login(evt: CommandEvent, user: User, process: LoginProcess) -> None:
    try:
        step = await process.wait()
    except (asyncio.CancelledError, LoginCancelled):
        process.cancel()
        return
    except LoginExpired:
        await evt.reply("The login code expired. Send `login` to try again.")
    except LoginDeclined:
        await evt.reply("The login was declined.")
    except LoginBlocked:
        await evt.reply(_blocked("device-code sign-in"))
    except AuthError as e:
        await evt.reply(f"Login failed: {e}")
    except Exception as e:
        evt.log.exception("Login failed")
        await evt.reply(f"Login failed: {e}")
    else:
        await evt.reply(step.instructions)
    finally:
        user.command_status = None


@command_handler(
    needs_auth=False,
    help_section=SECTION_AUTH,
    help_text="Cancel an ongoing action, such as a login.",
)
async def cancel(evt: CommandEvent) -> EventID:
    user: User = evt.sender  # type: ignore[assignment]
    task = user.login_task
    if task and not task.done():
        task.cancel()
        user.login_task = None
        user.command_status = None
        return await evt.reply("Login cancelled.")
    if user.command_status:
        action = user.command_status["action"]
        user.command_status = None
        return await evt.reply(f"{action} cancelled.")
    return await evt.reply("No ongoing command.")


@command_handler(
    needs_auth=True,
    help_section=SECTION_AUTH,
    help_text="Log out of Teams: forget the tokens and stop the connection.",
)
async def logout(evt: CommandEvent) -> EventID:
    user: User = evt.sender  # type: ignore[assignment]
    await user.logout()
    return await evt.reply("Logged out of Teams.")


@command_handler(
    needs_auth=False,
    help_section=SECTION_AUTH,
    help_text="Show whether you are logged in and connected to Teams.",
)
async def ping(evt: CommandEvent) -> EventID:
    user: User = evt.sender  # type: ignore[assignment]
    if user.login_task and not user.login_task.done():
        return await evt.reply("A login is in progress.")
    if not user.credentials:
        return await evt.reply("You are not logged in to Teams.")
    if not await user.is_logged_in():
        return await evt.reply("You are logged in to Teams, but the bridge is not connected yet.")
    state = user.trouter_state.value if user.trouter_state else "starting"
    line = f"You are logged in as {user.display_name} ({user.mri}). Real-time connection: {state}."
    if user.trouter_error:
        line += f" Last error: {user.trouter_error}"
    return await evt.reply(line)


@command_handler(
    needs_auth=False,
    management_only=True,
    help_section=SECTION_AUTH,
    help_text="Log in with a refresh token obtained elsewhere (a fallback when device codes "
    "are blocked). Your message is redacted from the room.",
    help_args="[personal] <_refresh token_>",
)
async def login_refresh(evt: CommandEvent) -> EventID | None:
    # The message was redacted before this ran (see `secrets.py` and `MatrixHandler`).
    user: User = evt.sender  # type: ignore[assignment]
    if not user.is_whitelisted:
        return await evt.reply("You are not allowed to use this bridge to log in to Teams.")
    args = list(evt.args)
    kind = AccountKind.WORK
    if args and args[0].lower() in ("personal", "consumer", "live"):
        kind = AccountKind.PERSONAL
        args = args[1:]
    if len(args) != 1:
        return await evt.reply("Usage: `login-refresh [personal] <refresh token>`")
    tenant = None if kind == AccountKind.PERSONAL else evt.config["teams.default_tenant"]
    process = _process(evt, user, flow_for(kind, device_code=False), tenant)
    try:
        await process.start()
        step = await process.submit({REFRESH_TOKEN_FIELD: args[0]})
    except AuthError as e:
        return await evt.reply(f"Login failed: {e}.")
    except Exception as e:
        evt.log.exception("Refresh-token login failed")
        return await evt.reply(f"Login failed: {type(e).__name__}.")
    return await evt.reply(step.instructions)
