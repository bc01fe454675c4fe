"""The `reelfarm` console script, run as users run it: a subprocess per command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ffprobe_json
from sqlalchemy import select

from control_plane.accounts.service import hash_key
from reelfarm.database import make_engine, make_session_factory
from reelfarm.models.accounts import Account, ApiKey
from reelfarm.settings import Settings

REELFARM = str(Path(sys.executable).with_name("reelfarm"))


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([REELFARM, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(tmp_path):
    first = run_cli("keys", "create", "--account", "acme", "--data-dir", str(tmp_path))
    second = run_cli("keys", "create", "--account", "acme", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    key1, key2 = first.stdout.strip(), second.stdout.strip()
    assert key1.startswith("rf_live_") and key2.startswith("rf_live_") and key1 != key2

    sessions = make_session_factory(make_engine(Settings(data_dir=tmp_path).resolved_database_url))
    with sessions() as s:
        accounts = s.scalars(select(Account)).all()
        keys = s.scalars(select(ApiKey)).all()
        assert [a.name for a in accounts] == ["acme"]  # the second call reused the account
        stored = {k.key_hash for k in keys}
        assert stored == {hash_key(key1), hash_key(key2)}
        # The plaintext is nowhere in the database file.
    assert key1.encode() not in (tmp_path / "reelfarm.db").read_bytes()


def test_sample_then_render_writes_clips_posters_and_manifest(tmp_path):
    video, out = tmp_path / "demo.mp4", tmp_path / "out"
    made = run_cli("sample", str(video), "--seconds", "4", "--size", "640x360")
    assert made.returncode == 0, made.stderr

    rendered = run_cli("render", str(video), "--out", str(out), "--aspect", "1:1", "--output-height", "240",
                       "--preset", "ultrafast", "--data-dir", str(tmp_path / "data"))
    assert rendered.returncode == 0, rendered.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    [clip] = manifest["clips"]
    assert (clip["width"], clip["height"]) == (240, 240)
    for entry in clip["files"]:
        data = (out / entry["filename"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size_bytes"]
    stream = next(s for s in ffprobe_json(out / "clip_01.mp4")["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == (240, 240)
    assert (out / "clip_01.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG poster
    assert "clip_01.mp4" in rendered.stdout


def test_render_of_a_file_that_is_not_a_video_fails_with_the_reason(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video at all")
    result = run_cli("render", str(bogus), "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "not a decodable video" in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
