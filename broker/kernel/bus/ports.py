"""The broadcast port: fire-and-forget messages to every Warden instance (cache invalidation, events)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[None]]


class Broadcast(Protocol):
    """Publishes to all instances, this one included; handlers must be idempotent."""

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Register a handler before ``run`` starts."""
        ...

    async def publish(self, channel: str, message: Message) -> None:
        """Deliver locally at once and to the other instances as soon as the transport allows."""
        ...

    async def run(self) -> None:
        """Deliver messages from other instances until cancelled."""
        ...
