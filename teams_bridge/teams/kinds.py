"""Account kinds: work/school (enterprise) versus personal (consumer, Teams free)."""

from __future__ import annotations

from enum import Enum


class AccountKind(Enum):
    """Which Microsoft identity platform and Teams flavour an account belongs to."""

    ENTERPRISE = "enterprise"
    PERSONAL = "personal"
    # Aliases, so either vocabulary reads naturally.
    WORK = "enterprise"
    CONSUMER = "personal"

    @classmethod
    def _missing_(cls, value: object) -> AccountKind | None:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("enterprise", "work", "school", "business", "organizations", "org"):
                return cls.ENTERPRISE
            if lowered in ("personal", "consumer", "live", "msa", "consumers"):
                return cls.PERSONAL
        return None
