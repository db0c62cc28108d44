"""AI providers: one small interface, and a real client for OpenAI-compatible chat completions.

The OpenAI chat-completions API (``POST {base_url}/chat/completions``) is spoken by OpenAI,
Qwen/DashScope's compatible mode, Ollama, vLLM, LM Studio and most hosted models, so one
client covers them. Another kind of provider implements :class:`ChatClient` and registers
itself in :data:`CLIENT_KINDS`.

Rules kept here:

* An API key goes into the ``Authorization`` header and nowhere else: never into a log
  line, an exception message or a stored error (:func:`redact` scrubs anything a server
  echoes back).
* Nothing here touches the database: a call gets a :class:`ProviderConfig` snapshot, so
  providers can be asked from worker threads in parallel.
* A call never raises anything but :class:`ProviderError`; its message is safe to store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Protocol

import requests

#: The OpenAI-compatible kind; the only one shipped.
KIND_OPENAI = "openai"

# What a provider may say at most; longer answers are cut (a chat bubble, not an essay).
MAX_ANSWER_CHARS = 4000
# How much of an error body we keep, after redaction.
MAX_ERROR_BODY = 200


class ProviderError(Exception):
    """A provider call failed; ``str(exc)`` is a short reason with no secret in it."""

    def __init__(self, reason: str, *, kind: str = "error") -> None:
        super().__init__(reason)
        self.reason = reason
        # "timeout", "http", "rate_limited", "malformed", "empty", "connection", "error"
        self.kind = kind


@dataclass(frozen=True)
class ProviderConfig:
    """A provider row's settings, detached from the ORM."""

    id: int
    name: str
    kind: str
    base_url: str
    model: str
    api_key: str = field(repr=False)
    weight: float = 1.0
    timeout: float = 10.0
    max_tokens: int = 400

    def __str__(self) -> str:
        return self.name


class ChatClient(Protocol):
    """What the pipeline needs from any provider."""

    def complete(self, *, messages: list[dict[str, str]], timeout: float) -> str:
        """The assistant's answer to ``messages`` (OpenAI roles), or raise ProviderError."""
        ...


def redact(text: str, *secrets: str) -> str:
    """``text`` with every non-trivial secret replaced by ``[redacted]``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def _excerpt(body: str) -> str:
    body = " ".join(body.split())
    return body[:MAX_ERROR_BODY] + ("…" if len(body) > MAX_ERROR_BODY else "")


class OpenAICompatibleClient:
    """``POST {base_url}/chat/completions`` with a bearer key; returns the first choice."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"

    def _fail(self, reason: str, kind: str) -> ProviderError:
        return ProviderError(redact(reason, self.config.api_key), kind=kind)

    def complete(self, *, messages: list[dict[str, str]], timeout: float) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        payload = {
            "model": self.config.model,
            "messages": messages,
            "temperature": 0.2,
            "max_tokens": self.config.max_tokens,
            "stream": False,
        }
        try:
            response = requests.post(
                self.url,
                json=payload,
                headers=headers,
                # connect, then read: a server that accepts and never answers is a timeout too
                timeout=(min(timeout, 5.0), timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise self._fail(f"timed out after {timeout:g} s", "timeout") from None
        except requests.ConnectionError as exc:
            raise self._fail(f"connection failed: {type(exc).__name__}", "connection") from None
        except requests.RequestException as exc:
            raise self._fail(f"request failed: {type(exc).__name__}", "error") from None

        with response:
            status = response.status_code
            body = response.text
        if status == 429:
            raise self._fail("rate limited (HTTP 429)", "rate_limited")
        if not 200 <= status < 300:
            raise self._fail(f"HTTP {status}: {_excerpt(body)}", "http")
        try:
            data = json.loads(body)
        except ValueError:
            raise self._fail(f"malformed JSON: {_excerpt(body)}", "malformed") from None
        try:
            choices = data["choices"]
        except (TypeError, KeyError):
            raise self._fail("malformed response: no 'choices'", "malformed") from None
        if not isinstance(choices, list) or not choices:
            raise self._fail("empty response: no choices", "empty")
        try:
            content = choices[0]["message"]["content"]
        except (TypeError, KeyError, IndexError):
            raise self._fail("malformed response: no message content", "malformed") from None
        if not isinstance(content, str) or not content.strip():
            raise self._fail("empty answer", "empty")
        return content.strip()[:MAX_ANSWER_CHARS]


CLIENT_KINDS: dict[str, type] = {KIND_OPENAI: OpenAICompatibleClient}


def client_for(config: ProviderConfig) -> ChatClient:
    """The client for ``config.kind``; an unknown kind is a ProviderError, not a crash."""
    try:
        cls = CLIENT_KINDS[config.kind]
    except KeyError:
        raise ProviderError(f"unknown provider kind {config.kind!r}") from None
    return cls(config)


@dataclass
class ProviderResult:
    """One provider's part in a decision, as logged."""

    provider_id: int
    name: str
    weight: float
    answer: str = ""
    error: str = ""
    error_kind: str = ""
    latency_ms: int | None = None
    skipped: bool = False  # breaker open: not asked

    @property
    def ok(self) -> bool:
        return bool(self.answer) and not self.error and not self.skipped

    def as_log(self) -> dict:
        return {
            "provider_id": self.provider_id,
            "name": self.name,
            "weight": self.weight,
            "answer": self.answer,
            "error": self.error,
            "error_kind": self.error_kind,
            "latency_ms": self.latency_ms,
            "skipped": self.skipped,
        }


def ask(config: ProviderConfig, messages: list[dict[str, str]]) -> ProviderResult:
    """Ask one provider, timing it; never raises."""
    result = ProviderResult(provider_id=config.id, name=config.name, weight=config.weight)
    started = time.monotonic()
    try:
        result.answer = client_for(config).complete(messages=messages, timeout=config.timeout)
    except ProviderError as exc:
        result.error, result.error_kind = redact(exc.reason, config.api_key), exc.kind
    except Exception as exc:  # a bug in a client must not take the pipeline down
        result.error = redact(f"unexpected {type(exc).__name__}", config.api_key)
        result.error_kind = "error"
    result.latency_ms = round((time.monotonic() - started) * 1000)
    return result
