"""The verification page a person opens to approve a device code by hand (the sandbox)."""

from __future__ import annotations

import html

from aiohttp import web

from .context import ctx
from .world import SimError

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in (simulated)</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>Simulated Microsoft sign-in</h1>
{notice}
<form method="post" action="/devicelogin">
<p><label>Code <input name="user_code" value="{code}" autocomplete="off" required></label></p>
<p><label>Sign in as <select name="mri">{options}</select></label></p>
<p><button name="action" value="approve">Continue</button>
<button name="action" value="decline">Decline</button></p>
</form>
</body></html>"""


def _render(request: web.Request, notice: str = "", code: str = "") -> web.Response:
    users = ctx(request).world.users.values()
    options = "".join(
        f'<option value="{html.escape(u.mri)}">{html.escape(u.display_name)} '
        f"({u.kind}, {html.escape(u.email)})</option>"
        for u in users
    )
    page = _PAGE.format(notice=notice, code=html.escape(code), options=options)
    return web.Response(text=page, content_type="text/html")


async def show(request: web.Request) -> web.Response:
    return _render(request, code=request.query.get("code", ""))


async def submit(request: web.Request) -> web.Response:
    c = ctx(request)
    form = await request.post()
    user_code = str(form.get("user_code", ""))
    try:
        if form.get("action") == "decline":
            c.device_codes.decline(user_code)
            notice = "<p><strong>Sign-in declined.</strong></p>"
        else:
            user = c.world.user(str(form.get("mri", "")))
            c.device_codes.approve(user_code, user)
            notice = (
                f"<p><strong>Signed in as {html.escape(user.display_name)}.</strong> "
                "You can close this page.</p>"
            )
    except SimError as err:
        resp = _render(request, f'<p style="color:#b00">{html.escape(err.message)}</p>', user_code)
        resp.set_status(err.status)
        return resp
    return _render(request, notice)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/devicelogin", show)
    app.router.add_post("/devicelogin", submit)
