"""JSON shapes of identity records in management API responses (never a secret or a hash)."""

from __future__ import annotations

from typing import Any

from broker.kernel.identity.models import ApiKey, Role, RoleAssignment, Team, User


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name, "disabled": user.disabled,
            "has_password": user.has_password, "created_at": user.created_at}


def team_view(team: Team) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "description": team.description, "created_at": team.created_at}


def role_view(role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "description": role.description,
            "permissions": sorted(role.permissions), "builtin": role.builtin}


def assignment_view(assignment: RoleAssignment) -> dict[str, Any]:
    return {"id": assignment.id, "user_id": assignment.user_id, "role_id": assignment.role_id,
            "team_id": assignment.team_id, "created_at": assignment.created_at}


def key_view(key: ApiKey, now: float) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.lookup_prefix, "owner_user_id": key.owner_user_id,
        "owner_team_id": key.owner_team_id, "surfaces": sorted(key.surfaces),
        "allowed_models": sorted(key.allowed_models) if key.allowed_models is not None else None,
        "expires_at": key.expires_at, "revoked_at": key.revoked_at, "disabled_reason": key.disabled_reason,
        "grace_until": key.grace_until, "rotated_to": key.rotated_to, "last_used_at": key.last_used_at,
        "created_at": key.created_at, "state": key.state(now), "pinned_accounts": dict(key.pinned_accounts),
    }
