"""A campaign job's tasks, one stage after the other (seeds/004; lifecycle in reelfarm/campaigns.py).

capture (the page: screenshots, text, language) -> script (every language's, translated where
needed) -> one campaign_video per language (voiceover, then the video), which run in parallel
on as many nodes as are free. Each stage is planned when the one before it completes, from its
result; the campaign's status follows the tasks (`refresh`), and the job completes, and the
campaign goes to review, when every video is in (CampaignVideo rows, one per platform).
"""

from __future__ import annotations

import json
from sqlalchemy.orm import Session

from reelfarm import campaigns
from reelfarm.database import new_id, utcnow
from reelfarm.job_lifecycle import finish_job
from reelfarm.models import Campaign, CampaignVideo, Job, Task
from reelfarm.states import CampaignStatus, JobStatus, TaskKind, TaskState

# Share of a campaign's progress each stage ends at (the videos take the most).
_CAPTURED, _SCRIPTED = 15.0, 25.0


def _spec(campaign: Campaign, **fields) -> dict:
    return {"campaign_id": campaign.id, "url": campaign.url, "title": campaign.title,
            "domain": campaigns.domain_of(campaign.url), **fields}  # fmt: skip


def _row(job: Job, kind: TaskKind, index: int, spec: dict, max_attempts: int) -> dict:
    return {"id": new_id("task_"), "job_id": job.id, "kind": kind, "task_index": index, "spec": spec,
            "required_encoders": [], "max_attempts": max_attempts}  # fmt: skip


def capture_row(job: Job, campaign: Campaign, max_attempts: int) -> dict:
    return _row(job, TaskKind.capture, 1, _spec(campaign, languages=list(campaign.languages)), max_attempts)


def refresh(s: Session, job: Job, tasks: list[Task], *, max_attempts: int) -> list[dict]:
    """Move a campaign on from its tasks; returns the next stage's task rows to insert."""
    campaign = campaigns.campaign_of_job(s, job.id)
    if campaign is None or job.status not in (JobStatus.queued, JobStatus.processing):
        return []
    by_kind: dict[str, list[Task]] = {}
    for task in tasks:
        by_kind.setdefault(task.kind, []).append(task)
    capture = (by_kind.get(TaskKind.capture) or [None])[0]
    script = (by_kind.get(TaskKind.script) or [None])[0]
    videos = sorted(by_kind.get(TaskKind.campaign_video) or [], key=lambda t: t.task_index)
    if capture is None:
        return []
    if capture.state != TaskState.completed:
        job.progress_percent = round(_CAPTURED * capture.progress_percent / 100, 1)
        return []
    captured = capture.result or {}
    if campaign.page_language is None:
        campaign.page_language = (captured.get("page") or {}).get("language")
    if script is None:
        campaigns.advance(campaign, CampaignStatus.processing)
        job.progress_percent = _CAPTURED
        spec = _spec(campaign, languages=list(campaign.languages), page_json=json.dumps(captured.get("page") or {}))
        return [_row(job, TaskKind.script, 1, spec, max_attempts)]
    if script.state != TaskState.completed:
        if script.state in (TaskState.leased, TaskState.running):
            campaigns.advance(campaign, CampaignStatus.scripting)
        job.progress_percent = round(_CAPTURED + (_SCRIPTED - _CAPTURED) * script.progress_percent / 100, 1)
        return []
    campaigns.advance(campaign, CampaignStatus.scripting)
    if not videos:
        campaigns.advance(campaign, CampaignStatus.voiceover)
        job.progress_percent = _SCRIPTED
        scripts = (script.result or {}).get("scripts") or {}
        screenshots = list(captured.get("screenshots") or [])
        x264_preset = (job.render_settings or {}).get("x264_preset") or "veryfast"
        return [
            _row(job, TaskKind.campaign_video, index,
                 _spec(campaign, language=language, script_json=json.dumps(scripts[language]),
                       screenshot_keys=screenshots, x264_preset=x264_preset, encoder_preference="auto"),
                 max_attempts)  # fmt: skip
            for index, language in enumerate(campaign.languages, start=1)
        ]
    # The videos: voiceover while any is still being voiced, then rendering.
    if any(t.state != TaskState.completed and (t.stage or "") in ("rendering", "uploading") for t in videos):
        campaigns.advance(campaign, CampaignStatus.rendering)
    done = sum(100.0 if t.state == TaskState.completed else t.progress_percent for t in videos) / len(videos)
    job.progress_percent = round(_SCRIPTED + (100.0 - _SCRIPTED) * done / 100, 1)
    if all(t.state == TaskState.completed for t in videos):
        campaigns.advance(campaign, CampaignStatus.rendering)
        now = utcnow()
        for task in videos:
            made = task.result or {}
            for platform in campaigns.PLATFORMS:
                s.add(CampaignVideo(campaign_id=campaign.id, language=task.spec["language"], platform=platform,
                                    status="ready", storage_key=made["video"]["storage_key"],
                                    sha256=made["video"].get("sha256", ""),
                                    poster_key=(made.get("poster") or {}).get("storage_key"),
                                    size_bytes=made["video"].get("size_bytes", 0),
                                    duration_seconds=float(made.get("duration_seconds") or 0.0),
                                    engine=made.get("engine"), created_at=now))  # fmt: skip
        finish_job(s, job, JobStatus.completed, tasks=tasks)  # -> the campaign's review (reelfarm/campaigns.py)
    return []
