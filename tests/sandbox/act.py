"""Act as a Teams user in the sandbox: post, reply, edit, delete, react, send an image.

    .venv/bin/python -m tests.sandbox.act users
    .venv/bin/python -m tests.sandbox.act chats
    .venv/bin/python -m tests.sandbox.act messages <chat>
    .venv/bin/python -m tests.sandbox.act post <chat> <user> <text>
    .venv/bin/python -m tests.sandbox.act reply <chat> <user> <message id> <text>
    .venv/bin/python -m tests.sandbox.act edit <chat> <user> <message id> <text>
    .venv/bin/python -m tests.sandbox.act delete <chat> <user> <message id>
    .venv/bin/python -m tests.sandbox.act react <chat> <user> <message id> [like|heart|laugh|…]
    .venv/bin/python -m tests.sandbox.act image <chat> <user> <file.png|jpg|gif> [caption]
    .venv/bin/python -m tests.sandbox.act typing <chat> <user>

<chat> is a chat's id or (part of) its name as `chats` lists it; <user> is a user's MRI or
(part of) their display name. The simulator's address is read from the running sandbox's
state (`.sandbox/sandbox.json`), or given with `--sim URL`. A reply in a channel goes into
the thread of the message it answers; elsewhere it quotes that message, as Teams does.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any

from tests.fake_teams.control import ControlClient, ControlError

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".sandbox" / "sandbox.json"
REPLY = "http://schema.skype.com/Reply"
AMS_IMAGE = "http://schema.skype.com/AMSImage"


class Unknown(LookupError):
    pass


def _pick(items: list[dict[str, Any]], wanted: str, keys: tuple[str, ...], what: str) -> dict:
    """The one item whose id equals ``wanted`` or whose name contains it."""
    exact = [i for i in items if any(i.get(k) == wanted for k in keys)]
    if exact:
        return exact[0]
    # Only the name: a random id can hold the letters of a name ("ada" in a hex MRI).
    found = [i for i in items if wanted.lower() in str(i.get(keys[-1]) or "").lower()]
    if len(found) == 1:
        return found[0]
    names = ", ".join(str(i.get(keys[-1]) or i.get(keys[0])) for i in found or items)
    raise Unknown(f"{'several' if found else 'no'} {what} match {wanted!r}: {names}")


async def _chat(control: ControlClient, wanted: str) -> dict[str, Any]:
    chats = await control.list_chats()
    for chat in chats:
        channel = chat.get("channel_name")
        chat["name"] = (
            f"{channel} ({chat.get('team_name')})" if channel else chat.get("topic") or ""
        )
    return _pick(chats, wanted, ("id", "name"), "chats")


async def _user(control: ControlClient, wanted: str) -> dict[str, Any]:
    users = await control.list_users()
    return _pick(users, wanted, ("mri", "display_name"), "users")


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n"))


async def _message(control: ControlClient, chat_id: str, message_id: str) -> dict[str, Any]:
    for message in await control.list_messages(chat_id):
        if str(message.get("id")) == message_id:
            return message
    raise Unknown(f"no message {message_id} in that chat (see `messages`)")


def _thread_root(message: dict[str, Any]) -> str | None:
    """The root post of the channel thread a message is in (as the chat service names it:
    `rootMessageId`, or `;messageid=` in its conversation link)."""
    if message.get("rootMessageId"):
        return str(message["rootMessageId"])
    link = str(message.get("conversationLink") or "")
    return link.rsplit(";messageid=", 1)[1] if ";messageid=" in link else None


async def run(args: argparse.Namespace) -> Any:
    async with ControlClient(args.sim) as control:
        if args.command == "users":
            return await control.list_users()
        if args.command == "chats":
            return await control.list_chats()
        chat = await _chat(control, args.chat)
        if args.command == "messages":
            return [
                {k: m.get(k) for k in ("id", "from", "imdisplayname", "content", "messagetype")}
                for m in await control.list_messages(chat["id"])
            ]
        user = await _user(control, args.user)
        mri = user["mri"]
        if args.command == "post":
            return await control.post_message(chat["id"], mri, _paragraphs(args.text))
        if args.command == "reply":
            quoted = await _message(control, chat["id"], args.message_id)
            if chat.get("kind") == "channel":
                root = _thread_root(quoted) or args.message_id
                return await control.post_message(
                    chat["id"], mri, _paragraphs(args.text), thread_root=int(root)
                )
            author = html.escape(str(quoted.get("imdisplayname") or ""))
            sender = html.escape(str(quoted.get("from") or "").rsplit("/", 1)[-1])
            quote = (
                f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{args.message_id}">'
                f'<strong itemprop="mri" itemid="{sender}">{author}</strong>'
                f'<span itemprop="time" itemid="{args.message_id}"></span>'
                f'<p itemprop="preview">{html.escape(str(quoted.get("content") or "")[:200])}</p>'
                "</blockquote>"
            )
            return await control.post_message(chat["id"], mri, quote + _paragraphs(args.text))
        if args.command == "edit":
            return await control.edit_message(
                chat["id"], args.message_id, mri, _paragraphs(args.text)
            )
        if args.command == "delete":
            return await control.delete_message(chat["id"], args.message_id, mri)
        if args.command == "react":
            return await control.react(chat["id"], args.message_id, mri, args.key)
        if args.command == "typing":
            return await control.typing(chat["id"], mri)
        if args.command == "image":
            path = Path(args.file)
            data = path.read_bytes()
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if not mime.startswith("image/"):
                raise Unknown(f"{path.name} is not an image ({mime})")
            obj = await control.ams_upload(
                mri, data, filename=path.name, type="pish/image", content_type=mime,
                conversation=chat["id"],
            )  # fmt: skip
            oid, url = obj["id"], obj["views"]["imgo"]
            img = (
                f'<img itemscope="image" src="{url}" itemtype="{AMS_IMAGE}" id="{oid}" '
                f'itemid="{oid}">'
            )
            caption = _paragraphs(args.caption) if args.caption else ""
            return await control.post_message(chat["id"], mri, f"{caption}<p>{img}</p>")
    raise AssertionError(args.command)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.sandbox.act",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sim", help="the simulator's address (default: the running sandbox's)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("users", help="list the Teams users")
    sub.add_parser("chats", help="list the chats and channels")
    sub.add_parser("messages", help="list a chat's messages").add_argument("chat")
    for name, extra in (
        ("post", ["text"]),
        ("reply", ["message_id", "text"]),
        ("edit", ["message_id", "text"]),
        ("delete", ["message_id"]),
        ("react", ["message_id"]),
        ("image", ["file"]),
        ("typing", []),
    ):
        cmd = sub.add_parser(name, help=f"{name} as a Teams user")
        cmd.add_argument("chat")
        cmd.add_argument("user")
        for arg in extra:
            cmd.add_argument(arg)
        if name == "react":
            cmd.add_argument("key", nargs="?", default="like")
        if name == "image":
            cmd.add_argument("caption", nargs="?", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.sim:
        try:
            args.sim = json.loads(STATE.read_text())["simulator"]
        except (OSError, ValueError, KeyError):
            print("No running sandbox found; start it (bash .ci/sandbox) or pass --sim URL.")
            return 2
    try:
        result = asyncio.run(run(args))
    except (Unknown, ControlError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
