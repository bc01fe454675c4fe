"""Jobs made from a URL: the video is downloaded in the background, then the job is queued.

A job starts in `downloading` with no video. A worker of the app's DownloadPool fetches
the URL through the address guard (reelfarm/address_guard.py) into storage, probes
it like an upload (videos.service.create_video_from_upload), attaches the video and moves
the job to `queued`, where the scheduler picks it up. Any failure fails the job with a
readable reason. Jobs still `downloading` when the API starts (it was stopped or
crashed mid-download) are downloaded again from the start.

A URL that answers with a web page (YouTube, TikTok...) instead of a media file is
handed to yt-dlp when `allow_yt_dlp` is on (001: page links of ~1000 sites). Every
request yt-dlp makes, to the page's host and to every host it goes on to (CDNs,
manifests, fragments, redirects), goes through the same address guard
(url_imports/guarded_yt_dlp.py).
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from control_plane.billing.plans import PlanBook
from control_plane.errors import ApiError
from control_plane.jobs import service as jobs
from reelfarm.address_guard import (
    AddressPolicy,
    FetchError,
    FetchRefused,
    describe,
    open_url,
)
from control_plane.videos import service as videos
from reelfarm.job_lifecycle import finish_job
from reelfarm.models.accounts import Account
from reelfarm.models.jobs import Job
from reelfarm.options import ProcessOptions
from reelfarm.settings import Settings
from reelfarm.states import JOB_MACHINE, JobStage, JobStatus, transition
from reelfarm.storage import BlobTooLarge, BlobWriter, Storage

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MAX_URL_CHARS = 2000
# A download trickling slower than this would hold a worker for ever.
MAX_DOWNLOAD_SECONDS = 4 * 3600
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
USER_AGENT = "ReelFarm/0.1 (URL ingest)"
YT_DLP_MISSING = "this page is not a video file and yt-dlp is not installed on this server"
YT_DLP_DISABLED = "this page is not a video file (site downloads with yt-dlp are turned off on this server)"


class DownloadFailed(Exception):
    """The download cannot succeed; str() becomes the job's error."""


class Interrupted(Exception):
    """The pool is stopping, or the job left `downloading` (cancelled): stop without failing it."""


# ----------------------------------------------------------------------------- service


def name_from_url(url: httpx.URL) -> str:
    """The URL's last path segment ('talk.mp4'), else its host."""
    name = "".join(c for c in unquote(PurePosixPath(url.path).name) if c.isprintable()).strip()
    return (name or url.host or "video")[:500]


def submit_url(*, session: Session, account: Account, url: str, options: ProcessOptions,
               settings: Settings, plans: PlanBook, api: str = "reels", webhook_url: str | None = None) -> Job:
    """Check the URL and make its `downloading` job; 400 when the URL is invalid or refused.

    The first host is resolved and checked here, so an obviously refused URL (a private
    address, a name resolving to one) is a 400 at once; the download checks every
    connection again, redirects included.
    """
    url = (url or "").strip()
    if not url:
        raise ApiError(400, "url required")
    if len(url) > MAX_URL_CHARS:
        raise ApiError(400, f"url: longer than {MAX_URL_CHARS} characters")
    try:
        parsed = AddressPolicy.from_settings(settings).check_url(url)
    except FetchRefused as exc:
        raise ApiError(400, f"url refused: {exc}") from None
    except FetchError as exc:
        raise ApiError(400, f"url: {exc}") from None
    return jobs.create_url_job(session=session, account=account, source_url=str(parsed),
                               original_name=name_from_url(parsed), options=options, settings=settings, plans=plans,
                               api=api, webhook_url=webhook_url)  # fmt: skip


def pending_downloads(*, session: Session) -> list[str]:
    """Jobs waiting for their video, oldest first."""
    return list(session.scalars(
        select(Job.id).where(Job.status == JobStatus.downloading, Job.video_id.is_(None)).order_by(Job.created_at)
    ))  # fmt: skip


@dataclass(frozen=True)
class DownloadRequest:
    job_id: str
    url: str


def claim(*, session: Session, job_id: str) -> DownloadRequest | None:
    """What to download for `job_id`, or None when it no longer waits for a download."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.downloading or job.video_id is not None or not job.source_url:
        return None
    return DownloadRequest(job_id=job.id, url=job.source_url)


def record_progress(*, session: Session, job_id: str, received: int, total: int | None) -> bool:
    """Show download progress on the job; False when the job stopped waiting (cancelled)."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.downloading or job.cancel_requested_at is not None:
        return False
    job.stage = JobStage.downloading
    job.progress_percent = round(min(100.0, 100.0 * received / total), 1) if total else 0.0
    session.commit()
    return True


def attach_video(*, session: Session, job_id: str, writer: BlobWriter, original_name: str | None = None) -> Job | None:
    """Probe and store the downloaded bytes, attach them to the job and queue it.

    ApiError (400) when the bytes are not a usable video; None (bytes dropped) when the
    job no longer waits for them.
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.status != JobStatus.downloading or job.video_id is not None:
        writer.abort()
        return None
    account = session.get(Account, job.account_id)
    original_name = "".join(c for c in (original_name or "") if c.isprintable()).strip()
    if original_name:
        job.original_name = original_name[:500]
    video = videos.create_video_from_upload(session=session, account=account, writer=writer,
                                          original_name=job.original_name)  # fmt: skip
    jobs.check_options_fit(ProcessOptions.from_job(job.options), video)
    job.video_id = video.id
    job.stage = None
    job.progress_percent = 0.0
    transition(JOB_MACHINE, job, JobStatus.queued)
    session.commit()
    return job


def fail_download(*, session: Session, job_id: str, reason: str) -> bool:
    """Fail a job still waiting for its video; True when it changed."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.downloading:
        return False
    finish_job(session, job, JobStatus.failed, error=reason)
    session.commit()
    return True


# ----------------------------------------------------------------------------- worker


@dataclass
class _Context:
    settings: Settings
    storage: Storage
    sessions: sessionmaker
    stop: threading.Event
    job_id: str
    last_flush: float = 0.0
    started: float = 0.0

    def progress(self, received: int, total: int | None, *, force: bool = False) -> None:
        """Raises Interrupted when the pool stops or the job was cancelled; flushes progress now and then."""
        if self.stop.is_set():
            raise Interrupted("pool stopping")
        now = time.monotonic()
        if now - self.started > MAX_DOWNLOAD_SECONDS:
            raise DownloadFailed(f"download failed: took longer than {MAX_DOWNLOAD_SECONDS // 60} minutes")
        if force or now - self.last_flush >= self.settings.progress_flush_seconds:
            self.last_flush = now
            with self.sessions() as session:
                if not record_progress(session=session, job_id=self.job_id, received=received, total=total):
                    raise Interrupted("job no longer downloading")


def _too_large(settings: Settings) -> DownloadFailed:
    return DownloadFailed(f"download too large: over {settings.max_upload_bytes} bytes")


def download_job(job_id: str, *, settings: Settings, storage: Storage, sessions: sessionmaker,
                 stop: threading.Event, on_queued: Callable[[str], None]) -> None:
    """Download one job's video and queue the job, or fail it with the reason."""
    with sessions() as session:
        request = claim(session=session, job_id=job_id)
    if request is None:
        return
    ctx = _Context(settings=settings, storage=storage, sessions=sessions, stop=stop, job_id=job_id,
                   started=time.monotonic())  # fmt: skip
    writer: BlobWriter | None = None
    try:
        ctx.progress(0, None, force=True)
        writer, original_name = _fetch(request.url, ctx)
        with sessions() as session:
            try:
                job = attach_video(session=session, job_id=job_id, writer=writer, original_name=original_name)
            except ApiError as exc:
                session.rollback()
                writer.abort()
                fail_download(session=session, job_id=job_id, reason=exc.message)
                return
        if job is not None:
            log.info("job %s: downloaded %s", job_id, request.url)
            on_queued(job_id)
    except Interrupted as exc:
        log.info("job %s: download stopped (%s)", job_id, exc)
    except DownloadFailed as exc:
        _fail(sessions, job_id, str(exc))
    except Exception:
        log.exception("job %s: download failed", job_id)
        _fail(sessions, job_id, "download failed: internal error")
    finally:
        if writer is not None:
            writer.abort()  # no-op once committed


def _fail(sessions: sessionmaker, job_id: str, reason: str) -> None:
    log.info("job %s: %s", job_id, reason)
    with sessions() as session:
        fail_download(session=session, job_id=job_id, reason=reason)


def _fetch(url: str, ctx: _Context) -> tuple[BlobWriter, str | None]:
    """Download `url` into a storage writer; (writer, better original name or None)."""
    settings = ctx.settings
    policy = AddressPolicy.from_settings(settings)
    limit = settings.max_upload_bytes
    page_url: httpx.URL | None = None
    writer = ctx.storage.open_writer(max_bytes=limit)
    try:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        with open_url(url, policy=policy, headers=headers) as response:
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type in PAGE_TYPES:
                page_url = response.url
            else:
                length = response.headers.get("content-length", "")
                total = int(length) if length.isdigit() else None
                if total is not None and total > limit:
                    raise _too_large(settings)
                received = 0
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    writer.write(chunk)
                    received += len(chunk)
                    ctx.progress(received, total)
                ctx.progress(received, total, force=True)
    except BlobTooLarge:
        writer.abort()
        raise _too_large(settings) from None
    except FetchRefused as exc:
        writer.abort()
        raise DownloadFailed(f"download refused: {exc}") from None
    except (FetchError, httpx.HTTPError) as exc:
        writer.abort()
        if ctx.stop.is_set():
            raise Interrupted("pool stopping") from None
        raise DownloadFailed(f"download failed: {describe(exc)}") from None
    except BaseException:
        writer.abort()
        raise
    if page_url is None:
        return writer, None
    writer.abort()
    return _fetch_with_yt_dlp(page_url, ctx, policy)


def _fetch_with_yt_dlp(url: httpx.URL, ctx: _Context, policy: AddressPolicy) -> tuple[BlobWriter, str | None]:
    settings = ctx.settings
    if not settings.allow_yt_dlp:
        raise DownloadFailed(YT_DLP_DISABLED)
    try:
        import yt_dlp  # noqa: F401  (a dependency: only a broken install lacks it)

        from control_plane.url_imports.guarded_yt_dlp import GuardedYoutubeDL, guarded_format
    except ImportError:
        raise DownloadFailed(YT_DLP_MISSING) from None
    try:
        policy.check_url(url)  # refused at once, before yt-dlp starts (its requests are checked too)
    except FetchRefused as exc:
        raise DownloadFailed(f"download refused: {exc}") from None
    except FetchError as exc:
        raise DownloadFailed(f"download failed: {exc}") from None

    limit = settings.max_upload_bytes
    scratch = settings.resolved_work_dir / "downloads"
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="ytdlp-", dir=scratch))
    interrupted: list[BaseException] = []

    def hook(status: dict) -> None:
        received = status.get("downloaded_bytes") or 0
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        try:
            if received > limit:
                raise _too_large(settings)
            ctx.progress(received, int(total) if total else None)
        except (Interrupted, DownloadFailed) as exc:
            interrupted.append(exc)
            raise

    def refuse_live(info: dict, *, incomplete: bool = False) -> str | None:
        return "live streams cannot be downloaded" if info.get("is_live") else None

    params = {
        "outtmpl": str(folder / "video.%(ext)s"),
        # One file up to 1080p (clips are at most 1080 wide), video and audio merged by ffmpeg.
        "format": guarded_format("bv*[height<=1080]+ba/b[height<=1080]/bv*+ba/b"),
        "merge_output_format": "mp4",
        "noplaylist": True,
        "max_filesize": limit,
        "match_filter": refuse_live,
        "progress_hooks": [hook],
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": 30,
        "cachedir": False,
        "restrictfilenames": True,
    }
    ydl = None
    try:
        try:
            with GuardedYoutubeDL(params, policy=policy) as ydl:
                info = ydl.extract_info(str(url), download=True) or {}
        except (Interrupted, DownloadFailed):
            raise
        except Exception as exc:  # noqa: BLE001  yt-dlp's errors (DownloadError...) become the job's reason
            if interrupted:
                raise interrupted[0] from None
            if ydl is not None and ydl.refusals:
                raise DownloadFailed(f"download refused: {ydl.refusals[0]}") from None
            message = str(exc).removeprefix("ERROR: ").strip() or type(exc).__name__
            raise DownloadFailed(f"download failed: {message[:500]}") from None
        if interrupted:
            raise interrupted[0]
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
        if not files:
            raise DownloadFailed("download failed: yt-dlp found no video on this page")
        path = max(files, key=lambda p: p.stat().st_size)
        writer = ctx.storage.open_writer(max_bytes=limit)
        try:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    writer.write(chunk)
        except BlobTooLarge:
            writer.abort()
            raise _too_large(settings) from None
        except BaseException:
            writer.abort()
            raise
        title = str(info.get("title") or "").strip()
        return writer, (f"{title}{path.suffix}" if title else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- pool


class DownloadPool:
    """A bounded pool of daemon threads, owned by the app, that runs download_job.

    `start()` (idempotent) picks up jobs left `downloading` by an earlier run; `submit()`
    starts the pool if nothing did. `shutdown()` stops workers between chunks: their jobs
    stay `downloading` and the next start downloads them again. Daemon threads never keep
    the process alive on exit; an unfinished download is simply resumed next time.
    """

    def __init__(self, *, settings: Settings, sessions: sessionmaker, storage: Storage,
                 on_queued: Callable[[str], None]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.on_queued = on_queued
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._started = False

    def start(self) -> DownloadPool:
        with self._lock:
            if self._started:
                return self
            self._started = True
            self._stop.clear()
            for index in range(max(1, self.settings.url_download_workers)):
                thread = threading.Thread(target=self._work, name=f"url-download-{index}", daemon=True)
                thread.start()
                self._threads.append(thread)
        try:
            with self.sessions() as session:
                leftovers = pending_downloads(session=session)
        except Exception:
            log.exception("could not look for interrupted downloads")
            leftovers = []
        for job_id in leftovers:
            log.info("job %s: resuming its download", job_id)
            self.submit(job_id)
        return self

    def submit(self, job_id: str) -> None:
        self.start()
        with self._lock:
            if job_id in self._pending or self._stop.is_set():
                return
            self._pending.add(job_id)
        self._queue.put(job_id)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:
            if not self._started:
                return
            self._stop.set()
            threads, self._threads = self._threads, []
            self._started = False
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # Whatever was still queued stays `downloading` in the database for the next start.
        with self._lock:
            self._pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stop.is_set():
                return
            try:
                download_job(job_id, settings=self.settings, storage=self.storage, sessions=self.sessions,
                             stop=self._stop, on_queued=self._notify)  # fmt: skip
            except Exception:
                log.exception("job %s: download worker error", job_id)
            finally:
                with self._lock:
                    self._pending.discard(job_id)

    def _notify(self, job_id: str) -> None:
        try:
            self.on_queued(job_id)
        except Exception:
            log.exception("job %s: job listener failed", job_id)
