"""The batch path that gives messages their seq (chat.message_store)."""

import pytest
from django.db import transaction

from accounts.tests.factories import AgentFactory
from chat.message_store import NewMessage, messages_store
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
    # lock, look up, insert, update, labels of the touched conversations; the
    # automatic-reply rules once (then cached); +2 for the savepoint in the test's transaction
    with django_assert_num_queries(8), transaction.atomic():
        messages_store(small)
    with django_assert_num_queries(7), transaction.atomic():
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
