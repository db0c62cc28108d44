"""What the server learns from a connection: address, browser and place."""

import pytest
from django.conf import settings as django_settings

from chat.visitor_info import _geoip, client_ip, describe_user_agent, header, locate

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def geoip_cache():
    """Forget the opened GeoIP database before and after a test that changes GEOIP_PATH."""
    _geoip.cache_clear()
    yield
    _geoip.cache_clear()


def scope(client=("203.0.113.7", 5000), headers=()) -> dict:
    return {"client": list(client) if client else None, "headers": list(headers)}


# --- client_ip -------------------------------------------------------------------------------


def test_client_ip_is_the_socket_peer_by_default(settings):
    settings.HELPDESK_TRUST_X_FORWARDED_FOR = False
    forged = scope(headers=[(b"x-forwarded-for", b"81.2.69.160")])
    assert client_ip(forged) == "203.0.113.7"


def test_client_ip_uses_x_forwarded_for_behind_a_trusted_proxy(settings):
    settings.HELPDESK_TRUST_X_FORWARDED_FOR = True
    assert client_ip(scope(headers=[(b"x-forwarded-for", b"81.2.69.160")])) == "81.2.69.160"
    assert client_ip(scope(headers=[(b"x-forwarded-for", b" 2001:480::1 ")])) == "2001:480::1"


def test_client_ip_takes_the_address_the_proxy_appended(settings):
    # The client sent "X-Forwarded-For: 1.2.3.4"; our proxy appended what it saw.
    settings.HELPDESK_TRUST_X_FORWARDED_FOR = True
    headers = [(b"x-forwarded-for", b"1.2.3.4, 81.2.69.160")]
    assert client_ip(scope(headers=headers)) == "81.2.69.160"


def test_client_ip_falls_back_to_the_peer(settings):
    settings.HELPDESK_TRUST_X_FORWARDED_FOR = True
    assert client_ip(scope()) == "203.0.113.7"


@pytest.mark.parametrize("value", [b"not-an-ip", b"", b"81.2.69.160, garbage"])
def test_client_ip_ignores_a_malformed_forwarded_address(settings, value):
    settings.HELPDESK_TRUST_X_FORWARDED_FOR = True
    assert client_ip(scope(headers=[(b"x-forwarded-for", value)])) is None


def test_client_ip_normalises_and_handles_no_peer(settings):
    settings.HELPDESK_TRUST_X_FORWARDED_FOR = False
    assert client_ip(scope(client=("2001:0480:0000::0001", 1))) == "2001:480::1"
    assert client_ip(scope(client=None)) is None
    assert client_ip({"headers": []}) is None


def test_header():
    s = scope(headers=[(b"user-agent", b"UA"), (b"origin", b"https://x.example")])
    assert header(s, b"origin") == "https://x.example"
    assert header(s, b"referer") == ""


# --- user agents -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ua", "browser", "os", "device"),
    [
        (CHROME_WINDOWS, "Chrome 120.0.0", "Windows 10", "desktop"),
        (SAFARI_IPHONE, "Mobile Safari 17.1.2", "iOS 17.1.2", "mobile"),
        (SAFARI_IPAD, "Mobile Safari 16.6", "iOS 16.6", "tablet"),
        (FIREFOX_MAC, "Firefox 121.0", "Mac OS X 14.1", "desktop"),
        (CHROME_ANDROID, "Chrome Mobile 120.0.6099", "Android 14", "mobile"),
        (GOOGLEBOT, "Googlebot 2.1", "Other", "bot"),
        ("", "Other", "Other", "desktop"),
    ],
)
def test_describe_user_agent(ua, browser, os, device):
    described = describe_user_agent(ua)
    assert (described.browser, described.os, described.device) == (browser, os, device)


def test_describe_user_agent_keeps_fields_short():
    described = describe_user_agent("X" * 5000)
    assert len(described.browser) <= 80 and len(described.os) <= 80


# --- locate ----------------------------------------------------------------------------------


def test_test_geoip_database_is_configured():
    assert django_settings.GEOIP_PATH.endswith(".mmdb")


def test_locate_london(geoip_cache):
    place = locate("81.2.69.160")
    assert (place.country_code, place.city) == ("GB", "London")
    assert place.point.srid == 4326
    assert (round(place.point.y, 4), round(place.point.x, 4)) == (51.5142, -0.0931)


def test_locate_changchun(geoip_cache):
    place = locate("175.16.199.1")
    assert (place.country_code, place.city) == ("CN", "Changchun")
    assert (round(place.point.y, 2), round(place.point.x, 2)) == (43.88, 125.32)


def test_locate_ipv6_san_diego(geoip_cache):
    place = locate("2001:480::1")
    assert (place.country_code, place.city) == ("US", "San Diego")
    assert place.point is not None


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.4", "::1", "fd00::1", "fe80::1"]
)
def test_locate_private_and_loopback_addresses_is_empty(geoip_cache, ip):
    place = locate(ip)
    assert (place.country_code, place.city, place.point) == ("", "", None)


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_locate_an_address_not_in_the_database_is_empty(geoip_cache, ip):
    place = locate(ip)
    assert (place.country_code, place.city, place.point) == ("", "", None)


@pytest.mark.parametrize("ip", [None, "", "not-an-ip", "999.1.1.1"])
def test_locate_garbage_is_empty(geoip_cache, ip):
    assert locate(ip).country_code == ""


def test_locate_without_a_database_is_empty(geoip_cache, settings):
    settings.GEOIP_PATH = ""
    _geoip.cache_clear()
    place = locate("81.2.69.160")
    assert (place.country_code, place.city, place.point) == ("", "", None)


def test_locate_with_a_broken_database_path_is_empty(geoip_cache, settings, tmp_path):
    settings.GEOIP_PATH = str(tmp_path / "missing.mmdb")
    _geoip.cache_clear()
    assert locate("81.2.69.160").country_code == ""


def test_locate_with_a_country_database(geoip_cache, settings):
    from pathlib import Path

    settings.GEOIP_PATH = str(
        Path(django_settings.GEOIP_PATH).with_name("GeoLite2-Country-Test.mmdb")
    )
    _geoip.cache_clear()
    place = locate("81.2.69.160")
    assert place.country_code == "GB"
    assert (place.city, place.point) == ("", None)
