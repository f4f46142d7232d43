"""Redis pub/sub broadcast for several instances; reconnects with backoff when Redis goes away."""

from __future__ import annotations

import json
import logging
import uuid

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.kernel.bus.memory import deliver
from broker.kernel.bus.ports import Handler, Message

log = logging.getLogger(__name__)
_PREFIX = "warden:bus:"


class RedisBroadcast:
    """Delivers locally at once and through Redis to the other instances (own echoes are skipped)."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout
        self._handlers: dict[str, list[Handler]] = {}
        self._origin = uuid.uuid4().hex
        self.connected = anyio.Event()

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    async def publish(self, channel: str, message: Message) -> None:
        await deliver(self._handlers, channel, message)
        payload = json.dumps({"origin": self._origin, "message": message})
        try:
            with anyio.fail_after(self._timeout):
                await self._redis.publish(_PREFIX + channel, payload)
        except (RedisError, OSError, TimeoutError) as exc:
            # Other instances then rely on their cache TTL; the local effect already happened.
            log.warning("broadcast on %s not sent to other instances: %s", channel, exc)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("broadcast subscription lost (%s); retrying in %.1fs", exc, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*(_PREFIX + c for c in self._handlers or {"_": []}))
            self.connected.set()
            while True:
                item = await pubsub.get_message(timeout=1.0)
                if item is not None:
                    await self._dispatch(item)
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _dispatch(self, item: dict[str, object]) -> None:
        channel = str(item["channel"].decode() if isinstance(item["channel"], bytes) else item["channel"])
        try:
            envelope = json.loads(item["data"])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            log.warning("ignored a malformed broadcast on %s", channel)
            return
        if envelope.get("origin") != self._origin:
            await deliver(self._handlers, channel.removeprefix(_PREFIX), envelope["message"])
