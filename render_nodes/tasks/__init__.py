"""What a render node does with one task, whatever its kind (reelfarm.states.TaskKind).

render (tasks/render.py) makes a clip's files; transcribe and analyze (tasks/transcribe.py,
tasks/analyze.py) answer with JSON the scheduler's content analysis reads; style
(tasks/style.py) answers with the source's Style DNA.
"""

from __future__ import annotations

import time

from reelfarm.states import TaskKind
from render_nodes import metrics
from render_nodes.tasks.analyze import run_analyze_task
from render_nodes.tasks.common import TaskFailure, TaskOutcome
from render_nodes.tasks.render import run_render_task
from render_nodes.tasks.transcribe import run_transcribe_task


def run_task(task: dict, **kwargs) -> TaskOutcome:
    """Run a task of any kind: renders make files, analysis tasks answer with JSON.

    Its duration, by kind and outcome, and its failures go to the node's metrics."""
    kind, started = str(task.get("kind") or TaskKind.render), time.monotonic()
    try:
        outcome = _run_task(task, **kwargs)
    except TaskFailure as failure:
        cancel = kwargs.get("cancel")
        if failure.reason == "cancelled" and cancel is not None and cancel.is_set():
            metrics.task_finished(kind, time.monotonic() - started, outcome="cancelled")
        else:
            cause = "retryable" if failure.retryable else "permanent"
            metrics.task_finished(kind, time.monotonic() - started, outcome="failed", cause=cause)
        raise
    except Exception:
        metrics.task_finished(kind, time.monotonic() - started, outcome="failed", cause="crash")
        raise
    metrics.task_finished(kind, time.monotonic() - started, outcome="completed")
    return outcome


def _run_task(task: dict, *, engines=None, settings=None, **render_kwargs) -> TaskOutcome:
    kind = task.get("kind") or TaskKind.render
    if kind == TaskKind.render:
        return run_render_task(task, **render_kwargs)
    common = {k: render_kwargs[k] for k in ("storage", "work_dir", "on_progress", "cancel")}
    if kind in (TaskKind.capture, TaskKind.script, TaskKind.campaign_video):
        from render_nodes.tasks import campaign  # Chromium, the voices and the script load with the first one

        if settings is None:
            raise TaskFailure(f"this node cannot run {kind} tasks (no settings)", retryable=False)
        run = {TaskKind.capture: campaign.run_capture_task, TaskKind.script: campaign.run_script_task,
               TaskKind.campaign_video: campaign.run_campaign_video_task}[TaskKind(kind)]  # fmt: skip
        return TaskOutcome(artifacts=[], result=run(task, settings=settings, encoders=render_kwargs.get("encoders"),
                                                    **common))  # fmt: skip
    if kind == TaskKind.transcribe:
        if engines is None:
            from render_nodes.speech.engines import SpeechEngines

            engines = SpeechEngines()
        result = run_transcribe_task(task, engines=engines, **common)
    elif kind == TaskKind.analyze:
        result = run_analyze_task(task, detector=render_kwargs.get("detector"), hwaccel=render_kwargs.get("hwaccel"),
                                  **common)  # fmt: skip
    elif kind == TaskKind.style:
        from render_nodes.tasks.style import run_style_task  # librosa and OpenCV load with the first style task

        result = run_style_task(task, **common)
    else:
        raise TaskFailure(f"unknown task kind {kind!r}", retryable=False)
    return TaskOutcome(artifacts=[], result=result)
