"""What a render node does with one task, whatever its kind (reelfarm.states.TaskKind).

render (tasks/render.py) makes a clip's files; transcribe and analyze (tasks/transcribe.py,
tasks/analyze.py) answer with JSON the scheduler's content analysis reads.
"""

from __future__ import annotations

from reelfarm.states import TaskKind
from render_nodes.tasks.analyze import run_analyze_task
from render_nodes.tasks.common import TaskFailure, TaskOutcome
from render_nodes.tasks.render import run_render_task
from render_nodes.tasks.transcribe import run_transcribe_task


def run_task(task: dict, *, engines=None, **render_kwargs) -> TaskOutcome:
    """Run a task of any kind: renders make files, analysis tasks answer with JSON."""
    kind = task.get("kind") or TaskKind.render
    if kind == TaskKind.render:
        return run_render_task(task, **render_kwargs)
    common = {k: render_kwargs[k] for k in ("storage", "work_dir", "on_progress", "cancel")}
    if kind == TaskKind.transcribe:
        if engines is None:
            from render_nodes.speech.engines import SpeechEngines

            engines = SpeechEngines()
        result = run_transcribe_task(task, engines=engines, **common)
    elif kind == TaskKind.analyze:
        result = run_analyze_task(task, detector=render_kwargs.get("detector"), hwaccel=render_kwargs.get("hwaccel"),
                                  **common)  # fmt: skip
    else:
        raise TaskFailure(f"unknown task kind {kind!r}", retryable=False)
    return TaskOutcome(artifacts=[], result=result)
