"""The README's "Using the API" examples, run as a reader would run them, against a live stack.

Its ```bash blocks are run under bash (the curl ones in one session, the `reelfarm` ones in
another, so `$JOB` carries from block to block as in a terminal) and its ```python blocks as
one script, each language with REELFARM_URL and REELFARM_API_KEY set and `sample.mp4` in
its working folder. ```sh blocks (starting a server, reference snippets with placeholders)
are not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import new_api_key

from reelfarm.samples import make_sample_video
from reelfarm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Using the API"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
RUN = ("bash", "python")
JOB_ID = re.compile(r"\b[0-9a-f]{20}\b")


def section(text: str) -> str:
    """The `## Using the API` section of a Markdown document ("" when it has none)."""
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        return text[len(SECTION) + 1:] if text.startswith(f"{SECTION}\n") else ""
    rest = text[start + len(SECTION) + 2:]
    end = re.search(r"^## ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def blocks(text: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(text) if lang in RUN]


def examples() -> tuple[Path, list[tuple[str, str]]]:
    """The runnable blocks of README.md's section."""
    path = ROOT / "README.md"
    found = blocks(section(path.read_text()))
    assert found, "no ```bash or ```python example under '## Using the API' in README.md"
    return path, found


def curl_blocks() -> list[str]:
    return [body for lang, body in examples()[1] if lang == "bash" and re.search(r"^\s*\S*curl ", body, re.MULTILINE)]


def cli_blocks() -> list[str]:
    return [body for lang, body in examples()[1] if lang == "bash" and re.search(r"^\s*\S*reelfarm ", body, re.MULTILINE)
            and body not in curl_blocks()]  # fmt: skip


def python_blocks() -> list[str]:
    return [body for lang, body in examples()[1] if lang == "python"]


@pytest.fixture(scope="module")
def live(ray_session, tmp_path_factory):
    """One stack for every example (SQLite: the examples, not the database, are under test)."""
    from reelfarm.embedded import EmbeddedStack

    data = tmp_path_factory.mktemp("readme-stack")
    settings = Settings(environment="test", data_dir=data / "data", node_timeout_seconds=2.0,
                        retry_backoff_seconds=0.1, retry_backoff_max_seconds=0.5, progress_flush_seconds=0.2,
                        poll_interval_seconds=0.1, output_height=256, x264_preset="ultrafast")  # fmt: skip
    stack = EmbeddedStack(settings, nodes=1, port=0).start()
    sample = make_sample_video(data / "sample.mp4", seconds=3.0)
    yield stack, new_api_key(stack.session_factory, account="readme"), sample
    stack.stop()
    stack.session_factory.kw["bind"].dispose()


def run_examples(live, tmp_path: Path, argv: list[str], script: str) -> subprocess.CompletedProcess:
    stack, key, sample = live
    shutil.copy(sample, tmp_path / "sample.mp4")
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFARM_")}
    env.update(REELFARM_URL=stack.base_url, REELFARM_API_KEY=key, XDG_CONFIG_HOME=str(tmp_path / "config"),
               PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="disabled")  # fmt: skip
    out = subprocess.run([*argv, script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
                         check=False)  # fmt: skip
    assert out.returncode == 0, f"the examples exited {out.returncode}:\n{script}\n--- stdout\n{out.stdout}\n" \
                                f"--- stderr\n{out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    return out


def bash_script(bodies: list[str]) -> str:
    return "set -euo pipefail\n" + "\n".join(bodies)


def check_downloads(folder: Path, manifest: dict) -> None:
    """Every file the manifest lists is there, with its size and SHA-256."""
    files = [f for clip in manifest["clips"] for f in clip["files"]]
    assert files, manifest
    for entry in files:
        path = folder / entry["filename"]
        assert path.is_file(), f"{path} missing"
        data = path.read_bytes()
        assert len(data) == entry["size_bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_the_section_has_each_step_in_curl_python_and_the_cli():
    path, found = examples()
    langs = [lang for lang, _ in found]
    assert langs.count("python") >= 3, (path, langs)
    assert len(curl_blocks()) >= 3 and len(cli_blocks()) >= 3, (path, langs)
    text = section(path.read_text())
    for needed in ("reelfarm upload", "reelfarm jobs", "reelfarm clips", "--download", "rf.jobs.wait",
                   "rf.clips.download", "/api/upload", "/api/clips/"):  # fmt: skip
        assert needed in text, f"{needed!r} is not in {path}'s section"


def test_the_curl_examples(live, tmp_path):
    for tool in ("curl", "jq", "sha256sum"):
        assert shutil.which(tool), f"the curl examples need {tool} (.ci/setup installs it)"
    out = run_examples(live, tmp_path, ["bash", "-c"], bash_script(curl_blocks()))
    job_id = JOB_ID.search(out.stdout).group(0)
    events = [json.loads(line.removeprefix("data:")) for line in out.stdout.splitlines()
              if line.startswith("data:") and line.strip() != "data: {}"]  # fmt: skip
    assert events and events[-1] == {**events[-1], "job_id": job_id, "status": "completed"}, events
    assert '"status": "completed"' in out.stdout  # the job's status, through jq
    assert f"{job_id} completed" in out.stdout  # the job list
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    check_downloads(tmp_path / "clips-curl", manifest)
    assert out.stdout.count(": OK") == len([f for c in manifest["clips"] for f in c["files"]])  # sha256sum -c


def test_the_python_examples(live, tmp_path):
    out = run_examples(live, tmp_path, [sys.executable, "-c"], "\n".join(python_blocks()))
    job_id = JOB_ID.search(out.stdout).group(0)
    assert f"{job_id} completed" in out.stdout, out.stdout
    assert "completed None 100.0" in out.stdout or "completed None" in out.stdout, out.stdout  # the last event
    assert "clip_01.mp4" in out.stdout and "manifest.json" in out.stdout
    manifest = json.loads((tmp_path / "clips-python" / "manifest.json").read_text())
    assert manifest["jobId"] == job_id
    check_downloads(tmp_path / "clips-python", manifest)


def test_the_cli_examples(live, tmp_path):
    out = run_examples(live, tmp_path, ["bash", "-c"], bash_script(cli_blocks()))
    job_id = JOB_ID.search(out.stdout).group(0)
    assert re.search(rf"{job_id}\s+sample\.mp4\s+completed", out.stdout), out.stdout  # jobs show, jobs
    assert "clip_01.mp4" in out.stdout  # the clips table, and ls
    stack, key, _ = live
    from reelfarm.client import ReelFarm

    manifest = ReelFarm(stack.base_url, api_key=key).clips.manifest(job_id).model_dump(mode="json", by_alias=True)
    check_downloads(tmp_path / "clips-cli", manifest)
