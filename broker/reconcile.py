"""Resources declared in the configuration file, reconciled into the store at start (deployment as code)."""

from __future__ import annotations

import logging

from broker.config import ApiKeyImport
from broker.kernel.identity.keys import KeySpec
from broker.kernel.identity.service import Identity

log = logging.getLogger(__name__)


async def reconcile_api_keys(identity: Identity, declared: tuple[ApiKeyImport, ...]) -> int:
    """Import each declared key (hashed like any other); a missing owner is created without a password."""
    for item in declared:
        found = await identity.users.find_by_email(item.owner)
        owner = found[0] if found else await identity.users.create(item.owner, item.owner.split("@")[0])
        if found is None:
            log.info("created user %s as owner of declared API key %r", owner.email, item.name)
        spec = KeySpec(item.name, owner.id, None, frozenset(item.surfaces),
                       frozenset(item.allowed_models) if item.allowed_models is not None else None)
        await identity.keys.import_secret(spec, item.secret)
    return len(declared)
