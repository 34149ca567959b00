"""A Matrix <-> Microsoft Teams puppeting bridge."""

__version__ = "0.1.0"
