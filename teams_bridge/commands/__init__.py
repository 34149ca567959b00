"""Bot commands. Importing the modules registers their handlers with mautrix."""

from . import auth  # noqa: F401
