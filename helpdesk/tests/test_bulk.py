"""helpdesk.bulk.bulk_update_rows: one UPDATE … FROM (VALUES …) that writes what it is given."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import AgentFactory
from chat.models import Conversation, ConversationStatus
from chat.tests.factories import ConversationFactory
from helpdesk.bulk import bulk_update_rows

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_nulls_and_quotes_included(workspace):
    agent = AgentFactory(workspace=workspace)
    rows = [
        ConversationFactory(workspace=workspace, visitor__workspace=workspace) for _ in range(4)
    ]
    bystander = ConversationFactory(workspace=workspace, visitor__workspace=workspace)
    now = timezone.now()
    for n, c in enumerate(rows):
        c.last_seq = 10 + n
        c.last_message_at = now - timedelta(minutes=n)
        c.last_message_preview = ["it's", 'say "hi"', "", "日本語 ok; DROP TABLE x"][n]
        c.assignee = agent if n % 2 else None  # a column with NULLs and ids
        c.snoozed_until = None  # a column of NULLs only
        c.status = ConversationStatus.PENDING if n == 3 else ConversationStatus.OPEN
    fields = ["last_seq", "last_message_at", "last_message_preview", "assignee", "snoozed_until"]
    with CaptureQueriesContext(connection) as ctx:
        assert bulk_update_rows(rows, fields + ["status"]) == 4
    assert len(ctx.captured_queries) == 1
    for n, c in enumerate(rows):
        stored = Conversation.objects.get(pk=c.pk)
        assert stored.last_seq == 10 + n
        assert stored.last_message_at == now - timedelta(minutes=n)
        assert stored.last_message_preview == c.last_message_preview
        assert stored.assignee_id == (agent.pk if n % 2 else None)
        assert stored.snoozed_until is None
        assert stored.status == c.status
    untouched = Conversation.objects.get(pk=bystander.pk)
    assert (untouched.last_seq, untouched.last_message_preview) == (
        bystander.last_seq,
        bystander.last_message_preview,
    )


def test_nothing_to_write_is_no_query(workspace):
    c = ConversationFactory(workspace=workspace, visitor__workspace=workspace)
    with CaptureQueriesContext(connection) as ctx:
        assert bulk_update_rows([], ["last_seq"]) == 0
        assert bulk_update_rows([c], []) == 0
    assert ctx.captured_queries == []
