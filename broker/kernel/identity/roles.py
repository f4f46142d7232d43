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
        role = Role(uuid.uuid4().hex, name, description, validate_permissions(permissions), False)
        try:
            async with self._db.transaction() as tx:
                await self._insert_role(tx, role, actor_id)
        except UniqueViolation as exc:
            raise Conflict(f"a role named {name!r} already exists") from exc
        return role

    async def _insert_role(self, tx: Executor, role: Role, actor_id: str | None) -> None:
        now = self._clock.now()
        await tx.execute(
            "INSERT INTO roles (id, name, description, permissions, builtin, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            role.id, role.name, role.description, json.dumps(sorted(role.permissions)), False, now, now,
        )
        await self._record(tx, actor_id, "role.create", role.id, None, None, _state(role))

    async def update(self, role_id: str, changes: dict[str, Any], actor_id: str | None = None) -> Role:
        before = await self._editable(role_id)
        after = _changed(before, changes)
        try:
            async with self._db.transaction() as tx:
                await self._update_role(tx, before, after, actor_id)
        except UniqueViolation as exc:
            raise Conflict(f"a role named {after.name!r} already exists") from exc
        await self._grants_changed()
        return after

    async def _update_role(self, tx: Executor, before: Role, after: Role, actor_id: str | None) -> None:
        await tx.execute(
            "UPDATE roles SET name = ?, description = ?, permissions = ?, updated_at = ? WHERE id = ?",
            after.name, after.description, json.dumps(sorted(after.permissions)), self._clock.now(), after.id,
        )
        await self._record(tx, actor_id, "role.update", after.id, None, _state(before), _state(after))

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
        _may_grant(role.permissions, actor)
        try:
            async with self._db.transaction() as tx:
                assignment = await self._insert_assignment(tx, user_id, role, team_id, actor_id)
        except UniqueViolation as exc:
            raise Conflict("the user already holds this role in this scope") from exc
        await self._grants_changed()
        return assignment

    async def _insert_assignment(self, tx: Executor, user_id: str, role: Role, team_id: str | None,
                                 actor_id: str | None) -> RoleAssignment:
        assignment = RoleAssignment(uuid.uuid4().hex, user_id, role.id, team_id, self._clock.now())
        await tx.execute(
            "INSERT INTO role_assignments (id, user_id, role_id, team_id, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            assignment.id, user_id, role.id, team_id, assignment.created_at, actor_id,
        )
        await self._record(tx, actor_id, "role.assign", role.id, user_id, None,
                           {"role": role.name, "team_id": team_id})
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
        """Create or update custom roles by name and add missing assignments; returns counts. All or nothing:
        the whole document is checked first (its shape, permissions, roles, users and teams, the actor's right
        to grant), then one transaction writes it, so a bad entry leaves no half-imported state behind."""
        if document.get("format") != EXPORT_FORMAT:
            raise InvalidInput("unsupported document", [FieldError("format", f"must be {EXPORT_FORMAT!r}")])
        specs, items = _import_entries(document)
        roles: dict[str, Role | None] = {spec["name"]: await self.find_by_name(spec["name"]) for spec in specs}
        planned: dict[str, Role] = {}  # by name: each role as it will be once the roles are written
        for spec in specs:
            found = roles[spec["name"]]
            planned[spec["name"]] = found if found is not None and found.builtin else \
                _changed(found or Role(uuid.uuid4().hex, spec["name"], "", frozenset(), False), spec)
        grants: dict[tuple[str, str, str | None], None] = {}  # (user id, role name, team id), each once, in order
        for i, item in enumerate(items):
            if item["role"] not in planned:
                role = await self.find_by_name(item["role"])
                if role is None:
                    raise InvalidInput("unknown role", [FieldError(f"assignments[{i}].role", "no such role")])
                planned[item["role"]] = role
            _may_grant(planned[item["role"]].permissions, actor)
            try:
                user_id = await resolve_user(item["email"])
                team_id = await resolve_team(item["team"]) if item.get("team") else None
            except NotFound as exc:
                raise InvalidInput("unknown user or team", [FieldError(f"assignments[{i}]", str(exc))]) from exc
            grants[(user_id, item["role"], team_id)] = None
        held = {(a.user_id, a.role_id, a.team_id)
                for user_id in {grant[0] for grant in grants} for a in await self.assignments_of(user_id)}
        counts = {"roles_created": 0, "roles_updated": 0, "assignments_added": 0}
        try:
            async with self._db.transaction() as tx:
                for spec in specs:
                    found, role = roles[spec["name"]], planned[spec["name"]]
                    if found is None:
                        await self._insert_role(tx, role, actor_id)
                        counts["roles_created"] += 1
                    elif not found.builtin:
                        await self._update_role(tx, found, role, actor_id)
                        counts["roles_updated"] += 1
                for user_id, name, team_id in grants:
                    if (user_id, planned[name].id, team_id) not in held:
                        await self._insert_assignment(tx, user_id, planned[name], team_id, actor_id)
                        counts["assignments_added"] += 1
        except UniqueViolation as exc:  # changed by someone else meanwhile: nothing was imported
            raise Conflict(f"roles or assignments changed while importing ({exc}); nothing was imported,"
                           " try again") from exc
        if counts["roles_updated"] or counts["assignments_added"]:
            await self._grants_changed()
        return counts


def _changed(role: Role, changes: dict[str, Any]) -> Role:
    """``role`` with the name, description and permissions ``changes`` give (the others as they were)."""
    return Role(role.id, changes.get("name", role.name), changes.get("description", role.description),
                validate_permissions(changes["permissions"]) if "permissions" in changes else role.permissions,
                False)


def _may_grant(permissions: frozenset[str], actor: Permissions | None) -> None:
    if "*" in permissions and actor is not None and not actor.is_super_admin:
        raise PermissionDenied("only a super_admin may grant super_admin")


def _import_entries(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An import document's roles and assignments, each of the shape an export gives (else InvalidInput naming
    every entry that is not); the roles' permissions checked against the catalogue."""
    roles, items = document.get("roles", []), document.get("assignments", [])
    errors = []
    if not isinstance(roles, list):
        errors.append(FieldError("roles", "must be a list"))
    if not isinstance(items, list):
        errors.append(FieldError("assignments", "must be a list"))
    if errors:
        raise InvalidInput("malformed document", errors)
    names: set[str] = set()
    for i, spec in enumerate(roles):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"] \
                or not isinstance(spec.get("permissions"), list) \
                or not isinstance(spec.get("description", ""), str):
            errors.append(FieldError(f"roles[{i}]", "must be {name, permissions: [...], description?}"))
        elif spec["name"] in names:
            errors.append(FieldError(f"roles[{i}].name", "named twice in the document"))
        else:
            names.add(spec["name"])
            try:
                validate_permissions(spec["permissions"], f"roles[{i}].permissions")
            except InvalidInput as exc:
                errors += exc.fields
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(key), str) for key in ("email", "role")) \
                or not isinstance(item.get("team"), str | None):
            errors.append(FieldError(f"assignments[{i}]", "must be {email, role, team?}"))
    if errors:
        raise InvalidInput("malformed document", errors)
    return roles, items
