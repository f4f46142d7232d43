from __future__ import annotations

import stat
from pathlib import Path

from broker.config import load_config
from broker.kernel.crypto import KeyRing
from broker.secrets_file import SECRETS_FILE, load_server_secrets


def test_missing_secrets_are_generated_once_private_and_reused(tmp_path: Path) -> None:
    config = load_config(environ={"WARDEN_SERVER_DATA_DIR": str(tmp_path)})
    first = load_server_secrets(config)
    path = tmp_path / SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_server_secrets(config)
    assert first == second
    assert [p.name for p in tmp_path.iterdir()] == [SECRETS_FILE]


def test_configured_secrets_win_and_nothing_is_written(tmp_path: Path) -> None:
    ring = KeyRing.generate_entry(3)
    config = load_config(environ={"WARDEN_SERVER_DATA_DIR": str(tmp_path), "WARDEN_SECRET_KEY": ring,
                                  "WARDEN_SERVER_SECRET": "s3cret"})
    secrets = load_server_secrets(config)
    assert secrets.key_ring.current_version == 3 and secrets.server_secret == b"s3cret"
    assert not (tmp_path / SECRETS_FILE).exists()
