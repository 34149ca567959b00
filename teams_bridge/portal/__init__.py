"""A Teams conversation and its Matrix room, split by job (room, inbound, outbound)."""

from .portal import Portal

__all__ = ["Portal"]
