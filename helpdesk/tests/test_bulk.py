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


def test_model_columns_read_a_row_back_as_the_orm_does(workspace):
    """Every column type the hot paths read: geometry, IP, UUID, JSON, datetimes, NULLs."""
    from django.contrib.gis.geos import Point

    from chat.models import ConversationEvent, Visitor
    from chat.tests.factories import VisitorFactory
    from helpdesk.bulk import ModelColumns

    located = VisitorFactory(
        workspace=workspace, location=Point(-0.12, 51.5), ip_address="2001:db8::1"
    )
    bare = VisitorFactory(workspace=workspace)
    conversation = ConversationFactory(workspace=workspace, visitor=located)
    event = ConversationEvent.objects.create(
        workspace=workspace,
        conversation=conversation,
        kind="status",
        data={"from": "open", "n": [1, "x"]},
    )
    for model, pks in ((Visitor, [located.pk, bare.pk]), (ConversationEvent, [event.pk])):
        columns = ModelColumns(model, "t", "default")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns.sql} FROM {model._meta.db_table} t "  # noqa: S608
                "WHERE t.id = ANY(%s) ORDER BY t.id",
                [pks],
            )
            loaded = [columns.load(row) for row in cursor.fetchall()]
        expected = list(model.objects.filter(pk__in=pks).order_by("pk"))
        for got, want in zip(loaded, expected, strict=True):
            assert not got._state.adding
            for f in model._meta.concrete_fields:
                assert getattr(got, f.attname) == getattr(want, f.attname), f.name
    assert loaded[0].data == {"from": "open", "n": [1, "x"]}


def test_model_columns_read_a_left_joins_miss_as_none(workspace):
    from accounts.models import AgentProfile
    from helpdesk.bulk import ModelColumns

    conversation = ConversationFactory(workspace=workspace, visitor__workspace=workspace)
    agents = ModelColumns(AgentProfile, "a", "default")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id, {agents.sql} FROM chat_conversation c "  # noqa: S608
            "LEFT JOIN accounts_agentprofile a ON a.id = c.assignee_id WHERE c.id = %s",
            [conversation.pk],
        )
        row = cursor.fetchone()
    assert row[0] == conversation.pk
    assert agents.load(row, 1) is None
