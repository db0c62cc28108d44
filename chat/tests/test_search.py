"""Full-text search over message history (chat.search): English, Chinese, scope, errors."""

import pytest
from django.apps import apps
from django.db import connection

from accounts.tests.factories import AgentFactory, WorkspaceFactory
from chat import search, services
from chat.errors import ChatError
from chat.models import Message
from chat.search import conversation_search, message_search_terms, search_query, snippet
from chat.tests.factories import ConversationFactory, MessageFactory, VisitorFactory
from chat.tests.sockets import agent_socket, receive_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


_counter = iter(range(1, 1_000_000))


def say(conversation, text: str) -> Message:
    """A message stored the normal way (chat.message_store), so its terms are filled."""
    return services.bot_message_send(
        conversation_id=conversation.pk, text=text, client_id=f"t-{next(_counter)}"
    )


def found(agent, q: str) -> list[tuple[int, int | None]]:
    return [
        (r["conversation"]["id"], r["message"]["seq"] if r["message"] else None)
        for r in conversation_search(agent=agent, q=q)
    ]


@pytest.fixture
def conversation(workspace):
    return ConversationFactory(workspace=workspace, visitor__workspace=workspace)


# --- the stored terms -------------------------------------------------------------------------


def test_terms_of_english_are_stems_without_stop_words():
    assert message_search_terms("Hi, I want REFUNDS for the orders") == "'refund' 'order'"


def test_terms_of_chinese_are_character_pairs_and_the_last_character_of_each_run():
    assert message_search_terms("申请退款。好") == "'_申请' '_请退' '_退款' '_款' '_好'"


def test_full_width_text_is_folded_and_empty_text_has_no_terms():
    assert message_search_terms("ＲＥＦＵＮＤ") == "'refund'"
    assert message_search_terms("") == ""
    assert message_search_terms("!!! ... ？") == ""


def test_stored_terms_are_a_valid_tsvector_literal(conversation):
    text = "It's 50% off — naïve O'Brien's café \\ 'quoted' 退款" + "x" * 3000
    message = say(conversation, text)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT search_vector FROM chat_message WHERE id = %s", [message.pk])
            vector = cursor.fetchone()[0]
        assert "'_退款'" in vector and "'caf'" in vector and "'quot'" in vector
    assert message.search_terms == message_search_terms(text)


def test_messages_stored_by_the_message_store_get_their_terms(visitor_and_agent):
    visitor, _agent = visitor_and_agent
    message, _ = services.visitor_message_send(
        visitor=visitor, client_id="c1", text="Where is my parcel?"
    )
    message.refresh_from_db()
    assert message.search_terms == "'parcel'"


@pytest.fixture
def visitor_and_agent(workspace, agent):
    return VisitorFactory(workspace=workspace), agent


# --- the query -------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["", "   ", "\n\t", None, 5, ["refund"]])
def test_an_empty_or_non_string_query_is_refused(agent, q):
    with pytest.raises(ChatError) as exc:
        conversation_search(agent=agent, q=q)
    assert exc.value.code == "invalid_query"


def test_an_oversize_query_is_refused(agent):
    with pytest.raises(ChatError) as exc:
        conversation_search(agent=agent, q="refund " * 40)
    assert exc.value.code == "query_too_long"
    assert conversation_search(agent=agent, q="r" * 200) == []


def test_query_terms_and_the_prefix_of_the_last_word():
    query = search_query("Refunds for shipping 退款")
    assert (query.terms, query.prefixes) == (("refund", "ship", "_退款"), ())
    assert search.tsquery_literal(search_query("shipping refu")) == "'ship' & 'refu':*"
    assert search.tsquery_literal(search_query("退")) == "'_退':*"
    assert search.tsquery_literal(search_query("申请退款")) == "'_申请' & '_请退' & '_退款'"


def test_a_query_of_stop_words_only_finds_no_message(conversation, agent):
    say(conversation, "the and of")
    assert conversation_search(agent=agent, q="the") == []


# --- finding ---------------------------------------------------------------------------------


def test_english_is_matched_by_stem(workspace, agent, conversation):
    say(conversation, "Hello")
    say(conversation, "I would like a refund for order 1042")
    other = ConversationFactory(workspace=workspace, visitor__workspace=workspace)
    say(other, "Where is my parcel?")
    assert found(agent, "refunds") == [(conversation.pk, 2)]
    assert found(agent, "REFUNDED order") == [(conversation.pk, 2)]
    assert found(agent, "1042") == [(conversation.pk, 2)]
    assert found(agent, "refund parcel") == []  # every word must match
    assert found(agent, "parc") == [(other.pk, 1)]  # the last word as a prefix


def test_chinese_in_a_sentence_is_found(workspace, agent):
    apply_for, how_long, invoice = (
        ConversationFactory(workspace=workspace, visitor__workspace=workspace) for _ in range(3)
    )
    say(apply_for, "你好，我想申请退款。")
    say(how_long, "退款多久到账？")
    say(invoice, "我想申请发票")
    assert sorted(found(agent, "退款")) == sorted([(apply_for.pk, 1), (how_long.pk, 1)])
    assert found(agent, "申请退款") == [(apply_for.pk, 1)]
    assert found(agent, "发票") == [(invoice.pk, 1)]
    assert found(agent, "退款 发票") == []
    assert sorted(found(agent, "票")) == [(invoice.pk, 1)]  # one character: its last place too
    assert sorted(c for c, _ in found(agent, "申请")) == sorted([apply_for.pk, invoice.pk])


def test_mixed_english_and_chinese(conversation, agent):
    say(conversation, "我的iPhone退款还没到")
    assert found(agent, "iphone 退款") == [(conversation.pk, 1)]


def test_another_workspace_is_never_searched(workspace, agent, conversation):
    say(conversation, "refund please 退款")
    elsewhere = WorkspaceFactory()
    theirs = ConversationFactory(workspace=elsewhere, visitor__workspace=elsewhere)
    theirs.visitor.name = "Refund Reggie"
    theirs.visitor.save()
    say(theirs, "refund please 退款")
    outsider = AgentFactory(workspace=elsewhere)
    assert found(agent, "refund") == [(conversation.pk, 1)]
    assert found(agent, "退款") == [(conversation.pk, 1)]
    assert [c for c, _ in found(outsider, "refund")] == [theirs.pk]


def test_one_row_per_conversation_newest_match_first(workspace, agent):
    old, new = (
        ConversationFactory(workspace=workspace, visitor__workspace=workspace) for _ in range(2)
    )
    say(old, "refund one")
    say(new, "refund two")
    say(old, "nothing here")
    say(old, "refund three")  # now the newest match
    assert found(agent, "refund") == [(old.pk, 3), (new.pk, 1)]
    assert len(conversation_search(agent=agent, q="refund", limit=1)) == 1


def test_visitor_name_and_email_match_too(workspace, agent):
    visitor = VisitorFactory(workspace=workspace, name="Ada Lovelace", email="ada@example.com")
    by_name = ConversationFactory(workspace=workspace, visitor=visitor)
    say(by_name, "hello")
    assert found(agent, "lovelace") == [(by_name.pk, None)]
    assert found(agent, "ada@example") == [(by_name.pk, None)]


def test_a_result_is_the_conversation_frame_and_a_snippet(conversation, agent):
    long_text = "Lorem ipsum dolor sit amet. " * 10 + "Please refund order 7. " + "Thanks! " * 20
    message = say(conversation, long_text)
    [result] = conversation_search(agent=agent, q="refund")
    assert result["conversation"]["id"] == conversation.pk
    assert result["conversation"]["labels"] == []
    got = result["message"]
    assert (got["id"], got["seq"]) == (message.pk, 1)
    assert "Please refund order 7." in got["snippet"]
    assert got["snippet"].startswith("…") and got["snippet"].endswith("…")
    assert len(got["snippet"]) <= search.SNIPPET_CHARS + 2


def test_snippet_is_plain_text_around_the_first_match():
    assert snippet("short <b>text</b>", ("text",)) == "short <b>text</b>"
    text = "中" * 300 + "退款" + "文" * 300
    cut = snippet(text, ("退款",))
    assert "退款" in cut and len(cut) <= 162


def test_the_embedded_scan_finds_the_same_as_the_index(workspace, agent, monkeypatch):
    conversations = [
        ConversationFactory(workspace=workspace, visitor__workspace=workspace) for _ in range(3)
    ]
    say(conversations[0], "我想申请退款")
    say(conversations[1], "Refunds take five days")
    say(conversations[2], "退款多久到账? refund")
    queries = ["退款", "refund", "refund 退款", "refu", "退", "ship"]
    indexed = {q: found(agent, q) for q in queries}
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert {q: found(agent, q) for q in queries} == indexed
    assert indexed["refund 退款"] == [(conversations[2].pk, 1)]


def test_the_migration_fills_the_terms_of_existing_messages(conversation):
    old = MessageFactory(conversation=conversation, text="Refunds are slow 退款")
    empty = MessageFactory(conversation=conversation, text="")
    assert old.search_terms == ""
    migration = __import__(
        "chat.migrations.0004_message_search_vector", fromlist=["fill_search_terms"]
    )
    migration.fill_search_terms(apps, None)
    old.refresh_from_db()
    empty.refresh_from_db()
    assert old.search_terms == message_search_terms("Refunds are slow 退款")
    assert empty.search_terms == ""


# --- over the agent socket --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_search_over_the_agent_socket(workspace, agent):
    from asgiref.sync import sync_to_async

    conversation = await sync_to_async(ConversationFactory)(
        workspace=workspace, visitor__workspace=workspace
    )
    await sync_to_async(say)(conversation, "我想申请退款")
    comm, welcome = await agent_socket(agent.user)
    await comm.send_json_to({"type": "search", "q": "退款", "client_id": "s1"})
    frame = await receive_until(comm, "search_results")
    assert frame["q"] == "退款"
    [row] = frame["results"]
    assert row["conversation"]["id"] == conversation.pk
    assert row["message"]["seq"] == 1 and row["message"]["snippet"] == "我想申请退款"

    await comm.send_json_to({"type": "search", "q": "  ", "client_id": "s2"})
    error = await receive_until(comm, "error")
    assert (error["code"], error["ref"]) == ("invalid_query", "s2")
    await comm.send_json_to({"type": "search", "q": "x" * 201})
    assert (await receive_until(comm, "error"))["code"] == "query_too_long"
    await comm.send_json_to({"type": "search"})
    assert (await receive_until(comm, "error"))["code"] == "missing_field"
    await comm.send_json_to({"type": "search", "q": ["退款"]})
    assert (await receive_until(comm, "error"))["code"] == "invalid_field"
    await comm.disconnect()
