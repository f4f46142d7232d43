"""One-shot tickets that open a server-sent event stream.

Browsers cannot set headers on an EventSource, so a stream is opened with a ticket in its URL: asked for with the
console session, valid for ``TICKET_SECONDS``, good for one stream only, kept hashed in the shared store of
pending authorizations (any instance may serve the stream). A long-lived credential never goes in a URL.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from broker.connections.pending import PendingAuthorizations
from broker.kernel.errors import AuthenticationFailed
from broker.kernel.identity.service import require
from console.endpoints import Call

TICKET_SECONDS = 30


class StreamTickets:
    def __init__(self, store: PendingAuthorizations, stream: str) -> None:
        self._store = store
        self._stream = stream  # which stream a ticket opens: one stream's ticket never opens another

    async def issue(self, grant: dict[str, Any]) -> str:
        ticket = secrets.token_urlsafe(32)
        await self._store.put(self._key(ticket), json.dumps(grant), TICKET_SECONDS)
        return ticket

    async def for_audit_readers(self, call: Call, path: str) -> dict[str, Any]:
        """A ticket for a stream of what the audit shows: for ``audit:read``, or ``audit:read`` in ?team_id's team
        (the grant then names the team: the stream shows only its own)."""
        team_id = call.request.query_params.get("team_id") or None
        require(call.actor, "audit:read", team_id)
        ticket = await self.issue({"team_id": team_id})
        return {"ticket": ticket, "expires_in": TICKET_SECONDS, "url": f"{path}?ticket={ticket}"}

    async def redeem(self, ticket: str) -> dict[str, Any]:
        """What the ticket was issued with; it is spent."""
        grant = await self._store.take(self._key(ticket)) if ticket else None
        if grant is None:
            raise AuthenticationFailed(f"a stream ticket serves one stream, for {TICKET_SECONDS} seconds:"
                                       " ask for a new one")
        return dict(json.loads(grant))

    def _key(self, ticket: str) -> str:
        return f"{self._stream}:" + hashlib.sha256(ticket.encode()).hexdigest()
