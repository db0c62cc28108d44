"""The weighted vote and its similarity measure (knowledge/vote.py)."""

import pytest

from knowledge.vote import AGREE_AT, Ballot, similarity, tokens, weighted_vote

RESET_A = "You can reset your password from the login page by clicking 'Forgot password'."
RESET_B = "Click 'Forgot password' on the login page to reset your password."
REFUND = "Contact our billing team to get a refund within 30 days."


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (RESET_A, RESET_B),
        (
            "We ship worldwide; delivery takes 3 to 5 business days.",
            "Delivery usually takes 3-5 business days and we ship worldwide.",
        ),
        (
            "Refunds are available within 30 days of purchase.",
            "You can get a refund within 30 days after you buy.",
        ),
        ("在登录页面点击“忘记密码”即可重置密码。", "您可以在登录页点击忘记密码来重置密码。"),
    ],
)
def test_paraphrases_agree(a, b):
    assert similarity(a, b) >= AGREE_AT


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (RESET_A, REFUND),
        (
            "Refunds are available within 30 days of purchase.",
            "Refunds are possible for 14 days only.",
        ),
        ("在登录页面点击“忘记密码”即可重置密码。", "退款请在购买后30天内联系客服。"),
        ("Yes.", "No."),
    ],
)
def test_different_answers_do_not_agree(a, b):
    assert similarity(a, b) < AGREE_AT


def test_tokens_mix_words_and_han_bigrams():
    assert tokens("Resetting the passwords, 重置密码!") == {
        "reset",
        "password",
        "重置",
        "置密",
        "密码",
    }
    assert similarity("  Hello,  WORLD ", "hello world") == 1.0


def test_majority_of_agreeing_providers_beats_a_heavier_outlier():
    result = weighted_vote(
        [
            Ballot(1, "a", RESET_A, 1.0),
            Ballot(2, "b", RESET_B, 1.0),
            Ballot(3, "heavy", REFUND, 1.5),
        ]
    )
    assert result.winner.key in (1, 2)
    assert result.support == 2.0 and result.total == 3.5
    assert result.confidence == pytest.approx(2 / 3.5)


def test_a_heavy_enough_outlier_wins_as_documented():
    result = weighted_vote(
        [
            Ballot(1, "a", RESET_A, 1.0),
            Ballot(2, "b", RESET_B, 1.0),
            Ballot(3, "heavy", REFUND, 3.0),
        ]
    )
    assert result.winner.key == 3 and result.confidence == pytest.approx(0.6)


def test_ties_go_to_the_higher_weight_provider_then_to_the_first():
    result = weighted_vote(
        [Ballot(1, "light", RESET_A, 1.0), Ballot(2, "heavy", REFUND, 1.0 + 1e-9)]
    )
    assert result.winner.key == 2
    # Equal support and weight: the provider listed first.
    result = weighted_vote([Ballot(7, "first", RESET_A, 1.0), Ballot(8, "second", REFUND, 1.0)])
    assert result.winner.key == 7 and result.confidence == 0.5
    # Agreeing answers support each other equally: the heavier one's text is the answer.
    result = weighted_vote([Ballot(1, "a", RESET_A, 1.0), Ballot(2, "b", RESET_B, 2.0)])
    assert result.winner.key == 2 and result.confidence == 1.0


def test_nobody_agrees_gives_low_confidence_and_empty_answers_do_not_vote():
    result = weighted_vote(
        [
            Ballot(1, "a", RESET_A, 1.0),
            Ballot(2, "b", REFUND, 1.0),
            Ballot(3, "c", "Our office is open Monday to Friday.", 1.0),
            Ballot(4, "d", "   ", 5.0),
        ]
    )
    assert result.total == 3.0 and result.confidence == pytest.approx(1 / 3)
    assert weighted_vote([]).winner is None


def test_the_tally_is_loggable():
    log = weighted_vote([Ballot(1, "a", RESET_A, 1.0), Ballot(2, "b", RESET_B, 1.0)]).as_log()
    assert log["measure"] == "token-jaccard" and log["agree_at"] == AGREE_AT
    assert [t["agrees_with"] for t in log["tally"]] == [[2], [1]]


def test_inflections_count_as_one_word():
    a = "Yes, we accept PayPal at checkout, as well as cards."
    b = "PayPal is accepted at checkout, and so are credit cards."
    assert similarity(a, b) >= AGREE_AT
    assert similarity(a, "We only accept bank transfer.") < AGREE_AT
