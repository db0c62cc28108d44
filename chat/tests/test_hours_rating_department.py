"""Business hours (accounts.hours), satisfaction ratings (chat.ratings) and the widget's
department choice (chat.departments), through their services and the visitor socket."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async

from accounts.hours import schedule_for, workspace_is_open
from accounts.models import BusinessHours
from accounts.tests.factories import AgentFactory, TeamFactory, WorkspaceFactory
from chat import services
from chat.errors import ChatError
from chat.models import Conversation, ConversationEvent, ConversationStatus, EventKind, Message
from chat.ratings import conversation_rate
from chat.tests.factories import ConversationFactory, VisitorFactory
from chat.tests.sockets import agent_socket, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)
UTC = ZoneInfo("UTC")


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def hours(workspace, *rows):
    for weekday, opens, closes in rows:
        BusinessHours.objects.create(
            workspace=workspace, weekday=weekday, opens_at=opens, closes_at=closes
        )


def at(tz: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


# --- business hours ---------------------------------------------------------------------------


def test_disabled_is_always_open_enabled_without_rows_never(workspace):
    assert workspace_is_open(workspace, at("UTC", 2024, 1, 6, 3, 0))
    workspace.business_hours_enabled = True
    assert not workspace_is_open(workspace, at("UTC", 2024, 1, 1, 12, 0))
    assert schedule_for(workspace).next_change(at("UTC", 2024, 1, 1, 12, 0)) is None


def test_several_intervals_a_day_in_the_workspace_time_zone(workspace):
    workspace.business_hours_enabled, workspace.timezone = True, "Asia/Shanghai"
    # Monday 09:00-12:00 and 13:00-18:00 Shanghai time (UTC+8).
    hours(workspace, (0, time(9), time(12)), (0, time(13), time(18)))
    monday = (2024, 1, 1)  # a Monday
    assert workspace_is_open(workspace, at("Asia/Shanghai", *monday, 9, 0))
    assert not workspace_is_open(workspace, at("Asia/Shanghai", *monday, 12, 0))
    assert workspace_is_open(workspace, at("Asia/Shanghai", *monday, 17, 59))
    assert not workspace_is_open(workspace, at("Asia/Shanghai", *monday, 18, 0))
    # 02:00 UTC on Monday is 10:00 in Shanghai: open; Sunday 23:30 UTC is Monday 07:30 there.
    assert workspace_is_open(workspace, at("UTC", *monday, 2, 0))
    assert not workspace_is_open(workspace, at("UTC", 2023, 12, 31, 23, 30))
    schedule = schedule_for(workspace)
    assert schedule.next_change(at("Asia/Shanghai", *monday, 10, 0)) == at(
        "Asia/Shanghai", *monday, 12, 0
    )
    assert schedule.next_change(at("Asia/Shanghai", *monday, 12, 0)) == at(
        "Asia/Shanghai", *monday, 13, 0
    )
    # After Monday's close the next change is the next Monday's opening.
    assert schedule.next_change(at("Asia/Shanghai", *monday, 18, 0)) == at(
        "Asia/Shanghai", 2024, 1, 8, 9, 0
    )


def test_night_shift_as_two_rows_and_23_59_means_midnight(workspace):
    workspace.business_hours_enabled, workspace.timezone = True, "Europe/Paris"
    hours(workspace, (0, time(22), time(23, 59)), (1, time(0), time(6)))
    assert workspace_is_open(workspace, at("Europe/Paris", 2024, 1, 1, 23, 59, 30))
    assert workspace_is_open(workspace, at("Europe/Paris", 2024, 1, 2, 0, 0))
    schedule = schedule_for(workspace)
    # No change at midnight: open from Monday 22:00 to Tuesday 06:00.
    assert schedule.next_change(at("Europe/Paris", 2024, 1, 1, 22, 30)) == at(
        "Europe/Paris", 2024, 1, 2, 6, 0
    )


def test_dst_days_follow_the_wall_clock(workspace):
    workspace.business_hours_enabled, workspace.timezone = True, "Europe/Paris"
    # Sunday 31 March 2024: clocks go from 02:00 to 03:00. Sunday 27 October: 03:00 to 02:00.
    hours(workspace, (6, time(1), time(2, 30)), (6, time(9), time(17)))
    assert workspace_is_open(workspace, at("UTC", 2024, 3, 31, 7, 0))  # 09:00 CEST
    assert not workspace_is_open(workspace, at("UTC", 2024, 3, 31, 6, 59))  # 08:59 CEST
    assert not workspace_is_open(workspace, at("UTC", 2024, 3, 31, 15, 0))  # 17:00 CEST
    assert workspace_is_open(workspace, at("UTC", 2024, 10, 27, 8, 0))  # 09:00 CET
    assert not workspace_is_open(workspace, at("UTC", 2024, 10, 27, 7, 59))  # 08:59 CET
    schedule = schedule_for(workspace)
    # Spring: 01:00-02:30 local; 02:30 does not exist, so it closes when the clock jumps.
    assert schedule.next_change(at("UTC", 2024, 3, 31, 0, 30)) == datetime(
        2024, 3, 31, 1, 0, tzinfo=UTC
    )
    # Autumn: 02:00-03:00 happens twice, and so does 01:00-02:30's end.
    assert workspace_is_open(workspace, at("UTC", 2024, 10, 27, 0, 15))  # 02:15 CEST
    changes, when = [], at("UTC", 2024, 10, 27, 0, 15)
    for _ in range(3):
        when = schedule.next_change(when)
        changes.append(when.astimezone(UTC).strftime("%H:%M"))
    # closes 02:30 CEST, opens again when 03:00 CEST becomes 02:00 CET, closes 02:30 CET
    assert changes == ["00:30", "01:00", "01:30"]
    # After that: closed until 09:00 CET (08:00 UTC).
    assert schedule.next_change(at("UTC", 2024, 10, 27, 1, 30)) == datetime(
        2024, 10, 27, 8, 0, tzinfo=UTC
    )


async def test_welcome_outside_hours(workspace, monkeypatch):
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    agent_comm, _ = await agent_socket(agent.user)
    comm, welcome = await visitor_socket(workspace)
    assert welcome["agents_online"] is True and welcome["open_now"] is True
    assert welcome["hours_change_at"] is None and welcome["departments"] == []
    await comm.disconnect()

    def closed_now():
        workspace.business_hours_enabled, workspace.timezone = True, "UTC"
        workspace.save()
        hours(workspace, *[(day, time(0), time(0, 1)) for day in range(7)])

    await sync_to_async(closed_now)()
    comm, welcome = await visitor_socket(workspace)
    assert welcome["open_now"] is False and welcome["agents_online"] is False
    assert welcome["hours_change_at"] is not None
    await comm.send_json_to({"type": "ping"})
    pong = await receive_until(comm, "pong")
    assert pong["open_now"] is False and pong["agents_online"] is False
    await comm.disconnect()
    await agent_comm.disconnect()


# --- ratings ----------------------------------------------------------------------------------


@pytest.fixture
def resolved(workspace):
    return ConversationFactory(
        workspace=workspace, visitor__workspace=workspace, status=ConversationStatus.RESOLVED
    )


def test_rating_is_stored_replaced_and_recorded(resolved):
    conversation_rate(visitor=resolved.visitor, rating=4, comment=" good\x00 \n thanks ")
    resolved.refresh_from_db()
    assert (resolved.rating, resolved.rating_comment) == (4, "good \n thanks")
    assert resolved.rated_at is not None
    conversation_rate(visitor=resolved.visitor, rating=5)
    resolved.refresh_from_db()
    assert (resolved.rating, resolved.rating_comment) == (5, "")
    events = list(ConversationEvent.objects.filter(kind=EventKind.RATING).order_by("pk"))
    assert [e.data for e in events] == [
        {"rating": 4, "previous": None},
        {"rating": 5, "previous": 4},
    ]


@pytest.mark.parametrize(
    ("rating", "comment", "code"),
    [
        (0, None, "invalid_rating"),
        (6, None, "invalid_rating"),
        ("5", None, "invalid_rating"),
        (True, None, "invalid_rating"),
        (4.5, None, "invalid_rating"),
        (None, None, "invalid_rating"),
        (3, "x" * 1001, "comment_too_long"),
        (3, 5, "invalid_comment"),
        (3, ["x"], "invalid_comment"),
    ],
)
def test_bad_ratings_change_nothing(resolved, rating, comment, code):
    with pytest.raises(ChatError) as exc:
        conversation_rate(visitor=resolved.visitor, rating=rating, comment=comment)
    assert exc.value.code == code
    resolved.refresh_from_db()
    assert resolved.rating is None and not ConversationEvent.objects.exists()


def test_only_the_visitors_own_resolved_conversation(workspace, resolved):
    open_one = ConversationFactory(workspace=workspace, visitor__workspace=workspace)
    with pytest.raises(ChatError) as exc:
        conversation_rate(visitor=open_one.visitor, rating=5)
    assert exc.value.code == "not_resolved"
    stranger = VisitorFactory(workspace=workspace)
    with pytest.raises(ChatError) as exc:
        conversation_rate(visitor=stranger, rating=5)
    assert exc.value.code == "no_conversation"
    resolved.refresh_from_db()
    assert resolved.rating is None


async def test_rate_frame_reaches_the_agent(workspace):
    agent = await sync_to_async(AgentFactory)(workspace=workspace, is_workspace_admin=True)
    comm, _ = await visitor_socket(workspace)
    await comm.send_json_to({"type": "rate", "rating": 5})
    assert (await receive_until(comm, "error"))["code"] == "no_conversation"
    await comm.send_json_to({"type": "message", "client_id": "m1", "text": "hi"})
    ack = await receive_until(comm, "ack")
    await comm.send_json_to({"type": "rate", "rating": 5})
    assert (await receive_until(comm, "error"))["code"] == "not_resolved"
    await sync_to_async(services.conversation_resolve)(
        agent=agent, conversation_id=ack["conversation_id"]
    )
    assert (await receive_until(comm, "conversation"))["conversation"]["status"] == "resolved"
    agent_comm, _ = await agent_socket(agent.user)
    await comm.send_json_to({"type": "rate", "rating": 4.5})
    assert (await receive_until(comm, "error"))["code"] == "invalid_rating"
    await comm.send_json_to({"type": "rate", "rating": 4, "comment": "quick"})
    assert await receive_until(comm, "rated") == {
        "type": "rated",
        "conversation_id": ack["conversation_id"],
        "rating": 4,
    }
    update = await receive_until(agent_comm, "conversation")
    assert update["conversation"]["rating"] == 4
    assert update["conversation"]["rating_comment"] == "quick"
    await comm.disconnect()
    await agent_comm.disconnect()
    # The welcome says whether the current conversation is rated.
    _, welcome = await visitor_socket(workspace)
    assert welcome["conversation"] is None  # a new visitor
    conversation = await sync_to_async(Conversation.objects.get)(pk=ack["conversation_id"])
    assert conversation.rating == 4


# --- departments ------------------------------------------------------------------------------


def test_department_goes_on_the_new_conversation_only(workspace):
    sales = TeamFactory(workspace=workspace, name="Sales", is_department=True)
    support = TeamFactory(workspace=workspace, name="Support", is_department=True)
    visitor = VisitorFactory(workspace=workspace)
    message, _ = services.visitor_message_send(
        visitor=visitor, client_id="c1", text="hi", department_id=sales.pk
    )
    assert message.conversation.team == sales
    services.visitor_message_send(
        visitor=visitor, client_id="c2", text="again", department_id=support.pk
    )
    assert Conversation.objects.get().team == sales
    other = VisitorFactory(workspace=workspace)
    message, _ = services.visitor_leave_message(
        visitor=other,
        client_id="c3",
        name="N",
        email="n@example.com",
        text="hi",
        department_id=support.pk,
    )
    assert message.conversation.team == support


@pytest.mark.parametrize("kind", ["foreign", "not_department", "str", "bool", "float", "missing"])
def test_bad_department_creates_nothing(workspace, kind):
    values = {
        "foreign": lambda: TeamFactory(is_department=True).pk,
        "not_department": lambda: TeamFactory(workspace=workspace).pk,
        "str": lambda: str(TeamFactory(workspace=workspace, is_department=True).pk),
        "bool": lambda: True,
        "float": lambda: 1.0,
        "missing": lambda: 10**9,
    }
    value = values[kind]()
    visitor = VisitorFactory(workspace=workspace)
    with pytest.raises(ChatError) as exc:
        services.visitor_message_send(
            visitor=visitor, client_id="c1", text="hi", department_id=value
        )
    assert exc.value.code == "invalid_department"
    with pytest.raises(ChatError):
        services.visitor_leave_message(
            visitor=visitor,
            client_id="c2",
            name="N",
            email="n@example.com",
            text="hi",
            department_id=value,
        )
    assert not Conversation.objects.exists() and not Message.objects.exists()
    visitor.refresh_from_db()
    assert visitor.name == ""


async def test_departments_in_welcome_and_the_first_message_frame():
    workspace = await sync_to_async(WorkspaceFactory)(ask_department=True)
    sales = await sync_to_async(TeamFactory)(workspace=workspace, name="Sales", is_department=True)
    await sync_to_async(TeamFactory)(workspace=workspace, name="Internal")
    comm, welcome = await visitor_socket(workspace)
    assert welcome["departments"] == [{"id": sales.pk, "name": "Sales"}]
    await comm.send_json_to(
        {"type": "message", "client_id": "m0", "text": "hi", "department": "sales"}
    )
    assert (await receive_until(comm, "error"))["code"] == "invalid_department"
    await comm.send_json_to(
        {"type": "message", "client_id": "m1", "text": "hi", "department": sales.pk}
    )
    ack = await receive_until(comm, "ack")
    conversation = await sync_to_async(Conversation.objects.get)(pk=ack["conversation_id"])
    assert conversation.team_id == sales.pk
    await comm.disconnect()
