"""Dashboard pages for videos and jobs: the job list, a job with its clips, and uploads.

Every view goes through the API's services with the signed-in account: jobs.service for
jobs (its tenancy check answers another workspace's job with a 404), videos.service and
jobs.service.create_job for uploads (the same probing, quota and options checks as
POST /api/upload), url_imports.downloads for URLs, clips.service for a finished job's clips.

Live updates are server-sent events swapped in by htmx's SSE extension: the job list's
stream sends the rows that changed (one cheap query per ~0.75 s per open page), a job's
stream its status and, when it ends, its clips. Without JavaScript the pages are plain,
current HTML with a refresh link, and the forms post normally.

Resumable uploads (static/upload.js, control_plane/dashboard/resumable.py): POST
/dashboard/uploads, PUT /dashboard/uploads/{id} with Content-Range chunks, HEAD/GET for
the offset; those routes answer JSON, errors included.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import typing
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from control_plane.accounts.service import Principal
from control_plane.clips import service as clips
from control_plane.dashboard.resumable import CHUNK_BYTES, PendingUpload, UploadSpool, parse_content_range
from control_plane.dashboard.web import (
    CSRF_COOKIE,
    CSRF_FIELD,
    PREFIX,
    TEMPLATES,
    CsrfChecked,
    Flash,
    PagePrincipal,
    csrf_token,
    redirect,
    render,
    session_principal,
)
from control_plane.deps import SessionDep, SettingsDep, StorageDep
from control_plane.errors import ApiError
from control_plane.jobs import service as jobs
from control_plane.jobs.events import HEARTBEAT_SECONDS, job_updates
from control_plane.jobs.pipeline import require_pipeline
from control_plane.jobs.schemas import parse_options
from control_plane.jobs.shapes import JobSnapshot
from control_plane.url_imports import downloads
from control_plane.videos import service as videos
from reelfarm.models import Artifact, Job
from reelfarm.options import CLIP_LENGTH_RANGES, WHISPER_LANGUAGES, ProcessOptions
from reelfarm.settings import Settings
from reelfarm.states import JOB_MACHINE, JobStatus

router = APIRouter(prefix=PREFIX, include_in_schema=False)

LIST_LIMIT = 100
LIST_POLL_SECONDS = 0.75
ACTIVE = (JobStatus.queued, JobStatus.downloading, JobStatus.processing)


# ------------------------------------------------------------------ the options form


def _bound(name: str, kind: str):
    for meta in ProcessOptions.model_fields[name].metadata:
        value = getattr(meta, kind, None)
        if value is not None:
            return value
    return None


def _choices(name: str) -> tuple[str, ...]:
    annotation = ProcessOptions.model_fields[name].annotation
    return tuple(a for a in typing.get_args(annotation) if isinstance(a, str))


def _default(name: str):
    return ProcessOptions.model_fields[name].default


# Labels and hints of the form; ranges, choices and defaults come from ProcessOptions.
CHOICE_LABELS = {
    "mode": {"ai": "Pick the best moments (AI)", "none": "One clip of the whole source"},
    "clipLength": {k: f"{k.capitalize()} ({lo:g}-{hi:g} s)" for k, (lo, hi) in CLIP_LENGTH_RANGES.items()},
    "aspectRatio": {"9:16": "9:16 (vertical)", "1:1": "1:1 (square)", "4:5": "4:5 (portrait)",
                    "16:9": "16:9 (landscape)"},
    "captionPreset": {"none": "No captions", "beasty": "Beasty", "karaoke": "Karaoke", "mozi": "Mozi"},
    "genre": {"auto": "Detect automatically", "podcast": "Podcast", "interview": "Interview", "vlog": "Vlog",
              "tutorial": "Tutorial"},
}  # fmt: skip
NUMBER_FIELDS = ("numClips", "minDuration", "maxDuration", "trimStart", "trimEnd")
TEXT_FIELDS = ("mode", "clipLength", "aspectRatio", "captionPreset", "genre", "language", "prompt")
BOOL_FIELDS = ("autoHook", "removeAiVoice")
# Hidden in every options form: a checkbox left unticked then means false (not the default).
FORM_MARKER = "options_form"


@functools.cache  # from ProcessOptions' fields: the same for every request
def option_specs() -> dict:
    """What the form renders: each option's label, range, step, default and choices."""
    numbers = {
        "numClips": {"label": "Number of clips", "min": _bound("numClips", "ge"), "max": _bound("numClips", "le"),
                     "step": 1, "default": _default("numClips")},
        "minDuration": {"label": "Shortest clip (seconds)", "min": _bound("minDuration", "ge"),
                        "max": _bound("minDuration", "le"), "step": 0.5, "default": None,
                        "hint": "optional: with the longest, replaces the clip length"},
        "maxDuration": {"label": "Longest clip (seconds)", "min": _bound("maxDuration", "ge"),
                        "max": _bound("maxDuration", "le"), "step": 0.5, "default": None, "hint": "optional"},
        "trimStart": {"label": "Trim start (seconds)", "min": _bound("trimStart", "ge"), "max": None, "step": 0.1,
                      "default": _default("trimStart"), "hint": "cut the source before this point"},
        "trimEnd": {"label": "Trim end (seconds)", "min": 0.1, "max": None, "step": 0.1, "default": None,
                    "hint": "optional: cut the source after this point (more than the start)"},
    }  # fmt: skip
    selects = {name: {"label": label, "default": _default(name),
                      "choices": [(c, CHOICE_LABELS[name].get(c, c)) for c in _choices(name)]}
               for name, label in (("mode", "Mode"), ("clipLength", "Clip length"), ("aspectRatio", "Aspect ratio"),
                                   ("captionPreset", "Caption preset"), ("genre", "Genre"))}  # fmt: skip
    return {"numbers": numbers, "selects": selects, "languages": WHISPER_LANGUAGES,
            "prompt_max": ProcessOptions.model_fields["prompt"].metadata[0].max_length if
            ProcessOptions.model_fields["prompt"].metadata else 2000,
            "booleans": {"autoHook": ("Write a hook, title and hashtags", _default("autoHook")),
                         "removeAiVoice": ("Splice out interviewer turns (interviews)", _default("removeAiVoice"))}}  # fmt: skip


def options_from_form(form: Mapping) -> dict:
    """ProcessOptions (as a dict, still to be validated) from the form's fields: blanks left out."""
    options: dict = {}
    for name in (*NUMBER_FIELDS, *TEXT_FIELDS):
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            options[name] = value if name == "prompt" else value.strip()
    if form.get(FORM_MARKER):
        for name in BOOL_FIELDS:
            options[name] = form.get(name) in ("on", "true", "1")
    return options


def _form_values(form: Mapping | None) -> dict:
    """The values to show in the form again (after a refused submission), else the defaults."""
    if form is None:
        return {}
    values = {name: form.get(name) for name in (*NUMBER_FIELDS, *TEXT_FIELDS, "url") if isinstance(form.get(name), str)}
    if form.get(FORM_MARKER):
        values.update({name: form.get(name) in ("on", "true", "1") for name in BOOL_FIELDS})
    return values


def _upload_page(request: Request, session: Session, principal: Principal, *, form: Mapping | None = None,
                 error: ApiError | None = None, tab: str = "file"):  # fmt: skip
    flashes = [Flash("error", error.message)] if error else []
    response = render(request, "upload.html", session=session, principal=principal,
                      status_code=error.status_code if error else 200, flashes=flashes, specs=option_specs(),
                      values=_form_values(form), tab=tab, chunk_bytes=CHUNK_BYTES,
                      max_upload_bytes=request.app.state.settings.max_upload_bytes)  # fmt: skip
    if error and error.headers:
        response.headers.update(error.headers)
    return response


# ------------------------------------------------------------------ the job list


def _clip_counts(session: Session, job_ids: list[str]) -> dict[str, int]:
    if not job_ids:
        return {}
    rows = session.execute(select(Artifact.job_id, func.count()).where(Artifact.job_id.in_(job_ids),
                                                                      Artifact.filename.like("%.mp4"))
                           .group_by(Artifact.job_id))  # fmt: skip
    return {job_id: count for job_id, count in rows}


def _rows(session: Session, jobs_: list[Job]) -> list[dict]:
    counts = _clip_counts(session, [j.id for j in jobs_])
    return [{"job": JobSnapshot.of(j), "clip_count": counts.get(j.id, 0)} for j in jobs_]


@router.get("/jobs")
def jobs_page(request: Request, principal: PagePrincipal, session: SessionDep):
    rows = _rows(session, jobs.list_jobs(session=session, account=principal.account, limit=LIST_LIMIT))
    return render(request, "jobs_list.html", session=session, principal=principal, rows=rows)


def _fragment(request: Request, template: str, **context) -> str:
    """A template rendered for a stream (no response): the shared context pages get."""
    return TEMPLATES.get_template(template).render(request=request, csrf_token=csrf_token(request),
                                                   csrf_field=CSRF_FIELD, prefix=PREFIX, **context)  # fmt: skip


def sse_event(event: str, html: str) -> str:
    """One server-sent event; each line of the HTML a `data:` line (the browser joins them with newlines)."""
    lines = html.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _poll_list(factory: Callable[[], Session], account_id: str) -> list[tuple]:
    """The one cheap query of each poll: (id, status, stage, progress, updated) of the recent jobs."""
    with factory() as session:
        return list(session.execute(jobs.listed_jobs(account_id, Job.id, Job.status, Job.stage, Job.progress_percent,
                                                     Job.updated_at, limit=LIST_LIMIT)).all())  # fmt: skip


def _load_rows(factory: Callable[[], Session], job_ids: list[str]) -> list[dict]:
    with factory() as session:
        found = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        return _rows(session, [found[i] for i in job_ids if i in found])


def _row_update(request: Request, row: dict, *, new: bool) -> str:
    """A changed row replaces its own (by id); a new one goes on top of the table's body (the
    wrapper is dropped by the out-of-band swap: only its row is inserted)."""
    if new:
        return f'<tbody hx-swap-oob="afterbegin:#jobs-body">{_fragment(request, "_job_row.html", row=row)}</tbody>'
    return _fragment(request, "_job_row.html", row=row, row_oob="true")


@router.get("/jobs/stream")
async def jobs_stream(request: Request, principal: PagePrincipal):
    """Server-sent `jobs` events for the list page: first the whole table body, then the rows that
    changed (out-of-band swaps: a changed row replaces its own, a new one goes on top)."""
    factory = request.app.state.session_factory
    account_id = principal.account.id

    async def events():
        loop = asyncio.get_running_loop()
        known: dict[str, tuple] = {}
        first, last_sent = True, loop.time()
        yield "retry: 3000\n\n"
        while not await request.is_disconnected():
            polled = await run_in_threadpool(_poll_list, factory, account_id)
            current = {row[0]: row[1:] for row in polled}
            changed = [job_id for job_id, state in current.items() if known.get(job_id) != state]
            if first or changed:
                order = [row[0] for row in polled] if first else changed
                rows = await run_in_threadpool(_load_rows, factory, order)
                if first:
                    html = _fragment(request, "_jobs_body.html", rows=rows, oob=True)
                else:
                    html = "".join(_row_update(request, row, new=row["job"].id not in known) for row in rows)
                    if any(job_id not in known for job_id in changed):
                        html += '<tr id="jobs-empty" hx-swap-oob="delete"></tr>'
                yield sse_event("jobs", html)
                known, first, last_sent = current, False, loop.time()
            elif loop.time() - last_sent >= HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                last_sent = loop.time()
            await asyncio.sleep(LIST_POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)


# ------------------------------------------------------------------ a job


def _job_context(session: Session, job: Job) -> dict:
    snapshot = JobSnapshot.of(job)
    manifest = clips.manifest(session=session, job=job) if job.status == JobStatus.completed else None
    return {"job": snapshot, "manifest": manifest, "live": not JOB_MACHINE.is_terminal(job.status),
            "cancellable": job.status in ACTIVE and job.cancel_requested_at is None,
            "options": ProcessOptions.from_job(job.options)}  # fmt: skip


@router.get("/jobs/{job_id}")
def job_page(job_id: str, request: Request, principal: PagePrincipal, session: SessionDep):
    job = jobs.get_job(session=session, account=principal.account, job_id=job_id)
    return render(request, "job_detail.html", session=session, principal=principal, **_job_context(session, job))


@router.get("/jobs/{job_id}/stream")
async def job_stream(job_id: str, request: Request, principal: PagePrincipal):
    """Server-sent `job` events: the status block on every change; when the job ends, its clips
    too, then a `done` event (the page's sse-close) so the browser does not reconnect."""
    factory = request.app.state.session_factory

    def check() -> None:
        with factory() as session:
            jobs.get_job(session=session, account=principal.account, job_id=job_id)

    await run_in_threadpool(check)

    def final_context() -> dict:
        with factory() as session:
            return _job_context(session, jobs.get_job(session=session, account=principal.account, job_id=job_id))

    async def events():
        yield "retry: 3000\n\n"
        async for update in job_updates(factory, job_id):
            if update is None:
                yield ": keep-alive\n\n"
                continue
            if JOB_MACHINE.is_terminal(update.status):
                context = await run_in_threadpool(final_context)
                html = _fragment(request, "_job_status.html", oob=True, **context)
                html += _fragment(request, "_job_clips.html", oob=True, **context)
                yield sse_event("job", html)
                yield sse_event("done", "")
                return
            html = _fragment(request, "_job_status.html", oob=True, job=update, live=True,
                             cancellable=update.status in ACTIVE and not update.cancel_requested)  # fmt: skip
            yield sse_event("job", html)

    return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)


@router.post("/jobs/{job_id}/cancel", dependencies=[CsrfChecked])
def cancel_job(job_id: str, request: Request, principal: PagePrincipal, session: SessionDep):
    job = jobs.request_cancel(session=session, account=principal.account, job_id=job_id)
    request.app.state.job_listener(job.id)  # wakes an embedded scheduler, as the API's cancel does
    return redirect(f"{PREFIX}/jobs/{job_id}")


# ------------------------------------------------------------------ uploads: the page and its plain forms


@router.get("/upload")
def upload_page(request: Request, principal: PagePrincipal, session: SessionDep):
    return _upload_page(request, session, principal)


@router.post("/upload")
async def upload_file_form(request: Request, principal: PagePrincipal, session: SessionDep, settings: SettingsDep,
                           storage: StorageDep):  # fmt: skip
    """The file form without JavaScript: one multipart POST, streamed to storage as it arrives
    (videos.receive_video, as POST /api/upload). Its CSRF token is checked in the stream: the
    form's first field, before any byte of the file is accepted (parsing the form up front,
    as CsrfChecked does, would spool the whole file first)."""
    expected = csrf_token(request) if request.cookies.get(CSRF_COOKIE) else None
    fields_seen: dict[str, str] = {}

    def on_field(name: str, value: str) -> None:
        fields_seen[name] = value
        if name == CSRF_FIELD and not (expected and hmac.compare_digest(value, expected)):
            raise ApiError(403, "the form has expired or did not come from this site: reload the page and try again")

    def check_fields(fields: dict[str, str]) -> ProcessOptions:
        if not (expected and hmac.compare_digest(fields.get(CSRF_FIELD, ""), expected)):
            raise ApiError(403, "the form has expired or did not come from this site: reload the page and try again")
        return parse_options(options_from_form(fields))

    try:
        await run_in_threadpool(require_pipeline, session, settings)
        received = await videos.receive_video(request, session=session, account=principal.account, settings=settings,
                                              storage=storage, file_field="video", missing_message="choose a video file",
                                              on_field=on_field, check_fields=check_fields)  # fmt: skip
        job = await run_in_threadpool(jobs.create_job, session=session, account=principal.account,
                                      video=received.video, options=received.checked, settings=settings,
                                      plans=request.app.state.plans)  # fmt: skip
    except ApiError as exc:
        session.rollback()
        return _upload_page(request, session, principal, form=fields_seen, error=exc)
    request.app.state.job_listener(job.id)
    return redirect(f"{PREFIX}/jobs/{job.id}")


@router.post("/upload/url", dependencies=[CsrfChecked])
async def upload_url_form(request: Request, principal: PagePrincipal, session: SessionDep, settings: SettingsDep):
    """A job from a video's URL (url_imports.downloads, as POST /api/upload/url)."""
    form = await request.form()
    try:
        options = parse_options(options_from_form(form))
        await run_in_threadpool(require_pipeline, session, settings)
        job = await run_in_threadpool(downloads.submit_url, session=session, account=principal.account,
                                      url=str(form.get("url") or ""), options=options, settings=settings,
                                      plans=request.app.state.plans)  # fmt: skip
    except ApiError as exc:
        session.rollback()
        return _upload_page(request, session, principal, form=form, error=exc, tab="url")
    request.app.state.downloads.submit(job.id)
    return redirect(f"{PREFIX}/jobs/{job.id}")


# ------------------------------------------------------------------ uploads: the resumable protocol (JSON)


class JsonErrorRoute(APIRoute):
    """The upload protocol is spoken by a script: its errors are JSON ({"error"}, with the offset
    where it matters) rather than the pages' HTML."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return JSONResponse({"error": exc.message, **(exc.extra or {})}, status_code=exc.status_code,
                                    headers=exc.headers)  # fmt: skip

        return route


uploads = APIRouter(include_in_schema=False, route_class=JsonErrorRoute)  # under `router`: /dashboard


def api_principal(request: Request, session: SessionDep) -> Principal:
    """The signed-in browser (a 401, not a redirect to the login page: a script asks)."""
    principal = session_principal(request, session)
    if principal is None:
        raise ApiError(401, "signed out: sign in again, then resume the upload")
    return principal


ScriptPrincipal = Annotated[Principal, Depends(api_principal)]


def _spool(settings: Settings) -> UploadSpool:
    return UploadSpool(settings.resolved_work_dir)


def _state(spool: UploadSpool, upload: PendingUpload) -> dict:
    return {"upload_id": upload.id, "filename": upload.filename, "size": upload.size,
            "offset": spool.offset(upload), "complete": upload.job_id is not None, "job_id": upload.job_id,
            "job_url": f"{PREFIX}/jobs/{upload.job_id}" if upload.job_id else None, "chunk_bytes": CHUNK_BYTES}  # fmt: skip


@uploads.post("/uploads", dependencies=[CsrfChecked])
async def create_upload(request: Request, principal: ScriptPrincipal, session: SessionDep, settings: SettingsDep):
    """JSON {filename, size, options}: the options are checked first (400 naming the field), the size
    against the upload limit (413); 201 with the upload's id and offset 0."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, 'send JSON: {"filename": ..., "size": ..., "options": {...}}') from None
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object")
    options = parse_options(body.get("options"))
    size, filename = body.get("size"), body.get("filename")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ApiError(400, "size: the file's size in bytes (more than 0)")
    if size > settings.max_upload_bytes:
        raise ApiError(413, f"upload too large (limit {settings.max_upload_bytes} bytes)")
    if not isinstance(filename, str) or not filename.strip():
        raise ApiError(400, "filename: required")
    await run_in_threadpool(require_pipeline, session, settings)
    spool = _spool(settings)
    await run_in_threadpool(spool.remove_stale)
    upload = await run_in_threadpool(spool.create, account_id=principal.account.id, filename=filename.strip(),
                                     size=size, options=options.model_dump(exclude_unset=True))  # fmt: skip
    return JSONResponse(_state(spool, upload), status_code=201)


@uploads.api_route("/uploads/{upload_id}", methods=["GET", "HEAD"])
def upload_state(upload_id: str, principal: ScriptPrincipal, settings: SettingsDep):
    """Where the upload stands: `offset` bytes received (also as the Upload-Offset header)."""
    spool = _spool(settings)
    upload = spool.get(upload_id, principal.account.id)
    state = _state(spool, upload)
    return JSONResponse(state, headers={"Upload-Offset": str(state["offset"]), "Upload-Length": str(upload.size),
                                        "Cache-Control": "no-store"})  # fmt: skip


WRITE_BATCH = 1 << 20


@uploads.put("/uploads/{upload_id}", dependencies=[CsrfChecked])
async def upload_chunk(upload_id: str, request: Request, principal: ScriptPrincipal, session: SessionDep,
                       settings: SettingsDep, storage: StorageDep):  # fmt: skip
    """A chunk: `Content-Range: bytes START-END/SIZE`, START the current offset (else 409 with the
    offset to go on from). The last byte makes the video and its job (answered with `job_id`);
    `bytes */SIZE` with an empty body retries that step when every byte is already in."""
    spool = _spool(settings)
    upload = spool.get(upload_id, principal.account.id)
    content_range = parse_content_range(request.headers.get("content-range"))
    if content_range.total != upload.size:
        raise ApiError(400, f"Content-Range: the file is {upload.size} bytes, not {content_range.total}")
    if upload.job_id:  # made already (the answer to the last chunk was lost): the same job again
        return JSONResponse(_state(spool, upload))
    handle = await run_in_threadpool(spool.open_for_writing, upload)
    try:
        offset = handle.tell()
        if content_range.start is not None:
            if content_range.start != offset:
                raise ApiError(409, f"Content-Range: this upload has {offset} bytes: send from byte {offset}",
                               extra={"offset": offset})  # fmt: skip
            await _append(request, handle, content_range.length)
            offset = handle.tell()
        elif offset != upload.size:
            raise ApiError(409, f"the upload has {offset} of {upload.size} bytes: send the rest first",
                           extra={"offset": offset})  # fmt: skip
        if offset < upload.size:
            return JSONResponse(_state(spool, upload))
        await run_in_threadpool(handle.flush)
        job = await run_in_threadpool(_finish, request, spool, upload, principal, session, settings, storage)
    finally:
        handle.close()  # and its lock
    request.app.state.job_listener(job.id)
    return JSONResponse(_state(spool, upload))


async def _append(request: Request, handle, length: int) -> None:
    """Append the body (exactly `length` bytes) to the spool as it arrives. A body cut short keeps
    what arrived (the next chunk starts there); a longer one is refused and leaves nothing."""
    start = handle.tell()
    written, pending = 0, []
    pending_bytes = 0
    try:
        async for data in request.stream():
            if written + pending_bytes + len(data) > length:
                pending, pending_bytes = [], 0
                await run_in_threadpool(handle.truncate, start)
                raise ApiError(400, f"the body is longer than its Content-Range ({length} bytes)")
            pending.append(data)
            pending_bytes += len(data)
            if pending_bytes >= WRITE_BATCH:
                await run_in_threadpool(handle.write, b"".join(pending))
                written, pending, pending_bytes = written + pending_bytes, [], 0
    except ClientDisconnect:
        pass
    finally:
        if pending:
            await run_in_threadpool(handle.write, b"".join(pending))
            written += pending_bytes
        await run_in_threadpool(handle.flush)
    if written != length:
        raise ApiError(400, f"the body ({written} bytes) is shorter than its Content-Range ({length} bytes): "
                            f"the upload has {handle.tell()} bytes", extra={"offset": handle.tell()})  # fmt: skip


def _finish(request: Request, spool: UploadSpool, upload: PendingUpload, principal: Principal, session: Session,
            settings: Settings, storage) -> Job:  # fmt: skip
    """Every byte is in: store it as a video and make its job, as POST /api/upload does."""
    require_pipeline(session, settings)  # 503 (Retry-After) while no render node is registered
    options = parse_options(upload.options)
    writer = storage.open_writer(max_bytes=settings.max_upload_bytes)
    try:
        writer.write_file(spool.part_path(upload))  # linked, not copied, where it can be
        try:
            video = videos.create_video_from_upload(session=session, account=principal.account, writer=writer,
                                                    original_name=upload.filename)  # fmt: skip
        except ApiError:
            spool.discard(upload)  # not a video: sending it again cannot help
            raise
        job = jobs.create_job(session=session, account=principal.account, video=video, options=options,
                              settings=settings, plans=request.app.state.plans)  # fmt: skip
    except BaseException:
        session.rollback()
        raise
    finally:
        writer.abort()  # no-op once committed
    spool.finished(upload, job.id)
    return job


router.include_router(uploads)
