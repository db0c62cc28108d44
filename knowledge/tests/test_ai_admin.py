"""Admin for AI providers and the bot's decision log: secrets stay secret."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from knowledge import breaker
from knowledge.models import AIProvider, BotDecision, DecisionKind, DecisionOutcome

KEY = "sk-admin-test-0123456789-SECRET-wxyz"


@pytest.fixture
def admin_client(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def provider(workspace):
    return AIProvider.objects.create(
        workspace=workspace,
        name="qwen",
        base_url="https://dashscope.example.com/compatible-mode/v1",
        model="qwen-plus",
        api_key=KEY,
        weight=2,
    )


def test_the_list_page_shows_a_masked_suffix_and_the_breaker_never_the_key(
    admin_client, provider, settings
):
    page = admin_client.get(reverse("admin:knowledge_aiprovider_changelist")).content.decode()
    assert "qwen" in page and "••••wxyz" in page and "closed" in page
    assert KEY not in page and KEY[:-4] not in page

    for _ in range(settings.HELPDESK_BREAKER_FAILURES):
        breaker.breaker_record(provider.pk, ok=False)
    page = admin_client.get(reverse("admin:knowledge_aiprovider_changelist")).content.decode()
    assert "open" in page and f"{settings.HELPDESK_BREAKER_FAILURES} consecutive failures" in page


def test_the_change_page_uses_a_password_input_that_never_renders_the_key(admin_client, provider):
    url = reverse("admin:knowledge_aiprovider_change", args=[provider.pk])
    page = admin_client.get(url).content.decode()
    assert KEY not in page
    assert 'type="password" name="api_key"' in page
    assert "••••wxyz" in page and "circuit breaker" in page.lower()


def _post(admin_client, provider, **changes):
    data = {
        "workspace": provider.workspace_id,
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "model": provider.model,
        "api_key": "",
        "weight": "2",
        "timeout_seconds": "10",
        "max_tokens": "400",
        "enabled": "on",
    } | changes
    response = admin_client.post(
        reverse("admin:knowledge_aiprovider_change", args=[provider.pk]), data
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    provider.refresh_from_db()
    return provider


def test_an_empty_key_field_keeps_the_stored_key_and_a_new_one_replaces_it(admin_client, provider):
    assert _post(admin_client, provider, weight="3").api_key == KEY
    assert provider.weight == 3
    assert _post(admin_client, provider, api_key="sk-new-key-000000000000").api_key == (
        "sk-new-key-000000000000"
    )
    assert _post(admin_client, provider, clear_api_key="on").api_key == ""


def test_adding_a_provider_in_the_admin(admin_client, workspace):
    response = admin_client.post(
        reverse("admin:knowledge_aiprovider_add"),
        {
            "workspace": workspace.pk,
            "name": "local",
            "kind": "openai",
            "base_url": "http://127.0.0.1:11434/v1",
            "model": "qwen2.5:0.5b",
            "api_key": KEY,
            "weight": "1",
            "timeout_seconds": "5",
            "max_tokens": "300",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert AIProvider.objects.get(name="local").api_key == KEY


def test_decisions_are_a_read_only_log(admin_client, workspace):
    decision = BotDecision.objects.create(
        workspace=workspace,
        kind=DecisionKind.REPLY,
        outcome=DecisionOutcome.AI_ANSWER,
        question="Do you sell <b>gift cards</b>?",
        providers=[{"name": "qwen", "answer": "Yes.", "latency_ms": 812, "error": ""}],
        vote={"winner": 1, "confidence": 1.0},
        confidence=1.0,
        answer="Yes.",
    )
    listing = admin_client.get(reverse("admin:knowledge_botdecision_changelist"))
    assert listing.status_code == 200 and "100%" in listing.content.decode()
    detail = admin_client.get(reverse("admin:knowledge_botdecision_change", args=[decision.pk]))
    page = detail.content.decode()
    assert detail.status_code == 200 and "812" in page
    assert "&lt;b&gt;gift cards&lt;/b&gt;" in page and "<b>gift cards</b>" not in page
    assert 'name="_save"' not in page  # nothing to save
    assert admin_client.get(reverse("admin:knowledge_botdecision_add")).status_code == 403


def test_workspace_bot_settings_are_in_the_workspace_admin(admin_client, workspace):
    page = admin_client.get(reverse("admin:accounts_workspace_change", args=[workspace.pk]))
    html = page.content.decode()
    assert 'name="bot_mode"' in html and 'name="bot_kb_threshold"' in html
    assert 'name="bot_confidence_floor"' in html
