"""stdlib json against orjson on the server's own frames (docs/performance.md).

The frames are shaped like chat.frames' (a message, a console's conversation row, a
message to an agent with its conversation), in English and in Chinese. Each is encoded
the way the consumers send it (text: ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`` against ``orjson.dumps(...).decode()``) and decoded from the
text a socket receives. Bounded: a fixed number of rounds, a few seconds in all.

    .venv/bin/python bench/json_compare.py
"""

import json
import time

import orjson

ROUNDS = 50_000
TS = "2026-12-01T21:07:16.464714+00:00"


def _message(text: str) -> dict:
    return {
        "id": 912345,
        "conversation_id": 31877,
        "seq": 14,
        "sender": "visitor",
        "agent_name": None,
        "client_id": "c-6b1f0e7a-4c2d-4e8a-9a51-2f7d3c9b1e55",
        "text": text,
        "attachment": None,
        "created_at": TS,
        "delivered_at": None,
        "read_at": None,
    }


def _conversation(text: str, name: str) -> dict:
    return {
        "id": 31877,
        "status": "open",
        "visitor": {"id": 88123, "name": name, "country": "CN"},
        "assignee": {"id": 12, "name": "Alice"},
        "last_seq": 14,
        "last_message_at": TS,
        "last_message_preview": text[:80],
        "unread": 3,
        "created_at": TS,
        "first_response_at": TS,
        "resolved_at": None,
        "team": {"id": 2, "name": "Sales"},
        "queued_at": None,
        "snoozed_until": None,
        "first_response_seconds": 12,
        "resolution_seconds": None,
        "rating": None,
        "rating_comment": "",
        "rated_at": None,
        "labels": ["vip", "refund"],
    }


EN = "Hello, I ordered the blue jacket last week and it has not arrived yet. Can you check?"
ZH = "你好，我上周订购的蓝色夹克还没有到，能帮我查一下物流吗？谢谢！"
FRAMES = {
    "message (en)": {"type": "message", "message": _message(EN)},
    "message (zh)": {"type": "message", "message": _message(ZH)},
    "to agent with conversation (zh)": {
        "type": "message",
        "message": _message(ZH),
        "conversation": _conversation(ZH, "访客 88123"),
    },
    "conversation (en)": {"type": "conversation", "conversation": _conversation(EN, "Visitor")},
}


def _stdlib_dumps(frame: dict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def _orjson_dumps(frame: dict) -> str:
    return orjson.dumps(frame).decode()


def _per_call_us(fn, arg) -> float:
    best = float("inf")
    for _ in range(3):  # best of three: the machine is shared with whatever else runs
        start = time.perf_counter()
        for _ in range(ROUNDS):
            fn(arg)
        best = min(best, time.perf_counter() - start)
    return best / ROUNDS * 1e6


def main() -> None:
    print(f"{'frame':34} {'bytes':>6} {'encode µs std/orjson':>22} {'decode µs std/orjson':>22}")
    for name, frame in FRAMES.items():
        text = _stdlib_dumps(frame)
        assert json.loads(text) == orjson.loads(_orjson_dumps(frame))  # the same document
        enc = (_per_call_us(_stdlib_dumps, frame), _per_call_us(_orjson_dumps, frame))
        dec = (_per_call_us(json.loads, text), _per_call_us(orjson.loads, text))
        print(
            f"{name:34} {len(text.encode()):>6} {enc[0]:>10.2f} / {enc[1]:<9.2f}"
            f" {dec[0]:>10.2f} / {dec[1]:<9.2f}"
        )


if __name__ == "__main__":
    main()
