"""Alembic migrations create exactly what the models declare, on SQLite and on PostgreSQL
(fixture `database_url` in tests/conftest.py: a fresh database per test)."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import reelfarm.models  # noqa: F401  (registers every table)
from reelfarm.database import Base, make_engine
from reelfarm.migrate import upgrade


@pytest.fixture
def engine(database_url, tmp_path):
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    yield engine
    engine.dispose()


def test_models_and_migrations_agree(engine):
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_server_default": True}),
                                Base.metadata)
    assert diff == []
    assert {"accounts", "api_keys", "videos", "jobs", "tasks", "clips", "artifacts"} <= set(
        inspect(engine).get_table_names())


def test_upgrade_is_repeatable(engine):
    upgrade(engine)
    upgrade(engine)  # every process upgrades at start; a second run must be a no-op
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == (_head(),)


def _head() -> str:
    from alembic.script import ScriptDirectory

    from reelfarm.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_keys_that_held_every_scope_get_campaigns_create(engine):
    """0011: a default key made before campaigns existed can create them; a narrowed one cannot."""
    import json

    from alembic import command
    from sqlalchemy import text

    from reelfarm.migrate import alembic_config

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    full = ["uploads:write", "jobs:read", "jobs:write", "clips:read", "assets:read", "assets:write"]
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
        connection.execute(text("INSERT INTO accounts (id, name, plan, created_at) VALUES ('acc_1', 'a', 'growth', "
                                "CURRENT_TIMESTAMP)"))  # fmt: skip
        for key_id, scopes in (("key_full", full), ("key_narrow", ["jobs:read"]), ("key_every", None)):
            connection.execute(text("INSERT INTO api_keys (id, account_id, key_hash, prefix, name, scopes, created_at) "
                                    "VALUES (:id, 'acc_1', :id, 'rf_live_', '', :scopes, CURRENT_TIMESTAMP)"),
                               {"id": key_id, "scopes": None if scopes is None else json.dumps(scopes)})  # fmt: skip
        command.upgrade(config, "0011")

        def scopes_of(key_id: str):
            value = connection.execute(text("SELECT scopes FROM api_keys WHERE id = :id"), {"id": key_id}).scalar()
            return json.loads(value) if isinstance(value, str) else value

        assert scopes_of("key_full") == [*full, "campaigns:create"]
        assert scopes_of("key_narrow") == ["jobs:read"]
        assert scopes_of("key_every") is None  # None already means every scope
        command.downgrade(config, "0010")
        assert scopes_of("key_full") == full
