"""The one-statement job-status read answers exactly like the ORM path, rules included."""

from __future__ import annotations

import pytest

from control_plane.accounts.service import SCOPES
from reelfarm.models.clips import Artifact
from reelfarm.models.jobs import Job
from reelfarm.models.tasks import Task
from reelfarm.models.videos import Video


def _seed_job(api_app, account_id: str) -> str:
    with api_app.state.session_factory() as session:
        video = Video(account_id=account_id, original_name="talk.mp4", sha256="a" * 64, size_bytes=10,
                      storage_key="k", duration_seconds=60, width=1920, height=1080, frame_rate=30, codec="h264",
                      has_audio=True, probe={})  # fmt: skip
        session.add(video)
        session.flush()
        job = Job(account_id=account_id, video_id=video.id, original_name="talk.mp4", status="processing",
                  stage="rendering", progress_percent=42.5, options={"numClips": 2})  # fmt: skip
        session.add(job)
        session.flush()
        session.add_all([Task(job_id=job.id, task_index=i, state=s, stage="rendering", progress_percent=p,
                              attempts=1, spec={}) for i, s, p in ((2, "running", 30.0), (1, "completed", 100.0))])
        session.add(Artifact(job_id=job.id, filename="clip_01.mp4", sha256="b" * 64, size_bytes=5, storage_key="c",
                             content_type="video/mp4"))  # fmt: skip
        session.commit()
        return job.id


def test_key_read_equals_the_orm_read_and_keeps_the_rules(api, api_app, signed_up, settings):
    browser = signed_up("poll@example.com")
    me = browser.get("/api/auth/me").json()
    job_id = _seed_job(api_app, me["accountId"])
    key = browser.post("/api/keys", json={}).json()
    read_only = browser.post("/api/keys", json={"scopes": ["clips:read"]}).json()
    postgres = settings.database_url is not None
    assert api_app.state.job_status_reads.enabled is postgres

    by_cookie = browser.get(f"/api/jobs/{job_id}")  # the ORM path
    by_key = api.get(f"/api/jobs/{job_id}", headers={"X-API-Key": key["key"]})  # one statement on PostgreSQL
    assert by_cookie.status_code == by_key.status_code == 200
    assert by_key.json() == by_cookie.json()
    body = by_key.json()
    assert body["clipCount"] == 1 and [t["index"] for t in body["tasks"]] == [1, 2]
    assert body["progress_percent"] == 42.5 and body["stage"] == "rendering"
    assert by_key.headers["X-ReelFarm-Api-Scopes"] == " ".join(SCOPES)

    missing = api.get("/api/jobs/job_missing", headers={"X-API-Key": key["key"]})
    assert missing.status_code == 404 and missing.json() == {"error": "job not found"}
    scoped = api.get(f"/api/jobs/{job_id}", headers={"X-API-Key": read_only["key"]})
    assert scoped.status_code == 403 and "jobs:read" in scoped.json()["error"]
    assert scoped.headers["X-ReelFarm-Api-Scopes"] == "clips:read"
    other = signed_up("other@example.com")
    other_key = other.post("/api/keys", json={}).json()["key"]
    assert api.get(f"/api/jobs/{job_id}", headers={"X-API-Key": other_key}).status_code == 404
    browser.delete(f"/api/keys/{key['id']}")
    revoked = api.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {key['key']}"})
    assert revoked.status_code == 401 and revoked.json() == {"error": "invalid or revoked API key"}


def test_concurrent_reads_share_statements_and_each_gets_its_own_answer(api, api_app, signed_up, settings):
    """Coalesced reads (PostgreSQL): one statement answers many requests, each by its own key."""
    import asyncio

    from control_plane.accounts.service import SCOPES, hash_key
    from control_plane.jobs.status_reads import JobStatusReads

    if settings.database_url is None:
        pytest.skip("SQLite has no coalesced path; the test above covers its ORM answers")
    alice, bob = signed_up("alice@example.com"), signed_up("bob@example.com")
    alice_job = _seed_job(api_app, alice.get("/api/auth/me").json()["accountId"])
    bob_job = _seed_job(api_app, bob.get("/api/auth/me").json()["accountId"])
    alice_key = alice.post("/api/keys", json={"scopes": ["jobs:read"]}).json()
    bob_key = bob.post("/api/keys", json={}).json()
    revoked = alice.post("/api/keys", json={}).json()
    alice.delete(f"/api/keys/{revoked['id']}")
    all_scopes = list(SCOPES)
    cases = [  # (key, job) -> (key known, scopes, job id seen)
        (alice_key["key"], alice_job, (True, ["jobs:read"], alice_job)),
        (alice_key["key"], bob_job, (True, ["jobs:read"], None)),  # another account's job: as if missing
        (bob_key["key"], bob_job, (True, all_scopes, bob_job)),
        (bob_key["key"], "job_missing", (True, all_scopes, None)),
        (revoked["key"], alice_job, (False, None, None)),
        ("rf_live_unknown", alice_job, (False, None, None)),
    ] * 5
    reads = JobStatusReads(settings.database_url, max_in_flight=1)

    async def run_all():
        try:
            return await asyncio.gather(*(reads.read(key_hash=hash_key(k), job_id=j) for k, j, _ in cases))
        finally:
            await reads.close()

    answers = asyncio.run(run_all())
    for (_, _, (known, scopes, job_seen)), row in zip(cases, answers, strict=True):
        assert (row is not None) is known
        if row is not None:
            assert row.scopes == scopes
            assert (row.job.id if row.job else None) == job_seen
    assert reads.reads_answered == len(cases) == 30
    assert reads.statements_run == 1  # all thirty arrived together: one statement
