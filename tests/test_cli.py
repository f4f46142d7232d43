"""The ``warden`` command, run in-process through ``main(argv)`` against each database."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from broker.cli import main
from tests.conftest import STRONG_PASSWORD


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Path:
    """Point the command at a fresh database through its environment, as a user would."""
    for name in ("WARDEN_CONFIG", "WARDEN_SECRET_KEY", "WARDEN_SERVER_SECRET", "WARDEN_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WARDEN_SERVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WARDEN_DATABASE_URL", database_url)
    monkeypatch.setenv("WARDEN_SERVER_LOG_LEVEL", "warning")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # In a thread of its own, as from a shell: the test's own async context (anyio's runner, marked for
    # sniffio, which the openai SDK brings in) must not look like an event loop already running.
    with ThreadPoolExecutor(1) as thread:
        code = thread.submit(main, list(argv)).result()
    out, err = capsys.readouterr()
    return code, out, err


def test_users_keys_and_roles_commands(cli_env: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_USER_PASSWORD", STRONG_PASSWORD)
    assert run(capsys, "users", "create", "--email", "dev@example.com", "--role", "developer")[0] == 0
    code, out, _ = run(capsys, "keys", "create", "--owner", "dev@example.com", "--name", "laptop",
                       "--surfaces", "ai", "--models", "gpt-4o-mini", "--expires-days", "30")
    assert code == 0
    created = json.loads(out)
    assert created["secret"].startswith("wdn_")
    code, out, _ = run(capsys, "keys", "list", "--owner", "dev@example.com")
    assert code == 0 and created["id"] in out and "active" in out and created["secret"] not in out
    code, out, _ = run(capsys, "keys", "rotate", created["id"], "--grace-hours", "1")
    assert code == 0 and json.loads(out)["rotated_from"] == created["id"]
    assert run(capsys, "keys", "revoke", created["id"])[0] == 0
    assert "revoked" in run(capsys, "keys", "list")[1]
    assert run(capsys, "users", "disable", "dev@example.com")[0] == 0
    assert "disabled" in run(capsys, "users", "list")[1]

    code, out, _ = run(capsys, "roles", "export")
    document = json.loads(out)
    assert document["assignments"] == [{"email": "dev@example.com", "role": "developer", "team": None}]
    exported = cli_env / "roles.json"
    exported.write_text(out)
    assert run(capsys, "roles", "import", str(exported))[0] == 0


def test_errors_are_one_line_and_exit_non_zero(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keys", "create", "--owner", "nobody@example.com", "--name", "k")
    assert code == 1 and err.strip().count("\n") == 0 and "nobody@example.com" in err
    code, _, err = run(capsys, "keys", "revoke", "no-such-key")
    assert code == 1


def test_a_bad_roles_document_is_reported_by_entry(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = cli_env / "roles.json"
    document.write_text("not json")
    code, _, err = run(capsys, "roles", "import", str(document))
    assert code == 1 and "cannot read" in err and "Traceback" not in err
    document.write_text(json.dumps({"format": "warden.roles/v1", "roles": [{"name": "r"}],
                                    "assignments": [{"email": "nobody@example.com", "role": "r"}]}))
    code, _, err = run(capsys, "roles", "import", str(document))
    assert code == 1 and err.splitlines() == ["warden: malformed document",
                                              "  roles[0]: must be {name, permissions: [...], description?}"]


def test_config_option_is_accepted_after_the_subcommand(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = cli_env / "warden.yaml"
    config.write_text("server: {console_port: 99999}\n")
    code, _, err = run(capsys, "config", "check", "--config", str(config))
    assert code == 2 and "server.console_port" in err
    config.write_text("server: {console_port: 4001}\n")
    assert run(capsys, "config", "check", "--config", str(config))[0] == 0


def test_secrets_rotate_reports_what_it_resealed(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "secrets", "rotate")
    assert code == 0 and "re-encrypted 0" in out


def test_migrate_applies_then_reports_up_to_date(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "migrate")
    assert code == 0 and "applied 0001_identity" in out
    code, out, _ = run(capsys, "migrate")
    assert code == 0 and "applied" not in out and "up to date" in out
