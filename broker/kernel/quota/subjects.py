"""Which subjects a request counts against, from who makes it and what it targets."""

from __future__ import annotations

from broker.kernel.identity.models import Principal
from broker.kernel.quota.models import Subject


def subjects_for(principal: Principal, *, provider: str | None = None, model: str | None = None,
                 mcp_server: str | None = None, tool: str | None = None) -> tuple[Subject, ...]:
    """API key, user and teams of the caller, plus the provider/model (AI) or server/tool (MCP) targeted."""
    subjects: list[Subject] = []
    if principal.key is not None:
        subjects.append(Subject("api_key", principal.key.id))
    if principal.user is not None:
        subjects.append(Subject("user", principal.user.id))
    subjects += [Subject("team", team) for team in principal.team_ids]
    for kind, value in (("provider", provider), ("model", model), ("mcp_server", mcp_server), ("tool", tool)):
        if value is not None:
            subjects.append(Subject(kind, value))  # type: ignore[arg-type]
    return tuple(subjects)
