"""Chat consumers written the way the Channels tutorial writes them.

Synchronous ``WebsocketConsumer``, one ``Model.objects.create`` per message, then
``async_to_sync(channel_layer.group_send)``. Same frames as the product's protocol, so
the same load generator drives it.
"""

import json
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from django.conf import settings

from .models import Message, Visitor


def message_data(message: Message, agent_name=None) -> dict:
    return {
        "id": message.id,
        "conversation_id": message.visitor_id,
        "seq": message.id,
        "sender": message.sender,
        "agent_name": agent_name,
        "client_id": message.client_id,
        "text": message.text,
        "attachment": None,
        "created_at": message.created_at.isoformat(),
    }


def ack(message: Message) -> str:
    return json.dumps(
        {
            "type": "ack",
            "client_id": message.client_id,
            "conversation_id": message.visitor_id,
            "message_id": message.id,
            "seq": message.id,
            "created_at": message.created_at.isoformat(),
        }
    )


class VisitorConsumer(WebsocketConsumer):
    def connect(self):
        query = parse_qs(self.scope["query_string"].decode())
        self.agents = int((query.get("agents") or ["0"])[0] or 0)
        self.visitor = None
        self.accept()

    def disconnect(self, close_code):
        if self.visitor is not None:
            async_to_sync(self.channel_layer.group_discard)(
                f"visitor_{self.visitor.id}", self.channel_name
            )

    def receive(self, text_data=None, bytes_data=None):
        data = json.loads(text_data)
        kind = data.get("type")
        if kind == "ping":
            self.send(text_data=json.dumps({"type": "pong"}))
        elif kind == "hello":
            self.visitor = Visitor.objects.create()
            async_to_sync(self.channel_layer.group_add)(
                f"visitor_{self.visitor.id}", self.channel_name
            )
            self.send(
                text_data=json.dumps(
                    {
                        "type": "welcome",
                        "protocol": 2,
                        "visitor_id": str(self.visitor.public_id),
                        "visitor_token": "naive",
                        "conversation": None,
                        "agents_online": True,
                    }
                )
            )
        elif kind == "message" and self.visitor is not None:
            message = Message.objects.create(
                visitor=self.visitor,
                sender="visitor",
                client_id=data["client_id"],
                text=data.get("text", ""),
            )
            self.send(text_data=ack(message))
            conversation = {"id": self.visitor.id, "status": "open", "assignee": None}
            group = "agents"
            if settings.NAIVE_FANOUT == "one" and self.agents:
                k = self.visitor.id % self.agents
                conversation["assignee"] = {"id": k, "name": f"agent {k}"}
                group = f"agent_{k}"
            data = message_data(message)
            async_to_sync(self.channel_layer.group_send)(
                group, {"type": "chat.message", "message": data, "conversation": conversation}
            )
            async_to_sync(self.channel_layer.group_send)(
                f"visitor_{self.visitor.id}", {"type": "chat.message", "message": data}
            )
        else:
            self.send(text_data=json.dumps({"type": "error", "code": "unknown_type"}))

    def chat_message(self, event):
        self.send(text_data=json.dumps({"type": "message", "message": event["message"]}))


class AgentConsumer(WebsocketConsumer):
    def connect(self):
        query = parse_qs(self.scope["query_string"].decode())
        given = (query.get("i") or [""])[0]
        self.agent_id = int(given) if given.isdigit() else 0
        self.group = f"agent_{self.agent_id}" if settings.NAIVE_FANOUT == "one" else "agents"
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()

    def disconnect(self, close_code):
        async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive(self, text_data=None, bytes_data=None):
        data = json.loads(text_data)
        kind = data.get("type")
        if kind == "ping":
            self.send(text_data=json.dumps({"type": "pong"}))
        elif kind == "hello":
            self.send(
                text_data=json.dumps(
                    {
                        "type": "welcome",
                        "protocol": 2,
                        "agent": {"id": self.agent_id, "name": f"agent {self.agent_id}"},
                        "conversations": [],
                        "last_message_id": 0,
                    }
                )
            )
        elif kind == "message":
            name = f"agent {self.agent_id}"
            message = Message.objects.create(
                visitor_id=data["conversation_id"],
                sender="agent",
                client_id=data["client_id"],
                text=data.get("text", ""),
            )
            self.send(text_data=ack(message))
            async_to_sync(self.channel_layer.group_send)(
                f"visitor_{message.visitor_id}",
                {"type": "chat.message", "message": message_data(message, name)},
            )
        else:
            self.send(text_data=json.dumps({"type": "error", "code": "unknown_type"}))

    def chat_message(self, event):
        self.send(
            text_data=json.dumps(
                {
                    "type": "message",
                    "message": event["message"],
                    "conversation": event["conversation"],
                }
            )
        )
