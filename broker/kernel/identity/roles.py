"""Roles (built-in tiers and custom permission sets), their assignment, history, and JSON export/import."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound, PermissionDenied
from broker.kernel.identity.models import Permissions, Role, RoleAssignment
from broker.kernel.identity.permissions import BUILTIN_ROLES, validate_permissions
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Executor, Row

EXPORT_FORMAT = "warden.roles/v1"


def _role(row: Row) -> Role:
    return Role(
        id=row["id"], name=row["name"], description=row["description"],
        permissions=frozenset(json.loads(row["permissions"])), builtin=bool(row["builtin"]),
    )


def _assignment(row: Row) -> RoleAssignment:
    return RoleAssignment(
        id=row["id"], user_id=row["user_id"], role_id=row["role_id"], team_id=row["team_id"],
        created_at=row["created_at"],
    )


def _state(role: Role) -> dict[str, Any]:
    return {"name": role.name, "description": role.description, "permissions": sorted(role.permissions)}


class RoleCatalog:
    """Roles, assignments and the history of changes to both."""

    def __init__(self, db: Database, clock: Clock, changed: Callable[[], Awaitable[None]] | None = None) -> None:
        self._db = db
        self._clock = clock
        # Told when what a user may do changes, so cached principals are dropped on every instance.
        self._changed = changed

    async def seed_builtins(self) -> None:
        """Insert the five built-in tiers, refreshing their permissions when the catalogue changed."""
        now = self._clock.now()
        for name, (description, permissions) in BUILTIN_ROLES.items():
            encoded = json.dumps(sorted(permissions))
            await self._db.execute(
                "INSERT INTO roles (id, name, description, permissions, builtin, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " description = excluded.description, permissions = excluded.permissions",
                name, name, description, encoded, True, now, now,
            )

    async def all(self) -> list[Role]:
        rows = await self._db.fetch("SELECT * FROM roles ORDER BY builtin DESC, name")
        return [_role(r) for r in rows]

    async def get(self, role_id: str) -> Role:
        row = await self._db.fetchrow("SELECT * FROM roles WHERE id = ?", role_id)
        if row is None:
            raise NotFound(f"role {role_id!r} not found")
        return _role(row)

    async def find_by_name(self, name: str) -> Role | None:
        row = await self._db.fetchrow("SELECT * FROM roles WHERE name = ?", name)
        return _role(row) if row else None

    async def create(self, name: str, permissions: list[str], description: str = "",
                     actor_id: str | None = None) -> Role:
        perms = validate_permissions(permissions)
        role_id = uuid.uuid4().hex
        now = self._clock.now()
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO roles (id, name, description, permissions, builtin, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    role_id, name, description, json.dumps(sorted(perms)), False, now, now,
                )
                role = Role(role_id, name, description, perms, False)
                await self._record(tx, actor_id, "role.create", role_id, None, None, _state(role))
        except UniqueViolation as exc:
            raise Conflict(f"a role named {name!r} already exists") from exc
        return role

    async def update(self, role_id: str, changes: dict[str, Any], actor_id: str | None = None) -> Role:
        before = await self._editable(role_id)
        name = changes.get("name", before.name)
        description = changes.get("description", before.description)
        perms = (validate_permissions(changes["permissions"]) if "permissions" in changes
                 else before.permissions)
        after = Role(role_id, name, description, perms, False)
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    "UPDATE roles SET name = ?, description = ?, permissions = ?, updated_at = ? WHERE id = ?",
                    name, description, json.dumps(sorted(perms)), self._clock.now(), role_id,
                )
                await self._record(tx, actor_id, "role.update", role_id, None, _state(before), _state(after))
        except UniqueViolation as exc:
            raise Conflict(f"a role named {name!r} already exists") from exc
        await self._grants_changed()
        return after

    async def delete(self, role_id: str, actor_id: str | None = None) -> None:
        before = await self._editable(role_id)
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM role_assignments WHERE role_id = ?", role_id)
            await tx.execute("DELETE FROM roles WHERE id = ?", role_id)
            await self._record(tx, actor_id, "role.delete", role_id, None, _state(before), None)
        await self._grants_changed()

    async def _editable(self, role_id: str) -> Role:
        role = await self.get(role_id)
        if role.builtin:
            raise Conflict(f"built-in role {role.name!r} cannot be changed; clone it instead")
        return role

    async def assign(self, user_id: str, role_id: str, team_id: str | None = None,
                     actor: Permissions | None = None, actor_id: str | None = None) -> RoleAssignment:
        role = await self.get(role_id)
        if "*" in role.permissions and actor is not None and not actor.is_super_admin:
            raise PermissionDenied("only a super_admin may grant super_admin")
        assignment = RoleAssignment(uuid.uuid4().hex, user_id, role_id, team_id, self._clock.now())
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO role_assignments (id, user_id, role_id, team_id, created_at, created_by)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    assignment.id, user_id, role_id, team_id, assignment.created_at, actor_id,
                )
                await self._record(tx, actor_id, "role.assign", role_id, user_id, None,
                                   {"role": role.name, "team_id": team_id})
        except UniqueViolation as exc:
            raise Conflict("the user already holds this role in this scope") from exc
        await self._grants_changed()
        return assignment

    async def unassign(self, assignment_id: str, actor: Permissions | None = None,
                       actor_id: str | None = None) -> None:
        row = await self._db.fetchrow("SELECT * FROM role_assignments WHERE id = ?", assignment_id)
        if row is None:
            raise NotFound(f"role assignment {assignment_id!r} not found")
        role = await self.get(row["role_id"])
        if "*" in role.permissions and actor is not None and not actor.is_super_admin:
            raise PermissionDenied("only a super_admin may take super_admin away")
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM role_assignments WHERE id = ?", assignment_id)
            await self._record(tx, actor_id, "role.unassign", role.id, row["user_id"],
                               {"role": role.name, "team_id": row["team_id"]}, None)
        await self._grants_changed()

    async def _grants_changed(self) -> None:
        if self._changed is not None:
            await self._changed()

    async def assignments_of(self, user_id: str) -> list[RoleAssignment]:
        rows = await self._db.fetch(
            "SELECT * FROM role_assignments WHERE user_id = ? ORDER BY created_at", user_id
        )
        return [_assignment(r) for r in rows]

    async def permissions_of(self, user_id: str) -> Permissions:
        rows = await self._db.fetch(
            "SELECT a.team_id, a.role_id, r.permissions FROM role_assignments a JOIN roles r ON r.id = a.role_id"
            " WHERE a.user_id = ?",
            user_id,
        )
        global_: set[str] = set()
        by_team: dict[str, set[str]] = {}
        role_ids: set[str] = set()
        for row in rows:
            perms = json.loads(row["permissions"])
            (global_ if row["team_id"] is None else by_team.setdefault(row["team_id"], set())).update(perms)
            if row["team_id"] is None:
                role_ids.add(row["role_id"])
        return Permissions(frozenset(global_), {t: frozenset(p) for t, p in by_team.items()}, frozenset(role_ids))

    async def super_admin_exists(self) -> bool:
        row = await self._db.fetchrow(
            "SELECT 1 AS one FROM role_assignments a JOIN users u ON u.id = a.user_id"
            " WHERE a.role_id = 'super_admin' AND u.deleted_at IS NULL AND u.disabled = ?",
            False,
        )
        return row is not None

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._db.fetch("SELECT * FROM role_history ORDER BY at DESC LIMIT ?", limit)
        return [
            {**r, "before_state": json.loads(r["before_state"]) if r["before_state"] else None,
             "after_state": json.loads(r["after_state"]) if r["after_state"] else None}
            for r in rows
        ]

    async def _record(self, tx: Executor, actor_id: str | None, action: str, role_id: str | None,
                      subject_user_id: str | None, before: Any, after: Any) -> None:
        await tx.execute(
            "INSERT INTO role_history (id, at, actor_id, action, role_id, subject_user_id, before_state,"
            " after_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            uuid.uuid4().hex, self._clock.now(), actor_id, action, role_id, subject_user_id,
            json.dumps(before) if before is not None else None,
            json.dumps(after) if after is not None else None,
        )

    async def export(self) -> dict[str, Any]:
        """Custom roles and every assignment, by names and emails so the document moves between installs."""
        roles = [r for r in await self.all() if not r.builtin]
        rows = await self._db.fetch(
            "SELECT u.email, r.name AS role, t.name AS team FROM role_assignments a"
            " JOIN users u ON u.id = a.user_id JOIN roles r ON r.id = a.role_id"
            " LEFT JOIN teams t ON t.id = a.team_id WHERE u.deleted_at IS NULL ORDER BY u.email, r.name"
        )
        return {"format": EXPORT_FORMAT, "roles": [_state(r) for r in roles],
                "assignments": [{"email": r["email"], "role": r["role"], "team": r["team"]} for r in rows]}

    async def import_(self, document: dict[str, Any], resolve_user: Any, resolve_team: Any,
                      actor: Permissions | None = None, actor_id: str | None = None) -> dict[str, int]:
        """Create or update custom roles by name and add missing assignments; returns counts."""
        if document.get("format") != EXPORT_FORMAT:
            raise InvalidInput("unsupported document", [FieldError("format", f"must be {EXPORT_FORMAT!r}")])
        counts = {"roles_created": 0, "roles_updated": 0, "assignments_added": 0}
        for i, spec in enumerate(document.get("roles", [])):
            validate_permissions(list(spec.get("permissions", [])), f"roles[{i}].permissions")
        for spec in document.get("roles", []):
            existing = await self.find_by_name(spec["name"])
            if existing is None:
                await self.create(spec["name"], list(spec["permissions"]), spec.get("description", ""), actor_id)
                counts["roles_created"] += 1
            elif not existing.builtin:
                await self.update(existing.id, dict(spec), actor_id)
                counts["roles_updated"] += 1
        for i, item in enumerate(document.get("assignments", [])):
            role = await self.find_by_name(item["role"])
            if role is None:
                raise InvalidInput("unknown role", [FieldError(f"assignments[{i}].role", "no such role")])
            user_id = await resolve_user(item["email"])
            team_id = await resolve_team(item["team"]) if item.get("team") else None
            try:
                await self.assign(user_id, role.id, team_id, actor, actor_id)
                counts["assignments_added"] += 1
            except Conflict:
                continue
        return counts
