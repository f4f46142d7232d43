"""Upstream sessions of per-user servers: one per (server, user, account), with that account's credential.

A server whose credentials are per user has no shared session (the pool keeps a placeholder with its last
known catalog). Each user's calls and lists go through a session of their own account, opened on first use,
whose credential is read (and refreshed ahead of expiry) before every request; its tool list is that
account's catalog. Linking, re-linking or unlinking an account closes that user's sessions, so the next
request sees the change; sessions unused for ``IDLE`` close on their own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from broker.connections.links import Link
from broker.connections.service import Connections, NeedsAuthorization
from broker.kernel.clock import Clock
from broker.kernel.identity.models import Principal
from broker.mcp.servers import UpstreamDefinition
from broker.mcp.upstream import Presented, Reach, UpstreamConnection
from broker.outbound import Outbound

log = logging.getLogger(__name__)
IDLE = 600.0
READY_WAIT = 15.0


class LinkCredential:
    """A linked account's token as an upstream session presents it (the credential source of its session)."""

    def __init__(self, link: Link, definition: UpstreamDefinition, connections: Connections) -> None:
        self.link = link
        self._definition = definition
        self._connections = connections

    async def current(self) -> Presented:
        # A link needing authorization again presents its stale token: the upstream refuses it and the call
        # is answered with where to authorize.
        with contextlib.suppress(NeedsAuthorization):
            self.link = await self._connections.fresh(self.link, self._definition)
        return self._presented()

    async def rejected(self, presented: Presented) -> Presented | None:
        if presented != self._presented():
            # Another request renewed the token while this one was in flight with the old one: retry with the
            # renewed token rather than renewing it again.
            return self._presented()
        renewed = await self._connections.rejected(self.link, self._definition)
        if renewed is None:
            return None
        self.link = renewed
        return self._presented()

    def _presented(self) -> Presented:
        headers, query = self._definition.auth.present(self.link.tokens.access_token)
        return Presented(headers, query)


def account_of(connection: UpstreamConnection) -> tuple[str, str] | None:
    """The linked account (label, upstream identity) a per-user session runs as; None for shared sessions."""
    credential = connection.reach.credential
    if isinstance(credential, LinkCredential):
        return credential.link.label, credential.link.upstream_subject
    return None


@dataclass
class _Session:
    connection: UpstreamConnection
    credential: LinkCredential
    scope: anyio.CancelScope
    last_used: float
    user_id: str = field(default="")


class UserUpstreams:
    def __init__(self, clock: Clock, connections: Connections, outbound: Outbound,
                 on_tools_changed: Callable[[], Awaitable[None]] | None = None) -> None:
        self._clock = clock
        self._connections = connections
        self._outbound = outbound
        self._on_tools_changed = on_tools_changed
        self._sessions: dict[tuple[str, str, str], _Session] = {}
        self._group: TaskGroup | None = None
        self._link_events: dict[tuple[str, str], anyio.Event] = {}

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                while True:
                    await anyio.sleep(60)
                    self._close_idle()
            finally:
                self._group = None
                for session in self._sessions.values():
                    session.scope.cancel()
                self._sessions.clear()

    def _close_idle(self) -> None:
        now = self._clock.now()
        for key, session in list(self._sessions.items()):
            if now - session.last_used > IDLE:
                session.scope.cancel()
                del self._sessions[key]

    def forget(self, server: str, user_id: str) -> None:
        """The user's accounts on ``server`` changed: their sessions there close, and calls waiting for an
        account there look again."""
        event = self._link_events.pop((server, user_id), None)
        if event is not None:
            event.set()
        for key, session in list(self._sessions.items()):
            if key[0] == server and key[1] == user_id:
                session.scope.cancel()
                del self._sessions[key]

    async def connection_for(self, principal: Principal, definition: UpstreamDefinition
                             ) -> UpstreamConnection | None:
        """The caller's own session to ``definition`` (ready, or the reason it is not in ``last_error``);
        None when the caller has no usable account linked there."""
        link = await self._connections.link_for(principal, definition.name)
        if link is None or link.state == "needs_authorization" or self._group is None:
            return None
        key = (definition.name, link.user_id, link.label)
        session = self._sessions.get(key)
        if session is not None and (session.connection.definition != definition
                                    or session.credential.link.id != link.id):
            session.scope.cancel()
            session = None
        if session is None:
            credential = LinkCredential(link, definition, self._connections)
            connection = UpstreamConnection(definition, self._clock, self._on_tools_changed,
                                            reach=Reach(self._outbound, credential))
            session = _Session(connection, credential, anyio.CancelScope(), self._clock.now(), link.user_id)
            self._sessions[key] = session
            self._group.start_soon(self._host, session)
        session.last_used = self._clock.now()
        if session.connection.health == "connecting":
            with anyio.move_on_after(min(definition.timeout_seconds, READY_WAIT)):
                await session.connection.wait_ready()
        return session.connection

    async def _host(self, session: _Session) -> None:
        with session.scope:
            await session.connection.run()

    async def wait_for_link(self, principal: Principal, server: str, within: float) -> bool:
        """Wait (bounded) until the caller has a usable account on ``server``; whether they do."""
        if principal.user is None:
            return False
        with anyio.move_on_after(within):
            while await self.unusable(principal, server):
                event = self._link_events.setdefault((server, principal.user.id), anyio.Event())
                await event.wait()
        return not await self.unusable(principal, server)

    async def unusable(self, principal: Principal, server: str) -> bool:
        """Whether the caller's account on ``server`` now needs authorization (after a failed call)."""
        link = await self._connections.link_for(principal, server)
        return link is None or link.state == "needs_authorization"
