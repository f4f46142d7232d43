"""The ``warden`` command: serve, migrate, setup, config check, keys, users, roles, secrets."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from ai_proxy.catalog_store import AiCatalogStore
from broker.app import Kernel, open_kernel
from broker.config import ConfigError, WardenConfig, load_config
from broker.kernel.clock import SystemClock
from broker.kernel.errors import InvalidInput, WardenError
from broker.kernel.identity.keys import KeySpec
from broker.kernel.store.errors import StoreError
from broker.kernel.store.migrations import migrate
from broker.mcp.servers import McpServerStore
from broker.storage import StartupError, open_database

KernelCommand = Callable[[Kernel, argparse.Namespace], Awaitable[int]]
_CHATTY_LIBRARIES = ("aiosqlite", "asyncio", "httpcore", "httpcore2", "httpx", "httpx2", "mcp", "sse_starlette",
                     "uvicorn")
_PER_REQUEST_LIBRARIES = ("httpx", "httpx2", "mcp.client.streamable_http")
DAY = 86400.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warden", description="MCP-first tool broker and AI-API proxy")
    parser.add_argument("--config", type=Path, help="YAML configuration file (default: $WARDEN_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gateway and console listeners")
    commands.add_parser("migrate", help="apply pending database migrations")
    setup = commands.add_parser("setup", help="create the first super admin without the browser")
    setup.add_argument("--email", required=True)
    setup.add_argument("--name", default="")
    config = commands.add_parser("config", help="configuration commands")
    config.add_subparsers(dest="action", required=True).add_parser("check", help="validate and exit")
    _keys_parser(commands.add_parser("keys", help="manage API keys"))
    _users_parser(commands.add_parser("users", help="manage users"))
    roles = commands.add_parser("roles", help="export or import roles and assignments as JSON")
    role_actions = roles.add_subparsers(dest="action", required=True)
    role_actions.add_parser("export")
    role_actions.add_parser("import").add_argument("file", type=Path)
    secrets = commands.add_parser("secrets", help="secret box maintenance")
    secrets.add_subparsers(dest="action", required=True).add_parser(
        "rotate", help="re-encrypt every stored secret under the newest key version")
    _accept_config_everywhere(parser)
    return parser


def _accept_config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--config`` follow any (sub)command too: ``warden config check --config FILE``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML configuration file")
                _accept_config_everywhere(sub)


def _keys_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints the secret once")
    create.add_argument("--owner", required=True, help="owner's email")
    create.add_argument("--name", required=True)
    create.add_argument("--surfaces", default="ai,mcp", help="comma-separated: ai, mcp, management")
    create.add_argument("--models", help="comma-separated allowed models (default: all)")
    create.add_argument("--expires-days", type=float)
    listing = actions.add_parser("list", help="list keys")
    listing.add_argument("--owner", help="only this owner's keys")
    actions.add_parser("revoke").add_argument("key_id")
    rotate = actions.add_parser("rotate", help="issue a successor; the old key works for the grace period")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-hours", type=float)


def _users_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list")
    create = actions.add_parser("create", help="create a user (password from $WARDEN_USER_PASSWORD, if set)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--role", action="append", default=[], help="role id to assign globally")
    for action in ("disable", "enable", "delete"):
        actions.add_parser(action).add_argument("email")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"warden: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Libraries log statements, parameters and message bodies at DEBUG; Warden's debug level is its own.
    for library in _CHATTY_LIBRARIES:
        logging.getLogger(library).setLevel(max(logging.INFO, logging.getLogger().level))
    # HTTP clients log every request at INFO: one line per upstream hop, which the audit log already records.
    for library in _PER_REQUEST_LIBRARIES:
        logging.getLogger(library).setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.command == "config":
        print(f"configuration OK (database: {config.database_url.split('://')[0]},"
              f" redis: {'yes' if config.redis.url else 'no'})")
        return 0
    try:
        if args.command == "serve":
            from broker.serve import serve

            # uvloop: a faster event loop for the long-running server (a dependency of uvicorn[standard]).
            anyio.run(serve, config, backend_options={"use_uvloop": True})
            return 0
        if args.command == "migrate":
            return anyio.run(_migrate, config)
        return anyio.run(_with_kernel, config, _COMMANDS[args.command], args)
    except StartupError as exc:
        print(f"warden: start-up failed: {exc}", file=sys.stderr)
        return 3
    except (WardenError, StoreError) as exc:
        print(f"warden: {getattr(exc, 'message', exc)}", file=sys.stderr)
        for field in getattr(exc, "fields", []):  # InvalidInput: each bad entry of what was given
            print(f"  {field.field}: {field.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _with_kernel(config: WardenConfig, command: KernelCommand, args: argparse.Namespace) -> int:
    async with open_kernel(config) as kernel:
        return await command(kernel, args)


async def _migrate(config: WardenConfig) -> int:
    db = await open_database(config)
    try:
        applied = await migrate(db)
    finally:
        await db.close()
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    print("database is up to date")
    return 0


async def _setup(kernel: Kernel, args: argparse.Namespace) -> int:
    password = os.environ.get("WARDEN_ADMIN_PASSWORD") or getpass.getpass("Password for the super admin: ")
    user = await kernel.identity.setup.create_super_admin(args.email, args.name, password)
    print(f"created super admin {user.email}")
    return 0


async def _keys(kernel: Kernel, args: argparse.Namespace) -> int:
    identity = kernel.identity
    if args.action == "create":
        owner = await identity.user_by_email(args.owner)
        models = frozenset(m.strip() for m in args.models.split(",")) if args.models else None
        expires = time.time() + args.expires_days * DAY if args.expires_days else None
        surfaces = frozenset(s.strip() for s in args.surfaces.split(",") if s.strip())
        issued = await identity.keys.issue(KeySpec(args.name, owner, None, surfaces, models, expires))
        print(json.dumps({"id": issued.key.id, "secret": issued.secret}))
        print("store the secret now: it is not shown again", file=sys.stderr)
    elif args.action == "list":
        owner_id = await identity.user_by_email(args.owner) if args.owner else None
        keys = await identity.keys.visible(owner_id, include_all=owner_id is None)
        now = time.time()
        for key in keys:
            print(f"{key.id}  {key.lookup_prefix}…  {key.name:<20} {','.join(sorted(key.surfaces)):<18}"
                  f" {key.state(now)}")
    elif args.action == "revoke":
        await identity.keys.revoke(args.key_id)
        print(f"revoked {args.key_id}")
    elif args.action == "rotate":
        grace = args.grace_hours if args.grace_hours is not None else kernel.config.keys.rotation_grace_hours
        issued = await identity.keys.rotate(args.key_id, grace * 3600)
        print(json.dumps({"id": issued.key.id, "secret": issued.secret, "rotated_from": args.key_id}))
    return 0


async def _users(kernel: Kernel, args: argparse.Namespace) -> int:
    identity = kernel.identity
    if args.action == "list":
        for user in await identity.users.page(limit=10_000):
            print(f"{user.id}  {user.email:<32} {'disabled' if user.disabled else 'active'}")
    elif args.action == "create":
        user = await identity.users.create(args.email, args.name, os.environ.get("WARDEN_USER_PASSWORD"))
        for role in args.role:
            await identity.roles.assign(user.id, role)
        print(f"created {user.email} ({user.id})")
    else:
        user_id = await identity.user_by_email(args.email)
        if args.action == "delete":
            await identity.delete_user(user_id)
        else:
            await identity.update_user(user_id, {"disabled": args.action == "disable"})
        print(f"{args.action}d {args.email}")
    return 0


async def _roles(kernel: Kernel, args: argparse.Namespace) -> int:
    roles = kernel.identity.roles
    if args.action == "export":
        print(json.dumps(await roles.export(), indent=2))
        return 0
    try:
        document = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {args.file}: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidInput(f"{args.file} holds no JSON object (a roles export is one)")
    counts = await roles.import_(document, kernel.identity.user_by_email, kernel.identity.team_by_name)
    print(json.dumps(counts))
    return 0


async def _secrets(kernel: Kernel, args: argparse.Namespace) -> int:
    changed = await kernel.vault.rotate()
    changed += await McpServerStore(kernel.db, SystemClock(), kernel.box).reseal_all()
    changed += await AiCatalogStore(kernel.db, SystemClock(), kernel.box).reseal_all()
    print(f"re-encrypted {changed} secret(s) under the current key version")
    return 0


_COMMANDS: dict[str, KernelCommand] = {
    "setup": _setup, "keys": _keys, "users": _users, "roles": _roles, "secrets": _secrets,
}

if __name__ == "__main__":
    sys.exit(main())
