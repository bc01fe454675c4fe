"""Scheduling logic: planning, placement, leases, retries, progress intake.

Pure Python over the database; the gRPC servicer (scheduler/servicer.py) is a thin
wrapper over this class, and nodes are reached through a `NodeClient`, so all of it
is testable without a socket.

Leases live in memory while the scheduler runs (renewing one per heartbeat would be
a write per task per second); the database keeps `node_id` and `lease_id`, so after a
restart every leased task is reloaded and given `node_timeout` for its node to
re-register and claim it before it is re-queued.
"""

from __future__ import annotations

import heapq
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, object_session, sessionmaker

from analysis.llm import LlmConfig
from reelfarm import nodes as node_rows
from reelfarm.campaigns import CAMPAIGN_API, campaign_of_job
from reelfarm.database import conflict_insert, new_id, session_scope, utcnow
from reelfarm.job_lifecycle import finish_job
from reelfarm.models import Artifact, Clip, Job, SourceStyle, StyleExtraction, Task, Video
from reelfarm.options import ProcessOptions
from reelfarm.states import (
    ACTIVE_JOB_STATUSES,
    ACTIVE_TASK_STATES,
    ANALYSIS_KINDS,
    JOB_MACHINE,
    STAGE_OF_KIND,
    STYLE_EXTRACTION_MACHINE,
    TASK_MACHINE,
    JobStage,
    JobStatus,
    StyleExtractionState,
    TaskKind,
    TaskState,
    decide,
    transition,
)
from scheduler import campaigns, planner
from scheduler.metrics import SchedulerMetrics

if TYPE_CHECKING:
    from analysis import selection

log = logging.getLogger(__name__)

# Why an ai-mode job's clips are spread evenly: there was nothing to pick moments from.
NO_SPEECH = "no speech found"
# Share of a job's progress spent finding its moments (the rest is rendering).
ANALYSIS_SHARE = 30.0
# What a task failure says it was, in the job's error.
TASK_DESCRIPTION = {TaskKind.render: "clip {index}", TaskKind.transcribe: "transcription of part {index}",
                    TaskKind.analyze: "face analysis", TaskKind.style: "style extraction",
                    TaskKind.capture: "page capture", TaskKind.script: "script",
                    TaskKind.campaign_video: "video {index}"}  # fmt: skip
# Which TaskSpec field carries each kind's spec (proto/reelfarm/v1/common.proto); the rest: "analysis".
_SPEC_FIELD = {TaskKind.render: "render", TaskKind.capture: "campaign", TaskKind.script: "campaign",
               TaskKind.campaign_video: "campaign"}  # fmt: skip


def analysis_stage(tasks: list) -> JobStage:
    """The job stage while it is being analysed: transcribing, then analyzing, then the styles it
    applies, then selecting."""
    for kind in (TaskKind.transcribe, TaskKind.analyze, TaskKind.style):
        if any(t.kind == kind and t.state != TaskState.completed for t in tasks):
            return STAGE_OF_KIND[kind]
    return JobStage.selecting


def _style_of(job: Job) -> dict | None:
    """The style a job applies (control_plane/styles/service.py keeps it in its render settings)."""
    return (job.render_settings or {}).get("style")


def applied_style(base: dict, inline: dict) -> dict:
    """`base` DNA with an inline document's fields over it (its objects merged field by field)."""
    merged = dict(base)
    for key, value in inline.items():
        merged[key] = {**(merged.get(key) or {}), **value} if isinstance(value, dict) else value
    return merged


class NodeClient(Protocol):
    """How the scheduler reaches render nodes (gRPC in production)."""

    def run_tasks(self, address: str, specs: list[dict]) -> dict[str, str]:
        """Send tasks; returns {task_id: reason} for the ones the node refused."""

    def cancel_task(self, address: str, task_id: str) -> None: ...


@dataclass
class SchedulerConfig:
    node_timeout_seconds: float = 30.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 60.0
    progress_flush_seconds: float = 1.0
    poll_interval_seconds: float = 0.2
    transcriber: str = "auto"
    transcribe_chunk_seconds: float = 120.0
    llm: LlmConfig | None = None

    @property
    def heartbeat_interval_seconds(self) -> float:
        return max(0.2, self.node_timeout_seconds / 4)


@dataclass
class NodeRecord:
    node_id: str
    address: str
    encoders: frozenset[str]
    max_concurrent: int
    capabilities: dict
    last_seen: float
    draining: bool = False
    usage: dict = field(default_factory=dict)
    leases: set[str] = field(default_factory=set)  # task ids

    @property
    def free_slots(self) -> int:
        return 0 if self.draining else max(0, self.max_concurrent - len(self.leases))


@dataclass
class Lease:
    task_id: str
    lease_id: str
    node_id: str
    since: float
    # Seen in a heartbeat, registration or progress report since it was handed out.
    confirmed: bool = False


@dataclass
class Completion:
    task_id: str
    lease_id: str
    artifacts: list[dict]
    result: dict
    accepted: bool | None = None
    error: BaseException | None = None


@dataclass
class ProgressUpdate:
    lease_id: str
    stage: str
    percent: float
    message: str


class NodePicker:
    """Places the tasks of one dispatch: each on the node with the most free slots among those
    that have its encoders, the first registered among equals (as a scan of every node would,
    which cost O(nodes) a task: 1000 nodes x 2000 tasks a tick was 2M steps).

    Nodes are grouped by encoder set (a farm has a handful); each group is a heap of
    (-free slots, registration order, node id), so a task costs O(groups + log nodes)."""

    def __init__(self, free: dict[str, int], encoders: dict[str, frozenset[str]]) -> None:
        self.free = free  # node id -> free slots, counted down as tasks are placed
        groups: dict[frozenset[str], list[tuple[int, int, str]]] = defaultdict(list)
        for order, (node_id, slots) in enumerate(free.items()):
            if slots > 0 and node_id in encoders:
                groups[encoders[node_id]].append((-slots, order, node_id))
        for heap in groups.values():
            heapq.heapify(heap)
        self._groups = groups
        self._eligible: dict[tuple[str, ...], list[list[tuple[int, int, str]]]] = {}

    def take(self, required: list[str] | None) -> str | None:
        """The node for a task needing `required` encoders (one of its slots is taken), or None."""
        key = tuple(sorted(required or ()))
        heaps = self._eligible.get(key)
        if heaps is None:
            need = set(key)
            heaps = self._eligible[key] = [h for encoders, h in self._groups.items() if need <= encoders]
        best = None
        for heap in heaps:
            if heap and (best is None or heap[0] < best[0]):
                best = heap
        if best is None:
            return None
        slots, order, node_id = best[0]
        if slots < -1:
            heapq.heapreplace(best, (slots + 1, order, node_id))
        else:
            heapq.heappop(best)
        self.free[node_id] -= 1
        return node_id


class SchedulerCore:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        node_client: NodeClient,
        config: SchedulerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: SchedulerMetrics | None = None,
    ) -> None:
        self.sessions = session_factory
        self.nodes_client = node_client
        self.config = config or SchedulerConfig()
        self.clock = clock
        self.nodes: dict[str, NodeRecord] = {}
        self.leases: dict[str, Lease] = {}
        self._progress: dict[str, ProgressUpdate] = {}
        self._lock = threading.RLock()
        # One writer at a time: SQLite's busy-wait would otherwise add 10-100 ms spikes.
        self._db_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._last_flush = clock()
        # Group commit of task completions: one caller commits everyone's pending outcomes.
        self._completions_cv = threading.Condition()
        self._pending_completions: list[Completion] = []
        self._committing = False
        self._send_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dispatch-send")
        # Moment selection runs off the tick (an LLM call may take seconds).
        self._select_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="select")
        self._to_select: set[str] = set()
        self._selecting: set[str] = set()
        # The nodes written to the database for the API (node id -> (last_seen, draining) written).
        self._published: dict[str, tuple[float, bool]] = {}
        self.metrics = metrics or SchedulerMetrics()  # scheduler/metrics.py; served by scheduler/server.py
        self.metrics.watch(self)

    # ---------------------------------------------------------------- lifecycle

    def recover(self) -> int:
        """Reload every leased task after a (re)start; returns how many."""
        with self._db_lock, session_scope(self.sessions) as s:
            tasks = s.scalars(select(Task).where(Task.state.in_(ACTIVE_TASK_STATES))).all()
            now = self.clock()
            with self._lock:
                for task in tasks:
                    self.leases[task.id] = Lease(task.id, task.lease_id or "", task.node_id or "", now)
            # Selection is not persisted until its render tasks are: do it again.
            self._to_select.update(s.scalars(select(Job.id).where(Job.status == JobStatus.processing,
                                                                  Job.stage == JobStage.selecting)))  # fmt: skip
        return len(tasks)

    def notify(self) -> None:
        """Something changed (a job was submitted, a slot freed): run a tick soon."""
        self._wakeup.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # keep scheduling; the next tick retries
                log.exception("scheduler tick failed")
            self._wakeup.wait(self.config.poll_interval_seconds)
            self._wakeup.clear()
        self.flush_progress()
        try:
            self.publish_nodes(stopping=True)  # a stopped scheduler has no nodes: the API answers 503 at once
        except Exception:
            log.exception("could not withdraw the published nodes")

    def tick(self) -> None:
        self.cancel_requested()
        self.plan_new_jobs()
        self.plan_style_requests()
        self.start_selections()
        self.expire()
        self.dispatch()
        self.publish_nodes()
        if self.clock() - self._last_flush >= self.config.progress_flush_seconds:
            self.flush_progress()

    # ---------------------------------------------------------------- planning

    def plan_new_jobs(self) -> int:
        with self._db_lock, session_scope(self.sessions) as s:
            jobs = s.scalars(
                select(Job).where(Job.planned.is_(False), Job.status == JobStatus.queued).limit(500)
            ).all()
            # A campaign's job starts with capturing its page (scheduler/campaigns.py plans what follows).
            campaign_jobs = [j for j in jobs if j.api == CAMPAIGN_API]
            jobs = [j for j in jobs if j.api != CAMPAIGN_API]
            campaign_rows = []
            for job in campaign_jobs:
                job.planned = True
                if (campaign := campaign_of_job(s, job.id)) is not None:
                    campaign_rows.append(campaigns.capture_row(job, campaign, self.config.max_attempts))
            if campaign_rows:
                s.execute(insert(Task), campaign_rows)
            videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_({j.video_id for j in jobs})))}
            # v1 jobs report their source's Style DNA, and a job that applies a template needs the
            # template's: each extracted once per SHA-256, beside the job's other tasks.
            template_ids = {(_style_of(j) or {}).get("template_video_id") for j in jobs} - {None}
            templates = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(template_ids)))} if template_ids else {}
            wanted = {videos[j.video_id].sha256 for j in jobs if j.api == "v1" or _style_of(j)}
            wanted |= {t.sha256 for t in templates.values()}
            styled = set(s.scalars(select(SourceStyle.source_sha256).where(SourceStyle.source_sha256.in_(wanted))))
            # Extractions asked for by GET /videos/{id}/style still running: a job adopts them, not a second one.
            unowned = self._extracting(s, wanted - styled, unowned=True)
            rows = []
            for job in jobs:
                video, options = videos[job.video_id], ProcessOptions.from_job(job.options)
                job.planned = True
                style = _style_of(job)
                sources = [video]
                if style and (template := templates.get(style.get("template_video_id", ""))) is not None:
                    sources.append(template)
                missing = {v.sha256: v for v in sources if v.sha256 not in styled and (job.api == "v1" or style)}
                for index, v in enumerate(missing.values(), start=1):
                    if (task := unowned.pop(v.sha256, None)) is not None:
                        self._adopt(job, task, index)
                    else:
                        rows.append(self._style_row(job, v, index))
                if style and missing:
                    # The clips are planned once the DNA is in (_refresh_jobs -> selection).
                    job.render_settings = {**(job.render_settings or {}), "awaiting_style": True}
                    if options.needs_transcript:
                        rows += self._analysis_rows(job, video, options)
                    continue
                if options.needs_transcript:
                    rows += self._analysis_rows(job, video, options)
                    continue
                rows.append(self._render_row(job, video, options, planner.full_clip(video.duration_seconds, options),
                                             style=self._style_for(s, job, video)))  # fmt: skip
                job.render_settings = {**(job.render_settings or {}), "selection": "full"}
            if rows:  # one executemany: ORM unit-of-work inserts cost ~0.3 ms a row
                s.execute(insert(Task), rows)
            return len(jobs)

    def _render_row(self, job: Job, video: Video, options: ProcessOptions, clip: planner.PlannedClip, *, keep=None,
                    plan=None, words=None, style: dict | None = None) -> dict:  # fmt: skip
        spec = planner.render_spec(job=job, video=video, options=options, clip=clip, words=words, keep=keep,
                                   style=style)  # fmt: skip
        return {
            "id": new_id("task_"),
            "job_id": job.id,
            "kind": TaskKind.render,
            "task_index": clip.index,
            "spec": spec,
            "plan": plan,
            "required_encoders": planner.required_encoders(spec["encoder_preference"]),
            "max_attempts": self.config.max_attempts,
        }

    @staticmethod
    def _style_for(s: Session, job: Job, video: Video) -> dict | None:
        """What a job's clips apply: {"target": DNA, "source": DNA, "aspect_from_template"}; None: nothing."""
        style = _style_of(job)
        if not style:
            return None
        source = s.get(SourceStyle, video.sha256)
        template = s.get(SourceStyle, style["template_sha256"]) if style.get("template_sha256") else None
        if source is None or (style.get("template_sha256") and template is None):
            raise RuntimeError(f"job {job.id}: a Style DNA it applies is not extracted")
        return {"target": applied_style(template.dna if template else source.dna, style.get("inline") or {}),
                "source": source.dna, "aspect_from_template": bool(style.get("aspect_from_template"))}

    def _style_row(self, job: Job | None, video: Video, index: int = 1) -> dict:
        """A style task extracting `video`'s DNA; `job` None: for an extraction request alone."""
        return {
            "id": new_id("task_"),
            "job_id": job.id if job is not None else None,
            "kind": TaskKind.style,
            "task_index": index,
            "spec": planner.analysis_spec(video=video, start=0.0, end=video.duration_seconds,
                                          transcriber=self.config.transcriber),  # fmt: skip
            "required_encoders": [],
            "max_attempts": self.config.max_attempts,
        }

    @staticmethod
    def _extracting(s: Session, shas: set[str] | None = None, *, unowned: bool = False) -> dict[str, Task]:
        """The style tasks still to finish ({source SHA-256: task}), of these sources (None: any);
        `unowned`: only those planned for an extraction request, with no job."""
        if shas is not None and not shas:
            return {}
        query = select(Task).where(Task.kind == TaskKind.style,
                                   Task.state.in_((TaskState.pending, *ACTIVE_TASK_STATES)))  # fmt: skip
        if unowned:
            query = query.where(Task.job_id.is_(None))
        found = {}
        for task in s.scalars(query.order_by(Task.created_at)):
            sha256 = (task.spec or {}).get("source_sha256")
            if sha256 and (shas is None or sha256 in shas):
                found.setdefault(sha256, task)
        return found

    @staticmethod
    def _adopt(job: Job, task: Task, index: int) -> None:
        """Make a running extraction request's style task `job`'s own: the job waits for it, as for
        the style task it would have had, and its outcome is the job's (a failure fails the job)."""
        task.job_id, task.task_index = job.id, index
        if task.state != TaskState.pending and transition(JOB_MACHINE, job, JobStatus.processing):
            job.stage = JobStage.styling  # dispatch, which moves a job on its first task, has already sent it
        log.info("job %s adopts task %s, extracting %s's Style DNA", job.id, task.id, task.spec.get("source_sha256"))

    def plan_style_requests(self) -> int:
        """Give each extraction request (GET /api/v1/videos/{id}/style, table style_extractions) a style
        task and follow it; returns how many requests are open.

        Deduplicated by SHA-256: a request follows a style task already extracting its source (a v1
        job's, or another request's) rather than plan one; a job of the source planned later adopts
        the request's task (plan_new_jobs). A request whose source has its DNA is deleted; one whose
        task failed for good is marked failed with the task's error (the API reports it once); one
        whose task was cancelled with its job is planned again."""
        with self._db_lock, session_scope(self.sessions) as s:
            requests = s.scalars(select(StyleExtraction)).all()
            if not requests:
                return 0
            shas = {r.source_sha256 for r in requests}
            styled = set(s.scalars(select(SourceStyle.source_sha256).where(SourceStyle.source_sha256.in_(shas))))
            followed = {r.task_id for r in requests if r.task_id and r.state == StyleExtractionState.extracting}
            tasks = {t.id: t for t in s.scalars(select(Task).where(Task.id.in_(followed)))} if followed else {}
            extracting: dict[str, str] | None = None  # {source SHA-256: style task id}, read when a request needs one
            rows, open_requests = [], 0
            for request in requests:
                if request.source_sha256 in styled:
                    s.delete(request)  # done (by this request's task or any other)
                    continue
                if request.state == StyleExtractionState.failed:
                    continue  # until GET /videos/{id}/style has reported it
                open_requests += 1
                if request.state == StyleExtractionState.extracting:
                    task = tasks.get(request.task_id)
                    if task is not None and not TASK_MACHINE.is_terminal(task.state):
                        continue
                    if task is not None and task.state in (TaskState.failed, TaskState.completed):
                        transition(STYLE_EXTRACTION_MACHINE, request, StyleExtractionState.failed, "state")
                        request.error = (task.error or "style extraction failed") if task.state == TaskState.failed \
                            else "the render node returned no Style DNA"  # fmt: skip
                        continue
                    # Cancelled with the job that ran it (or gone with it): extract again.
                    transition(STYLE_EXTRACTION_MACHINE, request, StyleExtractionState.requested, "state")
                if extracting is None:
                    extracting = {sha256: task.id for sha256, task in self._extracting(s).items()}
                if (task_id := extracting.get(request.source_sha256)) is None:
                    if (video := s.get(Video, request.video_id)) is None:  # gone (the row goes with it)
                        s.delete(request)
                        continue
                    row = self._style_row(None, video)
                    rows.append(row)
                    task_id = extracting[request.source_sha256] = row["id"]
                request.task_id, request.error = task_id, None
                transition(STYLE_EXTRACTION_MACHINE, request, StyleExtractionState.extracting, "state")
            if rows:
                s.execute(insert(Task), rows)
        if rows:
            self.notify()
        return open_requests

    def _analysis_rows(self, job: Job, video: Video, options: ProcessOptions) -> list[dict]:
        with self._lock:
            slots = sum(n.max_concurrent for n in self.nodes.values() if not n.draining)
        chunks = planner.analysis_chunks(video.duration_seconds, options, self.config.transcribe_chunk_seconds,
                                         parallelism=slots)  # fmt: skip
        kinds = [(TaskKind.transcribe, i, a, b) for i, (a, b) in enumerate(chunks, start=1)]
        if options.mode == "ai":  # face presence is a selection signal
            kinds.append((TaskKind.analyze, 1, chunks[0][0], chunks[-1][1]))
        return [
            {
                "id": new_id("task_"),
                "job_id": job.id,
                "kind": kind,
                "task_index": index,
                "spec": planner.analysis_spec(video=video, start=a, end=b, transcriber=self.config.transcriber,
                                              language=options.language),  # fmt: skip
                "required_encoders": [],
                "max_attempts": self.config.max_attempts,
            }
            for kind, index, a, b in kinds
        ]

    # ---------------------------------------------------------------- moment selection

    def start_selections(self) -> int:
        """Hand jobs whose analysis is complete to the selection pool (one at a time each)."""
        with self._lock:
            ready = self._to_select - self._selecting
            self._to_select -= ready
            self._selecting |= ready
        for job_id in ready:
            self._select_pool.submit(self._select, job_id)
        return len(ready)

    def _select(self, job_id: str) -> None:
        try:
            with session_scope(self.sessions) as s:
                job = s.get(Job, job_id)
                if job is None or job.status != JobStatus.processing:
                    return
                video = s.get(Video, job.video_id)
                tasks = s.scalars(select(Task).where(Task.job_id == job_id)).all()
                if any(t.kind == TaskKind.render for t in tasks):
                    return  # already selected (a restart raced the first attempt)
                options, duration = ProcessOptions.from_job(job.options), video.duration_seconds
                transcribed = [t.result or {} for t in tasks if t.kind == TaskKind.transcribe]
                analyzed = [t.result or {} for t in tasks if t.kind == TaskKind.analyze]
            from analysis import selection  # here: NumPy and the moment scorers load when a job first needs them

            analysis = selection.merge_analysis(duration, transcribed, analyzed)
            if options.transcript:
                analysis.words = options.supplied_words()
            chosen = selection.choose_clips(analysis, options, self.config.llm)
        except Exception as exc:  # a bug must fail the job visibly, not leave it selecting forever
            log.exception("moment selection for job %s failed", job_id)
            self._fail_job(job_id, f"moment selection failed: {exc}")
            return
        finally:
            with self._lock:
                self._selecting.discard(job_id)
        method = "full" if options.mode == "none" else "moments" if analysis.words else "uniform"
        found = {"language": analysis.language}
        if options.mode == "ai" and not analysis.words:
            found["selection_reason"] = NO_SPEECH
        self.plan_renders(job_id, chosen, selection_method=method, found=found)

    def plan_renders(self, job_id: str, chosen: list[selection.ChosenClip], *, selection_method: str,
                     found: dict | None = None) -> int:  # fmt: skip
        """Record the chosen clips of a job as its render tasks (once: False-y if it has them).

        `found`: what the analysis learnt of the source (language, why no moments were
        picked), kept with the job's render settings for its manifest."""
        with self._db_lock, session_scope(self.sessions) as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in (JobStatus.queued, JobStatus.processing):
                return 0
            if s.scalar(select(Task.id).where(Task.job_id == job_id, Task.kind == TaskKind.render).limit(1)):
                return 0
            video, options = s.get(Video, job.video_id), ProcessOptions.from_job(job.options)
            style = self._style_for(s, job, video)
            rows = [
                self._render_row(job, video, options, planner.PlannedClip(c.index, c.start, c.end), keep=c.keep,
                                 words=c.words, style=style,
                                 plan={"score": c.score, "transcript": c.transcript, "metadata": c.metadata})
                for c in chosen
            ]  # fmt: skip
            if style is not None:
                job.render_settings = {**(job.render_settings or {}), "applied_style": style["target"]}
            s.execute(insert(Task), rows)
            job.planned = True
            if job.status == JobStatus.processing:
                job.stage = JobStage.rendering
            job.render_settings = {**(job.render_settings or {}), **(found or {}), "selection": selection_method}
            log.info("job %s: %d clip(s) to render (%s)", job_id, len(rows), selection_method)
        self.notify()
        return len(rows)

    def _fail_job(self, job_id: str, reason: str) -> None:
        cancels: list[tuple[str, str]] = []
        with self._db_lock, session_scope(self.sessions) as s:
            job = s.get(Job, job_id)
            finished = finish_job(s, job, JobStatus.failed, error=reason) if job is not None else None
            if finished:
                cancels = finished.node_cancels
        self._send_cancels(cancels)

    def cancel_requested(self) -> int:
        """Cancel jobs the API was asked to cancel, and their tasks on the nodes running them."""
        cancels: list[tuple[str, str]] = []
        with self._db_lock, session_scope(self.sessions) as s:
            jobs = s.scalars(
                select(Job).where(Job.cancel_requested_at.is_not(None), Job.status.in_(ACTIVE_JOB_STATUSES))
            ).all()
            for job in jobs:
                finished = finish_job(s, job, JobStatus.cancelled)
                if finished:
                    cancels += finished.node_cancels
        self._send_cancels(cancels)
        return len(jobs)

    # ---------------------------------------------------------------- placement

    def dispatch(self) -> int:
        """Lease ready tasks to nodes with free slots and send them, one batch per node."""
        with self._lock:
            free = {n.node_id: n.free_slots for n in self.nodes.values() if n.free_slots > 0}
            encoders = {node_id: self.nodes[node_id].encoders for node_id in free}
        if not free:
            return 0
        picker = NodePicker(free, encoders)
        batches: dict[str, list[dict]] = defaultdict(list)
        ready: list[tuple[str, object]] = []  # (kind, ready_at) of each task sent, for the dispatch latency
        # Plain rows and one executemany UPDATE per table, not ORM objects: at 1000 nodes a dispatch
        # leases ~2000 tasks, and the unit of work cost ~0.5 ms a task (issue 16, bench/dispatch.py --core).
        with self._db_lock, session_scope(self.sessions) as s:
            tasks = s.execute(
                select(Task.id, Task.job_id, Task.kind, Task.state, Task.attempts, Task.spec, Task.required_encoders,
                       Task.ready_at)
                .where(Task.state == TaskState.pending, Task.ready_at <= utcnow())
                .order_by(Task.created_at, Task.task_index)
                .limit(sum(free.values()))
            ).all()
            job_ids = {t.job_id for t in tasks} - {None}  # a style task of an extraction request has no job
            job_status = dict(s.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids))).all())
            now, wall = self.clock(), utcnow()
            task_rows, job_rows, leases = [], [], []
            for task in tasks:
                if not decide(TASK_MACHINE, task.state, TaskState.leased).changed:
                    continue
                node_id = picker.take(task.required_encoders)
                if node_id is None:
                    continue
                lease_id, attempt = new_id(), task.attempts + 1
                task_rows.append({"id": task.id, "attempts": attempt, "lease_id": lease_id, "node_id": node_id,
                                  "state": str(TaskState.leased), "stage": "queued_on_node", "progress_percent": 0.0,
                                  "message": None, "updated_at": wall})  # fmt: skip
                # A style task of an extraction request has no job to move.
                if task.job_id is not None and decide(JOB_MACHINE, job_status[task.job_id],
                                                      JobStatus.processing).changed:  # fmt: skip
                    job_status[task.job_id] = str(JobStatus.processing)
                    job_rows.append({"id": task.job_id, "status": str(JobStatus.processing), "updated_at": wall,
                                     "stage": str(STAGE_OF_KIND[TaskKind(task.kind)])})  # fmt: skip
                batches[node_id].append(self._task_message(task, lease_id, attempt))
                ready.append((task.kind, task.ready_at))
                leases.append(Lease(task.id, lease_id, node_id, now))
            if task_rows:
                s.execute(update(Task), task_rows)
            if job_rows:
                s.execute(update(Job), job_rows)
            with self._lock:
                for lease in leases:
                    self.leases[lease.task_id] = lease
                    if (node := self.nodes.get(lease.node_id)) is not None:  # gone meanwhile: expire() re-queues it
                        node.leases.add(lease.task_id)
        wait([self._send_pool.submit(self._send, node_id, specs) for node_id, specs in batches.items()])
        sent = utcnow()
        for kind, ready_at in ready:
            self.metrics.task_dispatched(kind, (sent - ready_at).total_seconds())
        return sum(len(b) for b in batches.values())

    @staticmethod
    def _task_message(task, lease_id: str, attempt: int) -> dict:
        return {
            "task_id": task.id,
            "job_id": task.job_id or "",
            "lease_id": lease_id,
            "attempt": attempt,
            "kind": task.kind,
            _SPEC_FIELD.get(task.kind, "analysis"): task.spec,
            "required_encoders": list(task.required_encoders or []),
        }

    def _send(self, node_id: str, specs: list[dict]) -> None:
        with self._lock:
            node = self.nodes.get(node_id)
        try:
            if node is None:
                raise ConnectionError("node left before dispatch")
            rejected = self.nodes_client.run_tasks(node.address, specs)
        except Exception as exc:  # node unreachable: it never started them
            log.warning("RunTask to %s failed: %s", node_id, exc)
            self.node_down(node_id, f"node {node_id} unreachable: {exc}", count_attempt=False)
            return
        for task_id, reason in rejected.items():
            lease = self.leases.get(task_id)
            if lease:
                self._requeue(task_id, lease.lease_id, f"refused by {node_id}: {reason}", count_attempt=False)

    # ---------------------------------------------------------------- node registry

    def publish_nodes(self, stopping: bool = False) -> None:
        """Write the nodes this scheduler sees to the database, the API's view of them (reelfarm/nodes.py).

        A new node (or a change of its draining) at once (registration wakes a tick), a known
        one again when a later heartbeat came in (at most a write per node per half heartbeat
        interval, never one per progress report), and a lost one is deleted.
        """
        now, wall = self.clock(), utcnow()
        interval = self.config.heartbeat_interval_seconds
        with self._lock:
            current = {} if stopping else self.nodes
            due = [node_rows.SeenNode(n.node_id, n.address, n.draining, wall - timedelta(seconds=now - n.last_seen))
                   for n in current.values()
                   if (p := self._published.get(n.node_id)) is None or p[1] != n.draining
                   or n.last_seen - p[0] >= interval / 2]  # fmt: skip
            marks = {s.node_id: (current[s.node_id].last_seen, s.draining) for s in due}
            gone = [node_id for node_id in self._published if node_id not in current]
        if not due and not gone:
            return
        with self._db_lock, session_scope(self.sessions) as s:
            node_rows.publish(s, due, gone)
        with self._lock:
            for node_id in gone:
                self._published.pop(node_id, None)
            self._published.update(marks)

    def register_node(
        self, node_id: str, address: str, capabilities: dict, running_lease_ids: list[str]
    ) -> None:
        running = set(running_lease_ids)
        now = self.clock()
        with self._lock:
            old = self.nodes.get(node_id)
            node = NodeRecord(
                node_id=node_id,
                address=address,
                encoders=frozenset(capabilities.get("encoders", [])),
                max_concurrent=max(1, int(capabilities.get("max_concurrent_tasks") or 1)),
                capabilities=capabilities,
                last_seen=now,
            )
            self.nodes[node_id] = node
            claimed, lost = [], []
            for lease in self.leases.values():
                if lease.node_id != node_id:
                    continue
                (claimed if lease.lease_id in running else lost).append(lease)
            for lease in claimed:
                lease.confirmed = True
                node.leases.add(lease.task_id)
        log.info("node %s registered at %s (%s)", node_id, address, "re-registered" if old else "new")
        for lease in lost:
            if self._requeue(lease.task_id, lease.lease_id, f"node {node_id} restarted and lost the task"):
                self.metrics.lease_expired("node_restarted")
        self.notify()

    def heartbeat(self, node_id: str, running: list[tuple[str, ProgressUpdate]], usage: dict, draining: bool) -> bool:
        """Returns True when the node must register again (unknown to this scheduler)."""
        now = self.clock()
        with self._lock:
            node = self.nodes.get(node_id)
            if node is None:
                return True
            node.last_seen, node.usage, node.draining = now, usage, draining
            listed = set()
            for task_id, update in running:
                lease = self.leases.get(task_id)
                if lease and lease.lease_id == update.lease_id:
                    lease.confirmed = True
                    listed.add(task_id)
                    self._progress[task_id] = update
            grace = 2 * self.config.heartbeat_interval_seconds
            lost = [
                self.leases[t]
                for t in node.leases
                if t not in listed and t in self.leases and now - self.leases[t].since > grace
            ]
        for lease in lost:
            if self._requeue(lease.task_id, lease.lease_id, f"node {node_id} no longer runs the task"):
                self.metrics.lease_expired("not_running")
        return False

    def report_progress(self, task_id: str, update: ProgressUpdate) -> None:
        with self._lock:
            lease = self.leases.get(task_id)
            if lease is None or lease.lease_id != update.lease_id:
                return
            lease.confirmed = True
            self._progress[task_id] = update
            node = self.nodes.get(lease.node_id)
            if node:
                node.last_seen = self.clock()

    def expire(self) -> None:
        """Mark silent nodes down and re-queue what they held."""
        now = self.clock()
        timeout = self.config.node_timeout_seconds
        with self._lock:
            silent = [n.node_id for n in self.nodes.values() if now - n.last_seen > timeout]
            orphaned = [
                lease
                for lease in self.leases.values()
                if lease.node_id not in self.nodes and now - lease.since > timeout
            ]
        for node_id in silent:
            self.node_down(node_id, f"node {node_id} stopped responding (no heartbeat for {timeout:g} s)")
        for lease in orphaned:
            if self._requeue(lease.task_id, lease.lease_id, f"node {lease.node_id} did not come back"):
                self.metrics.lease_expired("node_not_back")

    def node_down(self, node_id: str, reason: str, count_attempt: bool = True) -> None:
        with self._lock:
            node = self.nodes.pop(node_id, None)
            held = [self.leases[t] for t in (node.leases if node else ()) if t in self.leases]
        if node:
            log.warning("%s", reason)
        for lease in held:
            if self._requeue(lease.task_id, lease.lease_id, reason, count_attempt=count_attempt):
                self.metrics.lease_expired("node_down")

    def _forget_lease(self, task_id: str) -> None:
        with self._lock:
            lease = self.leases.pop(task_id, None)
            self._progress.pop(task_id, None)
            if lease and lease.node_id in self.nodes:
                self.nodes[lease.node_id].leases.discard(task_id)

    # ---------------------------------------------------------------- outcomes

    def _current_task(self, s: Session, task_id: str, lease_id: str) -> Task | None:
        task = s.get(Task, task_id)
        return task if task is not None and task.lease_id == lease_id else None

    def complete_task(self, task_id: str, lease_id: str, artifacts: list[dict], result: dict) -> bool:
        """Record a finished task; False when the lease is stale. Applying it twice is harmless.

        Returns only once the outcome is committed. Concurrent callers share one
        transaction (group commit): whoever finds no commit in progress commits the
        outcomes of everyone waiting, so throughput grows with the number of nodes.
        """
        item = Completion(task_id, lease_id, artifacts, result)
        with self._completions_cv:
            self._pending_completions.append(item)
            while item.accepted is None and item.error is None:
                if self._committing:
                    self._completions_cv.wait()
                    continue
                self._committing = True
                batch, self._pending_completions = self._pending_completions, []
                self._completions_cv.release()
                try:
                    self._commit_completions(batch)
                finally:
                    self._completions_cv.acquire()
                    self._committing = False
                    self._completions_cv.notify_all()
        if item.error is not None:
            raise item.error
        return item.accepted

    def _commit_completions(self, batch: list[Completion]) -> None:
        try:
            with self._db_lock, session_scope(self.sessions) as s, s.no_autoflush:
                # Load the batch in one query and insert its rows in one executemany each:
                # per-row ORM gets and inserts cost ~1 ms a task at this point.
                tasks = {t.id: t for t in s.scalars(select(Task).where(Task.id.in_({i.task_id for i in batch})))}
                clips, artifacts = [], []
                for item in batch:
                    item.accepted = self._apply_completion(tasks.get(item.task_id), item, clips, artifacts)
                if clips:
                    s.execute(insert(Clip), clips)
                if artifacts:
                    s.execute(insert(Artifact), artifacts)
                self._refresh_jobs(s, {tasks[i.task_id].job_id for i in batch if i.accepted} - {None})
        except Exception:
            if len(batch) == 1:
                batch[0].accepted, batch[0].error = None, sys.exc_info()[1]
                return
            for item in batch:  # one bad outcome must not sink the others
                item.accepted = None
                self._commit_completions([item])
            return
        for item in batch:
            if item.accepted:
                self._forget_lease(item.task_id)
        self.notify()

    def _apply_completion(self, task: Task | None, item: Completion, clips: list, artifacts: list) -> bool:
        if task is None or task.lease_id != item.lease_id:
            return False
        if task.state == TaskState.completed:
            return True
        if not transition(TASK_MACHINE, task, TaskState.completed, "state"):
            return False
        task.result = item.result
        task.progress_percent, task.stage, task.message = 100.0, "done", None
        if task.kind == TaskKind.style:
            self._keep_style(task, item.result)
        if task.kind != TaskKind.render:
            return True
        spec, result, plan = task.spec, item.result, task.plan or {}
        clips.append(
            {
                "id": new_id("clip_"),
                "job_id": task.job_id,
                "clip_index": spec["clip_index"],
                "start_seconds": result.get("start_seconds", spec["start_seconds"]),
                "end_seconds": result.get("end_seconds", spec["end_seconds"]),
                "duration_seconds": result.get("duration_seconds", spec["end_seconds"] - spec["start_seconds"]),
                "aspect_ratio": spec["aspect_ratio"],
                "width": result.get("width", spec["output_width"]),
                "height": result.get("height", spec["output_height"]),
                "encoder": result.get("encoder", ""),
                "score": plan.get("score"),
                "transcript": plan.get("transcript") or "",
                "clip_metadata": plan.get("metadata") or {},
                "render_info": result,
            }
        )
        for art in item.artifacts:
            artifacts.append(
                {
                    "id": new_id("art_"),
                    "job_id": task.job_id,
                    "clip_index": spec["clip_index"],
                    "filename": art["name"],
                    "sha256": art["sha256"],
                    "size_bytes": art["size_bytes"],
                    "storage_key": art["storage_key"],
                    "content_type": art["content_type"],
                }
            )
        return True

    @staticmethod
    def _keep_style(task: Task, result: dict) -> None:
        """The source's DNA, kept by its SHA-256 (another job of the same source may have kept it first)."""
        sha256, dna = task.spec.get("source_sha256"), (result or {}).get("style_json")
        if not sha256 or not dna:
            return
        # Two jobs of one source may both have extracted it, and complete in one batch.
        session = object_session(task)
        session.execute(conflict_insert(session, SourceStyle).values(source_sha256=sha256, dna=dna, created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["source_sha256"]))  # fmt: skip

    def fail_task(self, task_id: str, lease_id: str, reason: str, retryable: bool) -> bool:
        if retryable:
            return self._requeue(task_id, lease_id, reason)
        with self._db_lock, session_scope(self.sessions) as s:
            task = self._current_task(s, task_id, lease_id)
            if task is None:
                return False
            cancels = self._fail(s, task, reason)
        self._forget_lease(task_id)
        self._send_cancels(cancels)
        return True

    def _requeue(self, task_id: str, lease_id: str, reason: str, count_attempt: bool = True) -> bool:
        """Put a task back in the queue with backoff, or fail its job when out of attempts."""
        cancels: list[tuple[str, str]] = []
        with self._db_lock, session_scope(self.sessions) as s:
            task = self._current_task(s, task_id, lease_id)
            if task is None or TASK_MACHINE.is_terminal(task.state):
                self._forget_lease(task_id)
                return False
            if not count_attempt:
                task.attempts = max(0, task.attempts - 1)
            if task.attempts >= task.max_attempts:
                cancels = self._fail(s, task, f"{reason} (after {task.attempts} attempts)")
            else:
                transition(TASK_MACHINE, task, TaskState.pending, "state")
                delay = 0.0
                if count_attempt:
                    delay = min(
                        self.config.retry_backoff_max_seconds,
                        self.config.retry_backoff_seconds * 2 ** max(0, task.attempts - 1),
                    )
                task.ready_at = utcnow() + timedelta(seconds=delay)
                task.node_id = task.lease_id = None
                task.error, task.stage, task.progress_percent = reason, "retrying", 0.0
                log.info("task %s re-queued in %.1f s: %s", task_id, delay, reason)
        self._forget_lease(task_id)
        self._send_cancels(cancels)
        self.notify()
        return True

    def _fail(self, s: Session, task: Task, reason: str) -> list[tuple[str, str]]:
        """Fail a task and its job; returns (node_id, task_id) of sibling tasks to cancel."""
        transition(TASK_MACHINE, task, TaskState.failed, "state")
        task.error = reason
        if task.job_id is None:
            return []  # an extraction request's: plan_style_requests reports it
        what = TASK_DESCRIPTION[TaskKind(task.kind)].format(index=task.task_index)
        finished = finish_job(s, s.get(Job, task.job_id), JobStatus.failed, error=f"{what}: {reason}")
        return finished.node_cancels if finished else []

    def _send_cancels(self, cancels: list[tuple[str, str]]) -> None:
        for node_id, task_id in cancels:
            self._forget_lease(task_id)
            with self._lock:
                node = self.nodes.get(node_id)
            if node is not None:
                try:
                    self.nodes_client.cancel_task(node.address, task_id)
                except Exception as exc:
                    log.warning("CancelTask %s on %s failed: %s", task_id, node_id, exc)

    # ---------------------------------------------------------------- progress

    def _refresh_jobs(self, s: Session, job_ids: set[str]) -> None:
        """Recompute progress of these jobs from their tasks; complete those whose tasks all are."""
        if not job_ids:
            return
        tasks_by_job: dict[str, list[Task]] = defaultdict(list)
        for task in s.scalars(select(Task).where(Task.job_id.in_(job_ids))):
            tasks_by_job[task.job_id].append(task)
        next_stage: list[dict] = []  # a campaign's next tasks, planned from the ones that completed
        for job in s.scalars(select(Job).where(Job.id.in_(job_ids))):
            tasks = tasks_by_job.get(job.id)
            if not tasks:
                continue
            if job.api == CAMPAIGN_API:
                next_stage += campaigns.refresh(s, job, tasks, max_attempts=self.config.max_attempts)
                continue
            renders = [t for t in tasks if t.kind == TaskKind.render]
            awaiting_style = (job.render_settings or {}).get("awaiting_style")
            analysis = [t for t in tasks if t.kind in ANALYSIS_KINDS or (awaiting_style and t.kind == TaskKind.style)]
            finding = [t for t in tasks if t.kind != TaskKind.render]  # what is found before or beside the renders

            def done(group: list[Task]) -> float:
                return sum(100.0 if t.state == TaskState.completed else t.progress_percent for t in group) / len(group)

            share = ANALYSIS_SHARE if finding else 0.0
            found = done(finding) if finding else 100.0
            rendered = done(renders) if renders else 0.0
            job.progress_percent = round(share * found / 100.0 + (100.0 - share) * rendered / 100.0, 1)
            if renders and job.status == JobStatus.processing:
                # Rendering once a clip is under way; until then a style task may be what runs.
                styling = any(t.kind == TaskKind.style and t.state != TaskState.completed for t in tasks)
                started = any(t.state != TaskState.pending for t in renders)
                job.stage = JobStage.styling if styling and not started else JobStage.rendering
            if not renders:
                if job.status == JobStatus.processing:
                    stage = analysis_stage(analysis)
                    if stage == JobStage.selecting and job.stage != JobStage.selecting:
                        with self._lock:
                            self._to_select.add(job.id)
                        self._wakeup.set()
                    job.stage = stage
                continue
            if all(t.state == TaskState.completed for t in tasks):
                finish_job(s, job, JobStatus.completed, tasks=tasks)
        if next_stage:
            s.execute(insert(Task), next_stage)

    def flush_progress(self) -> int:
        """Write the latest progress of every task that moved (throttled: one write per flush)."""
        with self._lock:
            pending, self._progress = self._progress, {}
            self._last_flush = self.clock()
        if not pending:
            return 0
        with self._db_lock, session_scope(self.sessions) as s:
            tasks = s.scalars(select(Task).where(Task.id.in_(pending))).all()
            touched_jobs = set()
            for task in tasks:
                update = pending[task.id]
                if task.lease_id != update.lease_id or TASK_MACHINE.is_terminal(task.state):
                    continue
                transition(TASK_MACHINE, task, TaskState.running, "state")
                task.stage, task.progress_percent, task.message = update.stage, update.percent, update.message
                if task.job_id is not None:
                    touched_jobs.add(task.job_id)
            self._refresh_jobs(s, touched_jobs)
        return len(pending)
