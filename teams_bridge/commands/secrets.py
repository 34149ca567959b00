"""Commands that carry a secret: recognised before any check, so the secret never stays put.

A message such as ``login-refresh <token>`` must leave the room whatever the answer is: a
command sent outside a management room, or by someone without permission, is refused by
checks that run long before the command's own handler. The Matrix handler therefore asks
``secret_command`` about every message first, redacts a match and registers its arguments
with the log filter, and only then lets the usual checks run.
"""

from __future__ import annotations

import re

from ..log_filter import register_secret

# Commands whose arguments are a secret. `login-matrix` is not a command of this bridge,
# but other bridges take a Matrix access token with it, and a pasted one must go too.
SECRET_COMMANDS = frozenset({"login-refresh", "login-matrix"})

# Words in a secret command that choose an option rather than carry the secret.
OPTION_WORDS = frozenset({"personal", "consumer", "live", "work", "school"})


def _command_text(body: str, prefix: str, in_portal: bool) -> str | None:
    text = body.lstrip()
    if prefix and text.startswith(prefix):
        return text[len(prefix) :]
    return None if in_portal else text


def secret_command(body: str, prefix: str, *, in_portal: bool) -> str | None:
    """The secret-carrying command that `body` reads as, or None.

    With the command prefix it is a command in any room. Without it, it is one only
    outside portal rooms (a management room takes bare commands; in a portal a bare message
    is a chat message for Teams). The test is looser than mautrix's parsing on purpose:
    any whitespace after the command word, and no space needed after the prefix.
    """
    words = (_command_text(body, prefix, in_portal) or "").split(None, 1)
    if not words:
        return None
    command = words[0].lower()
    if command in SECRET_COMMANDS:
        return command
    if not in_portal and is_sign_in_address(body):
        return SIGN_IN_ADDRESS
    return None


# What a pasted address of a browser sign-in is called where a command name would be.
SIGN_IN_ADDRESS = "sign-in address"
_SIGN_IN = re.compile(r"https?://\S*[?#&]code=[^&\s]+", re.IGNORECASE)


def is_sign_in_address(body: str) -> bool:
    """Whether a message is (or holds) the address a browser sign-in ended on: it carries
    an authorization code, a secret until redeemed."""
    return _SIGN_IN.search(body) is not None


def secret_arguments(body: str, prefix: str) -> list[str]:
    """The words after a secret command that may be the secret."""
    words = (_command_text(body, prefix, False) or "").split()[1:]
    return [w for w in words if w.lower() not in OPTION_WORDS]


def forget_in_logs(body: str, prefix: str) -> None:
    """Make the log filter remove the secret from any line that might still quote it."""
    for word in secret_arguments(body, prefix):
        register_secret(word)
    for found in _SIGN_IN.finditer(body):
        register_secret(found.group(0))
        code = re.search(r"code=([^&\s#]+)", found.group(0))
        if code:
            register_secret(code.group(1))
