"""The chat services: the invariants every client relies on.

Messages get gap-free per-conversation sequence numbers, a client_id is stored once, text is
cleaned but never turned into markup, bad input changes nothing, events leave after commit,
and conversations go to available agents in turn.
"""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services as account_services
from accounts.models import AgentConnection, Presence
from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import realtime, services
from chat.errors import ChatError
from chat.models import Conversation, ConversationStatus, Message, PageView, SenderKind, Visitor
from chat.tests.factories import VisitorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Factories set a password for every agent; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def visitor(workspace):
    return VisitorFactory(workspace=workspace)


def connect(agent, *, seen_seconds_ago: float = 0) -> AgentConnection:
    """Give ``agent`` a console socket last heard from ``seen_seconds_ago`` seconds ago."""
    return AgentConnection.objects.create(
        agent=agent,
        workspace=agent.workspace,
        channel_name=f"test.{uuid.uuid4().hex}",
        last_seen_at=timezone.now() - timedelta(seconds=seen_seconds_ago),
    )


def send(visitor, text="hello", client_id=None, **kwargs) -> Message:
    message, _ = services.visitor_message_send(
        visitor=visitor, client_id=client_id or uuid.uuid4().hex, text=text, **kwargs
    )
    return message


def reply(agent, conversation, text="hi there", client_id=None) -> Message:
    message, _ = services.agent_message_send(
        agent=agent,
        conversation_id=conversation.pk,
        client_id=client_id or uuid.uuid4().hex,
        text=text,
    )
    return message


def refused(code: str, call, *args, **kwargs) -> ChatError:
    with pytest.raises(ChatError) as exc:
        call(*args, **kwargs)
    assert exc.value.code == code, exc.value.message
    return exc.value


# --- sequence numbers --------------------------------------------------------------------------


def test_seq_counts_up_per_conversation_with_no_gaps(workspace, visitor, agent):
    first = send(visitor, "one")
    conversation = first.conversation
    seqs = [first.seq]
    for n in range(6):
        message = reply(agent, conversation) if n % 2 else send(visitor, f"v{n}")
        seqs.append(message.seq)
    assert seqs == [1, 2, 3, 4, 5, 6, 7]
    conversation.refresh_from_db()
    assert conversation.last_seq == 7
    stored = list(conversation.messages.order_by("seq").values_list("seq", flat=True))
    assert stored == list(range(1, 8))

    other = send(VisitorFactory(workspace=workspace), "elsewhere")
    assert other.seq == 1 and other.conversation_id != conversation.pk


def test_a_refused_message_uses_no_seq(visitor, settings):
    send(visitor, "one")
    refused("text_too_long", send, visitor, "x" * (settings.HELPDESK_MAX_MESSAGE_CHARS + 1))
    refused("empty_message", send, visitor, "   ")
    refused("invalid_attachment", send, visitor, "with a bad file", attachment_id="nope")
    assert send(visitor, "two").seq == 2
    assert Message.objects.count() == 2


def test_messages_are_stored_with_their_sender(visitor, agent):
    mine = send(visitor, "question")
    theirs = reply(agent, mine.conversation, "answer")
    assert (mine.sender_kind, mine.sender_agent) == (SenderKind.VISITOR, None)
    assert (theirs.sender_kind, theirs.sender_agent) == (SenderKind.AGENT, agent)
    conversation = Conversation.objects.get()
    assert conversation.last_message_preview == "answer"
    assert conversation.first_response_at is not None
    assert conversation.unread_by_agent == 1


# --- idempotency ------------------------------------------------------------------------------


def test_a_repeated_client_id_is_stored_once(visitor, agent, django_capture_on_commit_callbacks):
    first, created = services.visitor_message_send(visitor=visitor, client_id="c-1", text="hi")
    assert created
    with django_capture_on_commit_callbacks() as callbacks:
        again, created = services.visitor_message_send(
            visitor=visitor, client_id="c-1", text="different text on retry"
        )
    assert not created
    assert again.pk == first.pk and again.seq == first.seq and again.text == "hi"
    assert callbacks == []  # nothing broadcast twice
    assert Message.objects.count() == 1
    assert Conversation.objects.get().last_seq == 1

    a1, created = services.agent_message_send(
        agent=agent, conversation_id=first.conversation_id, client_id="a-1", text="yo"
    )
    a2, created_again = services.agent_message_send(
        agent=agent, conversation_id=first.conversation_id, client_id="a-1", text="yo"
    )
    assert created and not created_again and a1.pk == a2.pk


def test_client_ids_are_scoped_to_the_conversation(workspace):
    a = send(VisitorFactory(workspace=workspace), "a", client_id="same")
    b = send(VisitorFactory(workspace=workspace), "b", client_id="same")
    assert a.pk != b.pk and a.seq == b.seq == 1


@pytest.mark.parametrize(
    "client_id", ["", "x" * 65, "has space", "ünïcode", "semi;colon", None, 5, ["a"]]
)
def test_invalid_client_ids_are_refused(visitor, client_id):
    refused(
        "invalid_client_id",
        services.visitor_message_send,
        visitor=visitor,
        client_id=client_id,
        text="hi",
    )
    assert Message.objects.count() == 0 and Conversation.objects.count() == 0


@pytest.mark.parametrize(
    "client_id", ["x" * 64, "A-z_0.9:-", "550e8400-e29b-41d4-a716-446655440000"]
)
def test_valid_client_ids(visitor, client_id):
    assert send(visitor, "hi", client_id=client_id).client_id == client_id


def _in_threads(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads started together; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_client_id_store_one_message(workspace):
    visitor = VisitorFactory(workspace=workspace)
    send(visitor, "first")  # the conversation exists

    results = _in_threads(
        8,
        lambda i: services.visitor_message_send(visitor=visitor, client_id="dup", text="hi")[0].pk,
    )
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    assert Message.objects.filter(client_id="dup").count() == 1
    assert Conversation.objects.get().last_seq == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_get_distinct_gap_free_seqs_in_one_conversation(workspace):
    visitor = VisitorFactory(workspace=workspace)  # no conversation yet: two tabs race to open one
    results = _in_threads(
        8, lambda i: services.visitor_message_send(visitor=visitor, client_id=f"t{i}", text="x")[0]
    )
    assert all(isinstance(r, Message) for r in results), results
    assert Conversation.objects.count() == 1
    assert sorted(m.seq for m in results) == list(range(1, 9))
    assert Conversation.objects.get().last_seq == 8


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("a\x00b\x07c\x1b[31md\x7f", "abc[31md"),
        ("  padded  \n", "padded"),
        ("line one\nline two\r\n\ttabbed", "line one\nline two\r\n\ttabbed"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        (
            "<b>bold</b> &amp; &lt;not&gt; \"quoted\" 'single'",
            "<b>bold</b> &amp; &lt;not&gt; \"quoted\" 'single'",
        ),
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
        ("emoji 🙂 中文 עברית", "emoji 🙂 中文 עברית"),
    ],
)
def test_text_loses_control_characters_and_nothing_else(visitor, sent, stored):
    message = send(visitor, sent)
    assert message.text == stored
    message.refresh_from_db()
    assert message.text == stored
    # The frame sent to clients carries the same literal text: no escaping, no markup.
    from chat.frames import message_frame
    from chat.selectors import messages_qs

    assert message_frame(messages_qs().get(pk=message.pk))["text"] == stored


@pytest.mark.parametrize("text", [5, ["a"], {"a": 1}, True])
def test_text_must_be_a_string(visitor, text):
    refused(
        "invalid_text", services.visitor_message_send, visitor=visitor, client_id="c", text=text
    )


@pytest.mark.parametrize("text", [None, "", " \n\t ", "\x00\x01"])
def test_a_message_needs_text_or_an_attachment(visitor, text):
    refused(
        "empty_message", services.visitor_message_send, visitor=visitor, client_id="c", text=text
    )
    assert Conversation.objects.count() == 0


def test_text_length_limit(visitor, agent, settings):
    limit = settings.HELPDESK_MAX_MESSAGE_CHARS
    assert limit == 5000
    assert len(send(visitor, "é" * limit).text) == limit
    assert len(send(visitor, "  " + "x" * limit + "  ").text) == limit  # counted after trimming
    refused("text_too_long", send, visitor, "x" * (limit + 1))
    conversation = Conversation.objects.get()
    refused("text_too_long", reply, agent, conversation, "x" * (limit + 1))

    settings.HELPDESK_MAX_MESSAGE_CHARS = 10
    refused("text_too_long", send, visitor, "x" * 11)
    assert send(visitor, "x" * 10).seq == 3


def test_agents_only_reach_their_own_workspace(visitor):
    conversation = send(visitor).conversation
    outsider = AgentFactory(workspace=WorkspaceFactory())
    refused("not_found", reply, outsider, conversation)
    for bad_id in (None, "abc", 10**30, -1):
        refused(
            "not_found",
            services.agent_message_send,
            agent=outsider,
            conversation_id=bad_id,
            client_id="c",
            text="x",
        )
    refused(
        "not_found", services.conversation_resolve, agent=outsider, conversation_id=conversation.pk
    )
    assert Message.objects.count() == 1


# --- events after commit ------------------------------------------------------------------------


def test_events_leave_only_after_commit(
    visitor, agent, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(realtime, "_send", lambda group, event: sent.append((group, event)))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = send(visitor, "hi")
        assert sent == []  # still inside the transaction
    assert callbacks
    messages = [(group, event) for group, event in sent if event["type"] == "chat.message"]
    groups = [group for group, _ in messages]
    # Unassigned (no agent is connected): every agent hears of it, and whoever has it open.
    assert groups == [
        realtime.visitor_group(visitor.pk),
        realtime.workspace_agents_group(visitor.workspace_id),
        realtime.conversation_group(message.conversation_id),
    ]
    assert messages[0][1]["message"]["id"] == message.pk
    assert messages[1][1]["conversation"]["last_seq"] == 1
    # Nobody could take it: it waits in the queue, and the visitor hears their place.
    assert (
        realtime.visitor_group(visitor.pk),
        {"type": "chat.queue", "conversation_id": message.conversation_id, "position": 1},
    ) in sent

    sent.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        refused("text_too_long", send, visitor, "x" * 6000)
    assert callbacks == [] and sent == []


# --- leave a message ------------------------------------------------------------------------


def test_leave_a_message_keeps_contact_details_and_the_message(visitor):
    message, created = services.visitor_leave_message(
        visitor=visitor,
        client_id="lm-1",
        name="  Ada\nLovelace\x00 ",
        email=" ada@example.com ",
        text="Please call me back.",
    )
    assert created
    visitor.refresh_from_db()
    assert (visitor.name, visitor.email) == ("Ada Lovelace", "ada@example.com")
    conversation = message.conversation
    assert conversation.visitor == visitor
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.assignee is None  # nobody online
    assert list(conversation.messages.values_list("text", flat=True)) == ["Please call me back."]
    assert str(visitor) == "Ada Lovelace"

    again, created = services.visitor_leave_message(
        visitor=visitor,
        client_id="lm-1",
        name="Ada",
        email="ada@example.com",
        text="Please call me back.",
    )
    assert not created and again.pk == message.pk


def test_leave_a_message_goes_to_an_available_agent(visitor, agent):
    connect(agent)
    message, _ = services.visitor_leave_message(
        visitor=visitor, client_id="lm-1", name="Ada", email="ada@example.com", text="Hi"
    )
    assert message.conversation.assignee == agent


@pytest.mark.parametrize(
    ("name", "email", "text", "code"),
    [
        ("", "ada@example.com", "hi", "invalid_name"),
        ("  \n ", "ada@example.com", "hi", "invalid_name"),
        (None, "ada@example.com", "hi", "invalid_name"),
        (42, "ada@example.com", "hi", "invalid_name"),
        ("Ada", "", "hi", "invalid_email"),
        ("Ada", "not-an-email", "hi", "invalid_email"),
        ("Ada", "ada@", "hi", "invalid_email"),
        ("Ada", "ada@example.com\n<script>", "hi", "invalid_email"),
        ("Ada", None, "hi", "invalid_email"),
        ("Ada", ["ada@example.com"], "hi", "invalid_email"),
        (
            "Ada",
            "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com",
            "hi",
            "invalid_email",
        ),
        ("Ada", "ada@example.com", "", "empty_message"),
        ("Ada", "ada@example.com", "x" * 5001, "text_too_long"),
    ],
)
def test_leave_a_message_validates_and_changes_nothing(visitor, name, email, text, code):
    refused(
        code,
        services.visitor_leave_message,
        visitor=visitor,
        client_id="lm-1",
        name=name,
        email=email,
        text=text,
    )
    visitor.refresh_from_db()
    assert (visitor.name, visitor.email) == ("", "")
    assert Conversation.objects.count() == 0 and Message.objects.count() == 0


def test_leave_a_message_accepts_the_longest_email_the_column_holds(visitor):
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(email) == 254
    services.visitor_leave_message(visitor=visitor, client_id="lm", name="A", email=email, text="x")
    visitor.refresh_from_db()
    assert visitor.email == email


# --- resolve and reopen -----------------------------------------------------------------------


def test_resolve_then_the_visitors_next_message_reopens(visitor, agent):
    conversation = send(visitor, "help").conversation
    resolved = services.conversation_resolve(agent=agent, conversation_id=conversation.pk)
    assert resolved.status == ConversationStatus.RESOLVED and resolved.resolved_at
    first_resolved_at = resolved.resolved_at

    again = services.conversation_resolve(agent=agent, conversation_id=conversation.pk)
    assert again.resolved_at == first_resolved_at  # resolving twice changes nothing

    message = send(visitor, "one more thing")
    conversation.refresh_from_db()
    assert message.conversation_id == conversation.pk  # the same conversation
    assert message.seq == 2
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.resolved_at is None
    assert Conversation.objects.count() == 1


def test_resolve_announces_the_status_to_agents_and_the_visitor(
    visitor, agent, monkeypatch, django_capture_on_commit_callbacks
):
    conversation = send(visitor, "help").conversation
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(realtime, "_send", lambda group, event: sent.append((group, event)))
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_resolve(agent=agent, conversation_id=conversation.pk)
    events = {g: e for g, e in sent if e["type"] == "chat.conversation"}
    agents = events[realtime.workspace_agents_group(visitor.workspace_id)]
    mine = events[realtime.visitor_group(visitor.pk)]
    assert agents["conversation"]["status"] == "resolved"
    assert agents["conversation"]["resolution_seconds"] is not None
    assert mine == {
        "type": "chat.conversation",
        "conversation": {"id": conversation.pk, "status": "resolved", "agent_name": None},
    }


# --- receipts ----------------------------------------------------------------------------------


def test_visitor_receipts_mark_the_agents_messages(visitor, agent):
    conversation = send(visitor, "q1").conversation
    a1 = reply(agent, conversation)
    a2 = reply(agent, conversation)
    conversation.refresh_from_db()  # as the consumers load it: with the current last_seq
    services.receipt_record(
        conversation=conversation, reader=SenderKind.VISITOR, seq=a1.seq, read=False
    )
    a1.refresh_from_db()
    a2.refresh_from_db()
    assert a1.delivered_at and not a1.read_at
    assert not a2.delivered_at

    services.receipt_record(
        conversation=conversation, reader=SenderKind.VISITOR, seq=999, read=True
    )
    for message in Message.objects.filter(sender_kind=SenderKind.AGENT):
        assert message.delivered_at and message.read_at
    own = Message.objects.get(sender_kind=SenderKind.VISITOR)
    assert own.delivered_at is None and own.read_at is None  # not the visitor's own


def test_agent_read_receipts_update_the_unread_count(visitor, agent):
    for n in range(3):
        conversation = send(visitor, f"q{n}").conversation
    conversation.refresh_from_db()
    assert conversation.unread_by_agent == 3
    services.receipt_record(conversation=conversation, reader=SenderKind.AGENT, seq=2, read=True)
    conversation.refresh_from_db()
    assert conversation.unread_by_agent == 1


def test_receipts_that_change_nothing_send_nothing(
    visitor, agent, django_capture_on_commit_callbacks
):
    conversation = send(visitor, "q").conversation
    agent_message = reply(agent, conversation)
    conversation.refresh_from_db()
    with django_capture_on_commit_callbacks() as callbacks:
        services.receipt_record(
            conversation=conversation, reader=SenderKind.VISITOR, seq=2, read=True
        )
    assert callbacks  # a change is announced (to the visitor's sockets and the agents)
    agent_message.refresh_from_db()
    assert agent_message.read_at is not None
    with django_capture_on_commit_callbacks() as callbacks:
        services.receipt_record(
            conversation=conversation, reader=SenderKind.VISITOR, seq=2, read=True
        )
    assert callbacks == []


@pytest.mark.parametrize("seq", [-1, "3", 1.5, True, None])
def test_receipt_seq_must_be_a_non_negative_integer(visitor, seq):
    conversation = send(visitor).conversation
    refused(
        "invalid_seq",
        services.receipt_record,
        conversation=conversation,
        reader=SenderKind.AGENT,
        seq=seq,
        read=True,
    )


# --- assignment -----------------------------------------------------------------------------


def new_conversation(workspace) -> Conversation:
    return send(VisitorFactory(workspace=workspace), "hello").conversation


def test_round_robin_among_available_agents(workspace):
    alice, bob, carol = (AgentFactory(workspace=workspace) for _ in range(3))
    for agent in (alice, bob, carol):
        connect(agent)
    assignees = [new_conversation(workspace).assignee for _ in range(6)]
    assert assignees == [alice, bob, carol, alice, bob, carol]


def test_only_available_agents_under_capacity_get_conversations(workspace):
    available = AgentFactory(workspace=workspace, max_concurrent_chats=10)
    connect(available)

    away = AgentFactory(workspace=workspace, presence=Presence.AWAY)
    connect(away)
    offline = AgentFactory(workspace=workspace, presence=Presence.OFFLINE)
    connect(offline)
    stale = AgentFactory(workspace=workspace)
    connect(stale, seen_seconds_ago=76)  # HELPDESK_AGENT_STALE_SECONDS is 75
    never_connected = AgentFactory(workspace=workspace)
    inactive = AgentFactory(workspace=workspace)
    inactive.user.is_active = False
    inactive.user.save()
    connect(inactive)
    elsewhere = AgentFactory(workspace=WorkspaceFactory())
    connect(elsewhere)
    full = AgentFactory(workspace=workspace, max_concurrent_chats=1)
    connect(full)
    full_conversation = new_conversation(workspace)  # the least recently assigned first
    assert full_conversation.assignee in (available, full)
    if full_conversation.assignee == available:
        Conversation.objects.filter(pk=full_conversation.pk).update(assignee=full)

    assignees = {new_conversation(workspace).assignee for _ in range(5)}
    assert assignees == {available}
    assert not {away, offline, stale, never_connected, inactive, elsewhere, full} & assignees


def test_a_fresh_connection_counts_and_a_stale_one_does_not(workspace, settings):
    agent = AgentFactory(workspace=workspace)
    connection_row = connect(agent, seen_seconds_ago=settings.HELPDESK_AGENT_STALE_SECONDS - 5)
    assert new_conversation(workspace).assignee == agent
    connection_row.last_seen_at = timezone.now() - timedelta(
        seconds=settings.HELPDESK_AGENT_STALE_SECONDS + 5
    )
    connection_row.save()
    assert new_conversation(workspace).assignee is None


def test_resolved_conversations_do_not_count_against_capacity(workspace):
    agent = AgentFactory(workspace=workspace, max_concurrent_chats=1)
    connect(agent)
    first = new_conversation(workspace)
    assert first.assignee == agent
    assert new_conversation(workspace).assignee is None  # full
    services.conversation_resolve(agent=agent, conversation_id=first.pk)
    assert new_conversation(workspace).assignee == agent


def test_an_unassigned_conversation_is_assigned_when_an_agent_comes_online(
    workspace, visitor, django_capture_on_commit_callbacks
):
    conversation = send(visitor, "anyone?").conversation
    assert conversation.assignee is None and conversation.queued_at is not None
    agent = AgentFactory(workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        account_services.agent_connection_open(agent=agent, channel_name="test.one")
    conversation.refresh_from_db()
    assert conversation.assignee == agent and conversation.queued_at is None

    other = AgentFactory(workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        account_services.agent_connection_open(agent=other, channel_name="test.two")
    send(visitor, "still there?")
    conversation.refresh_from_db()
    assert conversation.assignee == agent  # assigned once, kept


def test_a_reopened_conversation_looks_for_an_agent_at_once(workspace, visitor, agent):
    conversation = send(visitor, "anyone?").conversation
    services.conversation_resolve(agent=agent, conversation_id=conversation.pk)
    Conversation.objects.filter(pk=conversation.pk).update(assignee=None)
    connect(agent)
    send(visitor, "one more thing")  # seconds later, but it reopens the conversation
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.assignee == agent


def test_an_agent_who_replies_to_an_unassigned_conversation_takes_it(workspace, visitor, agent):
    conversation = send(visitor, "anyone?").conversation
    reply(agent, conversation)
    conversation.refresh_from_db()
    assert conversation.assignee == agent


# --- query counts on the hot path -------------------------------------------------------------
#
# The numbers include four SAVEPOINT/RELEASE statements: the test runs inside a transaction,
# so the services' two atomic blocks become savepoints. Change them only with a reason.


def test_query_count_visitor_message_in_an_assigned_conversation(
    visitor, agent, django_assert_num_queries
):
    connect(agent)
    send(visitor, "first")
    # 2 savepoints; the batch: lock the visitor and find their conversation (a caller
    # without a conversation id), lock it (one statement that also reads its labels for
    # the list rows and the client ids already stored), insert, update. The socket's path
    # knows the conversation and skips the first two.
    with django_assert_num_queries(7):
        send(visitor, "second")


def test_query_count_first_visitor_message_does_not_grow_with_agents(
    workspace, django_assert_num_queries
):
    for _ in range(5):
        connect(AgentFactory(workspace=workspace))
    visitor = VisitorFactory(workspace=workspace)
    # Opening and routing: the blocklist (cached 5 s after this), the visitor lock, their
    # conversations, the conversation insert, routing rules, the workspace's routing lock,
    # candidates with their loads (one query, whatever their number), the automatic-reply
    # rules (cached 30 s after this), and the batch: messages, the agent's turn, the
    # timeline event, the conversation with its assignee. Not sticky's previous agent: a
    # visitor who had no conversation had none.
    with django_assert_num_queries(15):
        send(visitor, "first")
    other = VisitorFactory(workspace=workspace)
    for _ in range(5):
        connect(AgentFactory(workspace=workspace))
    with django_assert_num_queries(13):  # the same, with the two caches warm
        send(other, "first")


def test_query_count_unassigned_while_nobody_is_online(visitor, django_assert_num_queries):
    send(visitor, "first")  # queued: nobody is online
    # A queued conversation waits for the queue's drain: its messages never look for an
    # agent themselves.
    with django_assert_num_queries(7):
        send(visitor, "second")


def test_query_count_agent_message(visitor, agent, django_assert_num_queries):
    conversation = send(visitor, "first").conversation
    reply(agent, conversation)
    # The replying agent is the conversation's assignee: their row comes with the lock, so
    # the batch loads no agents.
    with django_assert_num_queries(8):
        reply(agent, conversation)


def test_query_count_retry_is_cheaper(visitor, agent, django_assert_num_queries):
    conversation = send(visitor, "first", client_id="v1").conversation
    reply(agent, conversation, client_id="a1")
    # The lock finds the client id already stored; only that message is read. No insert,
    # no update.
    with django_assert_num_queries(7):
        reply(agent, conversation, client_id="a1")
    with django_assert_num_queries(6):
        send(visitor, "first", client_id="v1")


# --- visitors ---------------------------------------------------------------------------------


def test_visitor_identify_makes_a_visitor_and_recognises_it_by_token(workspace):
    ua = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
    )
    page = {"url": "https://shop.example.com/p", "title": "P\x00age\n1", "referrer": "javascript:x"}
    visitor, token, created = services.visitor_identify(
        workspace=workspace,
        public_id=None,
        token=None,
        ip="81.2.69.160",
        user_agent=ua,
        language="en-GB",
        page=page,
    )
    assert (visitor.country_code, visitor.city) == ("GB", "London")
    assert (visitor.browser, visitor.os, visitor.device) == (
        "Mobile Safari 17.1.2",
        "iOS 17.1.2",
        "mobile",
    )
    assert (visitor.current_url, visitor.current_title, visitor.referrer) == (
        "https://shop.example.com/p",
        "Page 1",
        "",
    )
    assert PageView.objects.filter(visitor=visitor).count() == 1
    assert created

    same, same_token, created_again = services.visitor_identify(
        workspace=workspace,
        public_id=str(visitor.public_id),
        token=token,
        ip="175.16.199.1",
        user_agent=ua,
    )
    assert same.pk == visitor.pk and same_token == token and not created_again
    assert (same.country_code, same.city) == ("CN", "Changchun")  # moved: located again

    forged, _, forged_created = services.visitor_identify(
        workspace=workspace,
        public_id=str(visitor.public_id),
        token=token + "x",
        ip=None,
        user_agent="",
    )
    assert forged.pk != visitor.pk and forged_created
    elsewhere, _, _ = services.visitor_identify(
        workspace=WorkspaceFactory(),
        public_id=str(visitor.public_id),
        token=token,
        ip=None,
        user_agent="",
    )
    assert elsewhere.pk != visitor.pk  # a token is valid in its own workspace only
    assert Visitor.objects.count() == 3


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://x.example",
        "https://x.example/\x00",
        "not a url",
        "https://x.example/" + "a" * 2000,
        42,
        None,
    ],
)
def test_page_views_need_an_http_url(visitor, url):
    refused("invalid_page", services.visitor_page_view, visitor=visitor, page={"url": url})
    assert PageView.objects.count() == 0


def test_page_view_is_recorded(visitor):
    services.visitor_page_view(
        visitor=visitor, page={"url": "https://shop.example.com/cart", "title": "Cart"}
    )
    visitor.refresh_from_db()
    assert (visitor.current_url, visitor.current_title) == ("https://shop.example.com/cart", "Cart")
    assert PageView.objects.get().url == "https://shop.example.com/cart"
