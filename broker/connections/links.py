"""Users' linked upstream accounts at rest: one row per (server, user, label), the credential sealed.

The credential (an OAuth token set or a personal token) is sealed by the kernel's secret box with the link's
id as associated data, so a sealed value copied onto another row does not open. It leaves this module only
as a ``TokenSet`` for the code that presents it upstream; no API returns it.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox
from broker.kernel.errors import FieldError, InvalidInput, NotFound
from broker.kernel.store.ports import Database, Row

LinkKind = Literal["oauth", "personal_token"]
LinkState = Literal["connected", "needs_authorization", "expired", "error"]
_CONTEXT = b"upstream_link:"
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What is presented upstream, and what renews it."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    id: str
    server: str
    user_id: str
    label: str
    is_default: bool
    kind: LinkKind
    state: LinkState
    detail: str
    upstream_subject: str
    tokens: TokenSet
    version: int  # bumped on every credential change: a refresh writes only over the version it read
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        """The link as APIs show it: never the credential."""
        return {"id": self.id, "server": self.server, "label": self.label, "default": self.is_default,
                "kind": self.kind, "state": self.state, "detail": self.detail,
                "upstream_subject": self.upstream_subject, "expires_at": self.tokens.expires_at,
                "created_at": self.created_at, "updated_at": self.updated_at}


def check_label(label: str) -> str:
    if not _LABEL.match(label):
        raise InvalidInput("invalid account label",
                           [FieldError("label", "1-32 lowercase letters, digits, '-' or '_'")])
    return label


class LinkStore:
    def __init__(self, db: Database, box: SecretBox, clock: Clock) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    async def of_user(self, user_id: str, server: str | None = None) -> list[Link]:
        if server is None:
            rows = await self._db.fetch("SELECT * FROM upstream_links WHERE user_id = ? ORDER BY server, label",
                                        user_id)
        else:
            rows = await self._db.fetch("SELECT * FROM upstream_links WHERE user_id = ? AND server = ?"
                                        " ORDER BY label", user_id, server)
        return [self._link(r) for r in rows]

    async def find(self, server: str, user_id: str, label: str | None) -> Link | None:
        """The user's account ``label`` on ``server``, or their default one when ``label`` is None."""
        if label is None:
            row = await self._db.fetchrow("SELECT * FROM upstream_links WHERE server = ? AND user_id = ?"
                                          " AND is_default = ?", server, user_id, True)
        else:
            row = await self._db.fetchrow("SELECT * FROM upstream_links WHERE server = ? AND user_id = ?"
                                          " AND label = ?", server, user_id, label)
        return self._link(row) if row else None

    async def get(self, link_id: str) -> Link:
        row = await self._db.fetchrow("SELECT * FROM upstream_links WHERE id = ?", link_id)
        if row is None:
            raise NotFound("no such linked account")
        return self._link(row)

    async def save(self, server: str, user_id: str, label: str, kind: LinkKind, tokens: TokenSet,
                   upstream_subject: str) -> Link:
        """Link (or re-link) an account; the user's first account on a server becomes the default."""
        check_label(label)
        now = self._clock.now()
        existing = await self.find(server, user_id, label)
        async with self._db.transaction() as tx:
            if existing is None:
                has_default = await tx.fetchrow("SELECT id FROM upstream_links WHERE server = ? AND user_id = ?"
                                                " AND is_default = ?", server, user_id, True)
                link_id = uuid.uuid4().hex
                await tx.execute(
                    "INSERT INTO upstream_links (id, server, user_id, label, is_default, kind, state, detail,"
                    " upstream_subject, sealed, expires_at, version, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'connected', '', ?, ?, ?, 1, ?, ?)",
                    link_id, server, user_id, label, has_default is None, kind, upstream_subject,
                    self._seal(link_id, tokens), tokens.expires_at, now, now)
            else:
                link_id = existing.id
                await tx.execute(
                    "UPDATE upstream_links SET kind = ?, state = 'connected', detail = '', upstream_subject = ?,"
                    " sealed = ?, expires_at = ?, version = version + 1, updated_at = ? WHERE id = ?",
                    kind, upstream_subject, self._seal(link_id, tokens), tokens.expires_at, now, link_id)
        return await self.get(link_id)

    async def refreshed(self, link: Link, tokens: TokenSet) -> Link | None:
        """Store renewed tokens unless another refresh already did (None then: read the link again)."""
        changed = await self._db.execute(
            "UPDATE upstream_links SET sealed = ?, expires_at = ?, state = 'connected', detail = '',"
            " version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
            self._seal(link.id, tokens), tokens.expires_at, self._clock.now(), link.id, link.version)
        return replace(link, tokens=tokens, state="connected", detail="", version=link.version + 1) \
            if changed else None

    async def mark(self, link: Link, state: LinkState, detail: str) -> None:
        await self._db.execute("UPDATE upstream_links SET state = ?, detail = ?, updated_at = ? WHERE id = ?",
                               state, detail[:300], self._clock.now(), link.id)

    async def make_default(self, link: Link) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("UPDATE upstream_links SET is_default = ? WHERE server = ? AND user_id = ?",
                             False, link.server, link.user_id)
            await tx.execute("UPDATE upstream_links SET is_default = ? WHERE id = ?", True, link.id)

    async def delete(self, link: Link) -> None:
        """Unlink; when it was the default, the oldest remaining account takes its place."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM upstream_links WHERE id = ?", link.id)
            if link.is_default:
                heir = await tx.fetchrow("SELECT id FROM upstream_links WHERE server = ? AND user_id = ?"
                                         " ORDER BY created_at LIMIT 1", link.server, link.user_id)
                if heir is not None:
                    await tx.execute("UPDATE upstream_links SET is_default = ? WHERE id = ?", True, heir["id"])

    async def delete_server(self, server: str) -> None:
        await self._db.execute("DELETE FROM upstream_links WHERE server = ?", server)

    async def delete_orphans(self) -> None:
        await self._db.execute("DELETE FROM upstream_links WHERE server NOT IN (SELECT name FROM mcp_servers)")

    def _seal(self, link_id: str, tokens: TokenSet) -> str:
        plain = json.dumps({"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                            "scope": tokens.scope}).encode()
        return base64.b64encode(self._box.seal(plain, _CONTEXT + link_id.encode())).decode()

    def _link(self, row: Row) -> Link:
        opened = json.loads(self._box.open(base64.b64decode(row["sealed"]), _CONTEXT + row["id"].encode()))
        expires = float(row["expires_at"]) if row["expires_at"] is not None else None
        return Link(row["id"], row["server"], row["user_id"], row["label"], bool(row["is_default"]), row["kind"],
                    row["state"], row["detail"], row["upstream_subject"],
                    TokenSet(opened["access_token"], opened.get("refresh_token"), expires, opened.get("scope")),
                    int(row["version"]), float(row["created_at"]), float(row["updated_at"]))
