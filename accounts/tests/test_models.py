"""Workspaces: allowed origins are normalised the way browsers send ``Origin``."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Workspace, normalize_origin, validate_origins
from accounts.tests.factories import AgentFactory, WorkspaceFactory


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("HTTPS://Shop.Example.COM", "https://shop.example.com"),
        ("  https://shop.example.com/  ", "https://shop.example.com"),
        ("https://shop.example.com/some/page?q=1#top", "https://shop.example.com"),
        ("http://localhost:8000", "http://localhost:8000"),
        # Browsers leave the default port out of Origin; so must we.
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://shop.example.com:80", "http://shop.example.com"),
        ("https://shop.example.com:8443", "https://shop.example.com:8443"),
        ("http://shop.example.com:443", "http://shop.example.com:443"),
        # IPv6 hosts keep their brackets, as in the Origin header.
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://[2001:DB8::1]", "https://[2001:db8::1]"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_normalize_origin(value, origin):
    assert normalize_origin(value) == origin


@pytest.mark.parametrize(
    "value",
    [
        "",
        "shop.example.com",
        "//shop.example.com",
        "ftp://shop.example.com",
        "javascript:alert(1)",
        "https://",
        "https://shop.example.com:notaport",
        "https://shop.example.com:99999",
        "*",
        "null",
    ],
)
def test_normalize_origin_refuses_what_is_not_an_origin(value):
    with pytest.raises(ValueError):
        normalize_origin(value)


def test_validate_origins_accepts_one_origin_per_line():
    validate_origins("https://shop.example.com\nhttp://localhost:8000\r\n\n  https://b.example  ")
    validate_origins("")


@pytest.mark.parametrize(
    "value", ["https://ok.example\nshop.example.com", "https://ok.example *", "ftp://x.example"]
)
def test_validate_origins_names_the_bad_entry(value):
    with pytest.raises(ValidationError) as exc:
        validate_origins(value)
    bad = [item for item in value.split() if not item.startswith("https://ok")][0]
    assert bad in exc.value.messages[0]


@pytest.mark.django_db
def test_full_clean_applies_the_origin_validator():
    workspace = WorkspaceFactory(allowed_origins="https://shop.example.com")
    workspace.full_clean()
    workspace.allowed_origins = "https://shop.example.com\nnot an origin"
    with pytest.raises(ValidationError) as exc:
        workspace.full_clean()
    assert "allowed_origins" in exc.value.message_dict


def test_origin_list_normalises_and_skips_invalid_entries():
    workspace = Workspace(
        allowed_origins="HTTPS://Shop.Example.com/\nbroken\nhttps://shop.example.com:443\n"
        "http://[::1]:8000"
    )
    assert workspace.origin_list() == [
        "https://shop.example.com",
        "https://shop.example.com",
        "http://[::1]:8000",
    ]


def test_upload_type_list():
    workspace = Workspace(upload_allowed_types=" image/png\napplication/pdf  text/plain ")
    assert workspace.upload_type_list() == ["image/png", "application/pdf", "text/plain"]
    assert "text/plain" in Workspace().upload_type_list()  # the default list


@pytest.mark.django_db
def test_each_workspace_gets_its_own_unguessable_widget_key():
    a, b = WorkspaceFactory(), WorkspaceFactory()
    assert a.widget_key != b.widget_key
    assert len(a.widget_key) >= 20


@pytest.mark.django_db
def test_agent_defaults():
    agent = AgentFactory()
    assert agent.presence == "online"
    assert agent.max_concurrent_chats == 5
    assert str(agent) == agent.display_name
