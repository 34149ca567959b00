"""The log filter: token shapes and registered secrets never reach a log line."""

from __future__ import annotations

import logging
import secrets

from teams_bridge import log_filter
from teams_bridge.log_filter import SecretFilter, redact, register_secret


def test_token_shapes_are_redacted():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"
    text = f"Authorization: Bearer {jwt} X-Skypetoken: {jwt} refresh_token=0.AAAA-opaque&x=1"
    cleaned = redact(text)
    assert jwt not in cleaned
    assert "0.AAAA-opaque" not in cleaned
    assert "x=1" in cleaned


def test_registered_secret_is_redacted_in_messages_and_tracebacks():
    secret = "opaque-" + secrets.token_hex(16)
    register_secret(secret)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got %s", (secret,), None)
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert SecretFilter().filter(record)
    assert secret not in record.getMessage()
    assert secret not in record.exc_text


def test_a_secret_containing_another_is_removed_whole():
    short = "short-" + secrets.token_hex(4)
    register_secret(short)
    longer = short + "-and-more-" + secrets.token_hex(4)
    register_secret(longer)
    assert redact(f"[{longer}]") == "[<redacted>]"


def test_rotated_secrets_are_bounded_and_the_newest_kept():
    tokens = [f"rotated-{i}-{secrets.token_hex(8)}" for i in range(log_filter.MAX_KNOWN + 50)]
    for token in tokens:
        register_secret(token)
    assert log_filter.known_secret_count() == log_filter.MAX_KNOWN
    assert tokens[-1] not in redact(f"x {tokens[-1]} y")
    # The oldest rotated-out ones are forgotten.
    assert tokens[0] in redact(f"x {tokens[0]} y")


def test_header_and_cookie_tokens_are_redacted():
    opaque = "0.AXoAabcdefghijklmnop"
    for text in (
        f"Authorization: Bearer {opaque}",
        f"Cookie: authtoken=Bearer={opaque}&Origin=https://teams.microsoft.com",
        f"Authentication: skypetoken={opaque}",
    ):
        cleaned = redact(text)
        assert opaque not in cleaned and "<redacted>" in cleaned
    assert redact("Origin=https://teams.microsoft.com").endswith("teams.microsoft.com")


def test_a_registered_secret_is_found_at_any_place_whatever_its_length():
    # Long secrets are found through an index of their pieces, short ones one by one:
    # every length and every position in a line is covered.
    for length in range(8, 41):
        secret = secrets.token_hex(21)[:length]
        register_secret(secret)
        for before in range(0, 2 * log_filter.WINDOW + 1):
            line = "a" * before + secret + " tail"
            assert redact(line) == "a" * before + "<redacted> tail", (length, before)
        assert redact(f"{secret}{secret}") == "<redacted><redacted>"


def test_a_thousand_long_tokens_are_all_redacted_and_the_rest_of_the_line_kept():
    tokens = [secrets.token_urlsafe(900) for _ in range(log_filter.MAX_KNOWN)]
    for token in tokens:
        register_secret(token)
    for token in (tokens[0], tokens[500], tokens[-1]):
        assert (
            redact(f"user 8:orgid:ada got {token}; done") == "user 8:orgid:ada got <redacted>; done"
        )
    assert (
        redact("nothing secret here, 19:abc@thread.v2") == "nothing secret here, 19:abc@thread.v2"
    )
