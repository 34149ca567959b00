"""Bootstrap endpoints (config) and discovered service URLs."""

from __future__ import annotations

import pytest

from teams_bridge.teams import AccountKind, Endpoints, ServiceUrls


def test_defaults_are_microsofts_urls() -> None:
    eps = Endpoints()
    assert eps.login == "https://login.microsoftonline.com"
    assert eps.authz_enterprise == "https://teams.microsoft.com/api/authsvc/v1.0/authz"
    assert eps.authz_consumer == "https://teams.live.com/api/auth/v1.0/authz/consumer"
    assert eps.trouter_enterprise == "https://go.trouter.teams.microsoft.com/v4/a"
    assert eps.trouter_consumer == "https://go.trouter.skype.com/v4/a"
    assert eps.registrar_enterprise == "https://teams.microsoft.com/registrar/prod/V2/registrations"
    assert eps.registrar_consumer == "https://edge.skype.com/registrar/prod/v2/registrations"
    assert Endpoints.from_dict(None) == eps
    assert Endpoints.from_dict({"login": None}) == eps


def test_from_dict_overrides_and_accepts_plain_http() -> None:
    eps = Endpoints.from_dict(
        {
            "login": "http://127.0.0.1:1234",
            "trouter_consumer": "http://127.0.0.1:1234/v4/a",
            "other": 1,
        }
    )
    assert eps.login == "http://127.0.0.1:1234"
    assert eps.trouter(AccountKind.PERSONAL) == "http://127.0.0.1:1234/v4/a"
    assert eps.trouter(AccountKind.ENTERPRISE) == Endpoints().trouter_enterprise
    assert Endpoints.from_dict(eps.to_dict()) == eps


@pytest.mark.parametrize("bad", ["", "ftp://x", "not a url", "/relative", 5])
def test_rejects_unusable_urls(bad: object) -> None:
    with pytest.raises(ValueError):
        Endpoints.from_dict({"login": bad})


def test_login_urls() -> None:
    assert Endpoints().login_url("organizations", "devicecode") == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode"
    )
    assert Endpoints.from_dict({"login": "http://h/base/"}).login_url("consumers", "token") == (
        "http://h/base/consumers/oauth2/v2.0/token"
    )
    assert Endpoints.from_dict({"login": "http://h/{tenant}/oauth2/v2.0"}).login_url(
        "t", "token"
    ) == ("http://h/t/oauth2/v2.0/token")
    assert Endpoints.from_dict({"login": "http://h/x/{tenant}"}).login_url("a/b", "token") == (
        "http://h/x/a%2Fb/oauth2/v2.0/token"
    )


def test_service_urls_from_region_gtms() -> None:
    urls = ServiceUrls.from_region_gtms(
        {
            "chatService": "https://emea.ng.msg.teams.microsoft.com",
            "chatServiceAfd": "https://teams.microsoft.com/api/chatsvc/emea",
            "chatSvcAggAfd": "https://teams.microsoft.com/api/csa/emea",
            "middleTier": "https://teams.microsoft.com/api/mt/part/emea-03/",
            "ams": "https://eu-api.asm.skype.com",
            "unifiedPresence": "https://presence.teams.microsoft.com",
            "someFlag": True,
        }
    )
    assert urls.chat == "https://emea.ng.msg.teams.microsoft.com/v1"
    assert urls.middle_tier == "https://teams.microsoft.com/api/mt/part/emea-03"
    assert urls.ams == "https://eu-api.asm.skype.com"
    assert urls.presence == "https://presence.teams.microsoft.com"
    assert urls.chat_aggregator == "https://teams.microsoft.com/api/csa/emea"
    assert "someFlag" not in urls.raw


def test_service_url_fallbacks_and_rejections() -> None:
    afd = ServiceUrls.from_region_gtms(
        {"chatServiceAfd": "http://127.0.0.1:9/api/chatsvc/consumer/v1"}
    )
    assert afd.chat == "http://127.0.0.1:9/api/chatsvc/consumer/v1"
    assert afd.middle_tier is None
    assert (
        ServiceUrls.from_region_gtms({"chatService": "https://c", "mediaStream": "https://m"}).ams
        == "https://m"
    )
    with pytest.raises(ValueError):
        ServiceUrls.from_region_gtms({"chatService": "javascript:alert(1)"})
    with pytest.raises(ValueError):
        ServiceUrls.from_region_gtms({})
