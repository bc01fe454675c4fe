"""The Python client (reelfarm/client) against a real stack: API, scheduler and a Ray render node.

One job per client: the blocking ReelFarm and the asyncio AsyncReelFarm each upload a video
with a progress callback, follow it over server-sent events to `completed`, and download its
clips with every SHA-256 checked against the manifest. Both clients run strict (answers with
fields their models do not know fail). The families that need no render are covered against
a served API in tests/reelfarm/test_client.py.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from conftest import new_api_key

from reelfarm.client import AsyncReelFarm, ReelFarm, ReelFarmError
from reelfarm.client import models as m


@pytest.fixture
def database_url() -> None:
    """SQLite only: the client sees the API, not its database (the API's own tests run both)."""
    return


def _check_progress(seen: list[tuple[int, int]], total: int) -> None:
    assert seen, "no progress reported"
    assert all(t == total for _, t in seen)
    sent = [s for s, _ in seen]
    assert sent == sorted(sent) and len(set(sent)) == len(sent) and sent[-1] == total


def _check_download(manifest: m.Manifest, out_dir) -> None:
    files = [f for clip in manifest.clips for f in clip.files]
    assert files and (out_dir / "manifest.json").is_file()
    for entry in files:
        assert hashlib.sha256((out_dir / entry.filename).read_bytes()).hexdigest() == entry.sha256


def test_sync_upload_wait_and_download(stack, sample_video, tmp_path):
    with ReelFarm(stack.base_url, new_api_key(stack.session_factory), strict=True) as rf:
        seen: list[tuple[int, int]] = []
        created = rf.uploads.upload(sample_video, {"mode": "none"}, on_progress=lambda s, t: seen.append((s, t)))
        _check_progress(seen, sample_video.stat().st_size)
        assert created.size_bytes == sample_video.stat().st_size

        events: list[m.JobEvent] = []
        done = rf.jobs.wait(created.job_id, timeout=180, on_progress=events.append)
        assert done.status == "completed" and done.job_id == created.job_id, done
        assert events[-1].status == "completed" and events[-1].progress_percent == 100

        job = rf.jobs.get(created.job_id)  # the reels view, with its tasks
        assert job.status == "completed" and job.clip_count >= 1 and job.tasks
        downloaded: list[tuple[int, int]] = []
        manifest = rf.clips.download(
            created.job_id, tmp_path / "out", on_progress=lambda d, t: downloaded.append((d, t))
        )
        _check_download(manifest, tmp_path / "out")
        total = sum(f.size_bytes for clip in manifest.clips for f in clip.files)
        assert downloaded[-1] == (total, total)
        first = manifest.clips[0].files[0]
        assert rf.clips.artifact(created.job_id, first.filename) == (tmp_path / "out" / first.filename).read_bytes()
        assert rf.jobs.result(created.job_id).clips[0].download_url == manifest.clips[0].download_url
        # A finished job's stream says so and ends.
        assert [e.status for e in rf.jobs.events(created.job_id)] == ["completed"]

        # A rendered clip as a content-addressed blob: the second upload sends nothing.
        clip = tmp_path / "out" / manifest.clips[0].files[0].filename
        assert rf.blobs.upload(clip).uploaded is True
        assert rf.blobs.upload(clip).uploaded is False

        with pytest.raises(ReelFarmError) as missing:
            rf.clips.manifest("no-such-job")
        assert missing.value.status == 404 and str(missing.value) == "404: job not found"


def test_async_sign_up_upload_wait_and_download(stack, sample_video, tmp_path):
    async def main():
        async with AsyncReelFarm(stack.base_url, strict=True) as browser:
            me = await browser.auth.signup("async@example.com", "correct horse battery")
            key = await browser.keys.create(name="async")
            assert me.role == "owner" and [k.id for k in await browser.keys.list()] == [key.id]
        async with AsyncReelFarm(stack.base_url, key.key, strict=True) as rf:
            seen: list[tuple[int, int]] = []
            created = await rf.uploads.upload(
                sample_video, {"mode": "none"}, on_progress=lambda s, t: seen.append((s, t))
            )
            events = [event async for event in rf.jobs.events(created.job_id)]
            done = await rf.jobs.wait(created.job_id, timeout=180)
            manifest = await rf.clips.download(created.job_id, tmp_path / "out")
            with pytest.raises(ReelFarmError) as missing:
                await rf.jobs.get("no-such-job")
            return seen, events, done, manifest, missing.value

    seen, events, done, manifest, missing = asyncio.run(main())
    _check_progress(seen, sample_video.stat().st_size)
    assert events[-1].status == "completed" and events[0].job_id == done.job_id
    assert done.status == "completed"
    _check_download(manifest, tmp_path / "out")
    assert str(missing) == "404: job not found"
