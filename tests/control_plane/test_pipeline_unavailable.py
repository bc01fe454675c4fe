"""No live render node (none registered, all gone, or the scheduler stopped): every job-creating route
answers 503 `Pipeline unavailable` (001) and makes nothing; once the scheduler publishes a node, they work.

The API here runs alone on the test's database (no scheduler, no Ray): what it sees of the nodes is
the node_heartbeats table, written here as the scheduler writes it (reelfarm/nodes.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from control_plane.main import create_app
from reelfarm import nodes
from reelfarm.database import make_engine, make_session_factory, session_scope, utcnow
from reelfarm.migrate import upgrade
from reelfarm.models import Job, NodeHeartbeat, Video


@pytest.fixture
def lone_api(settings):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    app = create_app(settings.model_copy(update={"fetch_allow_networks": ["127.0.0.0/8"]}), session_factory=sessions)
    with TestClient(app) as client:
        response = client.post("/api/auth/signup", json={"email": "a@example.com", "password": "correct horse battery"})
        assert response.status_code == 201, response.text
        yield client, sessions
    app.state.downloads.shutdown()
    engine.dispose()


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def _publish(sessions, node_id: str, seen_at) -> None:
    with session_scope(sessions) as s:
        nodes.publish(s, [nodes.SeenNode(node_id, "127.0.0.1:1", False, seen_at)])


def _submissions(client, video_id: str) -> dict:
    video = ("talk.mp4", b"not even read: refused first", "video/mp4")
    return {
        "reels upload": client.post("/api/upload", files={"video": video}),
        "reels url": client.post("/api/upload/url", json={"url": "http://127.0.0.1:9/talk.mp4"}),
        "dev submit": client.post("/api/dev/process-video-submit", json={"videoId": video_id, "minDuration": 1,
                                                                         "maxDuration": 2}),
        "v1 jobs": client.post("/api/v1/jobs", json={"video_id": video_id, "config": {"mode": "none"}}),
    }


def test_no_live_node_refuses_every_job_creating_route_and_creates_nothing(lone_api, sample_video, settings):
    client, sessions = lone_api
    # Uploading a video alone makes no job: allowed (v1 and dev upload, then submit).
    uploaded = client.post("/api/v1/videos/upload", files={"file": ("talk.mp4", sample_video.read_bytes(),
                                                                    "video/mp4")})  # fmt: skip
    assert uploaded.status_code == 200, uploaded.text
    video_id = uploaded.json()["data"]["video_id"]

    # Never a node; then one that stopped heartbeating longer ago than node_timeout_seconds; then a draining one.
    for setup in ("none", "stale", "draining"):
        if setup == "stale":
            _publish(sessions, "old", utcnow() - timedelta(seconds=settings.node_timeout_seconds + 1))
        if setup == "draining":
            with session_scope(sessions) as s:
                nodes.publish(s, [nodes.SeenNode("leaving", "127.0.0.1:2", True, utcnow())])
        for route, response in _submissions(client, video_id).items():
            assert response.status_code == 503, (setup, route, response.text)
            expected = {"v1 jobs": {"success": False, "error": "Pipeline unavailable"},
                        "dev submit": {"error": "Pipeline unavailable", "code": "service_unavailable"},
                        }.get(route, {"error": "Pipeline unavailable"})  # fmt: skip
            assert response.json() == expected, (setup, route)
            assert response.headers["retry-after"].isdigit()
        assert _count(sessions, Job) == 0
        assert _count(sessions, Video) == 1  # the refused multipart upload stored nothing

    # A caller who may not submit hears that first, not about the pipeline.
    assert client.post("/api/v1/jobs", json={"video_id": video_id},
                       headers={"X-API-Key": "ck_live_wrong"}).status_code == 401  # fmt: skip

    # The scheduler publishes a node: the same requests make jobs.
    _publish(sessions, "fresh", utcnow())
    answered = _submissions(client, video_id)
    assert answered["reels upload"].status_code == 400  # past the check: the bytes are not a video
    assert answered["reels url"].status_code == 200, answered["reels url"].text
    assert answered["dev submit"].status_code == 200, answered["dev submit"].text
    assert answered["v1 jobs"].status_code == 200, answered["v1 jobs"].text
    assert _count(sessions, Job) == 3


def test_scheduler_publishes_registered_nodes_and_withdraws_lost_ones(lone_api, settings):
    """What the scheduler writes is what the API reads: register -> live, node_down -> gone."""
    from scheduler.core import SchedulerConfig, SchedulerCore

    _, sessions = lone_api

    class NoNodes:
        def run_tasks(self, address, specs):
            return {}

        def cancel_task(self, address, task_id):
            pass

    core = SchedulerCore(sessions, NoNodes(), SchedulerConfig(node_timeout_seconds=settings.node_timeout_seconds))
    core.register_node("n1", "127.0.0.1:5", {"max_concurrent_tasks": 1}, [])
    core.tick()
    with sessions() as s:
        assert nodes.live_node_count(s, settings.node_timeout_seconds) == 1
        assert s.get(NodeHeartbeat, "n1").address == "127.0.0.1:5"
    core.node_down("n1", "gone")
    core.tick()
    with sessions() as s:
        assert nodes.live_node_count(s, settings.node_timeout_seconds) == 0
        assert s.get(NodeHeartbeat, "n1") is None
