"""Labels on conversations (chat.labels): set, create, limits, scope, events and frames."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.sites import site
from django.db import transaction
from django.test import RequestFactory

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import frames, selectors
from chat.errors import ChatError
from chat.labels import MAX_PER_CONVERSATION, conversation_labels_set, label_names_clean
from chat.message_store import NewMessage, messages_store
from chat.models import Conversation, ConversationEvent, EventKind, Label, SenderKind
from chat.tests.factories import ConversationFactory
from chat.tests.sockets import agent_socket, receive_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def conversation(workspace):
    return ConversationFactory(workspace=workspace, visitor__workspace=workspace)


def names_of(conversation) -> list[str]:
    return sorted(conversation.labels.values_list("name", flat=True))


def label_events(conversation) -> list[dict]:
    return [
        e.data
        for e in ConversationEvent.objects.filter(
            conversation=conversation, kind=EventKind.LABELS
        ).order_by("pk")
    ]


def test_set_creates_new_labels_and_records_what_changed(agent, conversation):
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=[" VIP ", "退款"])
    assert names_of(conversation) == ["VIP", "退款"]
    assert set(Label.objects.values_list("workspace_id", flat=True)) == {agent.workspace_id}
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["vip", "late"])
    assert names_of(conversation) == ["VIP", "late"]  # "vip" is the existing "VIP"
    assert Label.objects.count() == 3
    assert label_events(conversation) == [
        {"added": ["VIP", "退款"], "removed": []},
        {"added": ["late"], "removed": ["退款"]},
    ]
    event = ConversationEvent.objects.filter(kind=EventKind.LABELS).last()
    assert event.actor == agent and event.workspace_id == agent.workspace_id


def test_removing_every_label_and_setting_the_same_again(agent, conversation):
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["VIP"])
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["VIP", "vip"])
    assert len(label_events(conversation)) == 1  # nothing changed: no event
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=[])
    assert names_of(conversation) == []
    assert label_events(conversation)[-1] == {"added": [], "removed": ["VIP"]}
    assert Label.objects.filter(name="VIP").exists()  # the label stays in the workspace


@pytest.mark.parametrize(
    ("names", "code"),
    [
        ("VIP", "invalid_labels"),
        ({"name": "VIP"}, "invalid_labels"),
        (None, "invalid_labels"),
        ([5], "invalid_labels"),
        ([None], "invalid_labels"),
        ([""], "invalid_labels"),
        (["   "], "invalid_labels"),
        (["x" * 41], "invalid_labels"),
        (["bad\x00name"], "invalid_labels"),
        (["line\nbreak"], "invalid_labels"),
        (["rtl\u202eoverride"], "invalid_labels"),
        ([f"l{i}" for i in range(MAX_PER_CONVERSATION + 1)], "too_many_labels"),
    ],
)
def test_bad_names_are_refused_and_change_nothing(agent, conversation, names, code):
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["keep"])
    with pytest.raises(ChatError) as exc:
        conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=names)
    assert exc.value.code == code
    assert names_of(conversation) == ["keep"]
    assert Label.objects.count() == 1
    assert len(label_events(conversation)) == 1


def test_names_are_trimmed_and_limits_hold_at_the_edges():
    assert label_names_clean(["  a  b  ", "x" * 40, "A   B"]) == ["a b", "x" * 40]
    assert len(label_names_clean([f"l{i}" for i in range(MAX_PER_CONVERSATION)])) == 10


def test_a_foreign_conversation_is_not_found_and_nothing_is_created(agent):
    elsewhere = WorkspaceFactory()
    theirs = ConversationFactory(workspace=elsewhere, visitor__workspace=elsewhere)
    for conversation_id in (theirs.pk, 10**9, "x", None):
        with pytest.raises(ChatError) as exc:
            conversation_labels_set(agent=agent, conversation_id=conversation_id, names=["VIP"])
        assert exc.value.code == "not_found"
    assert Label.objects.count() == 0
    assert ConversationEvent.objects.count() == 0


def test_labels_of_another_workspace_are_never_reused(agent, conversation):
    elsewhere = WorkspaceFactory()
    Label.objects.create(workspace=elsewhere, name="VIP")
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["VIP"])
    [label] = conversation.labels.all()
    assert label.workspace_id == agent.workspace_id


def test_the_workspace_label_limit(agent, conversation, monkeypatch):
    monkeypatch.setattr("chat.labels.MAX_PER_WORKSPACE", 2)
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["a", "b"])
    with pytest.raises(ChatError) as exc:
        conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["a", "c"])
    assert exc.value.code == "label_limit"
    conversation_labels_set(agent=agent, conversation_id=conversation.pk, names=["A"])  # reuse


# --- frames carry labels without a query per row ----------------------------------------------


def test_conversation_frames_carry_labels_at_a_constant_query_cost(
    workspace, agent, django_assert_max_num_queries, django_assert_num_queries
):
    vip = Label.objects.create(workspace=workspace, name="VIP")
    late = Label.objects.create(workspace=workspace, name="late")

    def make(n):
        for _ in range(n):
            ConversationFactory(workspace=workspace, visitor__workspace=workspace).labels.set(
                [vip, late]
            )

    make(2)
    with django_assert_num_queries(3):  # active, labels of them, resolved (none)
        small = [
            frames.conversation_frame(c)
            for c in selectors.conversation_list_for_agent(agent=agent, view="all")
        ]
    make(5)
    with django_assert_num_queries(3):
        big = [
            frames.conversation_frame(c)
            for c in selectors.conversation_list_for_agent(agent=agent, view="all")
        ]
    assert len(small) == 2 and len(big) == 7
    assert all(row["labels"] == ["late", "VIP"] or row["labels"] == ["VIP", "late"] for row in big)


def test_the_message_path_prefetches_labels_once_per_batch(workspace, django_assert_num_queries):
    conversations = [
        ConversationFactory(workspace=workspace, visitor__workspace=workspace) for _ in range(4)
    ]
    label = Label.objects.create(workspace=workspace, name="VIP")
    for c in conversations:
        c.labels.add(label)

    def batch(items):
        with transaction.atomic():
            return messages_store(items)

    def bot(c, i):
        return NewMessage(
            conversation_id=c.pk,
            workspace_id=None,
            sender_kind=SenderKind.BOT,
            client_id=f"b{c.pk}-{i}",
            text="Refund sent",
        )

    batch([bot(conversations[0], 0)])  # warm up (content types, ...)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        batch([bot(conversations[1], 1)])
    with CaptureQueriesContext(connection) as three:
        _results, events = batch([bot(c, 2) for c in conversations[1:]])
    assert len(three.captured_queries) == len(one.captured_queries)
    agent_frames = [e for _, e in events if "conversation" in e]
    assert agent_frames and all(e["conversation"]["labels"] == ["VIP"] for e in agent_frames)


async def frame_where(comm, kind: str, when) -> dict:
    """The next frame of type ``kind`` for which ``when(frame)`` holds; the rest are kept
    for the next call (so an event sent before the frame we want is not lost)."""
    pending = getattr(comm, "_pending", [])
    comm._pending = pending
    for frame in list(pending):
        if frame["type"] == kind and when(frame):
            pending.remove(frame)
            return frame
    while True:
        frame = await comm.receive_json_from(timeout=5)
        if frame["type"] == kind and when(frame):
            return frame
        pending.append(frame)


# --- over the agent socket --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_labels_over_the_agent_socket(workspace, agent):
    other = await sync_to_async(AgentFactory)(workspace=workspace)
    conversation = await sync_to_async(ConversationFactory)(
        workspace=workspace, visitor__workspace=workspace
    )
    await Label.objects.acreate(workspace=workspace, name="VIP", color="#b45309")
    elsewhere = await sync_to_async(WorkspaceFactory)()
    await Label.objects.acreate(workspace=elsewhere, name="secret")

    comm, welcome = await agent_socket(agent.user)
    watcher, _ = await agent_socket(other.user)
    assert [(x["name"], x["color"]) for x in welcome["labels"]] == [("VIP", "#b45309")]
    assert all(set(x) == {"id", "name", "color"} for x in welcome["labels"])
    row = next(c for c in welcome["conversations"] if c["id"] == conversation.pk)
    assert row["labels"] == []

    await comm.send_json_to({"type": "open", "conversation_id": conversation.pk})
    await receive_until(comm, "history")
    await comm.send_json_to(
        {
            "type": "labels",
            "conversation_id": conversation.pk,
            "labels": ["vip", "新客户"],
            "client_id": "l1",
        }
    )
    # Other frames may come first (presence, a queue drain's assignment): read until ours.
    labelled = await frame_where(comm, "conversation", lambda f: f["conversation"]["labels"])
    watched = await frame_where(watcher, "conversation", lambda f: f["conversation"]["labels"])
    for frame in (labelled, watched):
        assert frame["conversation"]["id"] == conversation.pk
        assert frame["conversation"]["labels"] == ["VIP", "新客户"]
    event = await frame_where(comm, "event", lambda f: f["event"]["kind"] == "labels")
    assert event["event"]["kind"] == "labels"
    assert event["event"]["data"] == {"added": ["VIP", "新客户"], "removed": []}
    assert event["ref"] == "l1"

    await comm.send_json_to(
        {"type": "labels", "conversation_id": conversation.pk, "labels": ["x" * 41]}
    )
    assert (await frame_where(comm, "error", bool))["code"] == "invalid_labels"
    await comm.send_json_to({"type": "labels", "conversation_id": conversation.pk})
    assert (await frame_where(comm, "error", bool))["code"] == "missing_field"
    await comm.send_json_to({"type": "labels", "conversation_id": conversation.pk, "labels": "VIP"})
    assert (await frame_where(comm, "error", bool))["code"] == "invalid_field"
    await comm.send_json_to({"type": "labels", "conversation_id": 10**9, "labels": []})
    assert (await frame_where(comm, "error", bool))["code"] == "not_found"

    await comm.send_json_to({"type": "hello"})
    again = await receive_until(comm, "welcome")
    assert sorted(x["name"] for x in again["labels"]) == sorted(["VIP", "新客户"])
    assert next(c for c in again["conversations"] if c["id"] == conversation.pk)["labels"] == [
        "VIP",
        "新客户",
    ]
    await comm.disconnect()
    await watcher.disconnect()
    assert await Conversation.objects.filter(pk=conversation.pk, labels__name="VIP").aexists()


# --- admin ------------------------------------------------------------------------------------


def test_label_admin_is_scoped_to_the_workspace(workspace, agent):
    Label.objects.create(workspace=workspace, name="mine")
    elsewhere = WorkspaceFactory()
    Label.objects.create(workspace=elsewhere, name="theirs")
    model_admin = site._registry[Label]
    request = RequestFactory().get("/admin/chat/label/")
    request.user = agent.user
    assert [label.name for label in model_admin.get_queryset(request)] == ["mine"]
    field = model_admin.formfield_for_foreignkey(Label._meta.get_field("workspace"), request)
    assert list(field.queryset) == [workspace]
    form_class = model_admin.get_form(request)
    form = form_class(data={"workspace": workspace.pk, "name": "  New  ", "color": "red"})
    assert not form.is_valid() and "color" in form.errors
    form = form_class(data={"workspace": workspace.pk, "name": "  New  ", "color": "#AABBCC"})
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["name"], form.cleaned_data["color"]) == ("New", "#aabbcc")
