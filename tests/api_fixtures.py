"""Fixtures for API-only tests (no scheduler, no Ray) on the suite's database, over ASGI in-process.

Registered for every test by `pytest_plugins` in tests/conftest.py (a conftest.py in a
subfolder would shadow the root one for modules that `import conftest`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from control_plane.main import create_app
from reelfarm import nodes
from reelfarm.database import make_engine, make_session_factory, session_scope, utcnow
from reelfarm.migrate import upgrade


def stand_in_node(session_factory, node_id: str = "stand-in") -> None:
    """Publish a render node as a scheduler would (reelfarm/nodes.py), so an API with no scheduler
    accepts jobs (control_plane/jobs/pipeline.py). No scheduler refreshes it, so it is dated a day
    ahead: live for the whole test. Nothing ever runs the jobs."""
    with session_scope(session_factory) as session:
        nodes.publish(session, [nodes.SeenNode(node_id, "127.0.0.1:9", False, utcnow() + timedelta(days=1))])


@pytest.fixture
def api_app(settings):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    stand_in_node(sessions)
    app = create_app(settings, session_factory=sessions)
    yield app
    engine.dispose()


@pytest.fixture
def api(api_app):
    with TestClient(api_app) as client:
        yield client


@pytest.fixture
def signed_up(api_app):
    """A factory of signed-in browsers: each call signs a new user up (owner of a new workspace)."""
    clients = []

    def make(email: str, password: str = "correct horse battery", account: str | None = None) -> TestClient:
        client = TestClient(api_app)
        clients.append(client)
        response = client.post("/api/auth/signup", json={"email": email, "password": password,
                                                          "accountName": account})  # fmt: skip
        assert response.status_code == 201, response.text
        return client

    yield make
    for client in clients:
        client.close()
