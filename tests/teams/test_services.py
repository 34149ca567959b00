"""Request URLs are named by the Teams service they go to (the metrics' `service` label)."""

import pytest

from teams_bridge.teams.services import SERVICES, service_of

# Microsoft's hosts (teams-protocol.md) and the simulator's paths on one loopback host.
CASES = [
    ("https://login.microsoftonline.com/organizations/oauth2/v2.0/token", "aad"),
    ("http://127.0.0.1:5000/common/oauth2/v2.0/devicecode", "aad"),
    ("https://teams.microsoft.com/api/authsvc/v1.0/authz", "authz"),
    ("https://authsvc.teams.microsoft.com/v1.0/authz", "authz"),
    ("https://teams.live.com/api/auth/v1.0/authz/consumer", "authz"),
    ("https://emea.ng.msg.teams.microsoft.com/v1/users/ME/conversations/19:x/messages", "chatsvc"),
    ("https://teams.microsoft.com/api/chatsvc/emea/v1/threads/19:x", "chatsvc"),
    ("http://127.0.0.1:5000/v1/users/ME/properties?x=1", "chatsvc"),
    ("https://teams.microsoft.com/api/csa/emea/api/v2/teams/users/me", "csa"),
    ("https://chatsvcagg.teams.microsoft.com/api/v1/teams/users/me", "csa"),
    ("https://teams.microsoft.com/api/mt/part/emea-03/beta/users/fetchShortProfile", "mt"),
    ("https://eu-api.asm.skype.com/v1/objects/0-weu-d1-abc/views/imgo", "ams"),
    ("http://127.0.0.1:5000/v1/objects", "ams"),
    ("https://presence.teams.microsoft.com/v1/me/forceavailability", "presence"),
    ("https://teams.microsoft.com/ups/emea/v1/presence/getpresence", "presence"),
    ("https://go.trouter.teams.microsoft.com/v4/a?epid=x", "trouter"),
    ("http://127.0.0.1:5000/socket.io/1/?v=v4", "trouter"),
    ("https://teams.microsoft.com/registrar/prod/V2/registrations", "registrar"),
    ("https://edge.skype.com/registrar/prod/v2/registrations", "registrar"),
    ("https://example.com/something", "other"),
    ("not a url at all", "other"),
]


@pytest.mark.parametrize(("url", "service"), CASES)
def test_service_of(url, service):
    assert service_of(url) == service
    assert service in SERVICES
