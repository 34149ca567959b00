"""A small populated tenant for trying the bridge by hand."""

from __future__ import annotations

from typing import Any

from .model import User
from .world import World

_WORK = ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
_PERSONAL = ["Alan Turing", "Barbara Liskov"]


def populate(world: World) -> dict[str, Any]:
    """Users of both kinds, a 1:1, a group with a topic, one without, and some messages."""
    work = [world.create_user(name, "work") for name in _WORK]
    personal = [world.create_user(name, "personal") for name in _PERSONAL]
    ada, grace, edsger = work
    alan, barbara = personal

    def say(chat_id: str, who: User, html: str) -> None:
        world.post_message(chat_id, who.mri, {"content": html, "messagetype": "RichText/Html"})

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
    return {
        "users": [u.public() for u in work + personal],
        "chats": [
            {"id": c.id, "kind": c.kind, "topic": c.topic} for c in (one, topic, plain, personal_dm)
        ],
    }
