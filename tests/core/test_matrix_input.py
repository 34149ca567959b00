"""Matrix input is never a reason to refuse a transaction."""

from __future__ import annotations

import logging
import math

from teams_bridge.appservice import MIB, MIN_BODY_MIB, body_limit_bytes


def test_body_limit_is_never_below_a_full_transaction(caplog):
    log = logging.getLogger("test")
    with caplog.at_level(logging.WARNING):
        assert body_limit_bytes(1, log) == MIN_BODY_MIB * MIB
    assert "max_body_size" in caplog.text
    for value in (0, -5, 99.9, None, "lots", math.nan, math.inf):
        assert body_limit_bytes(value) == MIN_BODY_MIB * MIB
    assert body_limit_bytes(100) == 100 * MIB
    assert body_limit_bytes("250") == 250 * MIB
    # 100 long messages at Synapse's event size limit, or 100 large invites, fit.
    assert MIN_BODY_MIB * MIB >= 100 * 10 * 65536
