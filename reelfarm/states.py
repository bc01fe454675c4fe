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


class TaskKind(StrEnum):
    """What a task asks of a render node."""

    transcribe = "transcribe"  # words, voice activity, loudness, voice features of a part of the source
    analyze = "analyze"  # face presence over the source, from keyframes
    render = "render"  # one clip
    style = "style"  # the source's Style DNA (v1 jobs; once per source SHA-256)


# The order a job's tasks run in, and are listed in: finding the moments, then the clips.
TASK_KIND_ORDER: tuple[TaskKind, ...] = (TaskKind.style, TaskKind.transcribe, TaskKind.analyze, TaskKind.render)
# What moment selection waits for (a style task runs beside them and the renders).
ANALYSIS_KINDS = frozenset({TaskKind.transcribe, TaskKind.analyze})
STAGE_OF_KIND = {TaskKind.transcribe: JobStage.transcribing, TaskKind.analyze: JobStage.analyzing,
                 TaskKind.render: JobStage.rendering, TaskKind.style: JobStage.styling}  # fmt: skip
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
