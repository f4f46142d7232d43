from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "warden.yaml"
    path.write_text(text)
    return path


def test_defaults_bind_loopback_on_3000_and_3001_with_sqlite_in_the_data_dir() -> None:
    config = load_config(environ={})
    assert (config.server.host, config.server.gateway_port, config.server.console_port) == ("127.0.0.1", 3000, 3001)
    assert config.database_url.startswith("sqlite:///") and config.database_url.endswith("warden.db")
    assert config.redis.url is None


def test_environment_overrides_the_file_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {gateway_port: 4000, console_port: 4001}\n")
    config = load_config(path, environ={"WARDEN_SERVER_CONSOLE_PORT": "5001",
                                        "WARDEN_DATABASE_URL": "postgresql://db/warden"})
    assert config.server.gateway_port == 4000
    assert config.server.console_port == 5001
    assert config.database_url == "postgresql://db/warden"


def test_warden_config_variable_selects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {gateway_port: 4100}\n")
    assert load_config(environ={"WARDEN_CONFIG": str(path)}).server.gateway_port == 4100


def test_variables_are_substituted_and_resources_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, """
providers:
  - {name: openai, type: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
models:
  - {name: gpt-4o-mini, routes: [{provider: openai, weight: 1}]}
mcp_servers:
  - {name: everything, transport: stdio, command: npx, args: ["-y", "@modelcontextprotocol/server-everything"]}
api_keys:
  - {name: ci, owner: admin@example.com, secret: "${WARDEN_CI_KEY}", surfaces: [ai, mcp]}
""")
    key = "wdn_" + "a" * 43
    config = load_config(path, environ={"OPENAI_API_KEY": "sk-test", "WARDEN_CI_KEY": key})
    assert config.providers[0].api_key == "sk-test"
    assert config.models[0].routes[0].provider == "openai"
    assert config.mcp_servers[0].args == ("-y", "@modelcontextprotocol/server-everything")
    assert config.api_keys[0].secret == key


@pytest.mark.parametrize(("text", "env", "key"), [
    ("server: {gateway_port: 70000}\n", {}, "server.gateway_port"),
    ("server: {gateway_port: abc}\n", {}, "server.gateway_port"),
    ("database: {url: 'mysql://x'}\n", {}, "database.url"),
    ("server: {colour: blue}\n", {}, "server.colour"),
    ("security: {cookie_secure: sometimes}\n", {}, "security.cookie_secure"),
    ("providers: [{name: p, type: openai, api_key: '${MISSING}'}]\n", {}, "providers[0].api_key"),
    ("models: [{name: m, routes: [{provider: nowhere}]}]\n", {}, "nowhere"),
    ("mcp_servers: [{name: s, transport: stdio}]\n", {}, "mcp_servers.0"),
    ("", {"WARDEN_REDIS_URL": "http://redis"}, "redis.url"),
    ("audit: {forward: [{kind: syslog, name: siem, url: 'http://siem'}]}\n", {}, "audit.forward.0.syslog.url"),
    ("audit: {forward: [{kind: kafka, name: k}]}\n", {}, "audit.forward.0"),
    ("audit: {forward: [{kind: nats, name: a}, {kind: nats, name: a}]}\n", {}, "repeated: a"),
])
def test_bad_value_is_one_line_naming_the_key(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ=env)
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "api_keys: [{name: k, owner: a@example.com, secret: 'wdn_short'}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "wdn_short" not in str(caught.value)


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_config_is_frozen() -> None:
    config = load_config(environ={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError for frozen models
        config.server.gateway_port = 1  # type: ignore[misc]
