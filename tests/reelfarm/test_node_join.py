"""`reelfarm node` joins a plain `ray start --head` cluster (no custom resources) and registers.

The cluster is started here (`ray start --head --block`, its own temp dir and port, 2 CPUs) as a
child in its own process group, ended by killing that group. The node finds Ray and the scheduler
through REELFARM_RAY_ADDRESS and REELFARM_SCHEDULER_ADDRESS (flags fall back to the settings), and its
--data-dir/--storage-url reach the actor. Takes ~20-30 s on the 2-core CI machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from harness.local_postgres import free_port
from reelfarm.grpc_security import open_channel
from reelfarm.migrate import open_database
from reelfarm.models.nodes import NodeHeartbeat
from reelfarm.settings import Settings
from scheduler.server import SchedulerServer

BIN = Path(sys.executable).parent


def _start_plain_ray(temp_dir: Path, port: int) -> subprocess.Popen:
    ray = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    started, lines = threading.Event(), []

    def read() -> None:
        for line in ray.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not started.wait(0.2):
        if ray.poll() is not None or time.monotonic() > deadline:
            _stop_group(ray)
            raise AssertionError("ray start --head did not start:\n" + "".join(lines[-40:]))
    return ray


def _stop_group(proc: subprocess.Popen) -> None:
    """End the process group this test started (ray start and the GCS, raylet... it spawned)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_reelfarm_node_joins_a_plain_ray_cluster_and_registers(tmp_path):
    # Ray's socket paths must stay short: its temp dir goes under /tmp, not pytest's tmp_path.
    ray_temp = Path(tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp"))
    ray_port = free_port()
    settings = Settings(_env_file=None, environment="test", data_dir=tmp_path / "scheduler", node_timeout_seconds=5.0,
                        scheduler_metrics_port=0)
    _, session_factory = open_database(settings)
    server = SchedulerServer(settings, listen="127.0.0.1:0", session_factory=session_factory).start()
    started = time.monotonic()
    ray = _start_plain_ray(ray_temp, ray_port)
    node = None
    try:
        node_data, storage = tmp_path / "node-data", tmp_path / "shared-storage"
        node_port = free_port()  # a fixed gRPC port (the chart's probes call it), on the Ray node it runs on
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "REELFARM_RAY_ADDRESS": f"127.0.0.1:{ray_port}",
               "REELFARM_SCHEDULER_ADDRESS": server.address, "REELFARM_FACE_DETECTOR": "none",
               "REELFARM_NODE_HOST": "127.0.0.1", "REELFARM_NODE_METRICS_PORT": "0",
               "REELFARM_NODE_PORT": str(node_port)}
        node = subprocess.Popen([str(BIN / "reelfarm"), "node", "--data-dir", str(node_data),
                                 "--storage-url", f"file://{storage}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            with session_factory() as session:
                rows = session.scalars(select(NodeHeartbeat)).all()
            if rows:
                break
            assert node.poll() is None, f"reelfarm node exited {node.returncode}:\n{node.stdout.read()[-4000:]}"
            assert time.monotonic() < deadline, "the node did not register within 120 s (hung on placement?)"
            time.sleep(0.2)
        joined_in = time.monotonic() - started
        [row] = rows
        node_id = f"{socket.gethostname()}-{node.pid}-node-0"  # the launching process in the id
        assert row.node_id == node_id and not row.draining
        assert row.address == f"127.0.0.1:{node_port}"
        # The actor got the command's --data-dir (its work folder) and --storage-url (the storage folder).
        assert (node_data / "work" / node_id).is_dir()
        assert (storage / "tmp").is_dir()
        with open_channel(row.address, settings) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
        print(f"ray start + reelfarm node registered in {joined_in:.1f} s")
    finally:
        if node is not None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                _stop_group(node)
        _stop_group(ray)
        server.stop(grace=0)
        shutil.rmtree(ray_temp, ignore_errors=True)


def test_node_actors_are_placed_by_what_the_cluster_has():
    from render_nodes.actor import RENDER_SLOT, actor_placement

    plain = {"CPU": 2.0, "memory": 1e9, "node:127.0.0.1": 1.0}  # `ray start --head`, nothing declared
    assert actor_placement(plain) == {"num_cpus": 1}
    assert actor_placement({**plain, RENDER_SLOT: 4.0}) == {"num_cpus": 0, "resources": {RENDER_SLOT: 1}}
    assert actor_placement({**plain, RENDER_SLOT: 4.0, "GPU": 1.0}) == {"num_gpus": 1}
    # REELFARM_NODE_PLACEMENT / --placement choose explicitly.
    assert actor_placement({**plain, RENDER_SLOT: 4.0}, "cpu") == {"num_cpus": 1}
    assert actor_placement(plain, "render_slot") == {"num_cpus": 0, "resources": {RENDER_SLOT: 1}}
