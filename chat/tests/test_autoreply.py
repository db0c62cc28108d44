"""Automatic replies: matching rules, bounded regexes, admin validation, and over real sockets."""

import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import BotMode
from accounts.tests.factories import AgentFactory, UserFactory, WorkspaceFactory
from chat import autoreply
from chat.admin import AutoReplyRuleForm
from chat.autoreply import auto_reply_match
from chat.models import AutoReplyMatch, AutoReplyRule, Message, SenderKind
from chat.tasks import auto_reply_task
from chat.tests.factories import ConversationFactory, MessageFactory
from chat.tests.sockets import (
    agent_socket,
    receive_message,
    receive_until,
    visitor_socket,
)

ANY, ALL, REGEX = AutoReplyMatch.ANY_KEYWORD, AutoReplyMatch.ALL_KEYWORDS, AutoReplyMatch.REGEX


@pytest.fixture(autouse=True)
def fresh_rule_cache():
    autoreply.auto_reply_cache_clear()
    yield
    autoreply.auto_reply_cache_clear()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def rule(workspace, pattern, *, match=ANY, reply="auto", position=0, enabled=True, name=None):
    return AutoReplyRule.objects.create(
        workspace=workspace,
        name=name or pattern[:40],
        match=match,
        pattern=pattern,
        reply=reply,
        position=position,
        enabled=enabled,
    )


def matched(workspace, text):
    found = auto_reply_match(workspace.pk, text)
    return found.reply if found else None


# --- matching semantics -----------------------------------------------------------------------


@pytest.mark.django_db
def test_any_keyword_is_case_insensitive_and_whole_word(workspace):
    rule(workspace, "refund, Return", reply="refunds")
    assert matched(workspace, "How do I get a REFUND?") == "refunds"
    assert matched(workspace, "can I return it") == "refunds"
    assert matched(workspace, "refund") == "refunds"
    # Whole words only for Latin keywords.
    assert matched(workspace, "it was refunded already") is None
    assert matched(workspace, "no returns policy") is None
    assert matched(workspace, "hello there") is None


@pytest.mark.django_db
def test_all_keywords_must_all_be_present(workspace):
    rule(workspace, "ship, norway", match=ALL, reply="we ship to Norway")
    assert matched(workspace, "Do you ship to Norway?") == "we ship to Norway"
    assert matched(workspace, "NORWAY: can you ship there") == "we ship to Norway"
    assert matched(workspace, "Do you ship to Sweden?") is None
    assert matched(workspace, "shipping to norway") is None  # "ship" is not a whole word here


@pytest.mark.django_db
def test_chinese_keywords_match_as_substrings_and_the_chinese_comma_separates(workspace):
    rule(workspace, "退款，发货、快递", reply="中文")
    assert matched(workspace, "我想申请退款可以吗") == "中文"
    assert matched(workspace, "什么时候发货？") == "中文"
    assert matched(workspace, "快递到了吗") == "中文"
    assert matched(workspace, "你好") is None


@pytest.mark.django_db
def test_latin_keywords_are_whole_words_even_between_chinese_characters(workspace):
    rule(workspace, "iPhone, c++, opening hours", reply="latin")
    assert matched(workspace, "我的iPhone坏了") == "latin"
    assert matched(workspace, "我的iphones坏了") is None
    assert matched(workspace, "I code in C++ daily") == "latin"
    assert matched(workspace, "what are your opening   Hours?") == "latin"


@pytest.mark.django_db
def test_regex_rules_match_case_insensitively(workspace):
    rule(workspace, r"order\s*#?\d{5,}", match=REGEX, reply="order status")
    assert matched(workspace, "Where is ORDER #12345?") == "order status"
    assert matched(workspace, "order 123") is None


@pytest.mark.django_db
def test_disabled_rules_and_empty_replies_never_answer(workspace):
    rule(workspace, "hello", enabled=False, reply="disabled")
    rule(workspace, "hello", reply="   ", position=1)
    assert matched(workspace, "hello") is None


@pytest.mark.django_db
def test_the_first_rule_by_position_then_id_answers(workspace):
    rule(workspace, "price", reply="third", position=5)
    rule(workspace, "price, cost", reply="second", position=1)
    rule(workspace, "price", reply="first", position=0)
    rule(workspace, "price", reply="tied but later", position=0)
    assert matched(workspace, "what is the price") == "first"
    assert matched(workspace, "what does it cost") == "second"


@pytest.mark.django_db
def test_another_workspaces_rules_never_match(workspace):
    other = WorkspaceFactory()
    rule(other, "refund", reply="theirs")
    rule(other, ".", match=REGEX, reply="theirs too")
    assert matched(workspace, "refund please") is None
    assert matched(other, "refund please") == "theirs"


@pytest.mark.django_db
def test_a_catastrophic_regex_is_cut_off_skipped_and_not_retried(workspace, caplog):
    # Saved around the admin's checks (shell, fixtures): matching must still be bounded.
    bad = rule(workspace, r"^(a|aa)+$", match=REGEX, reply="never", position=0)
    rule(workspace, "aaa", match=REGEX, reply="the next rule", position=1)
    text = "a" * 60 + "b"  # 2^60-ish paths for a backtracking engine without a timeout

    autoreply._entry(workspace.pk)  # load the rules here: the thread below has no test data
    result: list = []
    worker = threading.Thread(target=lambda: result.append(matched(workspace, text)))
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "matching did not return: the regex is not bounded"
    assert result == ["the next rule"]
    assert "timed out" in caplog.text
    # Tripped: not tried again while the rules are cached (the next rule still answers).
    assert bad.pk in autoreply._cache[workspace.pk].tripped
    caplog.clear()
    assert matched(workspace, text) == "the next rule"
    assert "timed out" not in caplog.text


@pytest.mark.django_db
def test_an_unusable_stored_pattern_is_skipped_not_fatal(workspace):
    rule(workspace, "(unclosed", match=REGEX, reply="broken")
    rule(workspace, ",,, ,", reply="no keywords")
    rule(workspace, "fine", reply="ok", position=3)
    assert matched(workspace, "(unclosed fine") == "ok"


@pytest.mark.django_db
def test_rules_are_cached_so_the_hot_path_costs_no_query(workspace, django_assert_num_queries):
    rule(workspace, "refund", reply="cached")
    with django_assert_num_queries(1):
        assert matched(workspace, "refund") == "cached"
    with django_assert_num_queries(0):
        assert matched(workspace, "refund") == "cached"
        assert matched(workspace, "nothing") is None
    # A workspace without rules is cached too.
    empty = WorkspaceFactory()
    with django_assert_num_queries(1):
        assert matched(empty, "refund") is None
    with django_assert_num_queries(0):
        assert matched(empty, "refund") is None


@pytest.mark.django_db
def test_saving_or_deleting_a_rule_refreshes_this_process_at_once(workspace):
    r = rule(workspace, "refund", reply="v1")
    assert matched(workspace, "refund") == "v1"
    r.reply = "v2"
    r.save()
    assert matched(workspace, "refund") == "v2"
    r.delete()
    assert matched(workspace, "refund") is None


@pytest.mark.django_db
def test_a_batch_of_messages_loads_the_rules_of_all_its_workspaces_in_one_query(workspace):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from chat.message_store import NewMessage, messages_store

    workspaces = [workspace, WorkspaceFactory(), WorkspaceFactory()]
    for n, w in enumerate(workspaces):
        rule(w, f"kw{n}", reply=f"reply {n}")
    conversations = [ConversationFactory(visitor__workspace=w) for w in workspaces]

    def batch(tag):
        items = [
            NewMessage(
                conversation_id=c.pk,
                workspace_id=c.workspace_id,
                sender_kind=SenderKind.VISITOR,
                client_id=f"{tag}{n}",
                text=f"about kw{n}",
                visitor_id=c.visitor_id,
            )
            for n, c in enumerate(conversations)
        ]
        with CaptureQueriesContext(connection) as seen, transaction.atomic():
            messages_store(items)
        return [q["sql"] for q in seen.captured_queries if "chat_autoreplyrule" in q["sql"]]

    assert len(batch("a")) == 1  # cold: one query for the three workspaces
    assert batch("b") == []  # cached
    assert [matched(w, f"kw{n}") for n, w in enumerate(workspaces)] == [
        "reply 0",
        "reply 1",
        "reply 2",
    ]


# --- validation (the admin form) --------------------------------------------------------------


def form(workspace, **fields):
    data = {
        "workspace": workspace.pk,
        "name": "r",
        "position": 0,
        "match": REGEX,
        "pattern": "refund",
        "reply": "hello",
        "enabled": "on",
    } | fields
    return AutoReplyRuleForm(data=data)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "match, pattern, code",
    [
        (REGEX, "(unclosed", "invalid_regex"),
        (REGEX, "refund|", "matches_everything"),
        (REGEX, ".*", "matches_everything"),
        (REGEX, r"^(a|aa)+$", "too_slow"),
        (REGEX, "x" * 501, "max_length"),
        (ANY, " , ，, ", "no_keywords"),
        (ALL, "   ", "required"),
    ],
)
def test_the_form_refuses_bad_patterns(workspace, match, pattern, code):
    f = form(workspace, match=match, pattern=pattern)
    assert not f.is_valid()
    assert "pattern" in f.errors
    codes = {e.code for e in f.errors.as_data()["pattern"]}
    assert code in codes or (code == "required" and codes), codes


@pytest.mark.django_db
def test_the_form_accepts_good_patterns_and_trims_them(workspace):
    f = form(workspace, pattern=r"  order\s*#?\d{5,}  ")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["pattern"] == r"order\s*#?\d{5,}"
    assert form(workspace, match=ANY, pattern="退款，refund").is_valid()
    assert not form(workspace, reply="   ").is_valid()


# --- admin scoping ----------------------------------------------------------------------------


@pytest.fixture
def workspace_admin_client(client, workspace):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="chat",
            codename__in=[f"{a}_autoreplyrule" for a in ("add", "change", "view", "delete")],
        )
    )
    AgentFactory(user=user, workspace=workspace, is_workspace_admin=True)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_workspace_admin_sees_and_files_rules_only_in_their_workspace(
    workspace_admin_client, workspace
):
    other = WorkspaceFactory(name="Elsewhere Ltd")
    mine = rule(workspace, "mine-kw", name="my rule")
    theirs = rule(other, "their-kw", name="their rule")
    page = workspace_admin_client.get(reverse("admin:chat_autoreplyrule_changelist"))
    text = page.content.decode()
    assert "my rule" in text and "their rule" not in text
    url = reverse("admin:chat_autoreplyrule_change", args=[theirs.pk])
    assert workspace_admin_client.get(url).status_code in (302, 404)

    add = reverse("admin:chat_autoreplyrule_add")
    page = workspace_admin_client.get(add).content.decode()
    assert "Elsewhere Ltd" not in page
    # Naming another workspace is refused and creates nothing.
    response = workspace_admin_client.post(
        add,
        {
            "workspace": other.pk,
            "name": "sneaky",
            "position": 0,
            "match": ANY,
            "pattern": "x",
            "reply": "y",
        },
    )
    assert response.status_code == 200
    assert not AutoReplyRule.objects.filter(name="sneaky").exists()
    # A bad regex is refused with the reason shown.
    response = workspace_admin_client.post(
        add,
        {
            "workspace": workspace.pk,
            "name": "bad",
            "position": 0,
            "match": REGEX,
            "pattern": "(oops",
            "reply": "y",
        },
    )
    assert response.status_code == 200 and "Not a valid regular expression" in (
        response.content.decode()
    )
    response = workspace_admin_client.post(
        add,
        {
            "workspace": workspace.pk,
            "name": "good",
            "position": 2,
            "match": ANY,
            "pattern": "price",
            "reply": "See our prices page.",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AutoReplyRule.objects.get(name="good").workspace_id == workspace.pk
    assert mine.pk  # untouched


# --- the task ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_task_answers_once_as_the_bot(workspace):
    rule(workspace, "refund", reply="Refunds take 5 days.")
    conversation = ConversationFactory(visitor__workspace=workspace, last_seq=1)
    message = MessageFactory(conversation=conversation, seq=1, text="refund?")
    first = auto_reply_task.apply(args=(message.pk,)).get()
    again = auto_reply_task.apply(args=(message.pk,)).get()
    assert first == again
    reply = Message.objects.get(pk=first)
    assert reply.sender_kind == SenderKind.BOT and reply.text == "Refunds take 5 days."
    assert reply.client_id == f"auto-{message.pk}"
    assert Message.objects.filter(sender_kind=SenderKind.BOT).count() == 1


@pytest.mark.django_db
def test_the_task_ignores_unknown_non_visitor_and_unmatched_messages(workspace):
    rule(workspace, "refund", reply="r")
    conversation = ConversationFactory(visitor__workspace=workspace)
    agent_said = MessageFactory(
        conversation=conversation, sender_kind=SenderKind.AGENT, text="refund"
    )
    unmatched = MessageFactory(conversation=conversation, text="hello")
    for pk in (agent_said.pk, unmatched.pk, 10**9):
        assert auto_reply_task.apply(args=(pk,)).get() is None
    assert not Message.objects.filter(sender_kind=SenderKind.BOT).exists()


# --- over real sockets ------------------------------------------------------------------------


@sync_to_async
def _workspace_with_rule(bot_mode=BotMode.OFF):
    workspace = WorkspaceFactory(allowed_origins="https://shop.example.com", bot_mode=bot_mode)
    rule(workspace, "refund, 退款", reply="Refunds are paid within 5 days.")
    return workspace


@sync_to_async
def _bot_messages(workspace) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(workspace=workspace, sender_kind=SenderKind.BOT)
        .order_by("pk")
        .values_list("client_id", "text")
    )


@sync_to_async
def _message_id(workspace, client_id) -> int:
    return Message.objects.get(workspace=workspace, client_id=client_id).pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_eager")
async def test_a_matching_message_gets_the_automatic_reply_and_another_does_not():
    workspace = await _workspace_with_rule()
    agent = await sync_to_async(AgentFactory)(workspace=workspace)
    console, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)

    await visitor.send_json_to({"type": "message", "client_id": "q1", "text": "hello there"})
    await receive_until(visitor, "ack")
    await visitor.send_json_to({"type": "message", "client_id": "q2", "text": "我要退款"})
    await receive_until(visitor, "ack")
    reply = (await receive_message(visitor, sender="bot"))["message"]
    q2 = await _message_id(workspace, "q2")
    assert reply["text"] == "Refunds are paid within 5 days."
    assert reply["client_id"] == f"auto-{q2}" and reply["seq"] == 3
    seen = await receive_message(console, sender="bot")
    assert seen["message"]["id"] == reply["id"]
    # The first message (no rule matched) got no answer: the only bot message is q2's.
    assert await _bot_messages(workspace) == [(f"auto-{q2}", "Refunds are paid within 5 days.")]
    await visitor.disconnect()
    await console.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_eager")
async def test_a_message_a_rule_answers_does_not_also_go_to_the_bot(monkeypatch):
    from knowledge import tasks as knowledge_tasks

    asked: list[int] = []
    monkeypatch.setattr(knowledge_tasks.bot_reply_task, "run", lambda pk: asked.append(pk))
    workspace = await _workspace_with_rule(BotMode.ANSWER_FIRST)
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to({"type": "message", "client_id": "q1", "text": "Refund please"})
    await receive_until(visitor, "ack")
    assert (await receive_message(visitor, sender="bot"))["message"]["text"].startswith("Refunds")
    await visitor.send_json_to({"type": "message", "client_id": "q2", "text": "Where is my parcel"})
    await receive_until(visitor, "ack")
    # The bot got the second message only (it runs inline, eagerly, before the ack's commit
    # returns), never the one the rule answered.
    assert asked == [await _message_id(workspace, "q2")]
    await visitor.disconnect()


@pytest.mark.django_db(transaction=True)
def test_in_the_embedded_default_the_reply_comes_from_a_thread_of_its_own(settings, monkeypatch):
    import time

    from chat import services
    from chat.tests.factories import VisitorFactory

    threads: list[str] = []
    send = autoreply.auto_reply_send

    def recording(**kwargs):
        threads.append(threading.current_thread().name)
        return send(**kwargs)

    monkeypatch.setattr(autoreply, "auto_reply_send", recording)
    settings.EMBEDDED = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    workspace = WorkspaceFactory(bot_mode=BotMode.OFF)
    rule(workspace, "refund", reply="Refunds take 5 days.")
    visitor = VisitorFactory(workspace=workspace)
    message, _ = services.visitor_message_send(visitor=visitor, client_id="e1", text="refund?")
    # Stored and returned at once; the reply follows from the eager-autoreply thread.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = Message.objects.filter(client_id=f"auto-{message.pk}").first()
        if reply is not None:
            break
        time.sleep(0.02)
    assert reply is not None and reply.sender_kind == SenderKind.BOT
    assert reply.text == "Refunds take 5 days." and reply.seq == message.seq + 1
    assert len(threads) == 1 and threads[0].startswith("eager-autoreply")
