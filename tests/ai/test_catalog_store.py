"""The AI catalogue's store on SQLite and PostgreSQL: provider keys sealed, file entries read-only but for the
kill switch (which survives re-reading the file), references and names checked, keys re-sealed on rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ai_proxy.catalog_store import AiCatalogStore
from broker.config import ModelConfig, ProviderConfig, RouteConfig, WardenConfig
from broker.kernel.crypto import KeyRing, SecretBox
from broker.kernel.errors import Conflict, InvalidInput, NotFound
from broker.kernel.store.migrations import migrate
from broker.kernel.store.ports import Database
from broker.storage import open_database
from tests.conftest import FakeClock

FILE_PROVIDER = ProviderConfig(name="openai", type="openai", api_key="sk-file-secret")
FILE_MODEL = ModelConfig(name="house", aliases=("home",), routes=(RouteConfig(provider="openai"),))


@pytest.fixture
async def db(config: WardenConfig) -> AsyncIterator[Database]:
    database = await open_database(config)
    try:
        await migrate(database)
        yield database
    finally:
        await database.close()


@pytest.fixture
def store(db: Database, clock: FakeClock) -> AiCatalogStore:
    return AiCatalogStore(db, clock, SecretBox(KeyRing.parse(KeyRing.generate_entry(1))))


async def test_provider_keys_are_sealed_and_file_entries_read_only(store: AiCatalogStore, db: Database) -> None:
    await store.reconcile_config((FILE_PROVIDER,), (FILE_MODEL,))
    added = ProviderConfig(name="claude", type="anthropic", api_key="sk-ant-secret", timeout_seconds=30)
    await store.create_provider(added)
    rows = await db.fetch("SELECT * FROM ai_providers")
    assert all("secret" not in str(dict(row)) for row in rows)
    assert (await store.provider("claude"))[0] == added and (await store.provider("openai"))[1] == "config"

    changed = await store.update_provider("claude", {"timeout_seconds": 60})
    assert changed.api_key == "sk-ant-secret" and changed.timeout_seconds == 60
    with pytest.raises(InvalidInput):
        await store.update_provider("claude", {"timeout_seconds": -1})
    with pytest.raises(Conflict):
        await store.update_provider("openai", {"timeout_seconds": 5})
    with pytest.raises(Conflict):
        await store.create_provider(added)
    with pytest.raises(Conflict):  # a model routes to it
        await store.create_model(ModelConfig(name="sonnet", routes=(RouteConfig(provider="claude"),)))
        await store.delete_provider("claude")
    await store.delete_model("sonnet")
    await store.delete_provider("claude")
    with pytest.raises(NotFound):
        await store.provider("claude")
    assert await store.reseal_all() == 1 and (await store.provider("openai"))[0].api_key == "sk-file-secret"


async def test_models_are_checked_and_the_kill_switch_survives_the_file(store: AiCatalogStore) -> None:
    await store.reconcile_config((FILE_PROVIDER,), (FILE_MODEL,))
    with pytest.raises(InvalidInput) as unknown:
        await store.create_model(ModelConfig(name="x", routes=(RouteConfig(provider="nowhere"),)))
    assert unknown.value.fields[0].field == "routes[0].provider"
    with pytest.raises(InvalidInput) as taken:
        await store.create_model(ModelConfig(name="y", aliases=("home",), routes=(RouteConfig(provider="openai"),)))
    assert taken.value.fields[0].field == "aliases"
    with pytest.raises(Conflict):  # a file model changes in the file, but for its kill switch
        await store.update_model("house", {"routing": "cost"})

    assert (await store.update_model("house", {"enabled": False})).enabled is False
    await store.reconcile_config((FILE_PROVIDER,), (FILE_MODEL,))  # a restart: the switch stays off
    assert (await store.model("house"))[0].enabled is False
    await store.reconcile_config((FILE_PROVIDER,), (FILE_MODEL.model_copy(update={"routing": "latency"}),))
    assert (await store.model("house"))[0].enabled is False
    off_in_file = FILE_MODEL.model_copy(update={"enabled": False})
    await store.reconcile_config((FILE_PROVIDER,), (off_in_file,))
    await store.update_model("house", {"enabled": True})
    await store.reconcile_config((FILE_PROVIDER,), (off_in_file,))
    assert (await store.model("house"))[0].enabled is True  # switched on through the API: stays on
    await store.update_model("house", {"enabled": False})
    await store.reconcile_config((FILE_PROVIDER,), (FILE_MODEL,))  # the file itself changed: the file wins
    assert (await store.model("house"))[0].enabled is True

    await store.reconcile_config((FILE_PROVIDER,), ())  # gone from the file: gone
    with pytest.raises(NotFound):
        await store.model("house")
    await store.create_model(ModelConfig(name="house", routes=(RouteConfig(provider="openai"),)))
    with pytest.raises(Conflict):  # the file may not take over what the API made
        await store.reconcile_config((FILE_PROVIDER,), (FILE_MODEL,))
