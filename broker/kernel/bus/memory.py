"""In-process broadcast: the embedded default, for a single instance."""

from __future__ import annotations

import anyio

from broker.kernel.bus.ports import Handler, Message


class LocalBroadcast:
    """Calls this instance's handlers directly."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    async def publish(self, channel: str, message: Message) -> None:
        await deliver(self._handlers, channel, message)

    async def run(self) -> None:
        await anyio.sleep_forever()


async def deliver(handlers: dict[str, list[Handler]], channel: str, message: Message) -> None:
    for handler in handlers.get(channel, ()):
        await handler(message)
