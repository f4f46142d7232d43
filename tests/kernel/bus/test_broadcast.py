from __future__ import annotations

import anyio
from redis.asyncio import Redis

from broker.kernel.bus.memory import LocalBroadcast
from broker.kernel.bus.ports import Message
from broker.kernel.bus.redis import RedisBroadcast


async def test_local_broadcast_delivers_to_subscribers() -> None:
    bus = LocalBroadcast()
    got: list[Message] = []

    async def handler(message: Message) -> None:
        got.append(message)

    bus.subscribe("c", handler)
    await bus.publish("c", {"n": 1})
    await bus.publish("other", {"n": 2})
    assert got == [{"n": 1}]


async def test_redis_broadcast_reaches_the_other_instance_once(redis_client: Redis) -> None:
    sender, receiver = RedisBroadcast(redis_client, 0.5), RedisBroadcast(redis_client, 0.5)
    at_sender: list[Message] = []
    at_receiver: list[Message] = []
    arrived = anyio.Event()

    async def on_sender(message: Message) -> None:
        at_sender.append(message)

    async def on_receiver(message: Message) -> None:
        at_receiver.append(message)
        arrived.set()

    sender.subscribe("keys.invalidate", on_sender)
    receiver.subscribe("keys.invalidate", on_receiver)
    async with anyio.create_task_group() as group:
        group.start_soon(sender.run)
        group.start_soon(receiver.run)
        with anyio.fail_after(5):
            await sender.connected.wait()
            await receiver.connected.wait()
            await sender.publish("keys.invalidate", {"key_ids": ["k1"]})
            await arrived.wait()
        group.cancel_scope.cancel()
    assert at_receiver == [{"key_ids": ["k1"]}]
    assert at_sender == [{"key_ids": ["k1"]}]  # local delivery once; its own echo from Redis is skipped


async def test_publish_with_redis_down_still_delivers_locally_without_hanging() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    bus = RedisBroadcast(dead, 0.3)
    got: list[Message] = []

    async def handler(message: Message) -> None:
        got.append(message)

    bus.subscribe("c", handler)
    with anyio.fail_after(2):
        await bus.publish("c", {"n": 1})
    assert got == [{"n": 1}]
    await dead.aclose()
