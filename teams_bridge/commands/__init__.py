"""Bot commands. Importing the modules registers their handlers with mautrix; `builtin`
then cuts mautrix's own built-in commands down (the order does not matter)."""

from . import auth, builtin, people, presence, sync  # noqa: F401
