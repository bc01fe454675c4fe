"""Shared fixtures: one Ray instance per session, test media made with ffmpeg, embedded stacks.

The suite runs inside a private network namespace (see .ci/test): Ray binds every
interface otherwise.

Every test that takes `settings` (so every embedded stack) runs twice: on SQLite
(`[sqlite]`) and on PostgreSQL (`[postgres]`), a fresh database per test on one server
this session starts (tests/harness/local_postgres.py). Without pg_ctl/initdb the
PostgreSQL variants skip; `-k "not postgres"` leaves them out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest  # noqa: E402

# API-only app fixtures (api_app, api, signed_up): tests/api_fixtures.py.
pytest_plugins = ["api_fixtures"]

from harness import local_postgres  # noqa: E402
from reelfarm.samples import make_sample_video as make_video  # noqa: E402, F401
from reelfarm.settings import Settings  # noqa: E402


def ffprobe_json(path: Path) -> dict:
    import json

    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], capture_output=True, check=True, text=True).stdout
    return json.loads(out)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20,
                 resources={"render_slot": 16}, log_to_driver=False)
    yield ray
    ray.shutdown()


DATABASES = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def local_pg():
    """One PostgreSQL server for the session, started on first use; skips when not installed."""
    reason = local_postgres.unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL not available: {reason}")
    # Failing to start is an error, not a skip: the message carries the server's log tail.
    pg = local_postgres.LocalPostgres().start()
    yield pg
    pg.stop()


_stale_databases: list[str] = []


@pytest.fixture(params=DATABASES)
def database_url(request) -> str | None:
    """A fresh, empty database: None for the SQLite default (a file in the test's data dir),
    or a URL of a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return None
    pg = request.getfixturevalue("local_pg")
    # Earlier tests' databases are dropped here, not at their own teardown: a test's stacks
    # (fixture start_stack) are stopped after its settings are torn down.
    while _stale_databases:
        pg.drop_database(_stale_databases.pop())
    url = pg.create_database()
    _stale_databases.append(url.rsplit("/", 1)[1])
    return url


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        node_timeout_seconds=2.0,
        retry_backoff_seconds=0.1,
        retry_backoff_max_seconds=0.5,
        progress_flush_seconds=0.2,
        poll_interval_seconds=0.1,
        output_height=256,
        x264_preset="ultrafast",
    )


@pytest.fixture
def sessions(settings):
    """A session factory on `settings`' database, migrated to head."""
    from reelfarm.migrate import open_database

    engine, factory = open_database(settings)
    yield factory
    engine.dispose()


@pytest.fixture
def sample_video(tmp_path) -> Path:
    return make_video(tmp_path / "sample.mp4")


@pytest.fixture
def start_stack(ray_session):
    """Start an embedded stack (API + scheduler + N node actors) on the session's Ray."""
    from reelfarm.embedded import EmbeddedStack

    stacks = []

    def start(settings: Settings, nodes: int = 1) -> EmbeddedStack:
        stack = EmbeddedStack(settings, nodes=nodes, port=0).start()
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
        # Close the pool's connections now (on PostgreSQL they are server processes).
        stack.session_factory.kw["bind"].dispose()


def new_api_key(session_factory, account: str = "tester", plan: str = "business") -> str:
    """A key of `account` (made on `plan`, the default plan's default, when new), past the plan's checks."""
    from control_plane.accounts import service as accounts
    from reelfarm.database import session_scope

    with session_scope(session_factory) as session:
        owner = accounts.get_or_create_account(session=session, name=account, plan=plan)
        return accounts.create_api_key(session=session, account=owner)


@pytest.fixture
def stack(start_stack, settings):
    return start_stack(settings)


@pytest.fixture
def client(stack):
    from reelfarm.client import ReelFarmClient

    c = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    yield c
    c.close()
