"""HTTP pages: health checks, the demo page, and the console's login and access rules.

Uploads and downloads are in test_uploads.py.
"""

import re

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Factories set a password for every agent; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- health ----------------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_fails_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error")


# --- demo page -------------------------------------------------------------------------------


def test_demo_page_embeds_the_widget_with_one_line(client, workspace):
    WorkspaceFactory()  # a later workspace: the demo shows the first one
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    snippet = [line for line in html.splitlines() if "widget.js" in line]
    assert len(snippet) == 1, snippet
    line = snippet[0]
    assert re.search(r"<script\b[^>]*\bsrc=\"/static/widget\.js\"", line), line
    assert f'data-key="{workspace.widget_key}"' in line
    assert line.strip().endswith("</script>") or line.count("<script") == 1


def test_demo_page_without_a_workspace_has_no_widget(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"widget.js" not in response.content


# --- console: access ---------------------------------------------------------------------------


def test_console_redirects_anonymous_users_to_login(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/"


def test_console_refuses_a_user_without_agent_profile(client):
    client.force_login(UserFactory())
    response = client.get("/console/")
    assert response.status_code == 403
    assert b'data-testid="not-agent"' in response.content


def test_console_opens_for_an_agent(client, agent):
    client.force_login(agent.user)
    response = client.get("/console/")
    assert response.status_code == 200
    assert agent.display_name.encode() in response.content


def test_console_page_escapes_the_agent_name(client, agent):
    agent.display_name = '<img src=x onerror="alert(1)">'
    agent.save()
    client.force_login(agent.user)
    response = client.get("/console/")
    assert response.status_code == 200
    assert b"<img src=x" not in response.content


# --- console: login --------------------------------------------------------------------------


def test_login_page_has_the_test_hooks(client):
    response = client.get("/console/login/")
    assert response.status_code == 200
    html = response.content.decode()
    for hook in ("login-username", "login-password", "login-submit"):
        assert f'data-testid="{hook}"' in html, hook
    assert 'name="csrfmiddlewaretoken"' in html


def test_login_with_the_right_password_opens_the_console(agent):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/console/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    response = client.post(
        "/console/login/",
        {
            "username": agent.user.username,
            "password": "pw-for-tests-1",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_login_with_a_wrong_password_shows_an_error(client, agent):
    response = client.post(
        "/console/login/", {"username": agent.user.username, "password": "wrong"}
    )
    assert response.status_code == 200
    assert b'data-testid="login-error"' in response.content
    assert "_auth_user_id" not in client.session


def test_login_page_redirects_a_signed_in_agent(client, agent):
    client.force_login(agent.user)
    response = client.get("/console/login/")
    assert response.status_code == 302
    assert response["Location"] == "/console/"
