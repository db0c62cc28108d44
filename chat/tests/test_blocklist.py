"""The blocklist (chat.blocklist): matching, the block service, and enforcement everywhere."""

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import blocklist, services
from chat.errors import ChatError
from chat.models import BlockEntry, Conversation, ConversationEvent, EventKind, Message, Visitor
from chat.tests.factories import ConversationFactory, VisitorFactory
from chat.tests.sockets import (
    agent_socket,
    receive_error,
    receive_until,
    row_counts,
    same_visitor,
    visitor_communicator,
    visitor_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)

IP = "81.2.69.160"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    blocklist.cache_clear()
    yield
    blocklist.cache_clear()


def block(workspace, **fields) -> BlockEntry:
    return BlockEntry.objects.create(workspace=workspace, **fields)


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "ip", "blocked"),
    [
        ("203.0.113.7", "203.0.113.7", True),
        ("203.0.113.7", "203.0.113.8", False),
        ("203.0.113.0/24", "203.0.113.200", True),
        ("203.0.113.0/24", "203.0.114.1", False),
        ("203.0.113.9/24", "203.0.113.1", True),  # host bits set: taken as the /24
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("2001:db8::1", "2001:db8::1", True),
        ("203.0.113.0/24", "::ffff:203.0.113.5", True),  # IPv4-mapped IPv6
        ("0.0.0.0/0", "2001:db8::1", False),  # an IPv4 range never holds an IPv6 address
        ("203.0.113.0/24", None, False),
        ("203.0.113.0/24", "not an ip", False),
    ],
)
def test_address_blocks(workspace, network, ip, blocked):
    block(workspace, ip_network=network)
    assert blocklist.visitor_is_blocked(workspace.pk, None, ip) is blocked


def test_visitor_id_block_and_other_workspaces(workspace):
    visitor, other = VisitorFactory(workspace=workspace), VisitorFactory(workspace=workspace)
    foreign = WorkspaceFactory()
    block(workspace, visitor=visitor)
    block(foreign, ip_network="0.0.0.0/0")
    block(foreign, visitor=other)  # a row naming another workspace's visitor: not ours
    assert blocklist.visitor_is_blocked(workspace.pk, visitor.pk, None)
    assert not blocklist.visitor_is_blocked(workspace.pk, other.pk, IP)
    assert blocklist.visitor_is_blocked(foreign.pk, None, IP)


def test_cache_costs_no_query_and_a_new_block_applies_at_once(workspace, django_assert_num_queries):
    blocklist.visitor_is_blocked(workspace.pk, 1, IP)
    with django_assert_num_queries(0):
        assert not blocklist.visitor_is_blocked(workspace.pk, 1, IP)
    block(workspace, ip_network=IP)  # this process: the signal clears the copy
    assert blocklist.visitor_is_blocked(workspace.pk, 1, IP)


def test_other_processes_see_a_block_within_the_cache_time(workspace, monkeypatch):
    assert not blocklist.visitor_is_blocked(workspace.pk, None, IP)
    # Another process wrote the block: no signal here, so only the expiry reloads it.
    BlockEntry.objects.bulk_create([BlockEntry(workspace=workspace, ip_network=IP)])
    assert not blocklist.visitor_is_blocked(workspace.pk, None, IP)
    now = blocklist.time.monotonic()
    monkeypatch.setattr(blocklist.time, "monotonic", lambda: now + blocklist.CACHE_SECONDS + 0.1)
    assert blocklist.visitor_is_blocked(workspace.pk, None, IP)


def test_model_clean():
    with pytest.raises(ValidationError):
        BlockEntry(ip_network="", visitor=None).clean()
    with pytest.raises(ValidationError):
        BlockEntry(ip_network="999.1.1.1").full_clean(exclude=["workspace", "visitor"])


# --- the service ----------------------------------------------------------------------------


def test_block_by_visitor_records_an_event(agent):
    conversation = ConversationFactory(
        workspace=agent.workspace, visitor__workspace=agent.workspace
    )
    entry, created = blocklist.visitor_block(
        agent=agent, conversation_id=conversation.pk, scope="visitor", reason="  spam \n bot "
    )
    assert created and entry.visitor_id == conversation.visitor_id and entry.reason == "spam bot"
    assert entry.created_by == agent and entry.workspace_id == agent.workspace_id
    event = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.BLOCKED)
    assert event.actor == agent and event.text == "spam bot"
    assert event.data == {"scope": "visitor", "block_id": entry.pk}
    again, created = blocklist.visitor_block(agent=agent, conversation_id=conversation.pk)
    assert again == entry and not created
    assert BlockEntry.objects.count() == 1
    assert ConversationEvent.objects.filter(kind=EventKind.BLOCKED).count() == 1


def test_block_by_ip(agent):
    conversation = ConversationFactory(
        workspace=agent.workspace,
        visitor__workspace=agent.workspace,
        visitor__ip_address="2001:db8::7",
    )
    entry, _ = blocklist.visitor_block(agent=agent, conversation_id=conversation.pk, scope="ip")
    assert entry.ip_network == "2001:db8::7/128" and entry.visitor_id is None
    assert blocklist.visitor_is_blocked(agent.workspace_id, None, "2001:db8::7")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"scope": "everything"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"scope": ["ip"]}, "invalid_scope"),
        ({"reason": 5}, "invalid_reason"),
        ({"reason": "x" * 301}, "invalid_reason"),
        ({"conversation_id": "foreign"}, "not_found"),
        ({"conversation_id": 10**9}, "not_found"),
        ({"conversation_id": None}, "not_found"),
        ({"scope": "ip", "conversation_id": "no_ip"}, "no_ip_address"),
    ],
)
def test_bad_block_input_changes_nothing(agent, kwargs, code):
    mine = ConversationFactory(workspace=agent.workspace, visitor__workspace=agent.workspace)
    foreign = ConversationFactory()
    no_ip = ConversationFactory(workspace=agent.workspace, visitor__workspace=agent.workspace)
    ids = {"foreign": foreign.pk, "no_ip": no_ip.pk}
    kwargs = {"conversation_id": mine.pk, "scope": "visitor"} | kwargs
    kwargs["conversation_id"] = ids.get(kwargs["conversation_id"], kwargs["conversation_id"])
    with pytest.raises(ChatError) as exc:
        blocklist.visitor_block(agent=agent, **kwargs)
    assert exc.value.code == code
    assert not BlockEntry.objects.exists()
    assert not ConversationEvent.objects.exists()


def test_store_path_refuses_a_blocked_visitor(workspace):
    visitor = VisitorFactory(workspace=workspace, ip_address="203.0.113.5")
    block(workspace, ip_network="203.0.113.0/24")
    for send in (
        lambda: services.visitor_message_send(visitor=visitor, client_id="c1", text="hi"),
        lambda: services.visitor_leave_message(
            visitor=visitor, client_id="c2", name="N", email="n@example.com", text="hi"
        ),
    ):
        with pytest.raises(ChatError) as exc:
            send()
        assert exc.value.code == "blocked"
    assert not Conversation.objects.exists() and not Message.objects.exists()
    visitor.refresh_from_db()
    assert visitor.name == "" and visitor.email == ""


# --- sockets ----------------------------------------------------------------------------------


async def test_blocked_visitor_cannot_reconnect(workspace):
    comm, welcome = await visitor_socket(workspace)
    await comm.disconnect()
    visitor = await sync_to_async(Visitor.objects.get)(public_id=welcome["visitor_id"])
    await sync_to_async(block)(workspace, visitor=visitor)
    comm = visitor_communicator(workspace.widget_key)
    assert (await comm.connect(timeout=5))[0]
    await comm.send_json_to({"type": "hello", **same_visitor(welcome)})
    assert (await receive_error(comm))["code"] == "blocked"
    assert (await comm.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4403}
    await comm.disconnect()


async def test_blocked_address_refused_before_any_row_is_written(workspace):
    await sync_to_async(block)(workspace, ip_network="81.2.69.0/24")
    before = await row_counts()
    comm = visitor_communicator(workspace.widget_key, client=("81.2.69.160", 1))
    assert (await comm.connect(timeout=5))[0]
    await comm.send_json_to({"type": "hello", "page": {"url": "https://shop.example.com/"}})
    assert (await receive_error(comm))["code"] == "blocked"
    assert (await comm.receive_output(timeout=5))["code"] == 4403
    await comm.disconnect()
    assert await row_counts() == before
    # Another address is welcome.
    other, _ = await visitor_socket(workspace, client=("81.2.70.1", 1))
    await other.disconnect()


async def test_live_kill_of_open_sockets_and_the_agent_frame(workspace):
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    comm, welcome = await visitor_socket(workspace)
    tab2, _ = await visitor_socket(workspace, hello=same_visitor(welcome))
    bystander, _ = await visitor_socket(workspace, client=("81.2.69.161", 1))
    await comm.send_json_to({"type": "message", "client_id": "m1", "text": "hi"})
    ack = await receive_until(comm, "ack")
    agent_comm, _ = await agent_socket(agent.user)
    await agent_comm.send_json_to(
        {"type": "block", "conversation_id": ack["conversation_id"], "reason": "abuse"}
    )
    reply = await receive_until(agent_comm, "blocked")
    assert reply == {
        "type": "blocked",
        "conversation_id": ack["conversation_id"],
        "scope": "visitor",
        "ip_network": None,
        "created": True,
    }
    for sock in (comm, tab2):
        error = await receive_until(sock, "error")
        assert error["code"] == "blocked"
        assert (await sock.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4403}
        await sock.disconnect()
    # An address block reaches every socket from that address, only those.
    await bystander.send_json_to({"type": "ping"})
    assert (await receive_until(bystander, "pong"))["type"] == "pong"
    await bystander.disconnect()
    await agent_comm.disconnect()


async def test_address_block_kills_sockets_from_that_address(workspace):
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    comm, _ = await visitor_socket(workspace, client=("203.0.113.9", 1))
    other, _ = await visitor_socket(workspace, client=("203.0.113.10", 1))
    await comm.send_json_to({"type": "message", "client_id": "m1", "text": "hi"})
    ack = await receive_until(comm, "ack")
    agent_comm, _ = await agent_socket(agent.user)
    await agent_comm.send_json_to(
        {"type": "block", "conversation_id": ack["conversation_id"], "scope": "ip"}
    )
    assert (await receive_until(agent_comm, "blocked"))["ip_network"] == "203.0.113.9/32"
    assert (await receive_until(comm, "error"))["code"] == "blocked"
    await comm.disconnect()
    await other.send_json_to({"type": "ping"})
    await receive_until(other, "pong")
    await other.disconnect()
    await agent_comm.disconnect()


async def test_agent_block_frame_bad_input(workspace):
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    foreign = await sync_to_async(ConversationFactory)()
    agent_comm, _ = await agent_socket(agent.user)
    for frame, code in [
        ({"type": "block"}, "missing_field"),
        ({"type": "block", "conversation_id": "1"}, "invalid_field"),
        ({"type": "block", "conversation_id": foreign.pk}, "not_found"),
        ({"type": "block", "conversation_id": foreign.pk, "scope": "all"}, "invalid_scope"),
    ]:
        await agent_comm.send_json_to(frame)
        assert (await receive_until(agent_comm, "error"))["code"] == code, frame
    await agent_comm.disconnect()
    assert not await sync_to_async(BlockEntry.objects.exists)()


# --- uploads ----------------------------------------------------------------------------------

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def _upload(client, workspace, visitor, **extra):
    return client.post(
        "/widget/uploads/",
        {
            "key": workspace.widget_key,
            "visitor_id": str(visitor.public_id),
            "visitor_token": services.visitor_token(visitor=visitor),
            "file": SimpleUploadedFile("a.png", PNG, content_type="image/png"),
        },
        HTTP_ORIGIN="https://shop.example.com",
        **extra,
    )


def test_upload_refused_for_blocked_visitor_and_address(client, workspace):
    visitor = VisitorFactory(workspace=workspace)
    assert _upload(client, workspace, visitor).status_code == 201
    block(workspace, visitor=visitor)
    response = _upload(client, workspace, visitor)
    assert response.status_code == 403 and response.json()["error"]["code"] == "blocked"
    other = VisitorFactory(workspace=workspace)
    block(workspace, ip_network="198.51.100.0/24")
    response = _upload(client, workspace, other, REMOTE_ADDR="198.51.100.20")
    assert response.status_code == 403 and response.json()["error"]["code"] == "blocked"
    assert _upload(client, workspace, other, REMOTE_ADDR="198.51.101.20").status_code == 201
