"""Clips: the manifest of a finished job and access to its artifacts."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.errors import ApiError
from reelfarm.models.clips import Artifact, Clip
from reelfarm.models.jobs import Job
from reelfarm.models.videos import Video
from reelfarm.states import JobStatus

ARTIFACT_NAME = re.compile(r"^clip_\d{2}\.(mp4|jpg|ass)$")
MANIFEST_NAME = "manifest.json"


def _file_entry(artifact: Artifact | None) -> dict | None:
    if artifact is None:
        return None
    return {"filename": artifact.filename, "sha256": artifact.sha256, "size_bytes": artifact.size_bytes}


def manifest(*, session: Session, job: Job) -> dict:
    """The clips manifest (reels document shape); 404 until the job is completed."""
    if job.status != JobStatus.completed:
        raise ApiError(404, f"clips not ready (job is {job.status})")
    video = session.get(Video, job.video_id)
    artifacts = {a.filename: a for a in session.scalars(select(Artifact).where(Artifact.job_id == job.id))}
    clips = []
    for clip in session.scalars(select(Clip).where(Clip.job_id == job.id).order_by(Clip.clip_index)):
        stem = f"clip_{clip.clip_index:02d}"
        base = f"/api/clips/{job.id}/{stem}"
        clips.append(
            {
                "index": clip.clip_index,
                "start": clip.start_seconds,
                "end": clip.end_seconds,
                "duration": clip.duration_seconds,
                "score": clip.score,
                "transcript": clip.transcript,
                "downloadUrl": f"{base}.mp4",
                "posterUrl": f"{base}.jpg",
                "aspectRatio": clip.aspect_ratio,
                "width": clip.width,
                "height": clip.height,
                "encoder": clip.encoder,
                "captionsUrl": f"{base}.ass" if f"{stem}.ass" in artifacts else None,
                "quality": _quality(clip.render_info or {}),
                "metadata": clip.clip_metadata or {},
                # A Style DNA's filters as rendered (colour chain, audio chain, frame rate, pacing).
                "style": (clip.render_info or {}).get("style_filters"),
                "files": [e for e in (_file_entry(artifacts.get(f"{stem}.{ext}")) for ext in ("mp4", "jpg", "ass")) if e],
            }
        )
    return {
        "jobId": job.id,
        "duration": video.duration_seconds,
        "clipCount": len(clips),
        "selection": (job.render_settings or {}).get("selection"),
        # Why the clips were not picked from the speech ("no speech found"), if they were not.
        "selectionReason": (job.render_settings or {}).get("selection_reason"),
        "language": (job.render_settings or {}).get("language"),
        "source": {"sha256": video.sha256, "width": video.width, "height": video.height},
        "clips": clips,
    }


def _quality(info: dict) -> dict:
    """What the render node measured about its reframing (render_nodes/reframe.py)."""
    return {
        "detector": info.get("detector"),
        "encoder": info.get("encoder"),
        "face_coverage": info.get("face_coverage"),
        "crop_jitter": info.get("crop_jitter"),
        "captions": info.get("captions", "none"),
        "shots": info.get("shots", []),
    }


def get_artifact(*, session: Session, job: Job, filename: str) -> Artifact:
    if not ARTIFACT_NAME.match(filename):
        raise ApiError(404, "no such artifact")
    artifact = session.scalar(select(Artifact).where(Artifact.job_id == job.id, Artifact.filename == filename))
    if artifact is None:
        raise ApiError(404, "no such artifact")
    return artifact
