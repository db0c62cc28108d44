"""Regression tests for the production channel layer (channels-redis on redis-py 8).

redis-py 8 gives every connection a 5 s ``socket_timeout`` by default, and channels-redis
blocks in BRPOP for ``brpop_timeout`` (5 s) while a consumer waits for events: an idle
consumer then dies with "Timeout reading from ...:6379" and its socket closes
(channels_redis issue 422). The settings must give the layer's connections a timeout well
above the blocking read, and an idle socket must still work afterwards.
"""

import asyncio

import pytest
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from chat.tests.sockets import agent_socket, receive_message, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)

# Longer than redis-py's default socket timeout and channels-redis's BRPOP, with margin.
IDLE_SECONDS = 7


@pytest.mark.parametrize("kind", ["pubsub", "core"])
def test_layer_connections_time_out_well_above_the_blocking_read(kind, monkeypatch):
    """Both layers the settings offer keep redis-py's socket timeout far above 5 s."""
    import importlib

    from channels_redis.utils import create_pool

    import helpdesk.settings as project_settings

    monkeypatch.setenv("HELPDESK_CHANNEL_LAYER", kind)
    config = importlib.reload(project_settings).CHANNEL_LAYERS["default"]
    monkeypatch.delenv("HELPDESK_CHANNEL_LAYER")
    importlib.reload(project_settings)
    expected = {
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }[kind]
    assert config["BACKEND"] == expected
    hosts = config["CONFIG"]["hosts"]
    assert hosts
    for host in hosts:
        timeout = host.get("socket_timeout")
        assert timeout is not None, "redis-py 8 would apply its 5 s default"
        assert timeout >= 3 * RedisChannelLayer.brpop_timeout, timeout
        # ...and it reaches the connections the layer actually opens.
        assert create_pool(host).connection_kwargs["socket_timeout"] == timeout


def test_the_default_layer_is_pubsub():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == (
        "channels_redis.pubsub.RedisPubSubChannelLayer"
    )
    assert get_channel_layer() is not None


async def test_idle_sockets_still_get_events_and_answer_pings(workspace, agent):
    agent_comm, _ = await agent_socket(agent.user)
    visitor, _ = await visitor_socket(workspace)
    await visitor.send_json_to({"type": "message", "client_id": "before", "text": "hello"})
    ack = await receive_until(visitor, "ack")
    await receive_message(agent_comm)
    conversation_id = ack["conversation_id"]

    # The one deliberate wait on time in the suite: idleness is what is under test. Both
    # consumers sit in a blocking channel-layer read for longer than redis-py's default
    # socket timeout; with the bug their receive loop dies with a TimeoutError here.
    await asyncio.sleep(IDLE_SECONDS)

    # Fan-out still reaches both idle sockets...
    await agent_comm.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "client_id": "after-idle",
            "text": "still here?",
        }
    )
    assert (await receive_until(agent_comm, "ack"))["seq"] == 2
    at_visitor = await receive_message(visitor, sender="agent")
    assert at_visitor["message"]["text"] == "still here?"
    await visitor.send_json_to({"type": "message", "client_id": "after", "text": "yes"})
    assert (await receive_until(visitor, "ack"))["seq"] == 3
    at_agent = await receive_message(agent_comm, sender="visitor")
    assert at_agent["message"]["client_id"] == "after"

    # ...and both still answer pings.
    await visitor.send_json_to({"type": "ping"})
    assert (await receive_until(visitor, "pong"))["last_seq"] == 3
    await agent_comm.send_json_to({"type": "ping"})
    assert (await receive_until(agent_comm, "pong"))["last_message_id"] >= ack["message_id"]
    await visitor.disconnect()
    await agent_comm.disconnect()


def test_a_process_without_a_server_loop_broadcasts_over_one_connection():
    """A Celery worker sends every event on one loop, so over the same Redis connection.

    ``async_to_sync`` would start a loop per event, and the layer opens its connections
    per loop: a Redis connection (and its handshake) for every bot answer.
    """
    import redis

    from chat import realtime

    layer = get_channel_layer()
    group = f"test-one-loop-{id(layer)}"
    channel = realtime.run_on_layer_loop(layer.new_channel())
    realtime.run_on_layer_loop(layer.group_add(group, channel))
    stats = redis.Redis.from_url(settings.REDIS_URL)
    before = stats.info("stats")["total_connections_received"]

    for n in range(20):
        realtime._send(group, {"type": "test.event", "n": n})
    realtime.send_to_socket(channel, {"type": "test.event", "n": 20})

    got = [realtime.run_on_layer_loop(layer.receive(channel))["n"] for _ in range(21)]
    assert got == list(range(21))
    assert stats.info("stats")["total_connections_received"] - before <= 1
    realtime.run_on_layer_loop(layer.group_discard(group, channel))


def test_a_burst_of_events_reaches_a_consumer_as_one_batch_per_group_in_order():
    """publish_batch: one event per group (a chat.batch), every group's events in order,
    the PUBLISHes pipelined (the pub/sub layer's shard connection, one round trip)."""
    from chat import realtime

    layer = get_channel_layer()
    run = realtime.run_on_layer_loop
    a, b = run(layer.new_channel()), run(layer.new_channel())
    run(layer.group_add("test-burst-a", a))
    run(layer.group_add("test-burst-b", b))
    items = [("test-burst-a", {"type": "test.event", "n": n}) for n in range(3)]
    items.insert(1, ("test-burst-b", {"type": "test.event", "n": "b0"}))
    items.append(("test-burst-b", {"type": "chat.batch", "events": [{"type": "x", "n": "b1"}]}))

    assert run(realtime.publish_batch(layer, items)) == 2  # pipelined, one per group

    at_a = run(layer.receive(a))
    assert at_a["type"] == "chat.batch"
    assert [e["n"] for e in at_a["events"]] == [0, 1, 2]
    at_b = run(layer.receive(b))
    assert [e["n"] for e in at_b["events"]] == ["b0", "b1"]
    run(layer.group_discard("test-burst-a", a))
    run(layer.group_discard("test-burst-b", b))


def test_an_event_the_layer_cannot_serialize_spoils_nothing_else(caplog):
    from chat import realtime

    layer = get_channel_layer()
    run = realtime.run_on_layer_loop
    good = run(layer.new_channel())
    run(layer.group_add("test-bad-good", good))
    items = [
        ("test-bad-bad", {"type": "test.event", "n": object()}),  # msgpack refuses it
        ("test-bad-good", {"type": "test.event", "n": 1}),
    ]
    run(realtime.publish_batch(layer, items))
    assert run(layer.receive(good))["n"] == 1
    assert "broadcast to test-bad-bad not sent" in caplog.text
    run(layer.group_discard("test-bad-good", good))
