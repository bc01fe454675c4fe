"""The remote commands (`reelfarm login/upload/wait/jobs/clips/keys/campaigns`), run as users run them
(a subprocess per command) against a live embedded stack: one stack and one finished job for
the module, so that the whole file renders two short videos."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import new_api_key

from reelfarm.cli_remote import ExitCode
from reelfarm.samples import make_sample_video
from reelfarm.settings import Settings

REELFARM = str(Path(sys.executable).with_name("reelfarm"))
PASSWORD = "correct horse battery"


class Cli:
    """`reelfarm` in a clean environment: no REELFARM_* from outside, a config folder of its own."""

    def __init__(self, config_home: Path, url: str | None = None, key: str | None = None) -> None:
        self.config_home = config_home
        self.url = url
        self.key = key

    def __call__(self, *args: str, input: str | None = None, url: str | None = None, key: str | None = None,
                 timeout: float = 240) -> subprocess.CompletedProcess:  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELFARM_")}
        env.update(XDG_CONFIG_HOME=str(self.config_home), RAY_AUTH_MODE="disabled", COLUMNS="200")
        if url or self.url:
            env["REELFARM_URL"] = url or self.url
        if key or self.key:
            env["REELFARM_API_KEY"] = key or self.key
        out = subprocess.run([REELFARM, *args], env=env, input=input, capture_output=True, text=True,
                             timeout=timeout, check=False)  # fmt: skip
        assert "Traceback" not in out.stderr, out.stderr
        return out


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, f"exit {out.returncode}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def remote(ray_session, tmp_path_factory):
    """A live stack (SQLite: the CLI, not the database, is under test) and a key of an account on it."""
    from reelfarm.embedded import EmbeddedStack

    data = tmp_path_factory.mktemp("cli-remote")
    settings = Settings(environment="test", data_dir=data / "data", node_timeout_seconds=2.0,
                        retry_backoff_seconds=0.1, retry_backoff_max_seconds=0.5, progress_flush_seconds=0.2,
                        poll_interval_seconds=0.1, output_height=256, x264_preset="ultrafast")  # fmt: skip
    stack = EmbeddedStack(settings, nodes=1, port=0).start()
    yield stack, new_api_key(stack.session_factory, account="cli-remote")
    stack.stop()
    stack.session_factory.kw["bind"].dispose()


@pytest.fixture
def cli(remote, tmp_path) -> Cli:
    stack, key = remote
    return Cli(tmp_path / "config", stack.base_url, key)


@pytest.fixture(scope="module")
def finished(remote, tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess]:
    """`reelfarm upload sample.mp4 --wait --json`: the module's one completed job."""
    stack, key = remote
    folder = tmp_path_factory.mktemp("upload")
    sample = make_sample_video(folder / "sample.mp4", seconds=3.0)
    out = ok(Cli(folder / "config", stack.base_url, key)("upload", str(sample), "--mode", "none", "--aspect", "1:1",
                                                         "--wait", "--json", "--progress"))  # fmt: skip
    return json.loads(out.stdout), out


def test_upload_wait_json_completes_with_progress_bars(finished):
    job, out = finished
    assert job["status"] == "completed" and re.fullmatch(r"[0-9a-f]{20}", job["id"]) and job["clipCount"] == 1, job
    assert job["options"]["aspectRatio"] == "1:1" and job["options"]["mode"] == "none"
    # The bars go to stderr (stdout is the JSON alone): the upload's, then the processing's.
    assert "upload sample.mp4" in out.stderr and "completed" in out.stderr, out.stderr


def test_jobs_lists_the_job_as_json_and_as_a_table(cli, finished):
    job, _ = finished
    listed = json.loads(ok(cli("jobs", "--json")).stdout)
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["status"] == "completed"
    assert len(json.loads(ok(cli("jobs", "list", "--limit", "1", "--json")).stdout)) == 1
    table = ok(cli("jobs")).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["id", "name", "status", "stage", "progress", "clips", "created"]
    assert row.split()[:3] == [job["id"], "sample.mp4", "completed"] and "100%" in row
    shown = json.loads(ok(cli("jobs", "show", job["id"], "--json")).stdout)
    assert shown["id"] == job["id"] and shown["tasks"], shown
    assert json.loads(ok(cli("jobs", job["id"], "--json")).stdout)["id"] == job["id"]  # `show` implied
    # Waiting on a finished job answers at once: 0 for a completed one, and its id with -q.
    assert ok(cli("wait", job["id"], "-q")).stdout.strip() == job["id"]


def test_clips_lists_and_downloads_every_file_checked(cli, finished, tmp_path):
    job, _ = finished
    table = ok(cli("clips", job["id"])).stdout
    assert table.split()[:5] == ["#", "title", "duration", "score", "files"]
    assert "clip_01.mp4" in table and "clip_01.jpg" in table
    target = tmp_path / "clips"
    manifest = json.loads(ok(cli("clips", job["id"], "--download", str(target), "--json", "--progress")).stdout)
    assert manifest["jobId"] == job["id"] and len(manifest["clips"]) == 1
    files = manifest["clips"][0]["files"]
    assert {f["filename"] for f in files} >= {"clip_01.mp4", "clip_01.jpg"}
    for entry in files:
        data = (target / entry["filename"]).read_bytes()
        assert len(data) == entry["size_bytes"] > 0 and hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert json.loads((target / "manifest.json").read_text())["jobId"] == job["id"]


def test_api_errors_are_one_line_with_the_apis_message_and_their_exit_code(cli):
    unknown = cli("jobs", "show", "0123456789abcdef0123")
    assert unknown.returncode == ExitCode.API_REFUSED == 3
    assert unknown.stderr.strip() == "error: job not found (HTTP 404)" and unknown.stdout == ""
    assert cli("clips", "0123456789abcdef0123").returncode == ExitCode.API_REFUSED

    bad_key = cli("jobs", key="rf_live_" + "0" * 43)
    assert bad_key.returncode == ExitCode.NOT_AUTHENTICATED == 4
    assert bad_key.stderr.startswith("error: ") and "(HTTP 401)" in bad_key.stderr, bad_key.stderr

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = cli("jobs", url=closed)
    assert down.returncode == ExitCode.UNREACHABLE == 5, down.stderr
    assert down.stderr.startswith("error: ") and len(down.stderr.strip().splitlines()) == 1, down.stderr


def test_usage_errors_and_no_configuration(tmp_path, finished):
    bare = Cli(tmp_path / "config")  # no REELFARM_URL, no key, no config file
    missing = bare("jobs")
    assert missing.returncode == ExitCode.NOT_AUTHENTICATED
    assert "not configured" in missing.stderr and "reelfarm login" in missing.stderr
    # Flags are checked before anything is sent: click's exit 2.
    assert bare("upload", str(tmp_path / "nope.mp4")).returncode == ExitCode.USAGE == 2
    sample = make_sample_video(tmp_path / "s.mp4", seconds=1.0)
    too_many = bare("upload", str(sample), "--clips", "99")
    assert too_many.returncode == ExitCode.USAGE and "numClips" in too_many.stderr
    # The local commands never need a server.
    assert "Exit codes" in ok(bare("--help")).stdout
    assert ok(bare("sample", str(tmp_path / "local.mp4"), "--seconds", "1")).stdout.strip().endswith("local.mp4")


def test_timeout_cancel_and_a_cancelled_job_exit_codes(remote, tmp_path, finished):
    """`wait --timeout` gives up (6) while the job goes on; a cancelled job's wait is a 1."""
    stack, _ = remote
    cli = Cli(tmp_path / "config", stack.base_url, new_api_key(stack.session_factory, account="cli-cancel"))
    source = make_sample_video(tmp_path / "long.mp4", seconds=30.0, size="160x120")
    job_id = ok(cli("upload", str(source), "--mode", "none", "-q")).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{20}", job_id), job_id
    late = cli("wait", job_id, "--timeout", "0.05")
    assert late.returncode == ExitCode.TIMED_OUT == 6, late.stderr
    assert f"reelfarm wait {job_id}" in late.stderr
    ok(cli("jobs", "cancel", job_id, "--json"))
    ended = cli("wait", job_id, "--json")
    assert ended.returncode == ExitCode.JOB_FAILED == 1, ended.stderr
    assert json.loads(ended.stdout)["status"] == "cancelled" and f"job {job_id} cancelled" in ended.stderr


def test_login_saves_a_private_config_and_keys_are_managed_with_its_session(remote, tmp_path):
    stack, api_key = remote
    signup = httpx.post(f"{stack.base_url}/api/auth/signup", json={"email": "cli@example.com", "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    cli = Cli(tmp_path / "config")  # nothing in the environment: the saved login only
    wrong = cli("login", "--url", stack.base_url, "--email", "cli@example.com", "--password-stdin", input="nope\n")
    assert wrong.returncode in (ExitCode.NOT_AUTHENTICATED, ExitCode.API_REFUSED) and wrong.stderr.startswith("error:")
    ok(cli("login", "--url", stack.base_url, "--email", "cli@example.com", "--password-stdin", input=PASSWORD + "\n"))

    config = tmp_path / "config" / "reelfarm" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'url = "{stack.base_url}"' in config.read_text() and "rf_live_" in config.read_text()
    assert ok(cli("jobs", "--json")).stdout.strip() == "[]"  # the new workspace's key works
    assert json.loads(ok(cli("campaigns", "--json")).stdout) == []
    assert "no campaigns" in ok(cli("campaigns", "list")).stdout
    assert cli("campaigns", "show", "cmp_doesnotexist").returncode == ExitCode.API_REFUSED

    keys = json.loads(ok(cli("keys", "--json")).stdout)
    assert [k["name"] for k in keys] == [f"cli@{socket.gethostname()}"]
    made = json.loads(ok(cli("keys", "create", "ci-bot", "--scope", "jobs:read", "--json")).stdout)
    assert made["key"].startswith("rf_live_") and made["scopes"] == ["jobs:read"] and made["name"] == "ci-bot"
    assert ok(cli("jobs", key=made["key"], url=stack.base_url))
    assert ok(cli("keys", "revoke", made["id"])).stdout.strip() == f"revoked {made['id']}"
    revoked = {k["id"]: k for k in json.loads(ok(cli("keys", "list", "--json")).stdout)}
    assert revoked[made["id"]]["revokedAt"] is not None
    assert cli("jobs", key=made["key"], url=stack.base_url).returncode == ExitCode.NOT_AUTHENTICATED
    table = ok(cli("keys")).stdout
    assert made["id"] in table and "ci-bot" in table

    # An API key alone cannot manage keys (the API wants a login): a clear message, no request refused.
    keyed = Cli(tmp_path / "other", stack.base_url, api_key)
    refused = keyed("keys")
    assert refused.returncode == ExitCode.NOT_AUTHENTICATED and "reelfarm login --email" in refused.stderr

    saved_key = next(line for line in config.read_text().splitlines() if line.startswith("api_key"))
    saved_key = json.loads(saved_key.split("=", 1)[1])
    assert "logged out" in ok(cli("logout")).stdout
    assert not config.exists()
    # Logging out revoked the key the login made, and the CLI is unconfigured again.
    assert cli("jobs", key=saved_key, url=stack.base_url).returncode == ExitCode.NOT_AUTHENTICATED
    assert cli("jobs").returncode == ExitCode.NOT_AUTHENTICATED


def test_login_with_an_api_key_checks_it_before_saving(remote, tmp_path, finished):
    stack, api_key = remote
    cli = Cli(tmp_path / "config")
    bad = cli("login", "--url", stack.base_url, "--api-key", "rf_live_nope")
    assert bad.returncode == ExitCode.NOT_AUTHENTICATED
    assert not (tmp_path / "config" / "reelfarm" / "config.toml").exists()
    ok(cli("login", "--url", stack.base_url, "--api-key", api_key))
    assert json.loads(ok(cli("jobs", "--json")).stdout)  # the module's account has its job(s)
    # The environment overrides the file.
    assert cli("jobs", key="rf_live_" + "1" * 43).returncode == ExitCode.NOT_AUTHENTICATED
