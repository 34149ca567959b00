"""A small populated tenant for trying the bridge by hand: people with pictures, 1:1 and
group chats with some history, and a team with channels and a thread."""

from __future__ import annotations

import struct
import zlib
from typing import Any

from .model import User
from .world import World

_WORK = ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
_PERSONAL = ["Alan Turing", "Barbara Liskov"]
# One colour per person, for their profile picture.
_COLOURS = [(183, 28, 28), (27, 94, 32), (13, 71, 161), (230, 81, 0), (74, 20, 140)]


def square_png(rgb: tuple[int, int, int], size: int = 96) -> bytes:
    """A plain square PNG of one colour (made here, so the demo needs no image files)."""
    row = b"\x00" + bytes(rgb) * size
    raw = zlib.compress(row * size)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def populate(world: World) -> dict[str, Any]:
    """Users of both kinds (with pictures), a 1:1, a group with a topic, one without, a
    personal 1:1, and the team Contoso (General and Design) with a thread in Design."""
    work = [world.create_user(name, "work") for name in _WORK]
    personal = [world.create_user(name, "personal") for name in _PERSONAL]
    for user, colour in zip(work + personal, _COLOURS, strict=True):
        user.picture = square_png(colour)
        user.picture_type = "image/png"
    ada, grace, edsger = work
    alan, barbara = personal

    def say(chat_id: str, who: User, html: str, thread_root: int | None = None) -> int:
        body = {"content": html, "messagetype": "RichText/Html"}
        return int(world.post_message(chat_id, who.mri, body, thread_root=thread_root).id)

    one = world.create_chat("one_to_one", [ada.mri, grace.mri])
    say(one.id, grace, "<p>Hi Ada, have you seen the new compiler?</p>")
    say(one.id, ada, "<p>Not yet. Send me the <b>notes</b>?</p>")
    topic = world.create_chat("group", [ada.mri, grace.mri, edsger.mri], "Structured programming")
    say(topic.id, edsger, "<p>GOTO considered harmful.</p>")
    say(topic.id, grace, "<p>Disagree, it's a useful tool.</p>")
    plain = world.create_chat("group", [ada.mri, edsger.mri, alan.mri])
    say(plain.id, alan, "<p>Hello from a personal account.</p>")
    personal_dm = world.create_chat("one_to_one", [alan.mri, barbara.mri])
    say(personal_dm.id, barbara, "<p>Substitution works both ways, Alan.</p>")

    team = world.create_team("Contoso", [ada.mri, grace.mri, edsger.mri], ["Design"])
    general, design = team.channel_ids
    say(general, ada, "<p>Welcome to <b>Contoso</b>!</p>")
    root = say(design, edsger, "<p>Proposal: no more GOTO in the code base.</p>")
    say(design, grace, "<p>Only if the compiler can check it.</p>", thread_root=root)
    say(design, ada, "<p>I'll write the check.</p>", thread_root=root)
    chats = [
        {"id": c.id, "kind": c.kind, "topic": c.topic} for c in (one, topic, plain, personal_dm)
    ]
    chats += [
        {"id": general, "kind": "channel", "topic": "General (Contoso)"},
        {"id": design, "kind": "channel", "topic": "Design (Contoso)"},
    ]
    return {"users": [u.public() for u in work + personal], "chats": chats}
