"""Alembic, configured in code: every process upgrades the database to head at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from reelfarm.database import make_engine, make_session_factory
from reelfarm.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revisions() -> set[str]:
    """The revisions `upgrade` brings a database to (the migrations' heads)."""
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def database_revisions(engine: Engine) -> set[str]:
    """The revisions the database is at (empty: never migrated)."""
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def open_database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    """Engine + session factory for the settings' database, migrated to head."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return engine, make_session_factory(engine)
