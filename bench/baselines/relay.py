"""The limit: a minimal chat relay on the ``websockets`` library, no Django, no database.

It speaks the frames of docs/protocol.md that the load generator uses (hello/welcome,
message/ack, ping/pong, message fan-out) with in-memory routing in one process, so what
it sustains is what Python, the event loop and the socket layer allow on this machine.

    python bench/baselines/relay.py --port 8100 [--fanout all|one]

``--fanout all`` sends each visitor message to every connected agent (what the product
does today); ``one`` sends it to one agent, ``conversation_id % agents`` where the
visitor's URL carries ``agents=N`` and each agent's ``i=K`` (the future assignee routing).
``GET /healthz`` answers 200.
"""

import argparse
import asyncio
import itertools
import json
import signal
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve

PROTOCOL_VERSION = 2
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Relay:
    def __init__(self, fanout: str) -> None:
        self.fanout = fanout
        self.agents: dict[int, ServerConnection] = {}
        self.visitors: dict[int, ServerConnection] = {}
        self.last_seq: dict[int, int] = {}
        self.visitor_ids = itertools.count(1)
        self.agent_ids = itertools.count(1)
        self.message_ids = itertools.count(1)

    def _message(self, conv: int, sender: str, client_id: str, text: str, agent: str | None):
        seq = self.last_seq.get(conv, 0) + 1
        self.last_seq[conv] = seq
        return {
            "id": next(self.message_ids),
            "conversation_id": conv,
            "seq": seq,
            "sender": sender,
            "agent_name": agent,
            "client_id": client_id,
            "text": text,
            "attachment": None,
            "created_at": _now(),
            "delivered_at": None,
            "read_at": None,
        }

    @staticmethod
    def _ack(message: dict) -> str:
        return _dumps(
            {
                "type": "ack",
                "client_id": message["client_id"],
                "conversation_id": message["conversation_id"],
                "message_id": message["id"],
                "seq": message["seq"],
                "created_at": message["created_at"],
            }
        )

    async def visitor(self, ws: ServerConnection, query: dict) -> None:
        vid = next(self.visitor_ids)
        n_agents = int((query.get("agents") or ["0"])[0] or 0)
        hello = False
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                    kind = frame["type"]
                except (ValueError, TypeError, KeyError):
                    await ws.send(_dumps({"type": "error", "code": "invalid_frame"}))
                    continue
                if kind == "ping":
                    await ws.send(
                        _dumps(
                            {
                                "type": "pong",
                                "conversation_id": vid if vid in self.last_seq else None,
                                "last_seq": self.last_seq.get(vid, 0),
                            }
                        )
                    )
                elif kind == "hello":
                    hello = True
                    self.visitors[vid] = ws
                    await ws.send(
                        _dumps(
                            {
                                "type": "welcome",
                                "protocol": PROTOCOL_VERSION,
                                "visitor_id": str(uuid.uuid4()),
                                "visitor_token": "relay",
                                "conversation": None,
                                "agents_online": bool(self.agents),
                            }
                        )
                    )
                elif kind == "message" and hello:
                    client_id = frame.get("client_id")
                    if not isinstance(client_id, str):
                        await ws.send(_dumps({"type": "error", "code": "missing_field"}))
                        continue
                    message = self._message(vid, "visitor", client_id, frame.get("text", ""), None)
                    await ws.send(self._ack(message))
                    conversation = {"id": vid, "status": "open", "last_seq": message["seq"]}
                    if self.fanout == "one" and n_agents:
                        k = vid % n_agents
                        conversation["assignee"] = {"id": k, "name": f"agent {k}"}
                        targets = [self.agents[k]] if k in self.agents else []
                    else:
                        conversation["assignee"] = None
                        targets = list(self.agents.values())
                    broadcast(
                        targets,
                        _dumps(
                            {"type": "message", "message": message, "conversation": conversation}
                        ),
                    )
                    await ws.send(_dumps({"type": "message", "message": message}))
                else:
                    await ws.send(_dumps({"type": "error", "code": "unknown_type"}))
        finally:
            self.visitors.pop(vid, None)

    async def agent(self, ws: ServerConnection, query: dict) -> None:
        given = (query.get("i") or [""])[0]
        aid = int(given) if given.isdigit() else 1_000_000 + next(self.agent_ids)
        self.agents[aid] = ws
        name = f"agent {aid}"
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                    kind = frame["type"]
                except (ValueError, TypeError, KeyError):
                    await ws.send(_dumps({"type": "error", "code": "invalid_frame"}))
                    continue
                if kind == "ping":
                    await ws.send(_dumps({"type": "pong", "last_message_id": 0}))
                elif kind == "hello":
                    await ws.send(
                        _dumps(
                            {
                                "type": "welcome",
                                "protocol": PROTOCOL_VERSION,
                                "agent": {"id": aid, "name": name, "presence": "online"},
                                "conversations": [],
                                "last_message_id": 0,
                            }
                        )
                    )
                elif kind == "message":
                    conv = frame.get("conversation_id")
                    client_id = frame.get("client_id")
                    target = self.visitors.get(conv)
                    if not isinstance(client_id, str) or conv not in self.last_seq:
                        await ws.send(_dumps({"type": "error", "code": "not_found"}))
                        continue
                    message = self._message(conv, "agent", client_id, frame.get("text", ""), name)
                    await ws.send(self._ack(message))
                    if target is not None:
                        await target.send(_dumps({"type": "message", "message": message}))
                else:
                    await ws.send(_dumps({"type": "error", "code": "unknown_type"}))
        finally:
            if self.agents.get(aid) is ws:
                del self.agents[aid]

    async def handler(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        if parts.path == "/ws/visitor/":
            await self.visitor(ws, query)
        elif parts.path == "/ws/agent/":
            await self.agent(ws, query)
        else:
            await ws.close(4004)


def process_request(connection: ServerConnection, request):
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--fanout", choices=["all", "one"], default="all")
    args = parser.parse_args()
    relay = Relay(args.fanout)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        relay.handler,
        args.host,
        args.port,
        process_request=process_request,
        compression=None,
        ping_interval=None,
        max_size=64 * 1024,
        backlog=4096,
    ):
        await stop


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
