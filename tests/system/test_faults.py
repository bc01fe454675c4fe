"""Failures the backbone must survive: dead nodes, a restarted scheduler, bad sources."""

from __future__ import annotations

import time

import ray
from api_fixtures import stand_in_node
from conftest import make_video, new_api_key
from sqlalchemy import select

from harness.polling import wait_until
from reelfarm.client import ReelFarmClient
from reelfarm.models.tasks import Task
from scheduler.server import SchedulerServer


def _slow(settings):
    """Renders that take a few seconds, so there is a 'mid-task' to interrupt."""
    return settings.model_copy(update={"output_height": 720, "x264_preset": "medium"})


def _wait_until_running(client, job_id, timeout=60.0) -> dict:
    def rendering() -> dict | None:
        job = client.job(job_id)
        started = any(t["kind"] == "render" and t["state"] == "running" and t["progress_percent"] > 5
                      for t in job["tasks"])  # fmt: skip
        return job if started else None

    return wait_until(rendering, timeout=timeout, what="a clip to start rendering", describe=lambda: client.job(job_id))


def _tasks(stack, job_id) -> list[Task]:
    with stack.session_factory() as session:
        return list(session.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.task_index)))


def test_killed_node_actor_task_is_requeued_and_job_completes(start_stack, settings, tmp_path):
    stack = start_stack(_slow(settings))
    client = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    source = make_video(tmp_path / "src.mp4", seconds=10, size="640x360")
    job_id = client.upload(source, {"mode": "none"})["jobId"]
    _wait_until_running(client, job_id)

    ray.kill(stack.nodes[0], no_restart=False)  # Ray restarts the actor; it registers again

    job = client.wait(job_id, timeout=180)
    assert job["status"] == "completed", (job.get("error"), job.get("tasks"))
    (task,) = _tasks(stack, job_id)
    assert task.attempts == 2
    # Noticed when the restarted actor registers without the task, or by the dying actor itself
    # when Ray killed its ffmpeg first (a signal: retryable, not the source's fault), or, on a
    # loaded machine where the restart takes longer than the node timeout, by the missed heartbeats.
    noticed = ("lost the task", "exit code -9", "stopped responding")
    assert any(reason in (task.error or "") for reason in noticed), task.error
    assert client.manifest(job_id)["clipCount"] == 1


def test_silent_node_times_out_and_another_node_finishes(start_stack, settings, tmp_path):
    stack = start_stack(_slow(settings), nodes=2)
    client = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    source = make_video(tmp_path / "src.mp4", seconds=10, size="640x360")
    job_id = client.upload(source, {"mode": "none"})["jobId"]
    _wait_until_running(client, job_id)
    (task,) = _tasks(stack, job_id)
    victim = next(h for h in stack.nodes if ray.get(h.info.remote())["node_id"] == task.node_id)

    ray.kill(victim, no_restart=True)  # no restart: only the heartbeat timeout can notice

    job = client.wait(job_id, timeout=180)
    assert job["status"] == "completed", (job.get("error"), job.get("tasks"))
    (task,) = _tasks(stack, job_id)
    assert task.attempts == 2
    assert "stopped responding" in (task.error or "")
    stack.nodes.remove(victim)


def test_scheduler_restart_mid_job_completes_without_rendering_twice(start_stack, settings, tmp_path):
    # The restarted scheduler waits node_timeout_seconds for the nodes to come back with their
    # tasks; the suite's 2 s was sometimes shorter than a loaded machine's reconnect (the default is 30 s).
    stack = start_stack(_slow(settings).model_copy(update={"node_timeout_seconds": 6.0}), nodes=2)
    client = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    source = make_video(tmp_path / "src.mp4", seconds=20, size="640x360")
    job_id = client.upload(source, {"numClips": 2, "clipLength": "short"})["jobId"]
    _wait_until_running(client, job_id)

    port = stack.scheduler.port
    stack.scheduler.stop()
    time.sleep(1.0)  # nodes keep rendering; their reports fail and are retried
    stack.scheduler = SchedulerServer(stack.settings, listen=f"127.0.0.1:{port}",
                                      session_factory=stack.session_factory).start()

    job = client.wait(job_id, timeout=180)
    assert job["status"] == "completed", (job.get("error"), job.get("tasks"))
    tasks = _tasks(stack, job_id)
    assert [t.kind for t in tasks].count("render") == 2
    assert all(t.attempts == 1 for t in tasks), [(t.kind, t.attempts) for t in tasks]
    started = sum(ray.get(h.status.remote())["started"] for h in stack.nodes)
    assert started == len(tasks)  # every task (transcription, analysis, each clip) ran exactly once
    assert client.manifest(job_id)["clipCount"] == 2


def test_truncated_source_fails_job_with_readable_reason(client, tmp_path):
    source = make_video(tmp_path / "src.mp4", seconds=8, size="320x240")
    faststart = tmp_path / "faststart.mp4"
    import subprocess

    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(source), "-c", "copy", "-movflags", "+faststart",
                    str(faststart)], check=True)
    data = faststart.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 5])  # header intact: ffprobe accepts it

    job_id = client.upload(truncated, {"mode": "none"})["jobId"]
    job = client.wait(job_id, timeout=120)
    assert job["status"] == "failed"
    assert "truncated" in job["error"], job["error"]
    (task,) = job["tasks"]
    assert task["attempts"] == 1  # a bad source is not retried


def test_retries_exhausted_fail_the_job(start_stack, settings, sample_video):
    from render_nodes.actor import start_render_nodes

    stack = start_stack(settings, nodes=0)
    stand_in_node(stack.session_factory)  # no node yet: without it the API refuses the job (503)
    client = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    job_id = client.upload(sample_video, {"mode": "none"})["jobId"]
    # Lose the stored source before any node can fetch it: every attempt fails (retryably).
    for blob in (stack.settings.data_dir / "storage" / "blobs").rglob("*"):
        if blob.is_file():
            blob.unlink()
    stack.nodes = start_render_nodes(stack.settings, stack.scheduler.address, 1, name_prefix="late")

    job = client.wait(job_id, timeout=120)
    assert job["status"] == "failed"
    assert "cannot fetch source" in job["error"]
    assert "after 3 attempts" in job["error"]
    assert job["tasks"][0]["attempts"] == 3
