"""A v1 job's result document: `GET /api/v1/jobs/{id}/result` and the body of its webhooks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from control_plane.clips import service as clips
from reelfarm.models.jobs import Job
from reelfarm.states import JobStatus

# The clip fields that hold a URL of this API (relative: /api/clips/...).
_URL_FIELDS = ("downloadUrl", "posterUrl", "captionsUrl")


def job_result(*, session: Session, job: Job, base_url: str | None = None) -> dict:
    """The result of a finished job. A completed job has its clips; a failed or cancelled
    one has the same shape with no clips and its `error`.

    `base_url`: prefixed to the API's URLs (webhooks use settings.public_url: a receiver has
    no request to resolve relative URLs against); None keeps them relative.
    """
    completed = job.status == JobStatus.completed
    clip_list = clips.manifest(session=session, job=job)["clips"] if completed else []
    if base_url:
        base = base_url.rstrip("/")
        clip_list = [{k: (f"{base}{v}" if k in _URL_FIELDS and isinstance(v, str) and v.startswith("/") else v)
                      for k, v in clip.items()} for clip in clip_list]  # fmt: skip
    data = {
        "job_id": job.id,
        "status": job.status,
        "progress_percent": 100 if completed else round(job.progress_percent or 0.0),
        "output_video_url": clip_list[0]["downloadUrl"] if clip_list else None,
        "processing_time_seconds": round((job.completed_at - job.created_at).total_seconds(), 3)
        if job.completed_at else None,
        "clips": clip_list,
        # Style DNA arrives with its own issue: no style was extracted for this job.
        "style_json": None,
    }
    if not completed:
        data["error"] = job.error
    return data
