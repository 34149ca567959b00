"""Hostile and malformed input from Teams never crashes the bridge and never reaches Matrix
unsanitised; the chat keeps working afterwards.
"""

from __future__ import annotations

import re

import pytest
from mautrix.types import Format, MessageType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

ALLOWED_TAG = re.compile(
    r"</?(font|del|h[1-6]|blockquote|p|a|ul|ol|sup|sub|li|b|i|u|strong|em|strike|s|code|hr|br|"
    r"div|table|thead|tbody|tr|th|td|caption|pre|span|img|details|summary)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_hostile_teams_input_is_sanitised_or_skipped(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Evil")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Evil")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_puppet = puppet_mxid(reg, ada["mri"])

    async def post(content: str, **kwargs) -> None:
        await control.post_message(chat["id"], sender=ada["mri"], content=content, **kwargs)

    # Scripts, styles, event handlers, javascript: links and unknown tags.
    await post(
        '<script>alert("x")</script><style>p{color:red}</style>'
        '<p onclick="steal()">one <a href="javascript:alert(1)">two</a> '
        '<iframe src="https://evil.example"></iframe><blink>three</blink></p>'
    )
    evt = await matrix_user.wait_for_message(room, sender=ada_puppet, contains="one")
    assert evt.content.body == "one two three"
    html = evt.content.formatted_body or ""
    for bad in ("script", "style", "onclick", "javascript", "iframe", "blink", "alert"):
        assert bad not in html.lower()
    for tag in re.findall(r"</?([a-zA-Z0-9]+)", html):
        assert ALLOWED_TAG.match(f"<{tag}"), tag

    # An unknown message type becomes a short notice, never silence.
    await post("<p>flik</p>", messagetype="Weird/NeverSeen")
    notice = await matrix_user.wait_for_message(
        room, sender=ada_puppet, msgtype=MessageType.NOTICE, contains="Unsupported"
    )
    assert "Weird/NeverSeen" in notice.content.body

    # Absurdly long content is cut to something a Matrix event can hold.
    await post("<p>" + "long " * 60_000 + "</p>")
    long = await matrix_user.wait_for_message(room, sender=ada_puppet, contains="long long")
    assert len(long.content.body) <= 40_000
    assert len(long.content.serialize().__repr__()) < 65_000

    # Noncharacters and control characters in text.
    await post("<p>bad \ufffe text \x00\x07 end</p>")
    odd = await matrix_user.wait_for_message(room, sender=ada_puppet, contains="end")
    assert "\x00" not in odd.content.body

    # A sender that is not a valid MRI cannot become a Matrix ID.
    await post(
        "<p>spoofed</p>",
        wire={
            "from": "https://notifications.skype.net/v1/users/ME/contacts/8:orgid:..%2F..%2Fadmin%0A"
        },
    )
    # Plain text messages are not interpreted as HTML.
    await post("<b>not bold</b> & co", messagetype="Text")
    plain = await matrix_user.wait_for_message(room, sender=ada_puppet, contains="not bold")
    assert plain.content.body == "<b>not bold</b> & co"
    assert plain.content.format != Format.HTML or "<b>" not in (plain.content.formatted_body or "")

    # The spoofed message produced no ghost with a path or newline in its ID.
    members = await matrix_user.members(room)
    for user_id in members:
        assert "\n" not in user_id and "/" not in user_id and ".." not in user_id

    # And the chat still works, both ways.
    await post("<p>still alive</p>")
    await matrix_user.wait_for_message(room, sender=ada_puppet, body="still alive")
    await matrix_user.send_text(room, "me too")

    async def delivered():
        return any(
            "me too" in m.get("content", "") for m in await control.list_messages(chat["id"])
        )

    await wait_for(delivered)
    assert bridge.proc is not None and bridge.proc.poll() is None
