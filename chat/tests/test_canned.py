"""Canned replies: who sees which, the agent welcome's ``canned`` list, and admin scoping."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.tests.factories import AgentFactory, UserFactory, WorkspaceFactory
from chat.admin import CannedReplyForm
from chat.canned import CANNED_MAX, canned_for_agent, canned_frame, canned_render
from chat.models import CannedReply
from chat.tests.sockets import agent_socket
from chat.tests.test_protocol_doc import DOC_PATH, conform, parse_doc


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def canned(workspace, shortcut, text="t", agent=None):
    return CannedReply.objects.create(
        workspace=workspace, agent=agent, shortcut=shortcut, text=text
    )


@pytest.mark.django_db
def test_an_agent_gets_the_shared_replies_and_their_own_only(workspace, agent):
    colleague = AgentFactory(workspace=workspace)
    other = WorkspaceFactory()
    outsider = AgentFactory(workspace=other)
    canned(workspace, "hello", "shared hello")
    canned(workspace, "mine", "my own", agent=agent)
    canned(workspace, "theirs", "colleague's", agent=colleague)
    canned(other, "foreign", "other workspace shared")
    canned(other, "foreign-own", "other workspace personal", agent=outsider)

    rows = canned_for_agent(agent=agent)
    assert [(r.shortcut, r.text) for r in rows] == [("hello", "shared hello"), ("mine", "my own")]
    assert [r.shortcut for r in canned_for_agent(agent=colleague)] == ["hello", "theirs"]
    assert [r.shortcut for r in canned_for_agent(agent=outsider)] == ["foreign", "foreign-own"]


@pytest.mark.django_db
def test_an_agents_own_reply_overrides_a_shared_one_with_the_same_shortcut(workspace, agent):
    shared = canned(workspace, "greet", "Hello from all of us")
    own = canned(workspace, "greet", "Hello, it's me", agent=agent)
    colleague = AgentFactory(workspace=workspace)

    assert [canned_frame(r) for r in canned_for_agent(agent=agent)] == [
        {"id": own.pk, "shortcut": "greet", "text": "Hello, it's me", "shared": False}
    ]
    assert [canned_frame(r) for r in canned_for_agent(agent=colleague)] == [
        {"id": shared.pk, "shortcut": "greet", "text": "Hello from all of us", "shared": True}
    ]


@pytest.mark.django_db
def test_the_selector_is_one_query_and_bounded(workspace, agent, django_assert_num_queries):
    CannedReply.objects.bulk_create(
        CannedReply(workspace=workspace, shortcut=f"s{i:04d}", text="x")
        for i in range(CANNED_MAX + 20)
    )
    with django_assert_num_queries(1):
        rows = canned_for_agent(agent=agent)
    assert len(rows) == CANNED_MAX


def test_render_fills_known_variables_once_and_leaves_the_rest():
    text = "Hi {visitor_name}, {agent_name} of {workspace_name} here. {unknown} {{x}}"
    assert canned_render(
        text, visitor_name="{agent_name}", agent_name="Alice", workspace_name="Ember & Oak"
    ) == ("Hi {agent_name}, Alice of Ember & Oak here. {unknown} {{x}}")


# --- the agent welcome ------------------------------------------------------------------------


@sync_to_async
def _setup():
    workspace = WorkspaceFactory()
    me = AgentFactory(workspace=workspace)
    colleague = AgentFactory(workspace=workspace)
    elsewhere = AgentFactory()
    shared = canned(workspace, "greet", "Hi {visitor_name}!")
    mine = canned(workspace, "bye", "Bye from {agent_name}", agent=me)
    canned(workspace, "secret", "colleague only", agent=colleague)
    canned(elsewhere.workspace, "greet", "other workspace", agent=None)
    canned(elsewhere.workspace, "own", "other workspace agent", agent=elsewhere)
    return me, shared, mine


@pytest.mark.django_db(transaction=True)
async def test_the_agent_welcome_lists_the_agents_canned_replies():
    me, shared, mine = await _setup()
    comm, welcome = await agent_socket(me.user)
    assert welcome["canned"] == [
        {"id": mine.pk, "shortcut": "bye", "text": "Bye from {agent_name}", "shared": False},
        {"id": shared.pk, "shortcut": "greet", "text": "Hi {visitor_name}!", "shared": True},
    ]
    # As docs/protocol.md says: the welcome's `canned` row and the canned_reply object.
    doc = parse_doc(DOC_PATH.read_text(encoding="utf-8"))
    fields = doc.frames[("agent", "out", "welcome")].fields
    assert fields["canned"].always and "canned_reply" in fields["canned"].type
    for item in welcome["canned"]:
        assert conform(item, doc.objects["canned_reply"].fields, doc.objects, "canned") == []
    await comm.disconnect()


@pytest.mark.django_db
def test_the_console_page_knows_the_workspace_name_for_the_variables(client, agent):
    client.force_login(agent.user)
    page = client.get(reverse("console:index")).content.decode()
    assert f'"workspace": {{"id": {agent.workspace_id}, "name": "{agent.workspace.name}"}}' in page
    assert 'data-testid="reply-input"' in page and 'id="canned-list"' in page


# --- admin ------------------------------------------------------------------------------------


@pytest.fixture
def workspace_admin(client, workspace):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="chat",
            codename__in=[f"{a}_cannedreply" for a in ("add", "change", "view", "delete")],
        )
    )
    agent = AgentFactory(user=user, workspace=workspace, is_workspace_admin=True)
    client.force_login(user)
    return client, agent


@pytest.mark.django_db
def test_a_workspace_admin_sees_and_files_canned_replies_in_their_workspace_only(
    workspace_admin, workspace
):
    client, me = workspace_admin
    colleague = AgentFactory(workspace=workspace, display_name="Colleague Carol")
    other = WorkspaceFactory(name="Elsewhere Ltd")
    outsider = AgentFactory(workspace=other, display_name="Outsider Otto")
    canned(workspace, "ours", "our shared text")
    theirs = canned(other, "theirs", "their shared text")

    page = client.get(reverse("admin:chat_cannedreply_changelist")).content.decode()
    assert "/ours" in page and "/theirs" not in page
    change = reverse("admin:chat_cannedreply_change", args=[theirs.pk])
    assert client.get(change).status_code in (302, 404)

    add = reverse("admin:chat_cannedreply_add")
    page = client.get(add).content.decode()
    assert "Colleague Carol" in page
    assert "Outsider Otto" not in page and "Elsewhere Ltd" not in page

    # Another workspace's agent or workspace: refused, nothing stored.
    for data in (
        {"workspace": workspace.pk, "agent": outsider.pk, "shortcut": "x1", "text": "t"},
        {"workspace": other.pk, "agent": "", "shortcut": "x2", "text": "t"},
    ):
        assert client.post(add, data).status_code == 200
    assert not CannedReply.objects.filter(shortcut__in=["x1", "x2"]).exists()

    response = client.post(
        add,
        {"workspace": workspace.pk, "agent": colleague.pk, "shortcut": "Thanks", "text": "Ty!"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    row = CannedReply.objects.get(shortcut="thanks")  # shortcuts are stored in lower case
    assert row.workspace_id == workspace.pk and row.agent_id == colleague.pk


@pytest.mark.django_db
def test_the_form_refuses_bad_input(workspace, agent):
    other_agent = AgentFactory()
    canned(workspace, "dup", "x")

    def errors(**fields):
        data = {"workspace": workspace.pk, "agent": "", "shortcut": "ok", "text": "Hi"} | fields
        f = CannedReplyForm(data=data)
        return {} if f.is_valid() else f.errors

    assert errors() == {}
    assert "agent" in errors(agent=other_agent.pk)
    assert "text" in errors(text="Hi {visitor}")  # unknown variable
    assert "text" in errors(text="   ")
    assert "shortcut" in errors(shortcut="has space")
    assert "shortcut" in errors(shortcut="x" * 41)
    assert errors(shortcut="dup")  # a shared shortcut is unique in the workspace
    assert errors(shortcut="dup", agent=agent.pk) == {}  # a personal one may shadow it
