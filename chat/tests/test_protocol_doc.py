"""docs/protocol.md is a contract: check it against the code and the running server.

The document's machine-readable parts:

* ``### <sender> → <receiver>: <type>`` headings, one per frame, where sender/receiver is
  ``visitor``, ``agent`` or ``server``; ``### object: <name>`` headings for shared objects.
* Under each, a table whose rows start with a backticked field name (dotted for nested
  objects), then its type (``string``, ``integer or null``, ``array of [message](#object-message)``,
  ...), then ``yes``/``always`` (always present) or ``no``/``optional``.
* One fenced ``json`` example per frame or object.
* The ``## Errors`` table: one row per error code.
"""

import dis
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import AgentFactory
from chat import consumers, services
from chat.consumers import AgentConsumer, VisitorConsumer
from chat.models import Conversation
from chat.tests.factories import ConversationFactory
from chat.tests.sockets import CHROME_UA, agent_socket, receive_until, visitor_socket
from helpdesk.asgi import application

ROOT = Path(settings.BASE_DIR)
DOC_PATH = ROOT / "docs" / "protocol.md"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Factories set a password for every agent; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


FRAME_HEADING = re.compile(r"^### (visitor|agent|server) → (server|visitor|agent): (\w+)\s*$")
OBJECT_HEADING = re.compile(r"^### object: (\w+)\s*$")
OBJECT_REF = re.compile(r"\[(\w+)\]\(#object-\w+\)")
ERROR_CODE_IN_SOURCE = re.compile(
    r"\b(?:ChatError|FrameError|send_error|widget_error)\(\s*\"([a-z_]+)\""
)
HTTP_ERROR_CODE_IN_SOURCE = re.compile(r"\"code\":\s*\"([a-z_]+)\"")


@dataclass
class Field:
    name: str
    type: str
    always: bool


@dataclass
class Section:
    heading: str
    kind: str  # "frame" or "object"
    name: str
    socket: str = ""  # visitor / agent (frames only)
    direction: str = ""  # "in" (client → server) or "out" (server → client)
    fields: dict[str, Field] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


@dataclass
class Doc:
    text: str
    frames: dict[tuple[str, str, str], Section]  # (socket, direction, type) -> section
    objects: dict[str, Section]
    error_codes: list[str]
    json_blocks: list[tuple[int, str]]  # (line number, text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_doc(text: str) -> Doc:
    frames: dict[tuple[str, str, str], Section] = {}
    objects: dict[str, Section] = {}
    error_codes: list[str] = []
    json_blocks: list[tuple[int, str]] = []
    section: Section | None = None
    in_errors = False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```json"):
            start, body = i + 1, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            block = "\n".join(body)
            json_blocks.append((start, block))
            if section is not None:
                section.examples.append(block)
        elif line.startswith("#"):
            section = None
            in_errors = line.strip() == "## Errors"
            if m := FRAME_HEADING.match(line):
                sender, receiver, name = m.groups()
                assert "server" in (sender, receiver) and sender != receiver, line
                socket, direction = (sender, "in") if receiver == "server" else (receiver, "out")
                section = Section(line, "frame", name, socket, direction)
                key = (socket, direction, name)
                assert key not in frames, f"frame documented twice: {line}"
                frames[key] = section
            elif m := OBJECT_HEADING.match(line):
                section = Section(line, "object", m.group(1))
                objects[m.group(1)] = section
            else:
                assert not line.startswith("### ") or "→" not in line, (
                    f"line {i + 1}: a frame heading not in the form "
                    f"'### <sender> → <receiver>: <type>': {line}"
                )
        elif line.startswith("| `"):
            cells = _cells(line)
            name = cells[0].strip("`")
            if section is not None and not section.examples:
                presence = cells[2].lower()
                assert presence in ("yes", "no", "always", "optional"), line
                section.fields[name] = Field(name, cells[1], presence in ("yes", "always"))
            elif in_errors:
                error_codes.append(name)
        i += 1
    return Doc(text, frames, objects, error_codes, json_blocks)


@pytest.fixture(scope="module")
def doc() -> Doc:
    return parse_doc(DOC_PATH.read_text(encoding="utf-8"))


def documented(doc: Doc, socket: str, direction: str) -> set[str]:
    return {name for (s, d, name) in doc.frames if s == socket and d == direction}


# --- checking a JSON value against documented fields -----------------------------------------


def _type_ok(value, type_cell: str) -> bool:
    for alternative in type_cell.split(" or "):
        alt = alternative.strip().lower()
        if alt == "null" and value is None:
            return True
        if alt.startswith("array") and isinstance(value, list):
            return True
        if (alt == "object" or "#object-" in alt) and isinstance(value, dict):
            return True
        if alt == "string" and isinstance(value, str):
            return True
        if alt == "boolean" and isinstance(value, bool):
            return True
        if alt == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if alt == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return True
    return False


def conform(value: dict, fields: dict[str, Field], objects: dict[str, Section], path: str):
    """Problems found comparing ``value``'s keys (recursively) with the documented fields."""
    problems: list[str] = []
    if not isinstance(value, dict):
        return [f"{path}: expected an object, got {value!r}"]
    top = {n: f for n, f in fields.items() if "." not in n}
    keys = set(value)
    if missing := {n for n, f in top.items() if f.always} - keys:
        problems.append(f"{path}: missing documented keys {sorted(missing)}")
    if extra := keys - set(top):
        problems.append(f"{path}: undocumented keys {sorted(extra)}")
    for name, spec in top.items():
        if name not in value:
            continue
        item = value[name]
        where = f"{path}.{name}"
        if not _type_ok(item, spec.type):
            problems.append(f"{where}: {item!r} is not {spec.type}")
            continue
        ref = OBJECT_REF.search(spec.type)
        children = {
            n[len(name) + 1 :]: Field(n[len(name) + 1 :], f.type, f.always)
            for n, f in fields.items()
            if n.startswith(name + ".")
        }
        if ref:
            target = objects[ref.group(1)].fields
            items = item if isinstance(item, list) else [item]
            for k, element in enumerate(items):
                if element is not None:
                    problems += conform(element, target, objects, f"{where}[{k}]")
        elif children and isinstance(item, dict):
            problems += conform(item, children, objects, where)
    return problems


# --- the document against the code ----------------------------------------------------------


def test_document_states_the_current_protocol_version(doc):
    match = re.search(r"\*\*Protocol version: (\d+)\*\*", doc.text)
    assert match, "the document names its version"
    assert int(match.group(1)) == consumers.PROTOCOL_VERSION


@pytest.mark.parametrize(
    ("socket", "consumer"), [("visitor", VisitorConsumer), ("agent", AgentConsumer)]
)
def test_every_handled_frame_is_documented_and_vice_versa(doc, socket, consumer):
    assert documented(doc, socket, "in") == set(consumer.handlers)


def test_every_frame_type_the_consumers_send_is_documented(doc):
    # Frame literals live in the consumers and in chat/frames.py (e.g. ack_frame).
    source = "".join((ROOT / "chat" / name).read_text() for name in ("consumers.py", "frames.py"))
    sent = {t for t in re.findall(r"\"type\":\s*\"([a-z_]+)\"", source)}
    assert {"welcome", "error", "pong", "ack"} <= sent, sent
    out = documented(doc, "visitor", "out") | documented(doc, "agent", "out")
    assert sent - out == set()


def _source_error_codes() -> set[str]:
    codes = set()
    for path in sorted((ROOT / "chat").glob("*.py")) + sorted((ROOT / "accounts").glob("*.py")):
        source = path.read_text()
        codes |= set(ERROR_CODE_IN_SOURCE.findall(source))
        if path.name in ("views.py", "console_views.py", "widget_http.py"):
            codes |= set(HTTP_ERROR_CODE_IN_SOURCE.findall(source))
    return codes


def test_every_error_code_in_the_source_is_in_the_error_table(doc):
    codes = _source_error_codes()
    assert len(codes) > 20, codes  # the regex still finds them
    assert codes - set(doc.error_codes) == set()


def test_the_error_table_names_no_code_the_server_does_not_send(doc):
    assert len(doc.error_codes) == len(set(doc.error_codes)), "a code is listed twice"
    assert set(doc.error_codes) - _source_error_codes() == set()


def test_every_json_example_parses(doc):
    assert len(doc.json_blocks) > 40
    for line, block in doc.json_blocks:
        try:
            json.loads(block)
        except ValueError as exc:
            pytest.fail(f"docs/protocol.md line {line}: {exc}")


def test_every_frame_and_object_has_one_example_that_matches_its_table(doc):
    sections = list(doc.frames.values()) + list(doc.objects.values())
    assert len(doc.frames) >= 30 and {"message", "attachment", "conversation", "visitor"} <= set(
        doc.objects
    )
    for section in sections:
        assert len(section.examples) == 1, f"{section.heading}: one json example"
        assert section.fields, f"{section.heading}: a field table"
        example = json.loads(section.examples[0])
        problems = conform(example, section.fields, doc.objects, section.heading)
        assert problems == []
        if section.kind == "frame":
            assert example["type"] == section.name, section.heading
            assert section.fields["type"].always


def test_object_references_point_at_documented_objects(doc):
    for section in list(doc.frames.values()) + list(doc.objects.values()):
        for spec in section.fields.values():
            for name in OBJECT_REF.findall(spec.type):
                assert name in doc.objects, f"{section.heading}: {spec.name} -> {name}"


def _required_by(handler) -> set[str]:
    """The names a handler passes to ``_require(frame, "<name>", ...)``.

    Read from the loaded bytecode, not the file: the file may have changed since import.
    """
    names = set()
    instructions = list(dis.get_instructions(handler))
    for i, ins in enumerate(instructions):
        if ins.opname == "LOAD_GLOBAL" and ins.argval == "_require":
            for following in instructions[i + 1 : i + 4]:
                if following.opname == "LOAD_CONST" and isinstance(following.argval, str):
                    names.add(following.argval)
                    break
    return names


def test_client_frames_document_the_fields_the_consumers_require(doc):
    # Fields a handler reads with _require(frame, "<name>", ...) must be documented required.
    found = set()
    for socket, consumer in (("visitor", VisitorConsumer), ("agent", AgentConsumer)):
        for kind, method in consumer.handlers.items():
            for name in _required_by(getattr(consumer, method)):
                found.add((socket, kind, name))
                spec = doc.frames[(socket, "in", kind)].fields.get(name)
                assert spec is not None and spec.always, f"{socket} {kind}.{name} is required"
    assert {("visitor", "message", "client_id"), ("agent", "open", "conversation_id")} <= found


# --- the document against the running server ------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


class FrameLog:
    """Every frame each socket received, read in order while waiting for the ones we want."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict]] = []

    def add(self, socket: str, frame: dict) -> dict:
        self.frames.append((socket, frame))
        return frame

    async def expect(self, comm, socket: str, kind: str, when=lambda f: True) -> dict:
        while True:
            frame = self.add(socket, await comm.receive_json_from(timeout=5))
            if frame["type"] == kind and when(frame):
                return frame


def _raw_visitor(workspace) -> WebsocketCommunicator:
    headers = [
        (b"host", b"chat.example.net"),
        (b"user-agent", CHROME_UA),
        (b"origin", b"https://shop.example.com"),
    ]
    comm = WebsocketCommunicator(application, f"/ws/visitor/?key={workspace.widget_key}", headers)
    comm.scope["client"] = ["81.2.69.160", 50000]
    return comm


async def _drive_everything(workspace, agent, second_agent) -> FrameLog:
    """One session that makes the server send every documented frame on both sockets."""
    log = FrameLog()
    V, A = "visitor", "agent"

    raw = _raw_visitor(workspace)
    assert (await raw.connect())[0]
    await raw.send_json_to({"type": "ping"})
    await log.expect(raw, V, "pong")  # before hello: only "type"
    await raw.send_json_to({"type": "message", "client_id": "early", "text": "hi"})
    await log.expect(raw, V, "error")  # hello_required, with ref
    await raw.disconnect()

    visitor, welcome = await visitor_socket(
        workspace,
        hello={"lang": "en-GB", "page": {"url": "https://shop.example.com/", "title": "Shop"}},
    )
    log.add(V, welcome)
    await visitor.send_json_to({"type": "ping"})
    await log.expect(visitor, V, "pong")

    a1, _ = await agent_socket(agent.user, hello=False)
    await a1.send_json_to({"type": "ping"})
    await log.expect(a1, A, "pong")
    await a1.send_json_to({"type": "hello"})
    await log.expect(a1, A, "welcome")
    await log.expect(visitor, V, "availability", lambda f: f["agents_online"])
    a2, welcome2 = await agent_socket(second_agent.user)
    log.add(A, welcome2)

    await visitor.send_json_to({"type": "message", "client_id": "v1", "text": "Hi <b>there</b>"})
    ack = await log.expect(visitor, V, "ack")
    conversation_id = ack["conversation_id"]
    await log.expect(visitor, V, "message")
    # The assignee hears of it; then both open it, so both hear what follows.
    assignee_id = (await Conversation.objects.aget(pk=conversation_id)).assignee_id
    await log.expect(a1 if assignee_id == agent.pk else a2, A, "message")
    for comm in (a1, a2):
        await comm.send_json_to({"type": "open", "conversation_id": conversation_id})
        await log.expect(comm, A, "history")

    await visitor.send_json_to({"type": "typing", "active": True})
    await log.expect(a1, A, "typing", lambda f: f["sender"] == "visitor")
    await a1.send_json_to({"type": "typing", "conversation_id": conversation_id, "active": True})
    await log.expect(visitor, V, "typing")
    await log.expect(a2, A, "typing", lambda f: f["sender"] == "agent")

    await a1.send_json_to({"type": "open", "conversation_id": conversation_id})
    await log.expect(a1, A, "history")

    attachment = await sync_to_async(services.attachment_create)(
        workspace=workspace, upload=SimpleUploadedFile("rates.png", PNG), agent=agent
    )
    await a1.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "text": "",
            "attachment_id": str(attachment.public_id),
        }
    )
    await log.expect(a1, A, "ack")
    await log.expect(visitor, V, "message", lambda f: f["message"]["attachment"] is not None)
    await log.expect(a2, A, "message", lambda f: f["message"]["sender"] == "agent")

    await visitor.send_json_to({"type": "receipt", "seq": 2, "status": "read"})
    await log.expect(visitor, V, "receipt", lambda f: f["reader"] == "visitor")
    await log.expect(a2, A, "receipt", lambda f: f["reader"] == "visitor")
    await a1.send_json_to({"type": "receipt", "conversation_id": conversation_id, "seq": 1})
    await log.expect(a1, A, "receipt", lambda f: f["reader"] == "agent")
    await log.expect(a1, A, "conversation", lambda f: f["conversation"]["unread"] == 0)
    await log.expect(visitor, V, "receipt", lambda f: f["reader"] == "agent")

    await a1.send_json_to({"type": "suggest", "conversation_id": conversation_id})
    await log.expect(a1, A, "suggestion")  # agent-assist (computed by a Celery task)
    await a1.send_json_to(
        {"type": "labels", "conversation_id": conversation_id, "labels": ["VIP", "退款"]}
    )
    await log.expect(a1, A, "conversation", lambda f: f["conversation"]["labels"] != [])

    await a1.send_json_to({"type": "list"})
    await log.expect(a1, A, "conversations")
    await a1.send_json_to({"type": "ping"})
    await log.expect(a1, A, "pong")
    await a1.send_json_to({"type": "open", "conversation_id": conversation_id + 10_000})
    await log.expect(a1, A, "error")

    await visitor.send_json_to({"type": "resume", "last_seq": 0})
    await log.expect(visitor, V, "history")
    await visitor.send_json_to({"type": "message", "client_id": "bad id!", "text": "x"})
    await log.expect(visitor, V, "error", lambda f: f.get("ref") == "bad id!")
    await visitor.send_json_to({"type": "no_such_frame"})
    await log.expect(visitor, V, "error", lambda f: f["code"] == "unknown_type")

    await a1.send_json_to({"type": "resolve", "conversation_id": conversation_id})
    await log.expect(a1, A, "conversation", lambda f: f["conversation"]["status"] == "resolved")
    await log.expect(visitor, V, "conversation")
    await visitor.send_json_to({"type": "rate", "rating": 5, "comment": "Thanks"})
    await log.expect(visitor, V, "rated")
    await log.expect(a1, A, "conversation", lambda f: f["conversation"]["rating"] == 5)
    # Blocking another visitor (one without a socket here, so this scenario goes on).
    other = await sync_to_async(ConversationFactory)(
        workspace=workspace, visitor__workspace=workspace, visitor__ip_address="203.0.113.7"
    )
    await a1.send_json_to({"type": "block", "conversation_id": other.pk, "scope": "ip"})
    await log.expect(a1, A, "blocked")

    # The same visitor in a second tab: welcome with the conversation, then history.
    tab, welcome3 = await visitor_socket(
        workspace,
        hello={"visitor_id": welcome["visitor_id"], "visitor_token": welcome["visitor_token"]},
    )
    log.add(V, welcome3)
    assert welcome3["visitor_id"] == welcome["visitor_id"]
    await log.expect(tab, V, "history")
    await tab.send_json_to(
        {
            "type": "leave_message",
            "client_id": "lm1",
            "name": "Ada",
            "email": "ada@example.com",
            "text": "Call me",
        }
    )
    await log.expect(tab, V, "ack")
    await a1.send_json_to({"type": "search", "q": "call", "client_id": "s1"})
    await log.expect(a1, A, "search_results", lambda f: f["results"])

    # The agent's day: a private note, presence, and a queue when nobody is available.
    await a1.send_json_to(
        {"type": "note", "conversation_id": conversation_id, "text": "VIP", "client_id": "n1"}
    )
    await log.expect(a1, A, "event", lambda f: f["event"]["kind"] == "note")
    for comm in (a2, a1):
        await comm.send_json_to({"type": "presence", "presence": "away"})
        await log.expect(a1, A, "presence", lambda f: f["agent"]["presence"] == "away")
    queued, _ = await visitor_socket(workspace)
    await queued.send_json_to({"type": "message", "client_id": "q1", "text": "anyone?"})
    await log.expect(queued, V, "queue", lambda f: f["position"] == 1)
    await log.expect(a1, A, "queue", lambda f: f["queue"]["total"] == 1)
    await queued.disconnect()

    await a1.disconnect()
    await a2.disconnect()
    await log.expect(visitor, V, "availability", lambda f: not f["agents_online"])
    await visitor.disconnect()
    await tab.disconnect()
    return log


@pytest.fixture
def second_agent(workspace):
    return AgentFactory(workspace=workspace)


@pytest.mark.django_db(transaction=True)
async def test_real_frames_have_exactly_the_documented_shape(
    doc, workspace, agent, second_agent, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.CELERY_TASK_ALWAYS_EAGER = True  # agent-assist's task answers `suggest`
    log = await _drive_everything(workspace, agent, second_agent)

    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for socket, frame in log.frames:
        section = doc.frames.get((socket, "out", frame["type"]))
        if section is None:
            problems.append(f"server → {socket}: {frame['type']} is not documented: {frame}")
            continue
        seen.add((socket, frame["type"]))
        problems += conform(frame, section.fields, doc.objects, section.heading)
    assert problems == []

    for socket in ("visitor", "agent"):
        never_seen = documented(doc, socket, "out") - {t for s, t in seen if s == socket}
        assert never_seen == set(), f"the scenario did not produce server → {socket} frames"
    # Optional fields were exercised both ways.
    frames = [f for _, f in log.frames]
    assert any(f["type"] == "error" and "ref" in f for f in frames)
    assert any(f["type"] == "error" and "ref" not in f for f in frames)
    assert any(f["type"] == "pong" and set(f) == {"type"} for f in frames)
    assert any(f["type"] == "message" and f["message"]["attachment"] is not None for f in frames)


# --- documented behaviours ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_malformed_frames_get_the_documented_errors_and_the_socket_survives(workspace):
    comm = _raw_visitor(workspace)
    assert (await comm.connect())[0]

    async def error_for(**send) -> dict:
        await comm.send_to(**send)
        frame = await comm.receive_json_from(timeout=5)
        assert frame["type"] == "error", frame
        return frame

    assert (await error_for(bytes_data=b"{}"))["code"] == "binary_not_supported"
    assert (await error_for(text_data="x" * (64 * 1024 + 1)))["code"] == "frame_too_large"
    # The limit is in bytes of UTF-8, not characters: 25,000 × "€" is 75,000 bytes.
    big = json.dumps({"type": "ping", "pad": "€" * 25_000}, ensure_ascii=False)
    assert len(big) < 64 * 1024 < len(big.encode())
    assert (await error_for(text_data=big))["code"] == "frame_too_large"
    assert (await error_for(text_data="{not json"))["code"] == "invalid_json"
    # Nesting too deep for the parser is invalid JSON, not a crash.
    assert (await error_for(text_data="[" * 60_000))["code"] == "invalid_json"
    assert (await error_for(text_data="[1, 2]"))["code"] == "invalid_frame"
    assert (await error_for(text_data='{"type": 5}'))["code"] == "invalid_frame"
    unknown = await error_for(text_data='{"type": "shout", "client_id": "c9"}')
    assert (unknown["code"], unknown["ref"]) == ("unknown_type", "c9")
    early = await error_for(text_data='{"type": "resume"}')
    assert early["code"] == "hello_required"
    await comm.send_json_to({"type": "hello", "last_seq": -1})
    assert (await comm.receive_json_from(timeout=5))["code"] == "invalid_field"

    await comm.send_json_to({"type": "hello"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "welcome"
    assert (await error_for(text_data='{"type": "hello"}'))["code"] == "already_hello"
    assert (await error_for(text_data='{"type": "message", "text": "x"}'))["code"] == (
        "missing_field"
    )
    typing = await error_for(text_data='{"type": "typing", "active": "yes"}')
    assert typing["code"] == "invalid_field"
    receipt = await error_for(text_data='{"type": "receipt", "seq": 1}')
    assert receipt["code"] == "no_conversation"
    page = await error_for(text_data='{"type": "page", "page": {"url": "javascript:alert(1)"}}')
    assert page["code"] == "invalid_page"
    nul = '{"type": "page", "page": {"url": "https://shop.example.com/a\\u0000b"}}'
    assert (await error_for(text_data=nul))["code"] == "invalid_page"

    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "pong"
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_frames_over_the_rate_limit_are_refused(workspace):
    comm = _raw_visitor(workspace)
    assert (await comm.connect())[0]
    for _ in range(60):  # far past the burst of 40, far faster than 20/s refills
        await comm.send_to(text_data='{"type": "no_such_frame"}')
    codes = [(await comm.receive_json_from(timeout=5))["code"] for _ in range(60)]
    assert codes[:40] == ["unknown_type"] * 40
    assert codes.count("rate_limited") >= 10
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_unknown_widget_key_gets_an_error_then_close_4004(workspace):
    comm = WebsocketCommunicator(
        application,
        "/ws/visitor/?key=not-a-key",
        [(b"host", b"chat.example.net"), (b"origin", b"https://anywhere.example")],
    )
    connected, _ = await comm.connect()
    assert connected
    frame = await comm.receive_json_from(timeout=5)
    assert (frame["type"], frame["code"]) == ("error", "invalid_key")
    closed = await comm.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4004}
    assert consumers.CLOSE_INVALID_KEY == 4004
    # Tell the consumer the client is gone, so it ends instead of being cancelled at
    # teardown (a cancelled channels-redis receive can hang the event loop's shutdown).
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin", [b"https://evil.example", b"http://shop.example.com", None, b"null"]
)
async def test_visitor_socket_from_a_foreign_or_missing_origin_is_refused(workspace, origin):
    headers = [(b"host", b"chat.example.net")]
    if origin is not None:
        headers.append((b"origin", origin))
    comm = WebsocketCommunicator(application, f"/ws/visitor/?key={workspace.widget_key}", headers)
    connected, _ = await comm.connect()
    assert not connected  # closed before accept: HTTP 403 at the handshake
    await comm.disconnect()  # as the server does after refusing; the consumer then ends


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [b"https://chat.example.net", b"https://SHOP.example.com", b"https://shop.example.com:443"],
)
async def test_visitor_socket_from_own_or_allowed_origin_opens(workspace, origin):
    headers = [(b"host", b"chat.example.net"), (b"origin", origin)]
    comm = WebsocketCommunicator(application, f"/ws/visitor/?key={workspace.widget_key}", headers)
    connected, _ = await comm.connect()
    assert connected
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_agent_socket_needs_an_agent_session_and_same_origin(workspace, agent):
    from accounts.tests.factories import UserFactory
    from chat.tests.sockets import _session_cookie

    async def opens(headers) -> bool:
        comm = WebsocketCommunicator(application, "/ws/agent/", headers)
        connected, _ = await comm.connect()
        await comm.disconnect()  # refused or not, let the consumer end
        return connected

    host = (b"host", b"127.0.0.1")
    good_origin = (b"origin", b"http://127.0.0.1")
    cookie = (b"cookie", (await _session_cookie(agent.user)).encode())
    not_agent = await sync_to_async(UserFactory)()
    other_cookie = (b"cookie", (await _session_cookie(not_agent)).encode())

    assert await opens([host, good_origin, cookie])
    assert not await opens([host, good_origin])  # no session
    assert not await opens([host, good_origin, other_cookie])  # no agent profile
    assert not await opens([host, (b"origin", b"https://evil.example"), cookie])
    assert not await opens([host, cookie])  # no Origin at all


@pytest.mark.django_db(transaction=True)
async def test_a_resent_client_id_is_acked_again_and_broadcast_once(workspace, agent):
    a, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    frame = {"type": "message", "client_id": "same-1", "text": "once"}
    await visitor.send_json_to(frame)
    first = await receive_until(visitor, "ack")
    await visitor.send_json_to(frame | {"text": "changed on retry"})
    second = await receive_until(visitor, "ack")
    assert {k: second[k] for k in ("message_id", "seq", "conversation_id")} == {
        k: first[k] for k in ("message_id", "seq", "conversation_id")
    }
    await visitor.send_json_to({"type": "message", "client_id": "next-2", "text": "two"})
    texts = []
    while not texts or texts[-1] != "two":
        texts.append((await receive_until(a, "message"))["message"]["text"])
    assert texts == ["once", "two"]  # the retry was not broadcast again
    await visitor.disconnect()
    await a.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_history_pages_with_has_more(workspace, settings):
    settings.HELPDESK_HISTORY_LIMIT = 3
    visitor, welcome = await visitor_socket(workspace)
    for n in range(5):
        await visitor.send_json_to({"type": "message", "client_id": f"p{n}", "text": f"m{n}"})
        await receive_until(visitor, "ack")
    await visitor.disconnect()

    again, _ = await visitor_socket(
        workspace,
        hello={"visitor_id": welcome["visitor_id"], "visitor_token": welcome["visitor_token"]},
    )
    page1 = await receive_until(again, "history")
    assert [m["seq"] for m in page1["messages"]] == [1, 2, 3] and page1["has_more"] is True
    await again.send_json_to({"type": "resume", "last_seq": 3})
    page2 = await receive_until(again, "history")
    assert [m["seq"] for m in page2["messages"]] == [4, 5] and page2["has_more"] is False
    await again.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_pong_reveals_a_lost_broadcast_and_resume_recovers_it(workspace, agent, monkeypatch):
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to({"type": "message", "client_id": "v1", "text": "hello"})
    ack = await receive_until(visitor, "ack")
    a, welcome = await agent_socket(agent.user)
    seen_id = welcome["last_message_id"]

    # The channel layer loses the reply's broadcast; the message itself is kept.
    monkeypatch.setattr("chat.realtime._send", lambda group, event: None)
    reply, _ = await sync_to_async(services.agent_message_send)(
        agent=agent, conversation_id=ack["conversation_id"], client_id="r1", text="lost?"
    )

    await visitor.send_json_to({"type": "ping"})
    pong = await receive_until(visitor, "pong")
    assert pong["last_seq"] == 2 > ack["seq"]
    await visitor.send_json_to({"type": "resume", "last_seq": ack["seq"]})
    history = await receive_until(visitor, "history")
    assert [m["text"] for m in history["messages"]] == ["lost?"]

    await a.send_json_to({"type": "ping"})
    agent_pong = await receive_until(a, "pong")
    assert agent_pong["last_message_id"] == reply.pk > seen_id
    await visitor.disconnect()
    await a.disconnect()
