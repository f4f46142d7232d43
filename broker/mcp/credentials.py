"""The hook per-user upstream credentials plug into.

A tool marked ``requires_user_credential`` (in its server's ``tool_options``) is called only with a credential
of the calling user's own for that server. Where that credential comes from — OAuth links, personal tokens —
is the job of the connections feature; the broker asks this port and, when there is none, refuses the call
with -32050 and the console address where the user can link the account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from broker.kernel.identity.models import Principal


@dataclass(frozen=True, slots=True)
class UpstreamCredential:
    """A user's credential for one upstream: who the upstream knows them as, and what to send it."""

    subject: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)


class UserCredentials(Protocol):
    async def credential_for(self, principal: Principal, server: str) -> UpstreamCredential | None: ...


class NoUserCredentials:
    """No user has linked any account yet: every tool that needs one is refused with the way to link it."""

    async def credential_for(self, principal: Principal, server: str) -> UpstreamCredential | None:
        return None
