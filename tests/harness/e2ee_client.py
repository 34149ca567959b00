"""A test user whose client does end-to-end encryption: mautrix's own client crypto
(`OlmMachine` with python-olm) on top of `MatrixTestClient`'s /sync loop.

What it sends in an encrypted room is encrypted (reactions excepted, as mautrix's client
does); what arrives encrypted is decrypted in place in the recorded timeline once the room
key is there, so the usual waits see the plaintext events. An event whose key has not come
yet stays encrypted in the timeline (``undecrypted`` lists them) and is decrypted when it
arrives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mautrix.client.state_store import MemoryStateStore
from mautrix.crypto import MemoryCryptoStore, OlmMachine
from mautrix.errors import DecryptionError, SessionNotFound
from mautrix.types import EncryptedEvent, Event, EventType, Membership, RoomID, TrustState, UserID

from .matrix_client import MatrixTestClient

log = logging.getLogger("harness.e2ee_client")


class _StateStore(MemoryStateStore):
    """The client's memory state store, with what its crypto asks of it."""

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [
            room_id
            for room_id, members in self.members.items()
            if self.encryption.get(room_id) is not None
            and (member := members.get(user_id)) is not None
            and member.membership in (Membership.JOIN, Membership.INVITE)
        ]


class E2EEClient(MatrixTestClient):
    """A `MatrixTestClient` with a device that has Olm keys."""

    machine: OlmMachine

    @classmethod
    async def login(  # type: ignore[override]
        cls, base_url: str, user_id: str, password: str, **kwargs: Any
    ) -> E2EEClient:
        background = kwargs.pop("background_sync", True)
        self = await super().login(base_url, user_id, password, background_sync=False, **kwargs)
        assert isinstance(self, E2EEClient)
        await self._start_crypto()
        if background:
            self.start()
        return self

    async def _start_crypto(self) -> None:
        client = self.client
        client.state_store = _StateStore()
        store = MemoryCryptoStore(account_id=self.user_id, pickle_key="teams-bridge tests")
        await store.put_device_id(client.device_id)
        self.machine = OlmMachine(client, store, client.state_store)
        # The bridge's device is not cross-signed: trust it as the bridge trusts us.
        self.machine.share_keys_min_trust = TrustState.UNVERIFIED
        self.machine.send_keys_min_trust = TrustState.UNVERIFIED
        client.crypto = self.machine
        await self.machine.load()
        await self.machine.share_keys()
        self.undecrypted: dict[str, tuple[RoomID, int]] = {}

    async def _handle_sync(self, data: dict[str, Any], initial: bool) -> None:
        # The client's own handling first: to-device room keys, device lists, one-time key
        # counts and the room state its encryption needs (members, m.room.encryption).
        if getattr(self, "machine", None) is not None:
            tasks = self.client.handle_sync(data)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        await super()._handle_sync(data, initial)
        if getattr(self, "machine", None) is not None:
            await self._decrypt_pending()

    def _record_timeline(self, room_id: RoomID, events: list[dict[str, Any]]) -> None:
        before = len(self.timeline[room_id])
        super()._record_timeline(room_id, events)
        if getattr(self, "machine", None) is None:
            return
        for index in range(before, len(self.timeline[room_id])):
            evt = self.timeline[room_id][index]
            if evt.type == EventType.ROOM_ENCRYPTED:
                self.undecrypted[evt.event_id] = (room_id, index)

    async def _decrypt_pending(self) -> None:
        for event_id, (room_id, index) in list(self.undecrypted.items()):
            evt = self.timeline[room_id][index]
            if not isinstance(evt, EncryptedEvent):
                del self.undecrypted[event_id]
                continue
            try:
                decrypted: Event = await self.machine.decrypt_megolm_event(evt)
            except SessionNotFound:
                continue  # its key has not arrived yet
            except DecryptionError as e:
                log.warning("Cannot decrypt %s: %s", event_id, e)
                del self.undecrypted[event_id]
                continue
            self.timeline[room_id][index] = decrypted
            del self.undecrypted[event_id]

    async def enable_encryption(self, room_id: RoomID) -> None:
        await self.client.send_state_event(
            room_id, EventType.ROOM_ENCRYPTION, {"algorithm": "m.megolm.v1.aes-sha2"}
        )
