"""The console's socket (AgentConsumer) against the real ASGI app, PostgreSQL and Redis."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.models import AgentConnection, AgentProfile, Presence
from accounts.tests.factories import AgentFactory, UserFactory, WorkspaceFactory
from chat import services
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from chat.tests.factories import ConversationFactory, MessageFactory, VisitorFactory
from chat.tests.sockets import (
    agent_communicator,
    agent_socket,
    assert_none_of,
    assert_silent,
    receive_error,
    receive_frame,
    receive_message,
    receive_until,
    row_counts,
    visitor_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def send_text(comm, client_id: str, text: str = "hello") -> dict:
    """A visitor's message; returns the ack once the ack and the echo both arrived."""
    await comm.send_json_to({"type": "message", "client_id": client_id, "text": text})
    ack = echoed = None
    while ack is None or echoed is None:
        frame = await comm.receive_json_from(timeout=5)
        assert frame["type"] != "error", frame
        if frame["type"] == "ack" and frame["client_id"] == client_id:
            ack = frame
        elif frame["type"] == "message" and frame["message"]["client_id"] == client_id:
            echoed = frame
    return ack


async def reply(comm, conversation_id: int, client_id: str, text: str = "reply") -> dict:
    """An agent's message; returns its ack (the agent's own echo may still follow)."""
    await comm.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "client_id": client_id,
            "text": text,
        }
    )
    frame = await comm.receive_json_from(timeout=5)
    while frame["type"] != "ack":
        assert frame["type"] != "error", frame
        frame = await comm.receive_json_from(timeout=5)
    return frame


async def ping(comm) -> dict:
    await comm.send_json_to({"type": "ping"})
    return await receive_until(comm, "pong")


new_agent = sync_to_async(AgentFactory)


# --- who may open a console socket -------------------------------------------------------------


async def test_unauthenticated_socket_is_refused(workspace):
    comm = await agent_communicator(None)
    connected, _ = await comm.connect(timeout=5)
    assert connected is False
    assert await AgentConnection.objects.acount() == 0
    await comm.disconnect()


async def test_user_without_agent_profile_is_refused(db):
    user = await sync_to_async(UserFactory)()
    comm = await agent_communicator(user)
    connected, _ = await comm.connect(timeout=5)
    assert connected is False
    assert await AgentConnection.objects.acount() == 0
    await comm.disconnect()


async def test_deactivated_agent_is_refused(agent):
    agent.user.is_active = False
    await agent.user.asave(update_fields=["is_active"])
    comm = await agent_communicator(agent.user)
    assert (await comm.connect(timeout=5))[0] is False
    await comm.disconnect()


@pytest.mark.parametrize("origin", ["https://evil.example.org", None])
async def test_console_socket_from_a_foreign_page_is_refused(agent, origin):
    comm = await agent_communicator(agent.user, origin=origin)
    assert (await comm.connect(timeout=5))[0] is False
    assert await AgentConnection.objects.acount() == 0
    await comm.disconnect()


async def test_frames_before_hello_are_refused(agent):
    comm, _ = await agent_socket(agent.user, hello=False)
    await comm.send_json_to({"type": "list"})
    assert (await receive_error(comm))["code"] == "hello_required"
    await comm.send_json_to({"type": "delete"})
    assert (await receive_error(comm))["code"] == "unknown_type"
    await comm.disconnect()


# --- everything is scoped to the agent's workspace --------------------------------------------


@sync_to_async
def _two_workspaces(workspace):
    """Two conversations in ``workspace`` and a newer one, with a newer message, elsewhere."""
    mine = [ConversationFactory(visitor=VisitorFactory(workspace=workspace)) for _ in range(2)]
    my_messages = [MessageFactory(conversation=c, seq=1) for c in mine]
    for conversation in mine:
        Conversation.objects.filter(pk=conversation.pk).update(
            last_seq=1, last_message_at=timezone.now()
        )
    theirs = ConversationFactory()
    MessageFactory(conversation=theirs, seq=1, text="their secret")
    return mine, my_messages, theirs


async def test_welcome_and_list_show_only_the_agents_workspace(workspace, agent):
    mine, my_messages, theirs = await _two_workspaces(workspace)
    comm, welcome = await agent_socket(agent.user)
    assert welcome["protocol"] == 2
    assert welcome["agent"] == {
        "id": agent.pk,
        "name": agent.display_name,
        "presence": "online",
        "is_admin": False,
        "teams": [],
    }
    assert {c["id"] for c in welcome["conversations"]} == {c.pk for c in mine}
    assert welcome["last_message_id"] == max(m.pk for m in my_messages)

    await comm.send_json_to({"type": "list"})
    listed = await receive_until(comm, "conversations")
    assert {c["id"] for c in listed["conversations"]} == {c.pk for c in mine}
    assert listed["last_message_id"] == welcome["last_message_id"]
    await comm.disconnect()


async def test_open_own_conversation_returns_history(workspace, agent):
    comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    ack = None
    for i in (1, 2, 3):
        ack = await send_text(visitor, f"m{i}", f"text {i}")
    conversation_id = ack["conversation_id"]

    await comm.send_json_to({"type": "open", "conversation_id": conversation_id, "last_seq": 1})
    history = await receive_until(comm, "history")
    assert history["conversation_id"] == conversation_id
    assert history["conversation"]["id"] == conversation_id
    assert [(m["seq"], m["text"]) for m in history["messages"]] == [(2, "text 2"), (3, "text 3")]
    assert history["has_more"] is False
    await visitor.disconnect()
    await comm.disconnect()


@pytest.mark.parametrize("conversation_id", ["other-workspace", 10**12])
async def test_open_of_another_workspaces_conversation_is_not_found(agent, conversation_id):
    theirs = await sync_to_async(ConversationFactory)()
    await sync_to_async(MessageFactory)(conversation=theirs, seq=1, text="their secret")
    if conversation_id == "other-workspace":
        conversation_id = theirs.pk
    comm, _ = await agent_socket(agent.user)
    await comm.send_json_to({"type": "open", "conversation_id": conversation_id})
    error = await receive_error(comm)
    assert error["code"] == "not_found"
    assert "their secret" not in str(error)
    # No history follows the error: the next frame answers the next ping.
    await comm.send_json_to({"type": "ping"})
    assert (await receive_frame(comm))["type"] == "pong"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "open"}, "missing_field"),
        ({"type": "open", "conversation_id": "12"}, "invalid_field"),
        ({"type": "open", "conversation_id": True}, "invalid_field"),
        ({"type": "message", "client_id": "a1", "text": "x"}, "missing_field"),
        ({"type": "message", "conversation_id": 1, "text": "x"}, "missing_field"),
        ({"type": "resolve", "conversation_id": [1]}, "invalid_field"),
        ({"type": "typing", "conversation_id": 1}, "missing_field"),
        ({"type": "receipt", "conversation_id": 1, "seq": "3"}, "invalid_field"),
        ({"type": "receipt", "conversation_id": 1, "seq": 1, "status": "x"}, "invalid_field"),
    ],
)
async def test_malformed_agent_frames_get_errors(agent, frame, code):
    comm, _ = await agent_socket(agent.user)
    before = await row_counts()
    await comm.send_json_to(frame)
    assert (await receive_error(comm))["code"] == code
    assert await row_counts() == before
    await comm.disconnect()


@pytest.fixture
def other_workspace():
    return WorkspaceFactory(allowed_origins="https://shop.example.com")


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "client_id": "steal-1", "text": "hi from elsewhere"},
        {"type": "resolve"},
        {"type": "receipt", "seq": 1, "status": "read"},
        {"type": "receipt", "seq": 1, "status": "delivered"},
        {"type": "typing", "active": True},
    ],
    ids=["message", "resolve", "receipt-read", "receipt-delivered", "typing"],
)
async def test_writes_to_another_workspaces_conversation_are_refused(agent, other_workspace, frame):
    # A live visitor of the other workspace, with an unread message.
    their_visitor, _ = await visitor_socket(other_workspace)
    ack = await send_text(their_visitor, "v1", "hello?")
    conversation_id = ack["conversation_id"]
    before = await row_counts()
    state_before = await Conversation.objects.values().aget(pk=conversation_id)

    comm, _ = await agent_socket(agent.user)
    await comm.send_json_to({**frame, "conversation_id": conversation_id})
    assert (await receive_error(comm))["code"] == "not_found"

    assert await row_counts() == before
    assert await Conversation.objects.values().aget(pk=conversation_id) == state_before
    message = await Message.objects.aget(pk=ack["message_id"])
    assert (message.delivered_at, message.read_at) == (None, None)
    await assert_silent(their_visitor)
    await their_visitor.disconnect()
    await comm.disconnect()


async def test_agent_never_receives_another_workspaces_events(workspace, agent, other_workspace):
    mine, _ = await agent_socket(agent.user)
    their_agent = await new_agent(workspace=other_workspace)
    theirs, _ = await agent_socket(their_agent.user)
    my_visitor, _ = await visitor_socket(workspace)
    their_visitor, _ = await visitor_socket(other_workspace)

    ack = await send_text(their_visitor, "v1", "their question")
    conversation_id = ack["conversation_id"]
    assert (await receive_message(theirs))["message"]["text"] == "their question"
    # Typing reaches the agents who have the conversation open.
    await theirs.send_json_to({"type": "open", "conversation_id": conversation_id})
    await receive_until(theirs, "history")
    await their_visitor.send_json_to({"type": "typing", "active": True})
    assert (await receive_until(theirs, "typing"))["conversation_id"] == conversation_id
    await reply(theirs, conversation_id, "a1", "their answer")
    await their_visitor.send_json_to({"type": "receipt", "seq": 2})
    assert (await receive_until(theirs, "receipt"))["reader"] == "visitor"
    await theirs.send_json_to({"type": "receipt", "conversation_id": conversation_id, "seq": 1})
    await theirs.send_json_to({"type": "resolve", "conversation_id": conversation_id})
    resolved = await receive_until(theirs, "conversation")
    while resolved["conversation"]["status"] != "resolved":
        resolved = await receive_until(theirs, "conversation")
    await theirs.disconnect()  # their workspace goes offline: only their visitors hear it
    assert (await receive_until(their_visitor, "availability"))["agents_online"] is False

    await assert_silent(mine)
    await assert_silent(my_visitor)
    for comm in (mine, my_visitor, their_visitor):
        await comm.disconnect()


# --- resolve and reopen ------------------------------------------------------------------------


async def test_resolve_tells_visitor_and_agents_and_a_new_message_reopens(workspace, agent):
    colleague = await new_agent(workspace=workspace)
    comm, _ = await agent_socket(agent.user)
    other, _ = await agent_socket(colleague.user)
    visitor, _ = await visitor_socket(workspace)
    ack = await send_text(visitor, "v1", "help")
    conversation_id = ack["conversation_id"]

    await comm.send_json_to({"type": "resolve", "conversation_id": conversation_id})
    at_visitor = await receive_until(visitor, "conversation")
    while at_visitor["conversation"]["status"] == "open":  # the assignment, before it
        at_visitor = await receive_until(visitor, "conversation")
    assert at_visitor["conversation"]["id"] == conversation_id
    assert at_visitor["conversation"]["status"] == "resolved"
    # The assignee's console lists it and hears of it; the colleague's inbox never showed
    # another agent's conversation, so it hears nothing (docs/protocol.md, conversation).
    assigned_to = (await Conversation.objects.aget(pk=conversation_id)).assignee_id
    listing, not_listing = (comm, other) if assigned_to == agent.pk else (other, comm)
    frame = await receive_until(listing, "conversation")
    while frame["conversation"]["status"] == "open":  # the assignment, before it
        frame = await receive_until(listing, "conversation")
    assert frame["conversation"]["id"] == conversation_id
    assert frame["conversation"]["status"] == "resolved"
    assert frame["conversation"]["resolved_at"]
    await assert_none_of(not_listing, "conversation")
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert conversation.status == ConversationStatus.RESOLVED
    assert conversation.resolved_at is not None

    again = await send_text(visitor, "v2", "one more thing")
    assert (again["conversation_id"], again["seq"]) == (conversation_id, 2)
    # The assignee hears of it (round-robin gave it to one of the two).
    assignee = (await Conversation.objects.aget(pk=conversation_id)).assignee_id
    assignee_comm = comm if assignee == agent.pk else other
    incoming = await receive_message(assignee_comm)
    while incoming["message"]["client_id"] != "v2":
        incoming = await receive_message(assignee_comm)
    assert incoming["conversation"]["status"] == "open"
    assert incoming["conversation"]["resolved_at"] is None
    await conversation.arefresh_from_db()
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.resolved_at is None
    for c in (comm, other, visitor):
        await c.disconnect()


# --- read receipts -----------------------------------------------------------------------------


async def test_agent_read_receipt_reaches_visitor_and_clears_unread(workspace, agent):
    comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    await send_text(visitor, "v1", "one")
    ack = await send_text(visitor, "v2", "two")
    conversation_id = ack["conversation_id"]
    assert (await receive_message(comm))["conversation"]["unread"] == 1
    assert (await receive_message(comm))["conversation"]["unread"] == 2

    # Delivered first: the visitor hears it, nothing is read yet.
    await comm.send_json_to(
        {"type": "receipt", "conversation_id": conversation_id, "seq": 2, "status": "delivered"}
    )
    receipt = await receive_until(visitor, "receipt")
    assert receipt == {
        "type": "receipt",
        "conversation_id": conversation_id,
        "reader": "agent",
        "seq": 2,
        "status": "delivered",
    }
    assert await Message.objects.filter(delivered_at__isnull=True).acount() == 0
    assert await Message.objects.filter(read_at__isnull=False).acount() == 0

    await comm.send_json_to({"type": "receipt", "conversation_id": conversation_id, "seq": 2})
    receipt = await receive_until(visitor, "receipt")
    assert (receipt["reader"], receipt["seq"], receipt["status"]) == ("agent", 2, "read")
    updated = await receive_until(comm, "conversation")
    assert (updated["conversation"]["id"], updated["conversation"]["unread"]) == (
        conversation_id,
        0,
    )
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert conversation.unread_by_agent == 0
    assert await Message.objects.filter(read_at__isnull=True).acount() == 0
    for c in (comm, visitor):
        await c.disconnect()


async def test_visitor_read_receipt_reaches_agent(workspace, agent):
    comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    ack = await send_text(visitor, "v1", "question")
    conversation_id = ack["conversation_id"]
    answer = await reply(comm, conversation_id, "a1", "answer")
    await receive_message(visitor, sender="agent")

    await visitor.send_json_to({"type": "receipt", "seq": answer["seq"]})
    receipt = await receive_until(comm, "receipt")
    assert receipt == {
        "type": "receipt",
        "conversation_id": conversation_id,
        "reader": "visitor",
        "seq": 2,
        "status": "read",
    }
    stored = await Message.objects.aget(pk=answer["message_id"])
    assert stored.read_at is not None and stored.delivered_at is not None
    # The visitor's own message is not marked read by the visitor's receipt.
    own = await Message.objects.aget(pk=ack["message_id"])
    assert own.read_at is None
    for c in (comm, visitor):
        await c.disconnect()


# --- typing ------------------------------------------------------------------------------------


async def test_typing_reaches_the_right_people(workspace, agent):
    colleague = await new_agent(workspace=workspace)
    comm, _ = await agent_socket(agent.user)
    other, _ = await agent_socket(colleague.user)
    alice, _ = await visitor_socket(workspace)
    bob, _ = await visitor_socket(workspace)
    alice_conversation = (await send_text(alice, "a1", "hi"))["conversation_id"]
    await send_text(bob, "b1", "hello")
    # Typing goes to the agents who have the conversation open: both open Alice's.
    for agent_comm in (comm, other):
        await agent_comm.send_json_to({"type": "open", "conversation_id": alice_conversation})
        await receive_until(agent_comm, "history")

    # Agent -> only that conversation's visitor (and the other agents, not the typist).
    await comm.send_json_to(
        {"type": "typing", "conversation_id": alice_conversation, "active": True}
    )
    assert await receive_until(alice, "typing") == {
        "type": "typing",
        "conversation_id": alice_conversation,
        "sender": "agent",
        "agent_name": agent.display_name,
        "active": True,
    }
    at_colleague = await receive_until(other, "typing")
    assert (at_colleague["sender"], at_colleague["conversation_id"]) == (
        "agent",
        alice_conversation,
    )
    await assert_none_of(bob, "typing")  # (his assignment's frame may come)
    await assert_none_of(comm, "typing")  # (message and assignment frames may still come)

    # Visitor -> the agents who have it open, not other visitors nor the typist.
    await alice.send_json_to({"type": "typing", "active": False})
    for agent_comm in (comm, other):
        frame = await receive_until(agent_comm, "typing")
        assert (frame["sender"], frame["conversation_id"], frame["active"]) == (
            "visitor",
            alice_conversation,
            False,
        )
    await assert_silent(bob)
    await assert_silent(alice)
    for c in (comm, other, alice, bob):
        await c.disconnect()


# --- availability ------------------------------------------------------------------------------


async def test_visitors_hear_when_the_first_agent_comes_and_the_last_goes(workspace, agent):
    visitor, welcome = await visitor_socket(workspace)
    assert welcome["agents_online"] is False

    first, _ = await agent_socket(agent.user)
    assert await receive_until(visitor, "availability") == {
        "type": "availability",
        "agents_online": True,
        "open_now": True,
    }
    late_visitor, late_welcome = await visitor_socket(workspace)
    assert late_welcome["agents_online"] is True

    colleague = await new_agent(workspace=workspace)
    second, _ = await agent_socket(colleague.user)
    away = await new_agent(workspace=workspace, presence=Presence.AWAY)
    away_comm, _ = await agent_socket(away.user)
    # disconnect() returns once the consumer has finished (its goodbye is committed).
    await first.disconnect(timeout=5)
    await away_comm.disconnect(timeout=5)
    await assert_silent(visitor)  # still someone online: no change to announce

    await second.disconnect(timeout=5)
    for v in (visitor, late_visitor):
        assert await receive_until(v, "availability") == {
            "type": "availability",
            "agents_online": False,
            "open_now": True,
        }
    newcomer, new_welcome = await visitor_socket(workspace)
    assert new_welcome["agents_online"] is False
    assert await AgentConnection.objects.acount() == 0
    for v in (visitor, late_visitor, newcomer):
        await v.disconnect()


async def test_an_away_agent_does_not_count_as_online(workspace):
    away = await new_agent(workspace=workspace, presence=Presence.AWAY)
    comm, _ = await agent_socket(away.user)
    visitor, welcome = await visitor_socket(workspace)
    assert welcome["agents_online"] is False
    ack = await send_text(visitor, "v1")
    conversation = await Conversation.objects.aget(pk=ack["conversation_id"])
    assert conversation.assignee_id is None
    await visitor.disconnect()
    await comm.disconnect()


# --- assignment --------------------------------------------------------------------------------


async def test_new_conversations_alternate_between_online_agents(workspace, agent):
    colleague = await new_agent(workspace=workspace)
    comms = [(await agent_socket(a.user))[0] for a in (agent, colleague)]
    assignees = []
    for i in range(4):
        visitor, _ = await visitor_socket(workspace)
        ack = await send_text(visitor, f"v{i}")
        conversation = await Conversation.objects.aget(pk=ack["conversation_id"])
        assignees.append(conversation.assignee_id)
        await visitor.disconnect()
    first, second = assignees[:2]
    assert {first, second} == {agent.pk, colleague.pk}
    assert assignees == [first, second, first, second]
    for c in comms:
        await c.disconnect()


async def test_replying_takes_an_unassigned_conversation_and_sets_first_response(workspace, agent):
    visitor, _ = await visitor_socket(workspace)
    ack = await send_text(visitor, "v1", "anyone there?")  # nobody online: unassigned
    conversation_id = ack["conversation_id"]
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert (conversation.assignee_id, conversation.first_response_at) == (None, None)

    # Away: connecting does not take the queue's head; replying does.
    await AgentProfile.objects.filter(pk=agent.pk).aupdate(presence="away")
    comm, welcome = await agent_socket(agent.user)
    listed = {c["id"]: c for c in welcome["conversations"]}
    assert listed[conversation_id]["assignee"] is None
    await reply(comm, conversation_id, "a1", "I am")
    await conversation.arefresh_from_db()
    assert conversation.assignee_id == agent.pk
    first_response = conversation.first_response_at
    assert first_response is not None

    # A colleague's later reply neither takes it over nor moves the first response.
    colleague = await new_agent(workspace=workspace)
    other, _ = await agent_socket(colleague.user)
    await reply(other, conversation_id, "b1", "me too")
    await conversation.arefresh_from_db()
    assert conversation.assignee_id == agent.pk
    assert conversation.first_response_at == first_response
    senders = [
        (m.sender_kind, m.sender_agent_id)
        async for m in Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    ]
    assert senders == [
        (SenderKind.VISITOR, None),
        (SenderKind.AGENT, agent.pk),
        (SenderKind.AGENT, colleague.pk),
    ]
    for c in (visitor, comm, other):
        await c.disconnect()


async def test_agent_message_is_acked_after_commit_and_retry_is_stored_once(workspace, agent):
    comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    conversation_id = (await send_text(visitor, "v1"))["conversation_id"]
    ack = await reply(comm, conversation_id, "a1", "first")
    assert await Message.objects.filter(pk=ack["message_id"], seq=2, text="first").aexists()
    again = await reply(comm, conversation_id, "a1", "first, retried")
    assert (again["message_id"], again["seq"]) == (ack["message_id"], 2)
    assert await Message.objects.filter(conversation_id=conversation_id).acount() == 2
    assert (await receive_message(visitor, sender="agent"))["message"]["text"] == "first"
    await assert_silent(visitor)
    for c in (comm, visitor):
        await c.disconnect()


# --- heartbeats --------------------------------------------------------------------------------


async def test_agent_pong_has_last_message_id_and_touches_the_connection(
    workspace, agent, other_workspace
):
    comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    ack = await send_text(visitor, "v1")
    elsewhere, _ = await visitor_socket(other_workspace)
    await send_text(elsewhere, "x1")  # a newer message id, in another workspace

    long_ago = timezone.now() - timedelta(seconds=30)
    await AgentConnection.objects.filter(agent=agent).aupdate(last_seen_at=long_ago)
    pong = await ping(comm)
    assert pong == {"type": "pong", "last_message_id": ack["message_id"]}
    connection = await AgentConnection.objects.aget(agent=agent)
    assert connection.last_seen_at > long_ago + timedelta(seconds=25)
    for c in (comm, visitor, elsewhere):
        await c.disconnect()


async def conversation_frame(comm, conversation_id: int) -> dict:
    """The next ``conversation`` frame about ``conversation_id`` (others are passed over)."""
    frame = await receive_until(comm, "conversation")
    while frame["conversation"]["id"] != conversation_id:
        frame = await receive_until(comm, "conversation")
    return frame


async def test_conversation_frames_go_where_the_console_list_shows_them(workspace):
    """A console hears of a conversation's change when its list (view, status) holds the
    conversation, or held it and must drop it, or has it open; not otherwise."""

    @sync_to_async
    def setup():
        admin = AgentFactory(workspace=workspace, is_workspace_admin=True)
        alice, bob = AgentFactory(workspace=workspace), AgentFactory(workspace=workspace)
        waiting = ConversationFactory(visitor=VisitorFactory(workspace=workspace))
        bobs = ConversationFactory(visitor=VisitorFactory(workspace=workspace), assignee=bob)
        return admin, alice, bob, waiting, bobs

    admin, alice, bob, waiting, bobs = await setup()
    admin_comm, admin_welcome = await agent_socket(admin.user)
    alice_comm, alice_welcome = await agent_socket(alice.user)
    assert {c["id"] for c in admin_welcome["conversations"]} == {waiting.pk, bobs.pk}
    assert {c["id"] for c in alice_welcome["conversations"]} == {waiting.pk}  # inbox

    # Bob resolves his own conversation: the admin's "all" list shows it, Alice's inbox not.
    await sync_to_async(services.conversation_resolve)(agent=bob, conversation_id=bobs.pk)
    changed = await conversation_frame(admin_comm, bobs.pk)
    assert changed["conversation"]["status"] == "resolved"
    await assert_none_of(alice_comm, "conversation")

    # The waiting one goes to Bob: Alice's list held it, so she hears of it (and drops it)...
    await sync_to_async(services.conversation_transfer)(
        agent=admin, conversation_id=waiting.pk, to_agent_id=bob.pk
    )
    for comm in (admin_comm, alice_comm):
        frame = await conversation_frame(comm, waiting.pk)
        assert frame["conversation"]["assignee"]["id"] == bob.pk
    # ...and of nothing that happens to it afterwards.
    await sync_to_async(services.conversation_resolve)(agent=bob, conversation_id=waiting.pk)
    await conversation_frame(admin_comm, waiting.pk)
    await assert_none_of(alice_comm, "conversation")

    # Open on her screen, a conversation she may see but not list ("mine") still updates.
    await alice_comm.send_json_to({"type": "list", "view": "mine"})
    assert (await receive_until(alice_comm, "conversations"))["conversations"] == []
    await alice_comm.send_json_to({"type": "open", "conversation_id": waiting.pk})
    await receive_until(alice_comm, "history")
    await sync_to_async(services.conversation_status_set)(
        agent=bob, conversation_id=waiting.pk, status=ConversationStatus.OPEN
    )
    await conversation_frame(alice_comm, waiting.pk)

    # Asking for a view again starts over: "unassigned" shows neither, so nothing comes.
    await alice_comm.send_json_to({"type": "list", "view": "unassigned"})
    await receive_until(alice_comm, "conversations")
    await sync_to_async(services.conversation_status_set)(
        agent=bob, conversation_id=bobs.pk, status=ConversationStatus.OPEN
    )
    await conversation_frame(admin_comm, bobs.pk)
    await assert_none_of(alice_comm, "conversation")
    for comm in (admin_comm, alice_comm):
        await comm.disconnect()


async def test_a_console_hears_events_while_its_message_waits_for_the_database(workspace, agent):
    """A socket's message waits for its commit without holding up what the socket hears:
    the console gets the visitor's typing while its reply's batch is blocked, and the ack
    once the batch commits."""
    import threading

    from django.db import connection, transaction

    comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    conversation_id = (await send_text(visitor, "v1", "help"))["conversation_id"]
    await comm.send_json_to({"type": "open", "conversation_id": conversation_id})
    await receive_until(comm, "history")

    locked, release = threading.Event(), threading.Event()

    def hold_the_conversation_row() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=conversation_id)
                locked.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_conversation_row)
    holder.start()
    try:
        assert await sync_to_async(locked.wait)(10)
        await comm.send_json_to(
            {"type": "message", "conversation_id": conversation_id, "client_id": "a1"}
            | {"text": "one moment"}
        )
        await visitor.send_json_to({"type": "typing", "active": True})
        typing = await receive_until(comm, "typing")  # the reply is not stored yet
        assert (typing["sender"], typing["conversation_id"]) == ("visitor", conversation_id)
        assert not await Message.objects.filter(client_id="a1").aexists()
    finally:
        release.set()
        await sync_to_async(holder.join)(20)
    ack = await receive_until(comm, "ack")
    assert ack["client_id"] == "a1"
    assert await Message.objects.filter(pk=ack["message_id"], client_id="a1").aexists()
    for c in (comm, visitor):
        await c.disconnect()
