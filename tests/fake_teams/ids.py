"""Identifier formats of the real service (MRIs, conversation ids)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid

MSA_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
WORK_CLIENT_ID = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
PERSONAL_CLIENT_ID = "4b3e8f46-56d3-427f-b1e2-d239b2ea6bca"


def new_work_identity() -> tuple[str, str]:
    """(mri, object id) of a fresh work/school account."""
    oid = str(uuid.uuid4())
    return f"8:orgid:{oid}", oid


def new_personal_identity() -> tuple[str, str, str]:
    """(mri, object id, cid) of a fresh personal account.

    MSA object ids embed the 16-hex cid in their last two groups, as real ones do.
    """
    cid = secrets.token_hex(8)
    oid = f"00000000-0000-0000-{cid[:4]}-{cid[4:]}"
    return f"8:live:.cid.{cid}", oid, cid


def skype_id(mri: str) -> str:
    """The `skypeid` claim is the MRI without its `8:` prefix."""
    return mri[2:] if mri.startswith("8:") else mri


def work_one_to_one_id(oid_a: str, oid_b: str) -> str:
    low, high = sorted([oid_a, oid_b])
    return f"19:{low}_{high}@unq.gbl.spaces"


def uni01_one_to_one_id(mri_a: str, mri_b: str) -> str:
    """Deterministic, so creating the same pair twice finds the same chat."""
    digest = hashlib.sha256("|".join(sorted([mri_a, mri_b])).encode()).digest()
    tail = base64.b32encode(digest).decode().rstrip("=").lower()
    return f"19:uni01_{tail}@thread.v2"


def group_id() -> str:
    return f"19:{secrets.token_hex(16)}@thread.v2"


def channel_id() -> str:
    """Channels (and a team's own thread, its General channel) are `@thread.tacv2`."""
    return f"19:{secrets.token_hex(16)}@thread.tacv2"


def meeting_id() -> str:
    encoded = base64.b64encode(str(uuid.uuid4()).encode()).decode().rstrip("=")
    return f"19:meeting_{encoded}@thread.v2"


def random_client_message_id() -> str:
    return str(secrets.randbelow(9 * 10**18) + 10**18)
