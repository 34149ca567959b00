"""Prometheus metrics, scraped from the running bridge: every counter, gauge and histogram
moves with what the bridge does, and the listener is on loopback only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for
from tests.harness.ports import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, match: Callable[[dict[str, str]], bool] | None = None):
    """The sum of `name`'s samples whose labels `match` (all of them by default)."""
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and (match is None or match(dict(labels)))
    )


def of(direction: str) -> Callable[[dict[str, str]], bool]:
    return lambda labels: labels.get("direction") == direction


def chatsvc_ok(labels: dict[str, str]) -> bool:
    return labels.get("service") == "chatsvc" and labels.get("status", "").startswith("2")


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # LISTEN
                found.add(address)
    return found


@pytest.mark.parametrize("backend", ["pg"])
async def test_metrics_follow_the_traffic(backend, synapse, bridge_factory, control, matrix_user):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    group = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="M")
    port = free_port()
    bridge = bridge_factory(overrides={"metrics.enabled": True, "metrics.listen_port": port})
    await bridge.astart()

    # Served on loopback only (the default metrics.hostname), from the start.
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1
    start = await scrape(port)
    assert total(start, "teams_bridge_connected_users") == 0
    for direction in ("to_matrix", "to_teams"):
        for name in (
            "teams_bridge_messages_total",
            "teams_bridge_failed_deliveries_total",
            "teams_bridge_delivery_seconds_count",
            "teams_bridge_queue_depth",
        ):
            assert (name, frozenset({("direction", direction)})) in start, (name, direction)
    # prometheus_client's process collector.
    assert total(start, "process_resident_memory_bytes") > 0
    assert total(start, "process_start_time_seconds") > 0

    await login_through_bot(matrix_user, reg, control, me["mri"])

    async def connected():
        return total(await scrape(port), "teams_bridge_connected_users") == 1

    await wait_for(connected, timeout=60)
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "M")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)

    # Teams -> Matrix.
    before = await scrape(port)
    await control.post_message(group["id"], sender=ada["mri"], content="<p>to matrix</p>")
    await matrix_user.wait_for_message(room, sender=puppet_mxid(reg, ada["mri"]), body="to matrix")
    # What is held in memory (bounded by bridge.cache): the portal, the ghost, the user.
    loaded = await scrape(port)
    for kind in ("portal", "puppet", "user"):
        assert total(loaded, "teams_bridge_loaded", lambda labels, k=kind: labels["kind"] == k) >= 1

    async def counted_to_matrix():
        now = await scrape(port)
        grew = total(now, "teams_bridge_messages_total", of("to_matrix")) > total(
            before, "teams_bridge_messages_total", of("to_matrix")
        )
        return now if grew else None

    after = await wait_for(counted_to_matrix)
    assert total(after, "teams_bridge_delivery_seconds_count", of("to_matrix")) > total(
        before, "teams_bridge_delivery_seconds_count", of("to_matrix")
    )

    # Matrix -> Teams: counted, timed, and the chat service's answer counted.
    before = after
    await matrix_user.send_text(room, "to teams")

    async def in_teams():
        messages = await control.list_messages(group["id"])
        return any("to teams" in (m.get("content") or "") for m in messages)

    await wait_for(in_teams)

    async def counted_to_teams():
        now = await scrape(port)
        grew = (
            total(now, "teams_bridge_messages_total", of("to_teams"))
            == total(before, "teams_bridge_messages_total", of("to_teams")) + 1
        )
        return now if grew else None

    after = await wait_for(counted_to_teams)
    assert (
        total(after, "teams_bridge_delivery_seconds_count", of("to_teams"))
        == total(before, "teams_bridge_delivery_seconds_count", of("to_teams")) + 1
    )
    assert total(after, "teams_bridge_delivery_seconds_sum", of("to_teams")) > total(
        before, "teams_bridge_delivery_seconds_sum", of("to_teams")
    )
    assert total(after, "teams_bridge_teams_requests_total", chatsvc_ok) > total(
        before, "teams_bridge_teams_requests_total", chatsvc_ok
    )
    # Every request the bridge made went to a service it can name.
    services = {
        dict(labels)["service"]
        for (name, labels), value in after.items()
        if name == "teams_bridge_teams_requests_total" and value
    }
    assert {"aad", "authz", "chatsvc", "trouter", "registrar"} <= services, services
    assert "other" not in services, services
    assert total(after, "teams_bridge_queue_depth", of("to_teams")) == 0
    assert total(after, "teams_bridge_failed_deliveries_total", of("to_teams")) == 0

    # A message Teams refuses for good is a failed delivery, and not a delivered one.
    before = after
    await control.add_fault(f"{group['id']}/messages", status=403, count=1, method="POST")
    await matrix_user.send_text(room, "refused")

    async def counted_failure():
        now = await scrape(port)
        failed = total(now, "teams_bridge_failed_deliveries_total", of("to_teams"))
        return now if failed == 1 else None

    after = await wait_for(counted_failure)
    assert total(after, "teams_bridge_messages_total", of("to_teams")) == total(
        before, "teams_bridge_messages_total", of("to_teams")
    )
    assert total(after, "teams_bridge_teams_requests_total", lambda x: x == {
        "service": "chatsvc", "status": "403"
    }) == 1  # fmt: skip
    assert total(after, "teams_bridge_failed_deliveries_total", of("to_matrix")) == 0
