"""What can be learnt about a visitor from the connection: address, browser, place."""

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.contrib.gis.geos import Point
from user_agents import parse as parse_ua

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    country_code: str = ""
    city: str = ""
    point: Point | None = None


def client_ip(scope: dict) -> str | None:
    """The visitor's address; X-Forwarded-For counts only behind a trusted proxy."""
    candidate = None
    if settings.HELPDESK_TRUST_X_FORWARDED_FOR:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                # Our proxy appends the address it saw: the last entry. Entries left of it
                # came from the client and can be forged.
                candidate = value.decode("latin-1").split(",")[-1].strip()
    if candidate is None and scope.get("client"):
        candidate = scope["client"][0]
    try:
        return str(ipaddress.ip_address(candidate)) if candidate else None
    except ValueError:
        return None


def header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


@dataclass(frozen=True)
class Agent:
    browser: str
    os: str
    device: str


def describe_user_agent(user_agent: str) -> Agent:
    ua = parse_ua(user_agent or "")
    browser = " ".join(x for x in (ua.browser.family, ua.browser.version_string) if x)
    os_name = " ".join(x for x in (ua.os.family, ua.os.version_string) if x)
    if ua.is_mobile:
        device = "mobile"
    elif ua.is_tablet:
        device = "tablet"
    elif ua.is_bot:
        device = "bot"
    else:
        device = "desktop"
    return Agent(browser=browser[:80], os=os_name[:80], device=device)


@lru_cache(maxsize=1)
def _geoip():
    path = settings.GEOIP_PATH
    if not path:
        return None
    from django.contrib.gis.geoip2 import GeoIP2

    try:
        return GeoIP2(path)
    except Exception:
        log.exception("GEOIP_PATH=%s could not be opened; visitors get no location", path)
        return None


def locate(ip: str | None) -> Place:
    """Country, city and point for ``ip``, or an empty Place when unknown."""
    geo = _geoip()
    if geo is None or not ip:
        return Place()
    try:
        addr = ipaddress.ip_address(ip)
        if addr.is_private or addr.is_loopback:
            return Place()
    except ValueError:
        return Place()
    try:
        if geo.is_city:
            info = geo.city(ip)
            point = None
            if info.get("longitude") is not None and info.get("latitude") is not None:
                point = Point(info["longitude"], info["latitude"], srid=4326)
            return Place(
                country_code=(info.get("country_code") or "")[:2],
                city=(info.get("city") or "")[:120],
                point=point,
            )
        info = geo.country(ip)
        return Place(country_code=(info.get("country_code") or "")[:2])
    except Exception:
        # Not in the database (or a reader error): no location is a valid answer.
        return Place()
