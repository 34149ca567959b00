"""Exceptions raised by the protocol client.

They carry only status codes, error codes and short server messages, never a
token, so the core can log them as they are.
"""

from __future__ import annotations


class TeamsError(Exception):
    """A Teams service answered with an error (or not at all)."""

    def __init__(self, status: int | None, error_code: str | None, message: str) -> None:
        super().__init__(status, error_code, message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error_code:
            parts.append(str(self.error_code))
        head = " ".join(parts)
        return f"{head}: {self.message}" if head else self.message


class AuthError(TeamsError):
    """Login or token minting failed.

    ``relogin_required`` is true when the refresh token is invalid or revoked, so
    retrying cannot help and the user has to log in again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        relogin_required: bool = False,
    ) -> None:
        super().__init__(status, error_code, message)
        self.relogin_required = relogin_required


class ReloginRequired(AuthError):
    """The refresh token is no longer accepted; the user must log in again."""

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message, status=status, error_code=error_code, relogin_required=True)


class LoginDeclined(AuthError):
    """The user declined the device-code sign-in."""

    def __init__(self, message: str = "The sign-in request was declined") -> None:
        super().__init__(message, error_code="authorization_declined")


class LoginBlocked(AuthError):
    """The organisation's conditional access refused this way of signing in (AADSTS53003
    and its kin); another way (browser sign-in, refresh token) may be allowed."""


class LoginExpired(AuthError):
    """The device code expired before the user finished signing in."""

    def __init__(self, message: str = "The sign-in code expired") -> None:
        super().__init__(message, error_code="expired_token")


class ParseError(ValueError):
    """A Teams object did not have the expected shape; callers log and skip it."""


class InvalidId(ParseError):
    """An id (MRI, conversation id, message id) is malformed or hostile."""
