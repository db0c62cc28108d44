"""The public help centre pages, the widget's suggestion endpoint, and the article admin."""

import pytest

from accounts.tests.factories import AgentFactory, UserFactory, WorkspaceFactory
from knowledge.models import Article, ArticleStatus

from .factories import ArticleFactory, CategoryFactory

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'


@pytest.fixture
def site(workspace):
    shipping = CategoryFactory(workspace=workspace, name="Shipping", position=1)
    evil_cat = CategoryFactory(workspace=workspace, name=f"Cat {XSS}", position=2)
    return {
        "shipping": shipping,
        "delivery": ArticleFactory(
            workspace=workspace,
            category=shipping,
            title="Delivery times",
            body="Parcels **arrive** in 2 days.\n\n<script>alert(1)</script>"
            '<img src=x onerror="alert(2)"> [x](javascript:alert(3))',
            tags="delivery, arrive",
        ),
        "evil": ArticleFactory(
            workspace=workspace, category=evil_cat, title=f"Title {XSS}", body="refund policy"
        ),
        "zh": ArticleFactory(
            workspace=workspace,
            title="退货和退款",
            body="收货后14天内可以退款。",
            language="zh-hans",
        ),
        "draft": ArticleFactory(
            workspace=workspace,
            category=shipping,
            title="Unreleased drafty plan",
            body="secret draft",
            status=ArticleStatus.DRAFT,
        ),
        "foreign": ArticleFactory(title="Other shop article", body="delivery elsewhere"),
    }


def url(workspace, suffix=""):
    return f"/help/{workspace.widget_key}/{suffix}"


# --- pages ----------------------------------------------------------------------------------


def test_index_lists_categories_and_published_articles_only(client, workspace, site):
    response = client.get(url(workspace))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Shipping" in html and "Delivery times" in html and "退货和退款" in html
    assert "Unreleased drafty plan" not in html and "Other shop article" not in html
    assert XSS not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert html.index("Shipping") < html.index("Cat &lt;script")  # category order
    # Language switch appears because two languages are published; ?lang filters.
    zh_only = client.get(url(workspace), {"lang": "zh-hans"}).content.decode()
    assert "退货和退款" in zh_only and "Delivery times" not in zh_only


def test_unknown_widget_key_is_404_everywhere(client, site):
    for path in (
        "/help/nope/",
        "/help/nope/search/?q=x",
        "/help/nope/articles/1/",
        "/help/nope/categories/1/",
        "/help/" + "x" * 100 + "/",
    ):
        assert client.get(path).status_code == 404, path


def test_article_page_shows_sanitized_html_and_escaped_text(client, workspace, site):
    response = client.get(url(workspace, f"articles/{site['delivery'].pk}/"))
    assert response.status_code == 200
    html = response.content.decode()
    body = html[html.index('<div class="body">') :]
    assert "<strong>arrive</strong>" in body
    assert "<script" not in body and "onerror" not in body and "javascript:" not in body
    evil = client.get(url(workspace, f"articles/{site['evil'].pk}/")).content.decode()
    assert XSS not in evil and "Title &lt;script&gt;" in evil
    zh = client.get(url(workspace, f"articles/{site['zh'].pk}/")).content.decode()
    assert '<html lang="zh-hans">' in zh


def test_drafts_and_other_workspaces_articles_are_404(client, workspace, site):
    assert client.get(url(workspace, f"articles/{site['draft'].pk}/")).status_code == 404
    assert client.get(url(workspace, f"articles/{site['foreign'].pk}/")).status_code == 404
    foreign_cat = CategoryFactory()
    assert client.get(url(workspace, f"categories/{foreign_cat.pk}/")).status_code == 404


def test_category_page_hides_drafts(client, workspace, site):
    html = client.get(url(workspace, f"categories/{site['shipping'].pk}/")).content.decode()
    assert "Delivery times" in html and "Unreleased drafty plan" not in html


def test_search_page(client, workspace, site):
    html = client.get(url(workspace, "search/"), {"q": "when will it arrive"}).content.decode()
    assert "Delivery times" in html and 'data-testid="help-search-result"' in html
    html = client.get(url(workspace, "search/"), {"q": "退款"}).content.decode()
    assert "退货和退款" in html
    html = client.get(url(workspace, "search/"), {"q": XSS}).content.decode()
    assert XSS not in html and "&lt;script&gt;" in html
    drafts = client.get(url(workspace, "search/"), {"q": "drafty secret"}).content.decode()
    assert "Unreleased" not in drafts
    response = client.get(url(workspace, "search/"), {"q": "x" * 501})
    assert response.status_code == 400 and b"at most 500" in response.content


# --- suggestions for the widget ------------------------------------------------------------


def suggest(client, workspace, q, **headers):
    return client.get(f"/help/api/{workspace.widget_key}/suggest", {"q": q}, headers=headers)


def test_suggest_from_an_allowed_origin(client, workspace, site):
    response = suggest(client, workspace, "arrive", origin="https://shop.example.com")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "Origin" in response["Vary"]
    (first, *_) = response.json()["results"]
    assert first["title"] == "Delivery times"
    assert first["url"] == f"/help/{workspace.widget_key}/articles/{site['delivery'].pk}/"
    assert 0 < first["score"] <= 1 and len(first["snippet"]) <= 160


def test_suggest_same_site_needs_no_cors(client, workspace, site):
    response = suggest(client, workspace, "退款")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert [r["title"] for r in response.json()["results"]] == ["退货和退款"]


def test_suggest_refuses_a_foreign_origin(client, workspace, site):
    response = suggest(client, workspace, "arrive", origin="https://evil.example")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response


def test_suggest_preflight(client, workspace):
    path = f"/help/api/{workspace.widget_key}/suggest"
    ok = client.options(path, headers={"origin": "https://shop.example.com"})
    assert ok.status_code == 204 and ok["Access-Control-Allow-Origin"] == "https://shop.example.com"
    bad = client.options(path, headers={"origin": "https://evil.example"})
    assert bad.status_code == 204 and "Access-Control-Allow-Origin" not in bad


@pytest.mark.parametrize("q", ["", "   ", "the of and"])
def test_suggest_empty_question_is_an_empty_list(client, workspace, site, q):
    response = suggest(client, workspace, q)
    assert response.status_code == 200 and response.json()["results"] == []


def test_suggest_oversize_question_is_a_clear_400(client, workspace, site):
    response = suggest(client, workspace, "refund " * 40, origin="https://shop.example.com")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "query_too_long"
    assert response["Access-Control-Allow-Origin"] == "https://shop.example.com"


def test_suggest_unknown_key_and_scoping(client, workspace, site):
    response = client.get("/help/api/nope/suggest", {"q": "delivery"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "invalid_key"
    titles = [
        r["title"] for r in suggest(client, workspace, "delivery secret draft").json()["results"]
    ]
    assert "Other shop article" not in titles and "Unreleased drafty plan" not in titles


def test_suggest_rejects_other_methods(client, workspace):
    response = client.post(f"/help/api/{workspace.widget_key}/suggest", {"q": "x"})
    assert response.status_code == 405


# --- admin ----------------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_admin_change_page_shows_a_sanitized_preview(superuser_client, site):
    article = site["delivery"]
    response = superuser_client.get(f"/admin/knowledge/article/{article.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    preview = html[html.index('id="kb-preview"') :]
    preview = preview[: preview.index("</div>")]
    assert "<strong>arrive</strong>" in preview
    assert "<script" not in preview and "onerror" not in preview and "javascript:" not in preview
    assert "knowledge/article_preview.js" in html


def test_admin_live_preview_endpoint(superuser_client):
    response = superuser_client.post(
        "/admin/knowledge/article/preview/", {"body": "**hi** <script>x()</script>"}
    )
    assert response.status_code == 200
    assert response.json()["html"] == "<p><strong>hi</strong> </p>"
    assert superuser_client.get("/admin/knowledge/article/preview/").status_code == 405


def test_admin_add_publishes_and_indexes(superuser_client, workspace):
    response = superuser_client.post(
        "/admin/knowledge/article/add/",
        {
            "workspace": workspace.pk,
            "title": "Gift cards",
            "category": "",
            "language": "en",
            "status": "published",
            "tags": "voucher",
            "body": "Valid for two years.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    article = Article.objects.get(title="Gift cards")
    assert article.published_at is not None and "'voucher'" in article.search_terms


def test_workspace_admin_sees_and_edits_only_their_workspace(client, workspace, site):
    agent = AgentFactory(workspace=workspace, is_workspace_admin=True)
    agent.user.is_staff = True
    agent.user.save()
    from django.contrib.auth.models import Permission

    agent.user.user_permissions.add(*Permission.objects.filter(content_type__app_label="knowledge"))
    client.force_login(agent.user)
    listing = client.get("/admin/knowledge/article/").content.decode()
    assert "Delivery times" in listing and "Other shop article" not in listing
    foreign = site["foreign"]
    assert client.get(f"/admin/knowledge/article/{foreign.pk}/change/").status_code == 302
    add = client.get("/admin/knowledge/article/add/").content.decode()
    assert foreign.workspace.name not in add
    other_ws = WorkspaceFactory(name="Not mine")
    client.post(
        "/admin/knowledge/article/add/",
        {
            "workspace": other_ws.pk,
            "title": "Sneaky",
            "language": "en",
            "status": "draft",
            "body": "x",
            "tags": "",
            "category": "",
        },
    )
    assert not Article.objects.filter(workspace=other_ws).exists()
