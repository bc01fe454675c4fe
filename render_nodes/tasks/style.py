"""kind "style": the source's Style DNA (analysis/style/extract.py), answered as JSON.

The node reports 003's stages as the task's own (video_analysis, audio_analysis,
motion_analysis, style_extraction); the scheduler keeps the document by the source's SHA-256.
"""

from __future__ import annotations

import threading
from pathlib import Path

from analysis.style.extract import StyleExtractionCancelled, extract_style
from reelfarm.storage import Storage
from render_nodes.tasks.common import ProgressFn, cancelled, fetch_source, media_failures

# Where each stage's own 0..100 falls in the task's progress.
_STAGE_SPAN = {"video_analysis": (5.0, 80.0), "audio_analysis": (80.0, 92.0), "motion_analysis": (92.0, 96.0),
               "style_extraction": (96.0, 100.0)}  # fmt: skip


def run_style_task(task: dict, *, storage: Storage, work_dir: Path, on_progress: ProgressFn,
                   cancel: threading.Event) -> dict:  # fmt: skip
    spec = task["analysis"]
    on_progress("fetching", 0.0)
    source = fetch_source(storage, spec["source_key"], work_dir)

    def progress(stage: str, percent: float) -> None:
        low, high = _STAGE_SPAN.get(stage, (0.0, 100.0))
        on_progress(stage, low + (high - low) * percent / 100.0)

    try:
        with media_failures():
            dna = extract_style(source, on_progress=progress, cancel=cancel)
    except StyleExtractionCancelled:
        raise cancelled() from None
    on_progress("style_extraction", 100.0)
    return {"style_json": dna.as_json()}
