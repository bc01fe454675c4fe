"""Alembic migrations create exactly what the models declare."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from control_plane.database import Base, import_all_models, make_engine
from control_plane.migrate import upgrade


def test_models_and_migrations_agree(tmp_path):
    import_all_models()
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert {"accounts", "api_keys", "videos", "jobs", "tasks", "clips", "artifacts"} <= set(
        inspect(engine).get_table_names())


def test_upgrade_is_repeatable(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    upgrade(engine)  # every process upgrades at start; a second run must be a no-op
