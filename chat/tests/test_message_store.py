"""The batch path that gives messages their seq (chat.message_store)."""

import pytest
from django.db import transaction

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat.message_store import NewMessage, _conversations_open, messages_store
from chat.models import Conversation, Message, SenderKind
from chat.tests.factories import ConversationFactory


def visitor_item(conversation, client_id, text="hi", **kwargs):
    return NewMessage(
        conversation_id=conversation.pk,
        workspace_id=conversation.workspace_id,
        sender_kind=SenderKind.VISITOR,
        client_id=client_id,
        text=text,
        visitor_id=conversation.visitor_id,
        **kwargs,
    )


@pytest.fixture
def conversations(workspace):
    agent = AgentFactory(workspace=workspace)
    return [ConversationFactory(visitor__workspace=workspace, assignee=agent) for _ in range(10)]


def test_a_batch_costs_the_same_queries_whatever_its_size(conversations, django_assert_num_queries):
    small = [visitor_item(conversations[0], "s1")]
    large = [visitor_item(c, f"l{i}-{n}") for n, c in enumerate(conversations) for i in range(5)]
    # lock (with the labels and the client ids already stored), insert, update; the
    # automatic-reply rules once (then cached); +2 for the savepoint in the test's transaction
    with django_assert_num_queries(6), transaction.atomic():
        messages_store(small)
    with django_assert_num_queries(5), transaction.atomic():
        results, events = messages_store(large)
    assert all(r.created and r.error is None for r in results)
    assert Message.objects.count() == 51
    for conversation in conversations:
        seqs = list(
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert seqs == list(range(1, len(seqs) + 1))  # no gaps, no duplicates
        conversation.refresh_from_db()
        assert conversation.last_seq == len(seqs)
    # One visitor frame and two agent-side frames (assignee, watchers) per message.
    assert len(events) == 3 * 50


def test_duplicates_within_and_across_batches_are_stored_once(conversations):
    c = conversations[0]
    with transaction.atomic():
        results, _ = messages_store(
            [visitor_item(c, "dup", "first"), visitor_item(c, "dup", "second")]
        )
    assert [r.created for r in results] == [True, False]
    assert results[0].message.pk == results[1].message.pk
    with transaction.atomic():
        again, events = messages_store([visitor_item(c, "dup", "third")])
    assert again[0].created is False and events == []
    assert list(Message.objects.values_list("text", flat=True)) == ["first"]


def test_a_refused_item_writes_nothing_and_spares_the_others(workspace, conversations):
    mine, foreign = conversations[0], ConversationFactory()  # another workspace
    items = [
        visitor_item(mine, "ok1"),
        NewMessage(  # a conversation of another workspace: not found
            conversation_id=foreign.pk,
            workspace_id=workspace.pk,
            sender_kind=SenderKind.AGENT,
            client_id="x",
            text="leak?",
            agent_id=mine.assignee_id,
        ),
        visitor_item(conversations[1], "bad-att", attachment_id="not-a-uuid"),
        visitor_item(mine, "empty", text=""),
        visitor_item(mine, "ok2"),
    ]
    with transaction.atomic():
        results, _ = messages_store(items)
    assert [r.error.code if r.error else "ok" for r in results] == [
        "ok",
        "not_found",
        "invalid_attachment",
        "empty_message",
        "ok",
    ]
    assert [m.seq for m in results[0:1] + results[4:5] for m in [m.message]] == [1, 2]
    assert Message.objects.filter(conversation=foreign).count() == 0
    assert Conversation.objects.get(pk=conversations[1].pk).last_seq == 0


@pytest.mark.django_db(transaction=True)
def test_messages_store_refuses_to_run_outside_a_transaction(conversations):
    with pytest.raises(RuntimeError):
        messages_store([visitor_item(conversations[0], "a")])


def test_first_messages_open_conversations_in_one_batch(db, django_assert_num_queries):
    """Visitors without a conversation: the batch opens one each (one per visitor even
    with two items), with a fixed number of queries; a refused first message opens none."""
    from accounts.models import Team
    from chat.models import Conversation
    from chat.tests.factories import VisitorFactory

    workspace = WorkspaceFactory(routing_sticky=False)
    visitors = [VisitorFactory(workspace=workspace) for _ in range(4)]
    sales = Team.objects.create(workspace=workspace, name="Sales", is_department=True)
    support = Team.objects.create(workspace=workspace, name="Support")  # not a department

    def item(visitor, client_id, **kwargs):
        return NewMessage(
            conversation_id=None,
            workspace_id=workspace.pk,
            sender_kind=SenderKind.VISITOR,
            client_id=client_id,
            text=kwargs.pop("text", "hello"),
            visitor_id=visitor.pk,
            **kwargs,
        )

    items = [
        item(visitors[0], "a", department_id=sales.pk),
        item(visitors[0], "b"),  # a second tab: the same new conversation
        item(visitors[1], "c"),
        item(visitors[2], "d", department_id=support.pk),  # refused
        item(visitors[3], "e", attachment_id="not-a-uuid"),  # refused
    ]
    with transaction.atomic():
        results, _ = messages_store(items)
    assert [r.error.code if r.error else None for r in results] == [
        None,
        None,
        None,
        "invalid_department",
        "invalid_attachment",
    ]
    first, second = results[0].message, results[1].message
    assert first.conversation_id == second.conversation_id
    assert (first.seq, second.seq) == (1, 2)
    assert Conversation.objects.get(pk=first.conversation_id).team == sales
    assert set(Conversation.objects.values_list("visitor_id", flat=True)) == {
        visitors[0].pk,
        visitors[1].pk,
    }
    # Opening costs the same whatever the number of visitors: lock them, read their
    # conversations, check departments, insert (+2 for the test's savepoint). Routing
    # each new conversation is per conversation (chat.routing).
    more = [VisitorFactory(workspace=workspace) for _ in range(6)]
    for batch in (more[:1], more[1:]):
        with django_assert_num_queries(6), transaction.atomic():
            _conversations_open(
                [item(v, f"m{n}", department_id=sales.pk) for n, v in enumerate(batch)]
            )


@pytest.mark.django_db(transaction=True)
def test_a_message_the_database_refuses_spoils_nothing_else_in_its_batch(workspace):
    """The writer's batch fails whole when one item cannot be stored (here a lone
    surrogate, which UTF-8 cannot encode; the sockets refuse it before, this is the
    writer's own guard): it is retried item by item, and only that item is refused."""
    from chat.writer import _write

    c = ConversationFactory(visitor__workspace=workspace)
    other = ConversationFactory(visitor__workspace=workspace)
    items = [
        visitor_item(c, "w-1", "first"),
        visitor_item(other, "w-2", "a\ud800b"),
        visitor_item(c, "w-3", "third"),
    ]
    results, events = _write(items)
    assert [r.error.code if r.error else None for r in results] == [None, "not_stored", None]
    stored = Message.objects.filter(conversation=c).order_by("seq")
    assert list(stored.values_list("seq", "text")) == [(1, "first"), (2, "third")]
    assert not Message.objects.filter(conversation=other).exists()
    other.refresh_from_db()
    assert other.last_seq == 0
    assert {e[1]["message"]["client_id"] for e in events} == {"w-1", "w-3"}


def _field_values(obj):
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_the_locking_read_gives_what_the_orm_gives(
    workspace, django_assert_num_queries, django_capture_on_commit_callbacks
):
    """One statement (PostgreSQL) and the ORM's three queries (SpatiaLite) agree: every
    column, the related rows, the labels in order, and the messages already stored."""
    from django.contrib.gis.geos import Point

    from accounts.tests.factories import TeamFactory
    from chat.frames import LABELS_ATTR
    from chat.message_store import _conversations_lock
    from chat.models import Label

    agent = AgentFactory(workspace=workspace, display_name="Ann")
    team = TeamFactory(workspace=workspace)
    labelled = ConversationFactory(
        visitor__workspace=workspace,
        visitor__location=Point(2.35, 48.85),
        visitor__ip_address="203.0.113.9",
        visitor__name="It's <b>me</b>",
        assignee=agent,
        team=team,
    )
    for name in ("zeta", "Alpha", "mid"):
        labelled.labels.add(Label.objects.create(workspace=workspace, name=name))
    bare = ConversationFactory(visitor__workspace=workspace)  # no assignee, team, labels
    with transaction.atomic():
        messages_store([visitor_item(labelled, "old-1"), visitor_item(bare, "old-2")])
    sent = {(labelled.pk, "old-1"), (labelled.pk, "new"), (bare.pk, "old-1"), (bare.pk, "x")}

    results = {}
    for plain_sql in (True, False):
        with transaction.atomic():
            conversations, stored = _conversations_lock(sent, plain_sql=plain_sql)
            # Everything the frames read is loaded: no query when touching it.
            with django_assert_num_queries(0):
                shape = {
                    pk: (
                        _field_values(c),
                        _field_values(c.visitor),
                        c.visitor.location.coords if c.visitor.location else None,
                        _field_values(c.assignee) if c.assignee else None,
                        _field_values(c.team) if c.team else None,
                        _field_values(c.workspace),
                        [_field_values(label) for label in getattr(c, LABELS_ATTR)],
                    )
                    for pk, c in conversations.items()
                }
                found = {key: (m.pk, m.text) for key, m in stored.items()}
            if plain_sql:  # one row, one instance: the two share their workspace
                assert len({id(c.workspace) for c in conversations.values()}) == 1
        results[plain_sql] = shape, found
    assert results[True] == results[False]
    shape, found = results[True]
    assert list(shape) == sorted([labelled.pk, bare.pk])
    assert shape[labelled.pk][2] == (2.35, 48.85)
    assert [label["name"] for label in shape[labelled.pk][6]] == ["Alpha", "mid", "zeta"]
    assert shape[bare.pk][3:5] == (None, None) and shape[bare.pk][6] == []
    # Only the pair that was stored, not old-1 of the other conversation.
    assert set(found) == {(labelled.pk, "old-1")}


def test_a_resend_costs_one_more_read_and_gets_the_stored_message(
    conversations, django_assert_num_queries
):
    c = conversations[0]
    with transaction.atomic():
        (first,), _ = messages_store([visitor_item(c, "again", "first text")])
    # lock (finds the pair), that message, +2 savepoint: no insert, no update
    with django_assert_num_queries(4), transaction.atomic():
        (second,), events = messages_store([visitor_item(c, "again", "other text")])
    assert (second.created, second.message.pk, second.message.text) == (
        False,
        first.message.pk,
        "first text",
    )
    assert events == []
