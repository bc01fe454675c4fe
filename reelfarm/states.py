"""Job and task states, stages and kinds, and the state machines that move them, as data.

Every status change in ReelFarm goes through `transition()`. Rules are checked
in order (as in Prefect's orchestration policies); the first that decides wins:

1. same state      -> accepted, nothing changes (idempotent: an outcome applied twice is harmless)
2. terminal state  -> refused, nothing changes (late messages after completion/cancel are normal)
3. allowed edge    -> accepted, state changes
4. anything else   -> InvalidTransition (a bug, not a message ordering race)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobStatus(StrEnum):
    queued = "queued"
    downloading = "downloading"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class JobStage(StrEnum):
    """What a queued or processing job is doing now (None once it has finished)."""

    downloading = "downloading"  # a URL job's video is being fetched by the API
    transcribing = "transcribing"
    analyzing = "analyzing"
    selecting = "selecting"  # the scheduler picks the moments (analysis/selection.py)
    styling = "styling"  # the source's Style DNA is extracted (analysis/style/)
    rendering = "rendering"
    # A campaign's (reelfarm/campaigns.py): its page captured, its script written, voiced.
    collecting = "collecting"
    scripting = "scripting"
    voiceover = "voiceover"


class TaskKind(StrEnum):
    """What a task asks of a render node."""

    transcribe = "transcribe"  # words, voice activity, loudness, voice features of a part of the source
    analyze = "analyze"  # face presence over the source, from keyframes
    render = "render"  # one clip
    style = "style"  # the source's Style DNA (v1 jobs; once per source SHA-256)
    capture = "capture"  # a campaign's web page: screenshots and text (render_nodes/campaigns/capture.py)
    script = "script"  # a campaign's script in each of its languages (analysis/campaigns/)
    campaign_video = "campaign_video"  # one language's voiceover and video (render_nodes/campaigns/)


# The order a job's tasks run in, and are listed in: finding the moments, then the clips.
TASK_KIND_ORDER: tuple[TaskKind, ...] = (TaskKind.style, TaskKind.transcribe, TaskKind.analyze, TaskKind.render,
                                         TaskKind.capture, TaskKind.script, TaskKind.campaign_video)  # fmt: skip
# What moment selection waits for (a style task runs beside them and the renders).
ANALYSIS_KINDS = frozenset({TaskKind.transcribe, TaskKind.analyze})
STAGE_OF_KIND = {TaskKind.transcribe: JobStage.transcribing, TaskKind.analyze: JobStage.analyzing,
                 TaskKind.render: JobStage.rendering, TaskKind.style: JobStage.styling,
                 TaskKind.capture: JobStage.collecting, TaskKind.script: JobStage.scripting,
                 TaskKind.campaign_video: JobStage.voiceover}  # fmt: skip
# A campaign job's own stages (its campaign's status says more); no video job has them.
CAMPAIGN_JOB_STAGES = frozenset({JobStage.collecting, JobStage.scripting, JobStage.voiceover})
# Jobs the scheduler or the downloader may still change; the rest are final.
ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.downloading, JobStatus.processing)


class TaskState(StrEnum):
    pending = "pending"      # waiting for a node (also after a retryable failure)
    leased = "leased"        # sent to a node, not yet confirmed running
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


# A node holds these tasks: cancelling one means telling its node.
ACTIVE_TASK_STATES = (TaskState.leased, TaskState.running)


class StyleExtractionState(StrEnum):
    """A request for a source's Style DNA (GET /api/v1/videos/{id}/style; table style_extractions).

    Done is no state: the row is deleted once the DNA is kept (table source_styles)."""

    requested = "requested"    # waiting for the scheduler to give it a style task
    extracting = "extracting"  # following a style task: its own, or one a job already runs for the source
    failed = "failed"          # the task failed for good; reported once, then the row is gone (a retry)


class CampaignStatus(StrEnum):
    """A campaign's status, as seeds/004 names them (reelfarm/campaigns.py moves it)."""

    collecting = "collecting"  # its page is being captured
    processing = "processing"  # captured; its script is next
    scripting = "scripting"  # the script is written (and translated)
    voiceover = "voiceover"  # its languages are voiced
    rendering = "rendering"  # its videos are rendered
    review = "review"  # every video is ready: approve to publish
    published = "published"
    failed = "failed"


class InvalidTransition(Exception):
    pass


@dataclass(frozen=True)
class StateMachine:
    name: str
    edges: dict[str, frozenset[str]]
    terminal: frozenset[str]

    def is_terminal(self, state: str) -> bool:
        return state in self.terminal


@dataclass(frozen=True)
class Decision:
    changed: bool
    accepted: bool
    rule: str


def _edges(spec: dict[StrEnum, set[StrEnum]]) -> dict[str, frozenset[str]]:
    return {str(k): frozenset(str(v) for v in vs) for k, vs in spec.items()}


J, T = JobStatus, TaskState

JOB_MACHINE = StateMachine(
    name="job",
    edges=_edges(
        {
            J.queued: {J.downloading, J.processing, J.failed, J.cancelled},
            J.downloading: {J.queued, J.processing, J.failed, J.cancelled},
            J.processing: {J.completed, J.failed, J.cancelled},
            J.completed: set(),
            J.failed: set(),
            J.cancelled: set(),
        }
    ),
    terminal=frozenset({J.completed, J.failed, J.cancelled}),
)

TASK_MACHINE = StateMachine(
    name="task",
    edges=_edges(
        {
            T.pending: {T.leased, T.failed, T.cancelled},
            T.leased: {T.running, T.pending, T.completed, T.failed, T.cancelled},
            T.running: {T.pending, T.completed, T.failed, T.cancelled},
            T.completed: set(),
            T.failed: set(),
            T.cancelled: set(),
        }
    ),
    terminal=frozenset({T.completed, T.failed, T.cancelled}),
)

X = StyleExtractionState

STYLE_EXTRACTION_MACHINE = StateMachine(
    name="style extraction",
    edges=_edges(
        {
            # extracting -> requested: the task it followed was cancelled with its job; extract again.
            X.requested: {X.extracting, X.failed},
            X.extracting: {X.requested, X.failed},
            X.failed: set(),
        }
    ),
    terminal=frozenset({X.failed}),
)


C = CampaignStatus
_WORKING = (C.collecting, C.processing, C.scripting, C.voiceover, C.rendering)

CAMPAIGN_MACHINE = StateMachine(
    name="campaign",
    edges=_edges(
        {
            # Forward through the pipeline (a stage may be passed over when its work was quick);
            # any working state may fail (a cancel is a failure whose reason says so).
            **{state: {*_WORKING[i + 1 :], C.review, C.failed} for i, state in enumerate(_WORKING)},
            C.review: {C.published, C.failed},
            C.published: set(),
            C.failed: set(),
        }
    ),
    terminal=frozenset({C.published, C.failed}),
)


def _same_state(machine: StateMachine, current: str, target: str) -> Decision | None:
    return Decision(changed=False, accepted=True, rule="same_state") if current == target else None


def _terminal_is_final(machine: StateMachine, current: str, target: str) -> Decision | None:
    return Decision(changed=False, accepted=False, rule="terminal") if machine.is_terminal(current) else None


def _allowed_edge(machine: StateMachine, current: str, target: str) -> Decision | None:
    if target in machine.edges.get(current, frozenset()):
        return Decision(changed=True, accepted=True, rule="allowed")
    return None


RULES = (_same_state, _terminal_is_final, _allowed_edge)


def decide(machine: StateMachine, current: str, target: str) -> Decision:
    for rule in RULES:
        decision = rule(machine, current, target)
        if decision is not None:
            return decision
    raise InvalidTransition(f"{machine.name}: {current} -> {target} is not allowed")


def transition(machine: StateMachine, entity, target: str, attr: str = "status") -> bool:
    """Move entity.<attr> to target if the machine allows it; True when it changed."""
    decision = decide(machine, getattr(entity, attr), str(target))
    if decision.changed:
        setattr(entity, attr, str(target))
    return decision.changed
