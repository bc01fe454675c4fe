"""A job as each API shows it: one snapshot of the row, one function per wire shape.

The reels API (camelCase, its REST views and its WebSocket), the v1 API (snake_case, its
REST views and its server-sent events) and the dev API's call polling all describe the
same job; they read it through `JobSnapshot`, built from the ORM row or from the
coalesced status read (jobs/status_reads.py), and differ only in the shape here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reelfarm.models import Job
from reelfarm.states import JobStage

# The v1 API's stages (003), in 003's order. Ours, mapped onto them in the order a job goes through them
# (reelfarm/states.py JobStage), so a v1 client sees the stage move forward only:
#   downloading  -> video_analysis     the source is fetched (URL jobs) and read
#   transcribing -> audio_analysis     speech, loudness and voice features of the audio
#   analyzing    -> motion_analysis    faces and subjects over the frames
#   selecting    -> style_extraction   the moments (and their titles) are picked from what was found
#   styling      -> style_extraction   the source's Style DNA is extracted (a v1 job's `style` task)
#   rendering    -> rendering          each clip is reframed, captioned and encoded
# `style_application` has no stage of ours: reframing and captions are applied inside the render
# pass, so it is never reported (003's list is an order, not a promise that every stage is seen).
# A job with no stage (queued before any work, or finished) shows null, as 003's new job does.
V1_STAGES = ("video_analysis", "audio_analysis", "motion_analysis", "style_extraction", "style_application",
             "rendering")
V1_STAGE_OF = {JobStage.downloading: "video_analysis", JobStage.transcribing: "audio_analysis",
               JobStage.analyzing: "motion_analysis", JobStage.selecting: "style_extraction",
               JobStage.styling: "style_extraction", JobStage.rendering: "rendering"}  # fmt: skip


def v1_stage(stage: str | None) -> str | None:
    """Our stage under its v1 name (None stays None; an unknown one is not shown)."""
    return V1_STAGE_OF.get(stage) if stage else None


@dataclass(frozen=True)
class JobSnapshot:
    id: str
    original_name: str
    video_id: str | None
    status: str
    stage: str | None
    progress_percent: float
    error: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    options: dict

    @classmethod
    def of(cls, job: Job) -> "JobSnapshot":
        return cls(id=job.id, original_name=job.original_name, video_id=job.video_id, status=job.status,
                   stage=job.stage, progress_percent=job.progress_percent or 0.0, error=job.error,
                   cancel_requested=job.cancel_requested_at is not None, created_at=job.created_at,
                   updated_at=job.updated_at, options=job.options)  # fmt: skip


def millis(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def reels_job(job: JobSnapshot, *, clip_count: int, tasks: list[dict] | None = None) -> dict:
    """GET /api/jobs/{id} and the job list (no `tasks` there)."""
    view = {
        "id": job.id,
        "jobId": job.id,
        "originalName": job.original_name,
        "status": job.status,
        "stage": job.stage,
        "progress_percent": job.progress_percent,
        "error": job.error,
        "createdAt": millis(job.created_at),
        "updatedAt": millis(job.updated_at),
        "clipCount": clip_count,
        "posterUrl": f"/api/clips/{job.id}/clip_01.jpg" if clip_count else None,
        "options": job.options,
    }
    if tasks is not None:
        view["tasks"] = tasks
    return view


def reels_update(job: JobSnapshot) -> dict:
    """A WebSocket push (GET /ws?jobId=): what changed, as the reels API names it."""
    return {"type": "job", "jobId": job.id, "status": job.status, "stage": job.stage,
            "progress_percent": round(job.progress_percent, 1), "error": job.error,
            "updatedAt": millis(job.updated_at)}  # fmt: skip


def v1_job(job: JobSnapshot) -> dict:
    """The v1 API's job (GET /api/v1/jobs/{id}, create, cancel)."""
    return {
        "job_id": job.id,
        "video_id": job.video_id,
        "status": job.status,
        "progress_percent": round(job.progress_percent, 1),
        "current_stage": v1_stage(job.stage),
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


def v1_event(job: JobSnapshot) -> dict:
    """A server-sent `job` event (GET /api/v1/jobs/{id}/events)."""
    return {"job_id": job.id, "status": job.status, "current_stage": v1_stage(job.stage),
            "progress_percent": round(job.progress_percent, 1), "error": job.error}  # fmt: skip


def dev_call_running(job: JobSnapshot) -> dict:
    """GET /api/dev/process-video-result while the call runs (a 202)."""
    return {"callId": job.id, "status": "running", "progress_percent": round(job.progress_percent, 1)}
