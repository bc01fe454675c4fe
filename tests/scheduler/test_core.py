"""SchedulerCore without sockets: a recording node client and a hand-driven clock."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from analysis.selection import ChosenClip
from harness.polling import wait_until
from reelfarm.database import make_engine, make_session_factory, session_scope, utcnow
from reelfarm.migrate import upgrade
from reelfarm.models.accounts import Account
from reelfarm.models.clips import Artifact, Clip
from reelfarm.models.jobs import Job
from reelfarm.models.styles import StyleExtraction
from reelfarm.models.tasks import Task
from reelfarm.models.videos import Video
from scheduler.core import ProgressUpdate, SchedulerConfig, SchedulerCore


class RecordingNodes:
    def __init__(self):
        self.sent: list[tuple[str, dict]] = []
        self.cancelled: list[tuple[str, str]] = []
        self.refuse: dict[str, str] = {}
        self.down: set[str] = set()

    def run_tasks(self, address, specs):
        if address in self.down:
            raise ConnectionError("connection refused")
        self.sent.extend((address, s) for s in specs)
        return {s["task_id"]: self.refuse[s["task_id"]] for s in specs if s["task_id"] in self.refuse}

    def cancel_task(self, address, task_id):
        self.cancelled.append((address, task_id))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def sessions(tmp_path, database_url):
    # database_url (tests/conftest.py): None for SQLite, a fresh PostgreSQL database otherwise.
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'core.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def nodes():
    return RecordingNodes()


@pytest.fixture
def core(sessions, nodes, clock):
    config = SchedulerConfig(node_timeout_seconds=2.0, max_attempts=3, retry_backoff_seconds=0.0,
                             progress_flush_seconds=1.0)
    return SchedulerCore(sessions, nodes, config, clock=clock)


def _account_and_video(s) -> tuple[Account, Video]:
    """An account with a 60 s 640x360 video (its bytes are never read: nodes are fakes)."""
    account = Account(name="a")
    s.add(account)
    s.flush()
    video = Video(account_id=account.id, original_name="v.mp4", sha256="0" * 64, size_bytes=1, storage_key="blobs/x",
                  duration_seconds=60.0, width=640, height=360, frame_rate=25.0, codec="h264")  # fmt: skip
    s.add(video)
    s.flush()
    return account, video


def submit(sessions, clips=1, core=None) -> str:
    """A queued job of `clips` clips: one full-source clip (mode none), or, with `core`,
    clips already chosen (as moment selection hands them over) so only renders remain."""
    with session_scope(sessions) as s:
        account, video = _account_and_video(s)
        options = {"mode": "none" if clips == 1 else "ai", "numClips": clips, "clipLength": "short",
                   "aspectRatio": "9:16"}
        job = Job(account_id=account.id, video_id=video.id, original_name="v.mp4", options=options,
                  render_settings={"output_height": 256}, planned=clips > 1)
        s.add(job)
        s.flush()
        job_id = job.id
    if clips > 1:
        chosen = [ChosenClip(index=i, start=10.0 * (i - 1), end=10.0 * (i - 1) + 5.0, score=None, transcript="",
                             metadata={}, words=[]) for i in range(1, clips + 1)]
        assert core.plan_renders(job_id, chosen, selection_method="test") == clips
    return job_id


def register(core, node_id="n1", slots=1, encoders=("libx264",), running=()):
    core.register_node(node_id, f"{node_id}:1", {"encoders": list(encoders), "max_concurrent_tasks": slots},
                       list(running))


def state(sessions, job_id):
    with sessions() as s:
        job = s.get(Job, job_id)
        tasks = list(s.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.task_index)))
        return job, tasks


ARTIFACTS = [{"name": "clip_01.mp4", "sha256": "a" * 64, "size_bytes": 10, "storage_key": "k",
              "content_type": "video/mp4"}]


def test_plan_and_dispatch_one_task_per_clip(core, sessions, nodes):
    job_id = submit(sessions, clips=2, core=core)
    register(core, slots=4)
    core.tick()
    job, tasks = state(sessions, job_id)
    assert job.status == "processing" and job.stage == "rendering"
    assert [t.state for t in tasks] == ["leased", "leased"]
    assert len(nodes.sent) == 2
    spec = nodes.sent[0][1]
    assert spec["render"]["output_width"] == 144 and spec["render"]["output_height"] == 256
    assert spec["lease_id"] == tasks[0].lease_id


def test_respects_free_slots(core, sessions, nodes):
    submit(sessions, clips=3, core=core)
    register(core, slots=1)
    core.tick()
    assert len(nodes.sent) == 1


def test_nvenc_tasks_only_go_to_nodes_with_nvenc(core, sessions, nodes):
    job_id = submit(sessions)
    core.plan_new_jobs()
    with session_scope(sessions) as s:
        for task in s.scalars(select(Task).where(Task.job_id == job_id)):
            task.required_encoders = ["h264_nvenc"]
    register(core, "cpu-node", slots=2)
    core.tick()
    assert nodes.sent == []
    register(core, "gpu-node", encoders=("libx264", "h264_nvenc"))
    core.tick()
    assert [address for address, _ in nodes.sent] == ["gpu-node:1"]


def test_complete_twice_is_idempotent_and_stale_lease_refused(core, sessions, nodes):
    job_id = submit(sessions)
    register(core)
    core.tick()
    _, (task,) = state(sessions, job_id)
    assert core.complete_task(task.id, "not-the-lease", ARTIFACTS, {}) is False
    assert core.complete_task(task.id, task.lease_id, ARTIFACTS, {"encoder": "libx264"}) is True
    assert core.complete_task(task.id, task.lease_id, ARTIFACTS, {"encoder": "libx264"}) is True
    job, (task,) = state(sessions, job_id)
    assert job.status == "completed" and job.progress_percent == 100
    with sessions() as s:
        assert len(s.scalars(select(Artifact)).all()) == 1
        assert len(s.scalars(select(Clip)).all()) == 1


def test_silent_node_tasks_requeued_then_job_fails_after_max_attempts(core, sessions, nodes, clock):
    job_id = submit(sessions)
    for attempt in range(1, 4):
        register(core, f"n{attempt}")
        core.tick()
        _, (task,) = state(sessions, job_id)
        assert task.state == "leased" and task.attempts == attempt
        clock.now += 3.0  # past node_timeout without a heartbeat
        core.expire()
    job, (task,) = state(sessions, job_id)
    assert task.state == "failed"
    assert job.status == "failed"
    assert "stopped responding" in job.error and "after 3 attempts" in job.error


def test_heartbeat_renews_and_progress_is_flushed_throttled(core, sessions, nodes, clock):
    job_id = submit(sessions)
    register(core)
    core.tick()
    _, (task,) = state(sessions, job_id)
    for i in range(10):
        clock.now += 0.5
        update = ProgressUpdate(task.lease_id, "rendering", 10.0 * i, "")
        assert core.heartbeat("n1", [(task.id, update)], {}, False) is False
        core.report_progress(task.id, update)
    core.expire()  # heartbeats kept the node alive for 5 s > node_timeout
    _, (task,) = state(sessions, job_id)
    assert task.state == "leased" and task.progress_percent == 0  # nothing written before a flush
    assert core.flush_progress() == 1
    job, (task,) = state(sessions, job_id)
    assert task.state == "running" and task.progress_percent == 90.0 and task.stage == "rendering"
    assert job.progress_percent == 90.0


def test_unknown_node_is_asked_to_register(core):
    assert core.heartbeat("stranger", [], {}, False) is True


def test_reregistered_node_without_the_task_loses_it(core, sessions, nodes):
    job_id = submit(sessions)
    register(core)
    core.tick()
    register(core)  # the actor restarted: it runs nothing now
    job, (task,) = state(sessions, job_id)
    assert task.state == "pending" and "lost the task" in task.error
    core.tick()
    _, (task,) = state(sessions, job_id)
    assert task.state == "leased" and task.attempts == 2


def test_restart_recovers_leases_claimed_by_nodes(sessions, nodes, clock):
    config = SchedulerConfig(node_timeout_seconds=2.0)
    first = SchedulerCore(sessions, nodes, config, clock=clock)
    job_id = submit(sessions, clips=2, core=first)
    register(first, slots=2)
    first.tick()
    _, tasks = state(sessions, job_id)

    second = SchedulerCore(sessions, nodes, config, clock=clock)  # the scheduler restarted
    assert second.recover() == 2
    register(second, slots=2, running=[tasks[0].lease_id])  # the node still runs only the first
    _, after = state(sessions, job_id)
    assert [t.state for t in after] == ["leased", "pending"]
    assert second.complete_task(tasks[0].id, tasks[0].lease_id, ARTIFACTS, {}) is True


def test_unreachable_node_requeues_without_spending_an_attempt(core, sessions, nodes):
    job_id = submit(sessions)
    nodes.down.add("n1:1")
    register(core)
    core.tick()
    _, (task,) = state(sessions, job_id)
    assert task.state == "pending" and task.attempts == 0
    assert "n1" not in core.nodes


def test_non_retryable_failure_fails_job_and_cancels_siblings(core, sessions, nodes):
    job_id = submit(sessions, clips=2, core=core)
    register(core, slots=2)
    core.tick()
    _, tasks = state(sessions, job_id)
    assert core.fail_task(tasks[0].id, tasks[0].lease_id, "not a video", retryable=False) is True
    job, tasks = state(sessions, job_id)
    assert job.status == "failed" and job.error == "clip 1: not a video"
    assert [t.state for t in tasks] == ["failed", "cancelled"]
    assert nodes.cancelled == [("n1:1", tasks[1].id)]


def _spoken(sentences: list[str], start: float = 0.5) -> list[list]:
    """Words [text, start, end] at 2.5 words/s, 0.8 s pauses between sentences."""
    words, t = [], start
    for sentence in sentences:
        for word in sentence.split():
            words.append([word, round(t, 2), round(t + 0.3, 2)])
            t += 0.4
        t += 0.8
    return words


def _wait_for(core, predicate, seconds=10.0):
    """Tick the scheduler until `predicate` holds."""
    wait_until(lambda: predicate() or core.tick(), timeout=seconds, interval=0.02, what="the scheduler")


def test_an_ai_job_is_transcribed_analyzed_selected_then_rendered(core, sessions, nodes):
    with session_scope(sessions) as s:
        account, video = _account_and_video(s)
        job = Job(account_id=account.id, video_id=video.id, original_name="v.mp4", render_settings={},
                  options={"mode": "ai", "numClips": 2, "clipLength": "short", "prompt": "coffee",
                           "aspectRatio": "9:16", "captionPreset": "karaoke"})  # fmt: skip
        s.add(job)
        s.flush()
        job_id = job.id
    register(core, slots=4)
    core.tick()
    job, tasks = state(sessions, job_id)
    parts = sorted((t for t in tasks if t.kind == "transcribe"), key=lambda t: t.task_index)
    assert len(parts) == 3  # 60 s for 4 slots: parts of at least 20 s
    assert [t.kind for t in tasks].count("analyze") == 1
    assert parts[0].spec["start_seconds"] == 0.0 and parts[-1].spec["end_seconds"] == 60.0
    assert job.status == "processing" and job.stage == "transcribing"
    sent = [spec for _, spec in nodes.sent]
    assert {spec["kind"] for spec in sent} == {"transcribe", "analyze"}
    assert all("render" not in spec and spec["analysis"]["margin_seconds"] > 0 for spec in sent)

    sentences = ["the weather was cold all week", "we walked to the lake and back",
                 "coffee is my favourite drink in the morning", "I brew coffee every day before work",
                 "the train was late again today", "my brother plays the guitar at night"] * 2  # fmt: skip
    words = _spoken(sentences)
    analyze = next(t for t in tasks if t.kind == "analyze")
    for part in parts:  # each part answers for the words whose midpoint it holds
        a, b = part.spec["start_seconds"], part.spec["end_seconds"]
        assert core.complete_task(part.id, part.lease_id, [], {
            "start": a, "end": b, "words": [w for w in words if a <= (w[1] + w[2]) / 2 < b], "speech": [[a, b]],
            "loudness_step": 0.5, "loudness": [-20.0] * round((b - a) / 0.5), "speaker_features": []})  # fmt: skip
    job, _ = state(sessions, job_id)
    assert job.stage == "analyzing" and job.progress_percent == pytest.approx(22.5)  # 3 of 4 parts of 30%
    assert core.complete_task(analyze.id, analyze.lease_id, [], {"start": 0.0, "end": 60.0, "faces": [[1.0, 1]]})
    _wait_for(core, lambda: any(t.kind == "render" for t in state(sessions, job_id)[1]))
    core.tick()
    job, tasks = state(sessions, job_id)
    renders = sorted((t for t in tasks if t.kind == "render"), key=lambda t: t.task_index)
    assert job.stage == "rendering" and job.render_settings["selection"] == "moments"
    assert [t.task_index for t in renders] == [1, 2]
    best = renders[0]
    # The prompt's topic wins: clip 1 covers the coffee sentences.
    coffee = [w for w in words if w[0] == "coffee"]
    assert best.spec["start_seconds"] <= coffee[0][1] < best.spec["end_seconds"]
    assert 3.0 <= best.spec["end_seconds"] - best.spec["start_seconds"] <= 15.0
    assert best.spec["words"] and all(best.spec["start_seconds"] - 0.5 <= w["start_seconds"] <= best.spec["end_seconds"]
                                      for w in best.spec["words"])  # fmt: skip
    assert "coffee" in best.plan["transcript"] and 0 <= best.plan["score"] <= 10

    for task in renders:
        artifacts = [{**ARTIFACTS[0], "name": f"clip_{task.task_index:02d}.mp4"}]
        assert core.complete_task(task.id, task.lease_id, artifacts, {"encoder": "libx264"})
    job, _ = state(sessions, job_id)
    assert job.status == "completed" and job.progress_percent == 100
    with sessions() as s:
        clips = s.scalars(select(Clip).where(Clip.job_id == job_id).order_by(Clip.clip_index)).all()
        assert clips[0].score == best.plan["score"] and "coffee" in clips[0].transcript
        assert clips[0].clip_metadata["viral_score"] == clips[0].score


def test_a_job_is_not_completed_by_its_analysis_alone(core, sessions, nodes):
    job_id = submit(sessions)
    with session_scope(sessions) as s:  # captions without a transcript: the source is transcribed first
        job = s.get(Job, job_id)
        job.options = {**job.options, "captionPreset": "beasty"}
    register(core, slots=1)
    core.tick()
    job, tasks = state(sessions, job_id)
    assert [t.kind for t in tasks] == ["transcribe"]  # mode none: no face analysis
    (task,) = tasks
    assert core.complete_task(task.id, task.lease_id, [], {"start": 0.0, "end": 60.0,
                                                           "words": _spoken(["hello there"]), "speech": []})  # fmt: skip
    job, _ = state(sessions, job_id)
    assert job.status == "processing" and job.stage == "selecting"
    _wait_for(core, lambda: any(t.kind == "render" for t in state(sessions, job_id)[1]))
    job, tasks = state(sessions, job_id)
    (render,) = [t for t in tasks if t.kind == "render"]
    assert (render.spec["start_seconds"], render.spec["end_seconds"]) == (0.0, 60.0)
    assert [w["text"] for w in render.spec["words"]] == ["hello", "there"]
    assert job.render_settings["selection"] == "full"


# ---------------------------------------------------------------- Style DNA asked for without a job

DNA = {"version": "1.0", "aspect_ratio": "16:9"}  # what a node answers, cut short (the scheduler keeps it whole)


def _ask_for_style(sessions):
    """What GET /api/v1/videos/{id}/style does for a video without DNA: (its video id, where it stands)."""
    from control_plane.styles.service import video_style

    with session_scope(sessions) as s:
        video = s.scalar(select(Video)) or _account_and_video(s)[1]
        return video.id, video_style(session=s, video=video)


def _requests(sessions) -> list[StyleExtraction]:
    with sessions() as s:
        return list(s.scalars(select(StyleExtraction)))


def _style_tasks(sessions) -> list[Task]:
    with sessions() as s:
        return list(s.scalars(select(Task).where(Task.kind == "style").order_by(Task.created_at)))


def _v1_job(sessions, video_id: str) -> str:
    with session_scope(sessions) as s:
        video = s.get(Video, video_id)
        job = Job(account_id=video.account_id, video_id=video_id, original_name="v.mp4", api="v1",
                  options={"mode": "none", "aspectRatio": "9:16"}, render_settings={"output_height": 256})  # fmt: skip
        s.add(job)
        s.flush()
        return job.id


def test_a_style_request_gets_one_task_of_no_job_which_a_job_of_the_source_adopts(core, sessions, nodes):
    video_id, asked = _ask_for_style(sessions)
    assert asked.dna is None and asked.error is None
    _ask_for_style(sessions)  # asked twice: one request
    assert core.plan_style_requests() == 1
    (task,) = _style_tasks(sessions)
    (request,) = _requests(sessions)
    assert task.job_id is None and task.spec["source_sha256"] == "0" * 64
    assert request.state == "extracting" and request.task_id == task.id
    register(core)
    core.tick()  # planned again each tick, and dispatched with no job
    assert len(_style_tasks(sessions)) == 1
    ((_, sent),) = nodes.sent
    assert sent["task_id"] == task.id and sent["kind"] == "style" and sent["job_id"] == ""

    # A v1 job of the source while the node extracts: the job adopts the task, plans no second one.
    job_id = _v1_job(sessions, video_id)
    core.plan_new_jobs()
    job, tasks = state(sessions, job_id)
    assert sorted(t.kind for t in tasks) == ["render", "style"]
    (task,) = _style_tasks(sessions)
    assert task.job_id == job_id and task.state == "leased"
    assert job.status == "processing" and job.stage == "styling"

    assert core.complete_task(task.id, task.lease_id, [], {"style_json": DNA})
    assert core.plan_style_requests() == 0 and _requests(sessions) == []  # done: the request is gone
    assert _ask_for_style(sessions)[1].dna == DNA
    job, _ = state(sessions, job_id)
    assert job.status == "processing" and job.progress_percent == 30.0  # its render is still to come


def test_a_style_request_follows_the_task_a_job_already_runs_for_the_source(core, sessions, nodes):
    with session_scope(sessions) as s:
        video_id = _account_and_video(s)[1].id
    job_id = _v1_job(sessions, video_id)
    core.plan_new_jobs()
    (task,) = _style_tasks(sessions)
    assert task.job_id == job_id
    _ask_for_style(sessions)
    assert core.plan_style_requests() == 1
    (request,) = _requests(sessions)
    assert request.task_id == task.id and len(_style_tasks(sessions)) == 1


def test_a_failed_extraction_is_reported_once_then_asked_again(core, sessions, nodes):
    _ask_for_style(sessions)
    core.plan_style_requests()
    register(core)
    core.tick()
    (task,) = _style_tasks(sessions)
    assert core.fail_task(task.id, task.lease_id, "not a video", retryable=False) is True
    assert _style_tasks(sessions)[0].state == "failed"
    core.plan_style_requests()
    (request,) = _requests(sessions)
    assert request.state == "failed" and request.error == "not a video"
    assert _ask_for_style(sessions)[1].error == "not a video"  # reported once...
    assert _requests(sessions) == []
    assert _ask_for_style(sessions)[1].error is None  # ...and the next call asks again
    core.plan_style_requests()
    assert [t.state for t in _style_tasks(sessions)] == ["failed", "pending"]


def test_a_request_whose_task_was_cancelled_with_its_job_is_planned_again(core, sessions, nodes):
    video_id, _ = _ask_for_style(sessions)
    core.plan_style_requests()
    job_id = _v1_job(sessions, video_id)
    core.plan_new_jobs()
    (adopted,) = _style_tasks(sessions)
    assert adopted.job_id == job_id and adopted.state == "pending"
    with session_scope(sessions) as s:
        s.get(Job, job_id).cancel_requested_at = utcnow()
    core.cancel_requested()
    core.plan_style_requests()
    cancelled, again = _style_tasks(sessions)
    assert cancelled.state == "cancelled" and again.job_id is None and again.state == "pending"
    (request,) = _requests(sessions)
    assert request.state == "extracting" and request.task_id == again.id
