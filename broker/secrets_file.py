"""The master key ring and the server secret: from configuration, or generated once into the data dir."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from broker.config import WardenConfig
from broker.kernel.crypto import KeyRing, new_token

log = logging.getLogger(__name__)
SECRETS_FILE = "warden.secrets.json"


@dataclass(frozen=True, slots=True)
class ServerSecrets:
    """What the kernel's crypto needs: the AES key ring and the HMAC secret for API keys."""

    key_ring: KeyRing
    server_secret: bytes


def load_server_secrets(config: WardenConfig) -> ServerSecrets:
    """Use configured values; fill any that are missing from (or into) ``<data_dir>/warden.secrets.json``."""
    configured_ring, configured_secret = config.security.secret_key, config.security.server_secret
    stored: dict[str, str] = {}
    if not (configured_ring and configured_secret):
        stored = _load_or_generate(config.server.data_dir / SECRETS_FILE)
    ring = KeyRing.parse(configured_ring or stored["secret_key"])
    return ServerSecrets(ring, (configured_secret or stored["server_secret"]).encode())


def _load_or_generate(path: Path) -> dict[str, str]:
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return data
    log.warning(
        "WARDEN_SECRET_KEY / WARDEN_SERVER_SECRET not set: generated them into %s. Back this file up, and set"
        " both explicitly when several instances share a database.", path,
    )
    data = {"secret_key": KeyRing.generate_entry(1), "server_secret": new_token(32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        # link() fails if another process won the race; then everyone uses the winner's secrets.
        os.link(partial, path)
    except FileExistsError:
        stored: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return stored
    finally:
        partial.unlink()
    return data
