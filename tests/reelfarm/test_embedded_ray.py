"""The embedded default always starts a Ray of its own, even where an earlier cluster left its address."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

REELFARM = str(Path(sys.executable).with_name("reelfarm"))


@pytest.fixture
def stale_ray_tmpdir():
    """A Ray temp dir (RAY_TMPDIR; /tmp/ray is shared with other runs) holding the address file a
    `ray start --head` that was killed leaves behind: Ray 2.60 reads `<RAY_TMPDIR>/ray/ray_current_cluster`
    (ray/_common/utils.py get_ray_address_file). Short path: Ray's socket paths must fit in 107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp"))
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text("127.0.0.1:6399")  # nothing listens there
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_stale_address_file_is_what_ray_init_would_join(stale_ray_tmpdir):
    """The control: a plain ray.init reads the file and fails as the issue reports."""
    env = {**os.environ, "RAY_TMPDIR": str(stale_ray_tmpdir), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    plain = subprocess.run([sys.executable, "-c", "import ray; ray.init(num_cpus=2, include_dashboard=False)"],
                           capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
    assert plain.returncode != 0
    assert "num_cpus and num_gpus must not be provided" in plain.stderr


def test_serve_starts_its_own_ray_despite_a_stale_cluster_address(stale_ray_tmpdir, tmp_path):
    env = {**os.environ, "RAY_TMPDIR": str(stale_ray_tmpdir), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([REELFARM, "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        line = proc.stdout.readline()  # the banner, printed once the stack is up (or EOF when it failed)
        if not line:
            proc.wait(30)
            pytest.fail(f"serve exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
        assert line.startswith("ReelFarm API on http://127.0.0.1:"), line
        base_url = line.split()[3]
        answer = httpx.get(f"{base_url}/api/jobs/nope", timeout=10)
        assert answer.status_code in (401, 404)  # the API answers
        # Its Ray session was made under the redirected temp dir, beside the stale file.
        sessions = [p for p in (stale_ray_tmpdir / "ray").iterdir() if p.name.startswith("session_2")]
        assert sessions, list((stale_ray_tmpdir / "ray").iterdir())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    stderr = proc.stderr.read()
    assert "must not be provided" not in stderr
    # Quiet by default: none of Ray's or gRPC's start-up lines reach the terminal.
    for noise in ("fork_posix", "Started a local Ray instance", "token"):
        assert noise not in stderr, stderr[-3000:]
    assert proc.returncode == 0, stderr[-3000:]


def test_a_one_shot_render_needs_no_ray_and_prints_only_its_results(stale_ray_tmpdir, tmp_path):
    """`reelfarm render` runs its node in a plain child process: no Ray session is made (the stale
    address file is never read), and stderr stays empty: none of Ray's, gRPC's or the face detector
    runtime's start-up lines."""
    video = tmp_path / "demo.mp4"
    env = {**os.environ, "RAY_TMPDIR": str(stale_ray_tmpdir), "RAY_AUTH_MODE": "disabled"}
    made = subprocess.run([REELFARM, "sample", str(video), "--seconds", "2", "--size", "320x180"],
                          capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    rendered = subprocess.run([REELFARM, "render", str(video), "--out", str(tmp_path / "out"), "--output-height",
                               "160", "--preset", "ultrafast", "--data-dir", str(tmp_path / "data")],
                              capture_output=True, text=True, timeout=300, env=env, check=False)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "out" / "clip_01.mp4").stat().st_size > 0
    assert sorted(p.name for p in (stale_ray_tmpdir / "ray").iterdir()) == ["ray_current_cluster"]
    assert rendered.stderr.strip() == ""
    assert rendered.stdout.splitlines()[-1] == str(tmp_path / "out" / "manifest.json")
