"""The sandbox's demo tenant, and `python -m tests.sandbox.act`: each command does to the
simulated tenant what a Teams user would."""

from __future__ import annotations

import hashlib

import pytest

from tests.fake_teams.demo import populate, square_png
from tests.sandbox.act import Unknown, _thread_root, main, parser, run

PNG = square_png((1, 2, 3), size=8)


async def _act(sim, *argv: str):
    return await run(parser().parse_args(["--sim", sim.url, *argv]))


async def test_the_demo_has_pictures_a_team_and_a_thread(sim, control):
    demo = populate(sim.world)
    users = await control.list_users()
    assert len(users) == 5 and all(u["has_picture"] for u in users)
    teams = await control.list_teams()
    assert [t["display_name"] for t in teams] == ["Contoso"]
    design = next(c for c in demo["chats"] if c["topic"] == "Design (Contoso)")
    posts = await control.list_messages(design["id"])
    assert [_thread_root(m) for m in posts] == [posts[0]["id"]] * 3


async def test_act_posts_replies_edits_deletes_reacts_and_sends_images(sim, control, tmp_path):
    demo = populate(sim.world)
    group = next(c for c in demo["chats"] if c["topic"] == "Structured programming")

    posted = await _act(sim, "post", "Structured", "Edsger", "Hello\nfrom Teams")
    messages = await control.list_messages(group["id"])
    last = messages[-1]
    assert last["id"] == posted["id"]
    assert last["content"] == "<p>Hello</p><p>from Teams</p>"
    assert last["imdisplayname"] == "Edsger Dijkstra"

    reply = await _act(sim, "reply", "Structured", "Ada", posted["id"], "Agreed")
    quoted = (await control.list_messages(group["id"]))[-1]
    assert quoted["id"] == reply["id"]
    assert f'itemid="{posted["id"]}"' in quoted["content"] and "Agreed" in quoted["content"]

    await _act(sim, "edit", "Structured", "Ada", reply["id"], "Agreed, mostly")
    edited = next(m for m in await control.list_messages(group["id"]) if m["id"] == reply["id"])
    assert edited["content"] == "<p>Agreed, mostly</p>"

    await _act(sim, "react", "Structured", "Grace", posted["id"], "heart")
    reacted = next(m for m in await control.list_messages(group["id"]) if m["id"] == posted["id"])
    assert "heart" in str(reacted["properties"].get("emotions"))

    await _act(sim, "delete", "Structured", "Edsger", posted["id"])
    deleted = next(m for m in await control.list_messages(group["id"]) if m["id"] == posted["id"])
    assert deleted["properties"].get("deletetime")

    picture = tmp_path / "sketch.png"
    picture.write_bytes(PNG)
    sent = await _act(sim, "image", "Design", "Ada", str(picture), "A sketch")
    design = next(c for c in demo["chats"] if c["topic"] == "Design (Contoso)")
    image = next(m for m in await control.list_messages(design["id"]) if m["id"] == sent["id"])
    assert "AMSImage" in image["content"] and "<p>A sketch</p>" in image["content"]
    (obj,) = [o for o in await control.ams_objects() if o.get("filename") == "sketch.png"]
    assert obj["id"] in image["content"]
    stored = await control.ams_object(obj["id"])
    assert hashlib.sha256(PNG).hexdigest() in str(stored["contents"])

    # A reply in a channel goes into the thread of the message it answers.
    root, answer = (await control.list_messages(design["id"]))[:2]
    threaded = await _act(sim, "reply", "Design", "Grace", answer["id"], "In the thread")
    found = next(m for m in await control.list_messages(design["id"]) if m["id"] == threaded["id"])
    assert _thread_root(found) == root["id"]


async def test_act_names_what_it_cannot_find(sim):
    populate(sim.world)
    with pytest.raises(Unknown, match="no chats match 'Nowhere'"):
        await _act(sim, "post", "Nowhere", "Ada", "x")
    with pytest.raises(Unknown, match="no users match 'Lovelace Hopper'"):
        await _act(sim, "post", "Structured", "Lovelace Hopper", "x")
    with pytest.raises(Unknown, match="several users match 'a'"):
        await _act(sim, "post", "Structured", "a", "x")


def test_act_without_a_sandbox_says_how_to_start_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("tests.sandbox.act.STATE", tmp_path / "missing.json")
    assert main(["users"]) == 2
    assert "bash .ci/sandbox" in capsys.readouterr().out
