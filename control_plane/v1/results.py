"""A v1 job's result document: `GET /api/v1/jobs/{id}/result` and the body of its webhooks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from control_plane.clips import service as clips
from reelfarm.models.jobs import Job
from reelfarm.models.styles import SourceStyle
from reelfarm.models.videos import Video
from reelfarm.states import JobStatus

# The clip fields that hold a URL of this API (relative: /api/clips/...).
_URL_FIELDS = ("downloadUrl", "posterUrl", "captionsUrl")


def source_style(*, session: Session, video_id: str | None) -> dict | None:
    """The Style DNA of a video's source (kept by SHA-256), or None while it is not extracted."""
    video = session.get(Video, video_id) if video_id else None
    row = session.get(SourceStyle, video.sha256) if video is not None else None
    return row.dna if row is not None else None


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
        # The source's Style DNA (docs/style-dna.md), once its `style` task has run.
        "style_json": source_style(session=session, video_id=job.video_id),
    }
    if (applied := (job.render_settings or {}).get("applied_style")) is not None:
        data["applied_style_json"] = applied  # the template (and inline fields) the clips were given
    if not completed:
        data["error"] = job.error
    return data
