"""Relay attribution (teams_bridge/delivery/relay.py)."""

from teams_bridge.delivery.relay import relay_content

FORMATS = {
    "m.text": "<b>$sender_displayname</b>: $message",
    "m.image": "<b>$sender_displayname</b> sent an image",
}


def test_text_is_attributed_and_escaped():
    out = relay_content(
        {"msgtype": "m.text", "body": "a <b> & c"}, FORMATS, mxid="@g:x", displayname="G<1>"
    )
    assert out["formatted_body"] == "<b>G&lt;1&gt;</b>: a &lt;b&gt; &amp; c"
    assert out["body"] == "G<1>: a <b> & c"


def test_an_image_keeps_its_name_and_gets_the_template_as_caption():
    out = relay_content({"msgtype": "m.image", "body": "dot.png", "url": "mxc://x/y"}, FORMATS,
                        mxid="@g:x", displayname="Gail")  # fmt: skip
    assert out["filename"] == "dot.png" and out["body"] == "Gail sent an image"
    assert out["url"] == "mxc://x/y"


def test_an_edit_is_attributed_in_its_new_content():
    edit = {
        "msgtype": "m.text",
        "body": "* new",
        "m.new_content": {"msgtype": "m.text", "body": "new"},
    }
    out = relay_content(edit, FORMATS, mxid="@g:x", displayname="Gail")
    assert out["m.new_content"]["formatted_body"] == "<b>Gail</b>: new"
