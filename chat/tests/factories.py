import uuid

import factory
from django.utils import timezone

from accounts.tests.factories import WorkspaceFactory
from chat.models import Conversation, Message, SenderKind, Visitor


class VisitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visitor

    workspace = factory.SubFactory(WorkspaceFactory)
    last_seen_at = factory.LazyFunction(timezone.now)


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    visitor = factory.SubFactory(VisitorFactory)
    workspace = factory.SelfAttribute("visitor.workspace")


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    workspace = factory.SelfAttribute("conversation.workspace")
    seq = factory.Sequence(lambda n: n + 1)
    sender_kind = SenderKind.VISITOR
    client_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    text = "hello"
