"""Plans (REELFARM_PLANS_FILE over the built-in table), API access, key limits and the monthly video quota."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from control_plane.accounts import service as accounts
from control_plane.billing.plans import PlanBook, PlansFileError
from control_plane.errors import ApiError
from control_plane.jobs import service as jobs
from control_plane.main import create_app
from reelfarm import quotas
from reelfarm.database import session_scope
from reelfarm.job_lifecycle import finish_job
from reelfarm.models import Account, Job, QuotaUsage, Task, Video
from reelfarm.options import ProcessOptions
from reelfarm.states import JobStatus, TaskKind, TaskState

# "tiny" is added (and made the default), "growth" is replaced, the rest stay built in.
PLANS_TOML = """
[plans.tiny]
name = "Tiny"
videos_per_month = 10
languages_per_campaign = 1
api_rate_per_minute = 1000
api_keys = 2
api_access = true

[plans.growth]
videos_per_month = 60
languages_per_campaign = 5
api_rate_per_minute = 10
api_keys = 3
api_access = true
"""
NO_API = "Your plan does not include API access"


@pytest.fixture
def settings(settings, tmp_path):
    """The suite's settings (SQLite and PostgreSQL), with this module's plans file and default plan."""
    path = tmp_path / "plans.toml"
    path.write_text(PLANS_TOML)
    return settings.model_copy(update={"plans_file": path, "default_plan": "tiny"})


def _me(client) -> dict:
    response = client.get("/api/auth/me")
    assert response.status_code == 200, response.text
    return response.json()


def _new_key(client) -> str:
    response = client.post("/api/keys", json={})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def _video(app, account_id: str, duration: float = 600.0) -> str:
    """A stored video row (no bytes: nothing here renders it)."""
    with session_scope(app.state.session_factory) as session:
        video = Video(account_id=account_id, original_name="talk.mp4", sha256="ab" * 32, size_bytes=1000,
                      storage_key="videos/ab", duration_seconds=duration, width=1280, height=720, frame_rate=30.0,
                      codec="h264")  # fmt: skip
        session.add(video)
        session.flush()
        return video.id


def _set_plan(app, account_id: str, plan: str) -> None:
    with session_scope(app.state.session_factory) as session:
        accounts.change_plan(session=session, account=session.get(Account, account_id), plan_id=plan,
                             plans=app.state.plans)  # fmt: skip


def _job_count(app, account_id: str) -> int:
    with app.state.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.account_id == account_id))


def _used(app, account_id: str) -> int:
    with app.state.session_factory() as session:
        return quotas.used(session, account_id=account_id)


# ------------------------------------------------------------------ plans


def test_plans_file_adds_and_replaces_plans_and_names_the_default(api):
    body = api.get("/api/billing/plans").json()
    plans = {p["id"]: p for p in body["plans"]}
    assert body["default_plan"] == "tiny"
    assert plans["tiny"] == {"id": "tiny", "name": "Tiny", "videos_per_month": 10, "languages_per_campaign": 1,
                             "api_rate_per_minute": 1000, "api_keys": 2, "api_access": True}  # fmt: skip
    assert plans["growth"]["videos_per_month"] == 60 and plans["growth"]["api_keys"] == 3  # replaced
    assert plans["scale"]["videos_per_month"] == 100 and plans["free"]["api_access"] is False  # built in


@pytest.mark.parametrize("text, message", [
    ("[plans.x\n", "plans.toml"),  # not TOML: the file and the parser's complaint
    ("[plans.x]\nvideos_per_month = 5\n", "missing languages_per_campaign"),
    ("[plans.x]\nlanguages_per_campaign = 1\napi_rate_per_minute = 1\napi_keys = 1\napi_access = true\nvideos = 3\n",
     "unknown fields ['videos']"),
    ("[plans.x]\nlanguages_per_campaign = 1\napi_rate_per_minute = 1\napi_keys = -2\napi_access = true\n",
     "api_keys must be a whole number >= 0"),
    ("[plans.x]\nlanguages_per_campaign = 1\napi_rate_per_minute = 1\napi_keys = 1\napi_access = \"yes\"\n",
     "api_access must be true or false"),
    ("title = 'no plans here'\n", "no [plans.NAME] tables"),
])  # fmt: skip
def test_a_bad_plans_file_is_a_clear_error(settings, tmp_path, text, message):
    bad = tmp_path / "plans.toml"
    bad.write_text(text)
    with pytest.raises(PlansFileError, match=r".*" + message.replace("[", r"\[").replace("]", r"\]")):
        create_app(settings.model_copy(update={"plans_file": bad}))


def test_an_unknown_default_plan_or_a_missing_file_is_a_clear_error(settings, tmp_path):
    with pytest.raises(PlansFileError, match="REELFARM_DEFAULT_PLAN='platinum' is not a plan"):
        PlanBook.from_settings(settings.model_copy(update={"default_plan": "platinum"}))
    with pytest.raises(PlansFileError, match="REELFARM_PLANS_FILE .*nowhere.toml"):
        PlanBook.from_settings(settings.model_copy(update={"plans_file": tmp_path / "nowhere.toml"}))


def test_new_accounts_start_on_the_default_plan(api_app, signed_up):
    assert _me(signed_up("first@example.com"))["plan"] == "tiny"
    with session_scope(api_app.state.session_factory) as session:
        made = accounts.get_or_create_account(session=session, name="made", plan=api_app.state.plans.default_plan)
        assert made.plan == "tiny"
        # An existing account keeps its plan.
        made.plan = "scale"
    with session_scope(api_app.state.session_factory) as session:
        assert accounts.get_or_create_account(session=session, name="made", plan="tiny").plan == "scale"


# ------------------------------------------------------------------ keys and API access


def test_the_plans_key_limit_and_api_access_gate_key_creation(api_app, signed_up):
    browser = signed_up("keys@example.com")
    account_id = _me(browser)["accountId"]
    _new_key(browser), _new_key(browser)  # tiny allows 2
    over = browser.post("/api/keys", json={})
    assert over.status_code == 409 and over.json() == {"error": "key limit reached: the Tiny plan allows 2 active keys"}
    _set_plan(api_app, account_id, "growth")  # the file's growth allows 3
    _new_key(browser)
    assert browser.post("/api/keys", json={}).status_code == 409
    _set_plan(api_app, account_id, "free")
    refused = browser.post("/api/keys", json={})
    assert refused.status_code == 403 and refused.json() == {"error": "the Free plan does not include API access"}


def test_a_key_of_a_plan_without_api_access_is_403_everywhere_but_logins_still_work(api_app, api, signed_up):
    browser = signed_up("free@example.com")
    account_id = _me(browser)["accountId"]
    key = _new_key(browser)
    job = api.post("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"},
                   json={"video_id": _video(api_app, account_id), "config": {"numClips": 1}})  # fmt: skip
    assert job.status_code == 200, job.text
    job_id = job.json()["data"]["job_id"]
    assert api.get(f"/api/jobs/{job_id}", headers={"X-API-Key": key}).status_code == 200

    _set_plan(api_app, account_id, "free")
    bearer = {"Authorization": f"Bearer {key}"}
    v1 = api.get(f"/api/v1/jobs/{job_id}", headers=bearer)
    assert v1.status_code == 403 and v1.json() == {"success": False, "error": NO_API}
    reels = api.get("/api/jobs", headers={"X-API-Key": key})
    assert reels.status_code == 403 and reels.json() == {"error": NO_API}
    # The polled status read: on PostgreSQL the batched asyncpg path (no ORM), elsewhere the ORM.
    reads = api_app.state.job_status_reads
    answered = reads.reads_answered
    polled = api.get(f"/api/jobs/{job_id}", headers=bearer)
    assert polled.status_code == 403 and polled.json() == {"error": NO_API}
    assert reads.reads_answered == answered + (1 if reads.enabled else 0)
    # Agents' MCP endpoint resolves keys itself.
    mcp = api.post("/mcp", headers=bearer, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert mcp.status_code == 403 and mcp.json() == {"error": NO_API}
    # The account's signed-in users are not API clients: nothing changes for them.
    assert browser.get(f"/api/jobs/{job_id}").status_code == 200
    assert browser.get(f"/api/v1/jobs/{job_id}").status_code == 200

    _set_plan(api_app, account_id, "scale")  # an upgrade lets the same key in again
    assert api.get(f"/api/jobs/{job_id}", headers=bearer).status_code == 200


# ------------------------------------------------------------------ the monthly video quota


def test_over_quota_is_429_with_the_count_and_nothing_is_made(api_app, api, signed_up):
    browser = signed_up("quota@example.com")
    account_id = _me(browser)["accountId"]
    key = {"Authorization": f"Bearer {_new_key(browser)}"}
    video_id = _video(api_app, account_id)

    def submit(config: dict):
        return api.post("/api/v1/jobs", headers=key, json={"video_id": video_id, "config": config})

    assert submit({"numClips": 7}).status_code == 200  # charged 7: its requested clip count
    assert submit({"mode": "none", "numClips": 10}).status_code == 200  # one full-source clip: charged 1
    assert _used(api_app, account_id) == 8
    over = submit({"numClips": 3})  # 8 + 3 > 10
    assert over.status_code == 429
    assert over.json() == {"success": False,
                           "error": "Monthly video quota exceeded: 8 of 10 videos used this month",
                           "videos_used": 8, "videos_per_month": 10}  # fmt: skip
    assert _job_count(api_app, account_id) == 2 and _used(api_app, account_id) == 8
    # The other families refuse the same way, in their own shape.
    dev = browser.post("/api/dev/process-video-submit", json={"videoId": video_id, "maxClips": 5})
    assert dev.status_code == 429 and dev.json()["error"].startswith("Monthly video quota exceeded: 8 of 10")
    assert submit({"numClips": 2}).status_code == 200  # exactly up to the limit
    assert browser.get("/api/billing/usage").json() == {
        "plan": "tiny", "month": quotas.month_of(), "videos_per_month": 10, "videos_used": 10, "videos_left": 0}
    with api_app.state.session_factory() as session:
        account = session.get(Account, account_id)
        with pytest.raises(ApiError) as refused:  # a URL job is charged too, before anything is stored
            jobs.create_url_job(session=session, account=account, source_url="https://example.com/a.mp4",
                                original_name="a.mp4", options=ProcessOptions(numClips=1),
                                settings=api_app.state.settings, plans=api_app.state.plans)  # fmt: skip
        assert refused.value.status_code == 429 and refused.value.extra == {"videos_used": 10, "videos_per_month": 10}
    assert _job_count(api_app, account_id) == 3
    # A plan with no monthly limit still counts.
    _set_plan(api_app, account_id, "enterprise")
    assert submit({"numClips": 10}).status_code == 200 and _used(api_app, account_id) == 20


def test_50_parallel_submissions_against_a_quota_of_10_admit_exactly_10(api_app, api, signed_up):
    browser = signed_up("rush@example.com")
    account_id = _me(browser)["accountId"]
    key = {"Authorization": f"Bearer {_new_key(browser)}"}
    video_id = _video(api_app, account_id)
    start = threading.Barrier(50)

    def submit(_: int) -> int:
        start.wait()
        return api.post("/api/v1/jobs", headers=key, json={"video_id": video_id, "config": {"numClips": 1}},
                        ).status_code  # fmt: skip

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(submit, range(50)))
    assert sorted(codes) == [200] * 10 + [429] * 40
    assert _job_count(api_app, account_id) == 10
    assert _used(api_app, account_id) == 10


def test_50_parallel_charges_in_separate_transactions_stop_exactly_at_the_limit(api_app):
    with session_scope(api_app.state.session_factory) as session:
        account_id = accounts.get_or_create_account(session=session, name="direct", plan="tiny").id
    start = threading.Barrier(50)

    def charge(_: int) -> int | None:
        start.wait()
        with session_scope(api_app.state.session_factory) as session:
            return quotas.charge(session, account_id=account_id, videos=1, limit=10)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(charge, range(50)))
    assert sorted(r for r in results if r is not None) == list(range(1, 11))
    assert results.count(None) == 40 and _used(api_app, account_id) == 10


def _charged_job(session, account_id: str, videos: int, tasks: list[tuple[TaskKind, TaskState]]) -> Job:
    month = quotas.month_of()
    assert quotas.charge(session, account_id=account_id, videos=videos, limit=None, month=month) is not None
    job = Job(account_id=account_id, original_name="talk.mp4", status=str(JobStatus.processing), quota_month=month,
              quota_videos=videos)  # fmt: skip
    session.add(job)
    session.flush()
    for index, (kind, state) in enumerate(tasks):
        session.add(Task(job_id=job.id, kind=str(kind), task_index=index, state=str(state)))
    session.flush()
    return job


def test_failed_and_cancelled_before_render_jobs_give_their_videos_back(api_app):
    factory = api_app.state.session_factory
    with session_scope(factory) as session:
        account_id = accounts.get_or_create_account(session=session, name="lifecycle", plan="tiny").id
        failed = _charged_job(session, account_id, 3, [(TaskKind.render, TaskState.running)])
        analysed = _charged_job(session, account_id, 2, [(TaskKind.transcribe, TaskState.completed),
                                                         (TaskKind.render, TaskState.pending)])  # fmt: skip
        rendered = _charged_job(session, account_id, 4, [(TaskKind.render, TaskState.completed),
                                                         (TaskKind.render, TaskState.running)])  # fmt: skip
        done = _charged_job(session, account_id, 1, [(TaskKind.render, TaskState.completed)])
        ids = {"failed": failed.id, "analysed": analysed.id, "rendered": rendered.id, "done": done.id}
    assert _used(api_app, account_id) == 10

    def finish(name: str, status: JobStatus) -> None:
        with session_scope(factory) as session:
            assert finish_job(session, session.get(Job, ids[name]), status, error="boom") is not None

    finish("failed", JobStatus.failed)
    assert _used(api_app, account_id) == 7
    finish("analysed", JobStatus.cancelled)  # no clip rendered yet: given back
    assert _used(api_app, account_id) == 5
    finish("rendered", JobStatus.cancelled)  # a clip was delivered: kept
    finish("done", JobStatus.completed)
    assert _used(api_app, account_id) == 5
    with session_scope(factory) as session:
        job = session.get(Job, ids["failed"])
        assert job.quota_videos == 0 and session.get(Job, ids["rendered"]).quota_videos == 4
        assert quotas.give_back(session, job) == 0  # idempotent: nothing left to give
        assert finish_job(session, job, JobStatus.failed) is None  # already finished: no second give-back
    assert _used(api_app, account_id) == 5


def test_giving_back_never_goes_below_zero(api_app):
    with session_scope(api_app.state.session_factory) as session:
        account_id = accounts.get_or_create_account(session=session, name="floor", plan="tiny").id
        job = _charged_job(session, account_id, 2, [])
        job.quota_videos = 5  # more than the month's row holds (e.g. the row was reset by hand)
        assert quotas.give_back(session, job) == 5
        row = session.get(QuotaUsage, (account_id, quotas.month_of()))
        session.refresh(row)
        assert row.videos_used == 0 and job.quota_videos == 0
