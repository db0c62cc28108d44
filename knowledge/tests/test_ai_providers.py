"""The OpenAI-compatible client against a real HTTP server on loopback (fake_openai)."""

import pytest

from knowledge.providers import (
    KIND_OPENAI,
    OpenAICompatibleClient,
    ProviderConfig,
    ProviderError,
    ask,
    redact,
)

KEY = "sk-live-THIS-IS-SECRET-42"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]


def config(fake, slug="p", *, timeout=2.0, key=KEY):
    return ProviderConfig(
        id=1,
        name=slug,
        kind=KIND_OPENAI,
        base_url=fake.url(slug),
        model="m-1",
        api_key=key,
        weight=1.0,
        timeout=timeout,
    )


def test_normal_answer_sends_the_openai_request(fake_openai):
    fake_openai.set("p", "answer", "  Hello from the model.  ")
    answer = OpenAICompatibleClient(config(fake_openai)).complete(messages=MESSAGES, timeout=2)
    assert answer == "Hello from the model."
    (call,) = fake_openai.calls("p")
    assert call["authorization"] == f"Bearer {KEY}"
    assert call["json"]["model"] == "m-1" and call["json"]["messages"] == MESSAGES
    assert call["json"]["stream"] is False


def test_no_key_sends_no_authorization_header(fake_openai):
    OpenAICompatibleClient(config(fake_openai, key="")).complete(messages=MESSAGES, timeout=2)
    assert fake_openai.calls()[0]["authorization"] == ""


@pytest.mark.parametrize(
    ("mode", "kind", "words"),
    [
        ("http500", "http", "HTTP 500"),
        ("http429", "rate_limited", "429"),
        ("malformed", "malformed", "malformed JSON"),
        ("empty", "empty", "no choices"),
    ],
)
def test_failures_are_provider_errors_without_the_key(fake_openai, mode, kind, words):
    fake_openai.set("p", mode)
    with pytest.raises(ProviderError) as caught:
        OpenAICompatibleClient(config(fake_openai)).complete(messages=MESSAGES, timeout=2)
    assert caught.value.kind == kind and words in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


def test_the_500_body_echoing_the_key_is_redacted(fake_openai):
    fake_openai.set("p", "http500")
    result = ask(config(fake_openai), MESSAGES)
    assert not result.ok and "[redacted]" in result.error and KEY not in result.error
    assert KEY not in str(result.as_log())


def test_a_slow_server_times_out_on_time(fake_openai):
    # The server would answer after 10 s; a "timeout" result shows the 0.5 s limit cut
    # the call (no wall-clock assertion: timings belong in bench/, not unit tests).
    fake_openai.set("p", "slow", delay=10)
    result = ask(config(fake_openai, timeout=0.5), MESSAGES)
    assert result.error_kind == "timeout" and "timed out" in result.error
    assert result.latency_ms is not None


def test_a_closed_port_is_a_connection_error(fake_openai):
    cfg = config(fake_openai)
    fake_openai.stop()
    result = ask(cfg, MESSAGES)
    assert result.error_kind == "connection" and not result.ok


def test_unknown_kind_is_an_error_not_a_crash(fake_openai):
    cfg = ProviderConfig(
        id=2,
        name="x",
        kind="carrier-pigeon",
        base_url=fake_openai.url("x"),
        model="m",
        api_key=KEY,
    )
    result = ask(cfg, MESSAGES)
    assert "unknown provider kind" in result.error and not fake_openai.calls()


def test_config_repr_hides_the_key(fake_openai):
    assert KEY not in repr(config(fake_openai))
    assert redact(f"a {KEY} b", KEY) == "a [redacted] b"
