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
