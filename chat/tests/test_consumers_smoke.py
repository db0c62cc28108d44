import pytest

from chat.models import Message
from chat.tests.sockets import agent_socket, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_visitor_message_reaches_agent_and_reply_reaches_visitor(workspace, agent):
    agent_comm, welcome = await agent_socket(agent.user)
    assert welcome["conversations"] == []
    visitor, vwelcome = await visitor_socket(workspace)
    assert vwelcome["agents_online"] is True

    await visitor.send_json_to({"type": "message", "client_id": "m1", "text": "Hi <b>there</b>"})
    ack = await receive_until(visitor, "ack")
    assert ack["seq"] == 1
    incoming = await receive_until(agent_comm, "message")
    assert incoming["message"]["text"] == "Hi <b>there</b>"
    assert incoming["conversation"]["assignee"]["id"] == agent.pk

    await agent_comm.send_json_to(
        {
            "type": "message",
            "conversation_id": ack["conversation_id"],
            "client_id": "a1",
            "text": "Hello!",
        }
    )
    reply = await receive_until(visitor, "message")
    while reply["message"]["sender"] != "agent":
        reply = await receive_until(visitor, "message")
    assert reply["message"]["text"] == "Hello!"
    assert reply["message"]["seq"] == 2
    assert await Message.objects.filter(conversation_id=ack["conversation_id"]).acount() == 2
    await visitor.disconnect()
    await agent_comm.disconnect()
