"""Knobs a test can turn; defaults model the real services."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

Variant = Literal["random", "always", "never"]


@dataclass
class SimOptions:
    """All simulator options; `FakeTeams(**kwargs)` fills this."""

    device_code_interval: int = 1
    device_code_lifetime: int = 900
    # How long an authorization code (browser sign-in) may wait to be redeemed.
    auth_code_lifetime: int = 600
    # "block_device_code": the tenant's conditional access refuses device-code sign-ins
    # (the poll after approval answers AADSTS53003), as some organisations' policies do.
    conditional_access: Literal["none", "block_device_code"] = "none"
    skype_token_lifetime: int = 86400
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 90 * 86400
    redelivery_timeout: float = 5.0
    max_redeliveries: int = 5
    gzip_bodies: Variant = "random"
    authz_shapes: Literal["native", "swapped"] = "native"
    consumer_middle_tier: Literal["allow", "refuse"] = "allow"
    middle_tier_value_key: Literal["value", "resolvedUsers"] = "value"
    omit_one_to_one_members: Variant = "random"
    error_bodies: Literal["random", "json", "text", "html"] = "random"
    delivery_urls: Literal["relative", "absolute", "random"] = "relative"
    enforce_poll_interval: bool = True
    dedupe_client_message_ids: bool = False
    # Wire-shape variants the protocol notes list (teams-protocol.md §4.5, §4.9, §4.10, §4.14).
    display_name_key: Literal["imdisplayname", "imDisplayName", "random"] = "imdisplayname"
    numbers_as_strings: Variant = "never"
    edit_markers: Literal["both", "edittime", "skypeeditedid", "random"] = "both"
    delete_markers: Literal["deletetime", "deletionTime", "content_only", "random"] = "deletetime"
    emotion_history: Variant = "never"
    thread_activity_format: Literal["xml", "json", "random"] = "xml"
    # How a channel message names its thread (§4.5, §4.7): `link` in conversationLink's
    # `;messageid=<root>`, `fields` in rootMessageId/parentMessageId, or `both`.
    channel_thread_ids: Literal["link", "fields", "both", "random"] = "link"
    ams_content_length: Variant = "always"
    server_heartbeat_interval: float = 30.0
    idle_timeout: float | None = 120.0
    session_lifetime: float = 60.0
    max_recorded_requests: int = 20000
    tenant_id: str | None = None
    seed: int | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> SimOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"unknown FakeTeams options: {sorted(unknown)}")
        return cls(**kwargs)
