"""Log lines about one chat name it, without a logger per chat (teams_bridge/keyed_log.py)."""

from __future__ import annotations

import logging

from teams_bridge.keyed_log import TRACE, KeyedLog


def test_lines_name_the_chat_and_no_logger_is_made_per_chat(caplog):
    base = logging.getLogger("mau.portal")
    before = set(logging.Logger.manager.loggerDict)
    logs = [KeyedLog(base, f"19:chat{n}@thread.v2") for n in range(50)]
    assert set(logging.Logger.manager.loggerDict) == before
    with caplog.at_level(TRACE, logger="mau.portal"):
        logs[7].info("Catching up %d messages", 3)
        logs[8].trace("a trace line")
        try:
            raise ValueError("boom")
        except ValueError:
            logs[9].exception("Failed")
    messages = [(r.name, r.getMessage(), r.levelno) for r in caplog.records]
    assert messages[0] == ("mau.portal", "[19:chat7@thread.v2] Catching up 3 messages", 20)
    assert messages[1] == ("mau.portal", "[19:chat8@thread.v2] a trace line", TRACE)
    assert messages[2][1] == "[19:chat9@thread.v2] Failed" and caplog.records[2].exc_info
    # A child keeps the key.
    child = logs[1].getChild("room")
    assert child.logger.name == "mau.portal.room" and child.key == "19:chat1@thread.v2"
    # Wrapping a keyed log wraps its logger, not the adapter.
    assert KeyedLog(logs[2], "x").logger is base
