"""Projects and the dev endpoints' views of videos, calls and clips (same jobs underneath)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts.service import owned
from control_plane.errors import ApiError
from reelfarm.models.accounts import Account
from reelfarm.models.clips import Artifact, Clip
from reelfarm.models.jobs import Job
from reelfarm.models.projects import Project
from reelfarm.models.tasks import Task
from reelfarm.models.videos import Video
from reelfarm.states import ACTIVE_JOB_STATUSES, JobStatus, TaskKind, TaskState

PREVIEW_TTL_SECONDS = 3600


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:200] or "project"


def check_account(account: Account, account_id: str | None) -> None:
    """The dev endpoints name their workspace; naming another one is like naming none."""
    if account_id is not None and account_id != account.id:
        raise ApiError(404, "account not found")


def create_project(*, session: Session, account: Account, name: str) -> Project:
    name = name.strip()
    if not name:
        raise ApiError(400, "name is required")
    base = slugify(name)
    for n in range(1, 1000):
        slug = base if n == 1 else f"{base}-{n}"
        if session.scalar(select(Project.id).where(Project.account_id == account.id, Project.slug == slug)) is None:
            project = Project(account_id=account.id, name=name[:200], slug=slug)
            session.add(project)
            try:
                session.commit()
            except IntegrityError:  # a concurrent create took the slug: try the next one
                session.rollback()
                continue
            return project
    raise ApiError(409, "too many projects with this name")


def get_project(*, session: Session, account: Account, project_id: str) -> Project:
    return owned(session, Project, project_id, account, "project")


def job_for_call(*, session: Session, account: Account, call_id: str) -> Job:
    job = owned(session, Job, call_id, account, "call")
    if job.api != "dev":  # other APIs' jobs are not calls
        raise ApiError(404, "call not found")
    return job


def video_clips(*, session: Session, video: Video) -> list[tuple[Clip, Job]]:
    rows = session.execute(
        select(Clip, Job).join(Job, Job.id == Clip.job_id)
        .where(Job.video_id == video.id, Job.status == JobStatus.completed).order_by(Job.created_at, Clip.clip_index)
    )  # fmt: skip
    return [(c, j) for c, j in rows]


def video_summary(*, session: Session, video: Video) -> dict:
    """Clip counts over every job of the video: ready, draft (planned, not rendered yet), failed.

    Clips are render tasks; a job still finding its moments has no clips yet."""
    states = dict(session.execute(
        select(Task.state, func.count()).join(Job, Job.id == Task.job_id)
        .where(Job.video_id == video.id, Task.kind == TaskKind.render).group_by(Task.state)
    ).all())  # fmt: skip
    ready = states.get(TaskState.completed, 0)
    failed = states.get(TaskState.failed, 0) + states.get(TaskState.cancelled, 0)
    total = sum(states.values())
    busy = session.scalar(select(func.count()).select_from(Job).where(
        Job.video_id == video.id, Job.status.in_(ACTIVE_JOB_STATUSES)))  # fmt: skip
    status = "processing" if busy else "ready" if ready else "failed" if failed else video.status
    return {
        "video": {"id": video.id, "title": video.original_name, "status": status},
        "counts": {"total": total, "ready": ready, "draft": total - ready - failed, "failed": failed},
    }


def _signature(secret: str, clip_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"preview:{clip_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_preview_url(*, secret: str, clip_id: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + PREVIEW_TTL_SECONDS)
    return f"/api/dev/preview/{clip_id}?expires={expires}&signature={_signature(secret, clip_id, expires)}"


def verify_preview(*, secret: str, clip_id: str, expires: int, signature: str, now: float | None = None) -> None:
    good = _signature(secret, clip_id, expires)
    if not signature.isascii() or not hmac.compare_digest(good, signature):
        raise ApiError(403, "invalid preview signature")
    if (now or time.time()) > expires:
        raise ApiError(403, "preview link expired")


def preview_artifact(*, session: Session, clip_id: str) -> Artifact:
    clip = session.get(Clip, clip_id)
    artifact = clip and session.scalar(
        select(Artifact).where(Artifact.job_id == clip.job_id, Artifact.filename == f"clip_{clip.clip_index:02d}.mp4")
    )
    if artifact is None:
        raise ApiError(404, "clip not found")
    return artifact
