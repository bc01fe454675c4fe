"""reelfarm/node_process.py + render_nodes/process.py: a render node in a plain child process
(how `reelfarm render` runs its node), started before its scheduler listens."""

import time

import pytest

from reelfarm import nodes
from reelfarm.migrate import open_database
from reelfarm.node_process import NodeProcess
from reelfarm.settings import Settings
from scheduler.server import SchedulerServer


@pytest.fixture
def settings(tmp_path) -> Settings:
    """SQLite only: the node process never touches the database."""
    return Settings(environment="test", data_dir=tmp_path / "data", node_timeout_seconds=2.0,
                    poll_interval_seconds=0.1)  # fmt: skip


def test_the_node_serves_first_then_registers_where_it_is_told_and_stops_when_its_stdin_closes(settings):
    node = NodeProcess(0, settings)
    try:
        info = node.wait_ready()  # built and serving before any scheduler exists
        assert info["pid"] == node.process.pid and info["node_id"] == node.node_id
        assert info["address"].startswith("127.0.0.1:")  # loopback: a launcher's own node
        assert "libx264" in info["capabilities"]["encoders"]
        _, session_factory = open_database(settings)
        scheduler = SchedulerServer(settings, listen="127.0.0.1:0", session_factory=session_factory).start()
        try:
            node.connect(scheduler.address)
            deadline = time.monotonic() + 30
            while node.node_id not in scheduler.core.nodes:
                assert time.monotonic() < deadline, "the node did not register"
                time.sleep(0.05)
            assert scheduler.core.nodes[node.node_id].address == info["address"]
            with session_factory() as session:
                deadline = time.monotonic() + 30
                while nodes.live_node_count(session, settings.node_timeout_seconds) != 1:
                    assert time.monotonic() < deadline, "the scheduler did not publish the node"
                    time.sleep(0.05)
        finally:
            node.stop()
            node.wait()
            scheduler.stop()
        assert node.process.returncode == 0
    finally:
        node.process.kill()


def test_a_node_that_cannot_start_says_why_and_exits(settings):
    node = NodeProcess(0, settings.model_copy(update={"face_detector": "ultralytics", "face_model_path": None}))
    with pytest.raises(RuntimeError, match="ultralytics backend needs a model path"):
        node.wait_ready()
    node.wait()
    assert node.process.returncode == 1


def test_a_node_never_connected_still_stops_when_its_stdin_closes(settings):
    node = NodeProcess(0, settings)
    node.wait_ready()
    node.stop()
    node.wait()
    assert node.process.returncode == 0
