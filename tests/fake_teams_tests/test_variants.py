"""Wire variants the simulator can produce on demand: name spellings, numbers as strings,
edit/delete markers, reaction history, split mentions, JSON thread activity, role updates,
raw notices, calls and call logs."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.fake_teams import ControlClient

from .helpers import RawTrouter, chat_base, decode_body, login


async def _people(control: ControlClient) -> tuple[dict[str, Any], ...]:
    return (
        await control.create_user("Ada Lovelace"),
        await control.create_user("Grace Hopper"),
        await control.create_user("Edsger Dijkstra"),
    )


async def _listen(sim, http, control, mri: str) -> RawTrouter:
    me = await login(sim, http, control, mri)
    trouter = RawTrouter(http, sim, me.skype_token, str(uuid.uuid4()))
    await trouter.connect()
    assert await trouter.register() in (200, 201, 202)
    return trouter


async def _rest_messages(sim, http, control, mri: str, chat_id: str) -> list[dict[str, Any]]:
    me = await login(sim, http, control, mri)
    url = f"{chat_base(me)}/users/ME/conversations/{quote(chat_id, safe='')}/messages"
    async with http.get(
        url, headers={"Authentication": f"skypetoken={me.skype_token}"}, params={"pageSize": "50"}
    ) as resp:
        assert resp.status == 200
        return (await resp.json())["messages"]


@pytest.mark.parametrize(
    "sim_options", [{"display_name_key": "imDisplayName", "numbers_as_strings": "always"}]
)
async def test_camel_case_names_and_string_numbers(sim, http, control: ControlClient):
    ada, grace, _ = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    msg = await control.post_message(chat["id"], grace["mri"], "<p>x</p>")
    await control.react(chat["id"], msg["id"], ada["mri"], "like")
    await control.delete_message(chat["id"], msg["id"], grace["mri"])
    listed = (await _rest_messages(sim, http, control, ada["mri"], chat["id"]))[0]
    assert "imdisplayname" not in listed and listed["imDisplayName"] == "Grace Hopper"
    assert isinstance(listed["sequenceId"], str)
    assert isinstance(listed["properties"]["deletetime"], str)
    assert isinstance(listed["properties"]["emotions"][0]["users"][0]["time"], str)
    me = await login(sim, http, control, ada["mri"])
    headers = {"Authentication": f"skypetoken={me.skype_token}"}
    async with http.get(f"{chat_base(me)}/users/ME/conversations", headers=headers) as resp:
        conv = (await resp.json())["conversations"][0]
    assert isinstance(conv["version"], str) and isinstance(conv["lastUpdatedMessageId"], str)
    async with http.get(
        f"{chat_base(me)}/threads/{quote(chat['id'], safe='')}", headers=headers
    ) as resp:
        assert isinstance((await resp.json())["version"], str)


async def test_reaction_updates_omit_skypeeditedid(sim, http, control: ControlClient):
    ada, grace, _ = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    trouter = await _listen(sim, http, control, ada["mri"])
    msg = await control.post_message(chat["id"], grace["mri"], "<p>v1</p>")
    await control.edit_message(chat["id"], msg["id"], grace["mri"], "<p>v2</p>")
    _, edit = await trouter.next_event("MessageUpdate")
    assert "skypeeditedid" in edit["resource"] and "edittime" in edit["resource"]["properties"]
    await control.react(chat["id"], msg["id"], ada["mri"], "like")
    _, reaction = await trouter.next_event("MessageUpdate")
    assert "skypeeditedid" not in reaction["resource"]
    assert reaction["resource"]["content"] == "<p>v2</p>"
    assert reaction["resource"]["annotationsSummary"] == {"emotions": {"like": 1}}
    stored = (await control.list_messages(chat["id"]))[0]
    assert stored["skypeeditedid"]  # still an edited message
    await trouter.close()


@pytest.mark.parametrize("sim_options", [{"emotion_history": "always"}])
async def test_reaction_history_and_empty_keys(sim, http, control: ControlClient):
    ada, grace, _ = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    msg = await control.post_message(chat["id"], grace["mri"], "<p>x</p>")
    await control.react(chat["id"], msg["id"], ada["mri"], "like")
    await control.react(chat["id"], msg["id"], ada["mri"], "like")
    await control.react(chat["id"], msg["id"], ada["mri"], "heart")
    await control.react(chat["id"], msg["id"], ada["mri"], "heart", remove=True)
    emotions = (await control.list_messages(chat["id"]))[0]["properties"]["emotions"]
    assert [u["mri"] for u in emotions[0]["users"]] == [ada["mri"], ada["mri"]]
    assert emotions[1] == {"key": "heart", "users": []}
    # Per call, history can be switched off again.
    await control.react(chat["id"], msg["id"], ada["mri"], "like", history=False)
    emotions = (await control.list_messages(chat["id"]))[0]["properties"]["emotions"]
    assert len(emotions[0]["users"]) == 1


@pytest.mark.parametrize(
    ("sim_options", "edit_keys", "delete_key"),
    [
        (
            {"edit_markers": "edittime", "delete_markers": "deletionTime"},
            {"edittime"},
            "deletionTime",
        ),
        (
            {"edit_markers": "skypeeditedid", "delete_markers": "content_only"},
            {"skypeeditedid"},
            None,
        ),
        ({"edit_markers": "both"}, {"edittime", "skypeeditedid"}, "deletetime"),
    ],
)
async def test_edit_and_delete_markers(sim, http, control, edit_keys, delete_key):
    ada, grace, _ = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    msg = await control.post_message(chat["id"], grace["mri"], "<p>x</p>")
    edited = await control.edit_message(chat["id"], msg["id"], grace["mri"], "<p>y</p>")
    present = {k for k in ("edittime",) if k in edited["properties"]}
    present |= {k for k in ("skypeeditedid",) if k in edited}
    assert present == edit_keys
    deleted = await control.delete_message(chat["id"], msg["id"], grace["mri"])
    assert deleted["content"] == ""
    markers = {k for k in ("deletetime", "deletionTime") if k in deleted["properties"]}
    assert markers == ({delete_key} if delete_key else set())


async def test_split_mentions_and_wire_overrides(sim, http, control: ControlClient):
    ada, grace, edsger = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"], edsger["mri"]])
    msg = await control.post_message(
        chat["id"],
        grace["mri"],
        "<p>{mention:1} and {mention:0}</p>",
        mentions=[
            {"mri": ada["mri"]},
            {"mri": edsger["mri"], "text": "Prof. Dijkstra", "display_names": False},
        ],
        wire={"imdisplayname": None, "imDisplayName": "Grace H."},
    )
    assert msg["content"] == (
        '<p><span itemscope="" itemtype="http://schema.skype.com/Mention" itemid="0">Prof.'
        '</span> <span itemscope="" itemtype="http://schema.skype.com/Mention" itemid="1">'
        'Dijkstra</span> and <span itemscope="" itemtype="http://schema.skype.com/Mention" '
        'itemid="2">Ada</span> <span itemscope="" itemtype="http://schema.skype.com/Mention" '
        'itemid="3">Lovelace</span></p>'
    )
    mentions = json.loads(msg["properties"]["mentions"])
    assert [(m["itemid"], m["mri"], m.get("displayName")) for m in mentions] == [
        (0, edsger["mri"], None),
        (1, edsger["mri"], None),
        (2, ada["mri"], "Ada"),
        (3, ada["mri"], "Lovelace"),
    ]
    assert "imdisplayname" not in msg and msg["imDisplayName"] == "Grace H."


async def test_patch_message_reshapes_and_pushes(sim, http, control: ControlClient):
    ada, grace, _ = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    trouter = await _listen(sim, http, control, ada["mri"])
    msg = await control.post_message(chat["id"], grace["mri"], "<p>x</p>", properties={"a": "1"})
    history = [
        {"key": "like", "users": [{"mri": ada["mri"], "time": "5", "value": "5"}]},
        {"key": "sad", "users": []},
    ]
    patched = await control.patch_message(
        chat["id"],
        msg["id"],
        properties={"emotions": history, "a": None},
        wire={"sequenceId": "7"},
    )
    assert patched["properties"] == {"emotions": history} and patched["sequenceId"] == "7"
    _, event = await trouter.next_event("MessageUpdate")
    assert event["resource"]["properties"]["emotions"] == history
    await control.patch_message(chat["id"], msg["id"], content="<p>quiet</p>", publish=None)
    # Not pushed: the next thing pushed is a later message.
    await control.post_message(chat["id"], grace["mri"], "<p>later</p>")
    envelope = await trouter.next_request()
    await trouter.reply(envelope)
    event = decode_body(envelope)
    assert (event["resourceType"], event["resource"]["content"]) == ("NewMessage", "<p>later</p>")
    await trouter.close()


@pytest.mark.parametrize("sim_options", [{"thread_activity_format": "json"}])
async def test_json_thread_activity(sim, http, control: ControlClient):
    ada, grace, edsger = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]], topic="Old")
    trouter = await _listen(sim, http, control, ada["mri"])
    await control.add_member(chat["id"], edsger["mri"], by=grace["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/MemberJoined"
    assert json.loads(event["resource"]["content"]) == {
        "members": [{"id": edsger["mri"], "friendlyname": "Edsger Dijkstra"}]
    }
    await control.set_topic(chat["id"], "New", by=grace["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/SpaceTopicUpdated"
    assert json.loads(event["resource"]["content"]) == {
        "oldValue": "Old",
        "newValue": "New",
        "user": grace["mri"],
    }
    await control.remove_member(chat["id"], edsger["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/MemberLeft"
    await trouter.close()


async def test_multi_target_add_and_role_updates(sim, http, control: ControlClient):
    ada, grace, edsger = await _people(control)
    alan = await control.create_user("Alan Turing")
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    trouter = await _listen(sim, http, control, ada["mri"])
    await control.add_members(chat["id"], [edsger["mri"], alan["mri"]], by=ada["mri"])
    _, event = await trouter.next_event("NewMessage")
    content = event["resource"]["content"]
    assert content.count("<target>") == 2 and content.count("<detailedtargetinfo>") == 2
    assert "<detailedinitiatorinfo><friendlyName>Ada Lovelace</friendlyName>" in content
    await control.set_role(chat["id"], alan["mri"], "Admin", by=ada["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/RoleUpdate"
    assert (
        f"<target><id>{alan['mri']}</id><role>admin</role></target>"
        in (event["resource"]["content"])
    )
    # The REST roster call on an existing member changes the role the same way.
    me = await login(sim, http, control, ada["mri"])
    url = f"{chat_base(me)}/threads/{quote(chat['id'], safe='')}/members/{edsger['mri']}"
    async with http.put(
        url, json={"role": "Admin"}, headers={"X-Skypetoken": me.skype_token}
    ) as resp:
        assert resp.status == 200
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/RoleUpdate"
    roles = {m["mri"]: m["role"] for m in (await control.get_chat(chat["id"]))["members"]}
    assert roles[edsger["mri"]] == roles[alan["mri"]] == "Admin"
    await trouter.close()


async def test_raw_notices_calls_and_call_logs(sim, http, control: ControlClient):
    ada, grace, _ = await _people(control)
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    trouter = await _listen(sim, http, control, ada["mri"])
    raw = await control.post_activity(
        chat["id"], "ThreadActivity/PictureUpdate", "<pictureupdate><value>URL@x</value>"
    )
    assert raw["from"].endswith(chat["id"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["content"] == "<pictureupdate><value>URL@x</value>"

    call = await control.post_call(chat["id"], "ended", [grace["mri"]], duration=63, call_id="c")
    assert call["messagetype"] == "Event/Call"
    assert call["content"] == (
        f'<partlist type="ended" callId="c" alt=""><part identity="{grace["mri"]}">'
        "<name>Grace Hopper</name><duration>63</duration></part></partlist>"
    )
    old = await control.post_call(chat["id"], "ended", [grace["mri"]], ended_tag=True)
    assert "<ended/>" in old["content"] and "type=" not in old["content"]
    stored_types = [m["messagetype"] for m in await control.list_messages(chat["id"])]
    assert stored_types.count("Event/Call") == 2

    logged = await control.post_call_log(ada["mri"], originator=grace["mri"], state="missed")
    assert logged["call_log"]["callState"] == "missed"
    assert logged["call_log"]["connectTime"] is None
    for _ in range(3):
        _, event = await trouter.next_event("NewMessage")
        if event["resource"]["conversationid"] == "48:calllogs":
            break
    log = json.loads(event["resource"]["properties"]["call-log"])
    assert log["originator"] == grace["mri"] and log["callDirection"] == "incoming"
    await trouter.close()
