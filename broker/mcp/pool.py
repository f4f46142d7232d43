"""The set of upstream connections, kept in step with the server definitions while Warden runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from broker.kernel.clock import Clock
from broker.mcp.servers import UpstreamDefinition
from broker.mcp.upstream import Presented, Reach, UpstreamConnection
from broker.outbound import Outbound


class StaticCredential:
    """A shared secret, the same on every request; a 401 has no fresher one to retry with."""

    def __init__(self, presented: Presented) -> None:
        self._presented = presented

    async def current(self) -> Presented:
        return self._presented

    async def rejected(self, presented: Presented) -> Presented | None:
        return None


class UpstreamPool:
    """One supervised connection per enabled upstream; ``sync`` adds, replaces and stops them."""

    def __init__(self, clock: Clock, on_tools_changed: Callable[[], Awaitable[None]] | None = None,
                 on_resource_updated: Callable[[str, str], Awaitable[None]] | None = None,
                 outbound: Outbound | None = None) -> None:
        self._clock = clock
        self._outbound = outbound or Outbound()
        self._on_tools_changed = on_tools_changed
        self._on_resource_updated = on_resource_updated
        self._connections: dict[str, tuple[UpstreamConnection, anyio.CancelScope]] = {}
        self._group: TaskGroup | None = None

    def get(self, name: str) -> UpstreamConnection | None:
        entry = self._connections.get(name)
        return entry[0] if entry else None

    def connections(self) -> list[UpstreamConnection]:
        return [self._connections[name][0] for name in sorted(self._connections)]

    async def settle(self, deadline: float) -> None:
        """Wait (bounded) for upstreams still making their first connection, so a client that lists tools
        right after start-up sees every server rather than a silently shorter catalog."""
        connecting = [c for c in self.connections() if c.health == "connecting"]
        if not connecting:
            return
        with anyio.move_on_after(deadline):
            async with anyio.create_task_group() as group:
                for connection in connecting:
                    group.start_soon(connection.wait_ready)

    async def run(self, definitions: list[UpstreamDefinition]) -> None:
        """Serve until cancelled; connections stop (and stdio processes are reaped) when this returns."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                self.sync(definitions)
                await anyio.sleep_forever()
            finally:
                self._group = None
                self._connections.clear()
                group.cancel_scope.cancel()

    def sync(self, definitions: list[UpstreamDefinition]) -> None:
        """Start connections for new or changed definitions, stop those removed or changed."""
        assert self._group is not None, "the pool is not running"
        wanted = {d.name: d for d in definitions}
        for name in list(self._connections):
            connection, scope = self._connections[name]
            if wanted.get(name) != connection.definition:
                scope.cancel()
                del self._connections[name]
        for name, definition in wanted.items():
            if name not in self._connections:
                self._start(definition)

    def _start(self, definition: UpstreamDefinition) -> None:
        assert self._group is not None
        secret = definition.auth_secrets.get("secret") if definition.auth.mode == "static" else None
        reach = Reach(self._outbound, StaticCredential(Presented(*definition.auth.present(secret))) if secret else None)
        connection = UpstreamConnection(definition, self._clock, self._on_tools_changed, self._on_resource_updated,
                                        reach)
        scope = anyio.CancelScope()
        self._connections[definition.name] = (connection, scope)
        if not definition.enabled:
            connection.health = "disabled"
            return
        if definition.auth.per_user and definition.auth.requires_user_auth:
            # Nothing to list without a user's account: each user's own session serves them (UserUpstreams).
            connection.health = "per_user"
            return

        async def supervise() -> None:
            with scope:
                await connection.run()

        self._group.start_soon(supervise)
