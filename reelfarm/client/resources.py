"""The API's endpoint families as resource groups, written once for ReelFarm and AsyncReelFarm.

Each method describes its request (core.Call) or, for a composite operation, is a generator
of operations; the client's executor runs it (sync.py: the value; aio.py: an awaitable of
it). `@route` marks the (METHOD, path) each method calls, so a test can hold the client
against the OpenAPI schema (client_routes()).
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from reelfarm.client import models as m
from reelfarm.client.core import (
    IDLE,
    Blocking,
    Call,
    CloseStream,
    Downloaded,
    Emit,
    NextEvent,
    OpenStream,
    Progress,
    ProgressCallback,
    Sleep,
    file_body,
    multipart_body,
    sha256_of,
)
from reelfarm.client.errors import ReelFarmError

Route = tuple[str, str]


def route(*routes: Route | str) -> Callable:
    """Mark a method with the routes it calls: @route("GET", "/api/jobs") or @route((..), (..))."""
    pairs = (tuple(routes),) if routes and isinstance(routes[0], str) else routes

    def mark(fn: Callable) -> Callable:
        fn.__reelfarm_routes__ = tuple(pairs)  # type: ignore[attr-defined]
        return fn

    return mark


def client_routes() -> dict[Route, list[str]]:
    """Every route the client calls, and the methods ("jobs.get") that call it."""
    found: dict[Route, list[str]] = {}
    for group_name, group in {"": Groups, **Groups.GROUPS}.items():
        for name in dir(group):
            fn = getattr(group, name)
            for pair in getattr(fn, "__reelfarm_routes__", ()):
                found.setdefault(pair, []).append(f"{group_name}.{name}" if group_name else name)
    return found


# Served but not in the schema (include_in_schema=False): the liveness and readiness probes.
OUTSIDE_SCHEMA: frozenset[Route] = frozenset({("GET", "/livez"), ("GET", "/readyz")})


def _media_type(path: Path, given: str | None, default: str = "application/octet-stream") -> str:
    return given or mimetypes.guess_type(path.name)[0] or default


def _options(options: dict | BaseModel | str | None) -> str | None:
    if options is None:
        return None
    if isinstance(options, str):
        return options
    if isinstance(options, BaseModel):
        return options.model_dump_json(by_alias=True, exclude_unset=True)
    return json.dumps(options)


def _plain_name(filename: str) -> str:
    if not filename or Path(filename).name != filename or filename in (".", ".."):
        raise ReelFarmError(f"refusing to write {filename!r}: not a plain file name")
    return filename


class Group:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _run(self, op: Any) -> Any:
        return self._client._run(op)


# --- accounts ----------------------------------------------------------------------------------


class Auth(Group):
    @route("POST", "/api/auth/signup")
    def signup(self, email: str, password: str, account_name: str | None = None) -> m.Me:
        """A user who owns a new workspace; this client is then signed in as them."""
        return self._run(Call("POST", "/api/auth/signup", json={"email": email, "password": password,
                                                                 "accountName": account_name},
                              model=m.Me, session="keep"))  # fmt: skip

    @route("POST", "/api/auth/login")
    def login(self, email: str, password: str, account_id: str | None = None) -> m.Me:
        body = {"email": email, "password": password, **({"accountId": account_id} if account_id else {})}
        return self._run(Call("POST", "/api/auth/login", json=body, model=m.Me, session="keep", idempotent=True))

    @route("POST", "/api/auth/logout")
    def logout(self) -> None:
        return self._run(Call("POST", "/api/auth/logout", session="drop", idempotent=True))

    @route("GET", "/api/auth/me")
    def me(self) -> m.Me:
        return self._run(Call("GET", "/api/auth/me", model=m.Me))


class Keys(Group):
    """API keys: signed-in owners and admins only (a session, not a key)."""

    @route("GET", "/api/keys")
    def list(self) -> list[m.KeyOut]:
        return self._run(Call("GET", "/api/keys", model=list[m.KeyOut]))

    @route("POST", "/api/keys")
    def create(self, name: str = "", scopes: list[str] | None = None) -> m.CreatedKey:
        return self._run(Call("POST", "/api/keys", json={"name": name, "scopes": scopes}, model=m.CreatedKey))

    @route("DELETE", "/api/keys/{key_id}")
    def revoke(self, key_id: str) -> m.KeyOut:
        return self._run(Call("DELETE", "/api/keys/{key_id}", {"key_id": key_id}, model=m.KeyOut))


class Members(Group):
    @route("GET", "/api/accounts/members")
    def list(self) -> list[m.MemberOut]:
        return self._run(Call("GET", "/api/accounts/members", model=list[m.MemberOut]))

    @route("POST", "/api/accounts/members")
    def add(self, email: str, role: str = "member") -> m.MemberOut:
        """Add a user (status "active"), or invite an address that has none yet (status "pending")."""
        return self._run(Call("POST", "/api/accounts/members", json={"email": email, "role": role},
                              model=m.MemberOut))  # fmt: skip

    @route("PATCH", "/api/accounts/members/{user_id}")
    def change_role(self, user_id: str, role: str) -> m.MemberOut:
        """Another role for a member (owners and admins; a workspace keeps at least one owner)."""
        return self._run(Call("PATCH", "/api/accounts/members/{user_id}", {"user_id": user_id},
                              json={"role": role}, model=m.MemberOut, idempotent=True))  # fmt: skip

    @route("DELETE", "/api/accounts/members/{user_id}")
    def remove(self, user_id: str) -> None:
        """Take a member out of the workspace; their logins in it end at once."""
        return self._run(Call("DELETE", "/api/accounts/members/{user_id}", {"user_id": user_id}))

    @route("GET", "/api/accounts/invitations")
    def invitations(self) -> list[m.InvitationOut]:
        return self._run(Call("GET", "/api/accounts/invitations", model=list[m.InvitationOut]))

    @route("DELETE", "/api/accounts/invitations/{invitation_id}")
    def revoke_invitation(self, invitation_id: str) -> None:
        return self._run(Call("DELETE", "/api/accounts/invitations/{invitation_id}",
                              {"invitation_id": invitation_id}))  # fmt: skip


class Billing(Group):
    @route("GET", "/api/billing/plans")
    def plans(self) -> m.Plans:
        return self._run(Call("GET", "/api/billing/plans", model=m.Plans))

    @route("GET", "/api/billing/usage")
    def usage(self) -> m.Usage:
        return self._run(Call("GET", "/api/billing/usage", model=m.Usage))


# --- reels: uploads, jobs, clips ----------------------------------------------------------------


class Uploads(Group):
    @route("POST", "/api/upload")
    def upload(self, path: Path | str, options: dict | BaseModel | str | None = None,
               on_progress: ProgressCallback | None = None, *, filename: str | None = None,
               content_type: str | None = None) -> m.UploadResult:  # fmt: skip
        """Upload a video and start a job. Streamed from the file (multipart: `options` first,
        then `video`); `on_progress(sent_bytes, total_bytes)` as the file's bytes go out. Sent
        again only when the server refused it (429, 503) or before any byte left."""
        path = Path(path)
        progress = Progress(path.stat().st_size, on_progress)
        fields = {"options": text} if (text := _options(options)) is not None else {}

        def body():
            return multipart_body(fields, "video", path, filename=filename,
                                  content_type=_media_type(path, content_type), progress=progress)  # fmt: skip

        return self._run(Call("POST", "/api/upload", body=body, model=m.UploadResult))

    @route("POST", "/api/upload/url")
    def from_url(self, url: str, options: dict | BaseModel | str | None = None) -> m.UrlUploadAccepted:
        """A job from a video's URL (a media file or a video page); it downloads in the background."""
        body: dict[str, Any] = {"url": url}
        if options is not None:
            body["options"] = options if isinstance(options, (dict, str)) else options.model_dump(
                mode="json", by_alias=True, exclude_unset=True)
        return self._run(Call("POST", "/api/upload/url", json=body, model=m.UrlUploadAccepted))


EVENTS = "/api/v1/jobs/{job_id}/events"


class Jobs(Group):
    @route("GET", "/api/jobs")
    def list(self) -> list[m.Job]:
        """The account's jobs, newest first."""
        return self._run(self._list())

    def _list(self):
        found = yield Call("GET", "/api/jobs", model=m.JobList)
        return found.jobs

    @route("GET", "/api/jobs/{job_id}")
    def get(self, job_id: str) -> m.Job:
        """The reels view of a job: status, stage, progress and its tasks."""
        return self._run(Call("GET", "/api/jobs/{job_id}", {"job_id": job_id}, model=m.Job))

    @route("POST", "/api/v1/jobs")
    def create(self, video_id: str, options: dict | None = None, webhook_url: str | None = None,
               template_video_id: str | None = None) -> m.JobV1:  # fmt: skip
        """A job for a video uploaded with videos.upload; `options`: ProcessOptions fields, plus
        `quality` and `style` (an inline Style DNA)."""
        body: dict[str, Any] = {"video_id": video_id, "config": options or {}}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        if template_video_id is not None:
            body["template_video_id"] = template_video_id
        return self._run(Call("POST", "/api/v1/jobs", json=body, model=m.JobV1, envelope=True))

    @route("GET", "/api/v1/jobs/{job_id}")
    def get_v1(self, job_id: str) -> m.JobV1:
        return self._run(Call("GET", "/api/v1/jobs/{job_id}", {"job_id": job_id}, model=m.JobV1, envelope=True))

    @route("GET", "/api/v1/jobs/{job_id}/result")
    def result(self, job_id: str) -> m.JobResult:
        """The finished job's clips and Style DNA (a 409 ReelFarmError until it is completed)."""
        return self._run(Call("GET", "/api/v1/jobs/{job_id}/result", {"job_id": job_id}, model=m.JobResult,
                              envelope=True))  # fmt: skip

    @route("POST", "/api/v1/jobs/{job_id}/cancel")
    def cancel(self, job_id: str) -> m.JobV1:
        return self._run(Call("POST", "/api/v1/jobs/{job_id}/cancel", {"job_id": job_id}, model=m.JobV1,
                              envelope=True, idempotent=True))  # fmt: skip

    @route("GET", EVENTS)
    def events(self, job_id: str) -> Iterator[m.JobEvent]:
        """The job's server-sent events as they come (an async iterator on AsyncReelFarm); ends
        after the job does or when the server closes the stream."""
        return self._client._iterate(self._events(job_id))

    def _events(self, job_id: str):
        stream = yield OpenStream(Call("GET", EVENTS, {"job_id": job_id}))
        while True:
            event = yield NextEvent(stream)
            if event is None or event.event == "end":
                return
            if event.event == "job":
                job = m.JobEvent.model_validate(event.json())
                yield Emit(job)
                if job.finished:
                    return

    @route(("GET", EVENTS), ("GET", "/api/v1/jobs/{job_id}"))
    def wait(self, job_id: str, timeout: float | None = None, on_progress: Callable[[m.JobEvent], Any] | None = None,
             *, poll_interval: float = 1.0) -> m.JobV1:  # fmt: skip
        """Follow the job until it ends; its final state (completed, failed or cancelled: not raised).

        Follows the server-sent events, `on_progress(JobEvent)` at each; a stream that drops is
        followed by a poll of the job and a new stream (backing off while streams keep failing).
        TimeoutError once `timeout` seconds have passed.
        """
        return self._run(self._wait(job_id, timeout, on_progress, poll_interval))

    def _wait(self, job_id: str, timeout: float | None, on_progress, poll_interval: float):
        deadline = time.monotonic() + timeout if timeout is not None else None
        failures = 0
        last: m.JobEvent | None = None

        def expired() -> TimeoutError:
            state = f"still {last.status}" if last else "not finished"
            return TimeoutError(f"job {job_id} {state} after {timeout} s")

        def seen(job: m.JobEvent) -> None:
            nonlocal last
            if last is None or job != last:
                last = job
                if on_progress:
                    on_progress(job)

        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise expired()
            try:
                stream = yield OpenStream(
                    Call("GET", EVENTS, {"job_id": job_id}),
                    read_timeout=min(30.0, max(0.05, remaining)) if remaining else 30.0,
                )
                while True:
                    event = yield NextEvent(stream, deadline)
                    if event is IDLE:
                        raise expired()
                    if event is None or event.event == "end":
                        break
                    if event.event != "job":
                        continue
                    failures = 0
                    job = m.JobEvent.model_validate(event.json())
                    seen(job)
                    if job.finished:
                        yield CloseStream(stream)
                        return (yield Call("GET", "/api/v1/jobs/{job_id}", {"job_id": job_id}, model=m.JobV1,
                                           envelope=True))  # fmt: skip
                yield CloseStream(stream)
            except ReelFarmError as exc:
                if exc.status is not None and exc.status < 500:
                    raise  # 404 unknown job, 401, 403: the answer stands
            # The stream dropped (or would not open): poll, then follow a new stream.
            failures += 1
            state = yield Call("GET", "/api/v1/jobs/{job_id}", {"job_id": job_id}, model=m.JobV1, envelope=True)
            seen(m.JobEvent(job_id=state.job_id, status=state.status, current_stage=state.current_stage,
                            progress_percent=state.progress_percent, error=state.error))  # fmt: skip
            if state.finished:
                return state
            pause = min(10.0, poll_interval * 2 ** min(failures - 1, 4))
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            yield Sleep(pause)


class Clips(Group):
    @route("GET", "/api/clips/{job_id}")
    def manifest(self, job_id: str) -> m.Manifest:
        """The completed job's clips and each file's SHA-256 (a 404 ReelFarmError until it is completed)."""
        return self._run(Call("GET", "/api/clips/{job_id}", {"job_id": job_id}, model=m.Manifest))

    @route("GET", "/api/clips/{job_id}/{filename}")
    def artifact(self, job_id: str, filename: str) -> bytes:
        return self._run(Call("GET", "/api/clips/{job_id}/{filename}", {"job_id": job_id, "filename": filename},
                              raw=True))  # fmt: skip

    @route(("GET", "/api/clips/{job_id}"), ("GET", "/api/clips/{job_id}/{filename}"))
    def download(self, job_id: str, out_dir: Path | str, on_progress: ProgressCallback | None = None) -> m.Manifest:
        """Every file of every clip into `out_dir`, each checked against the manifest's SHA-256
        (a mismatch is a ReelFarmError and leaves no file), then manifest.json beside them.
        `on_progress(bytes_done, bytes_total)` over all the files."""
        return self._run(self._download(job_id, Path(out_dir), on_progress))

    def _download(self, job_id: str, out_dir: Path, on_progress: ProgressCallback | None):
        raw = yield Call("GET", "/api/clips/{job_id}", {"job_id": job_id})
        entries = [entry for clip in raw["clips"] for entry in clip["files"]]
        total = sum(int(e.get("size_bytes") or 0) for e in entries)
        done = 0
        for entry in entries:
            name = _plain_name(entry["filename"])

            def progress(sent: int, _size: int, before: int = done) -> None:
                if on_progress:
                    on_progress(before + sent, max(total, before + sent))

            got: Downloaded = yield Call("GET", "/api/clips/{job_id}/{filename}",
                                         {"job_id": job_id, "filename": name}, dest=out_dir / name,
                                         on_progress=progress)  # fmt: skip
            if got.sha256 != entry["sha256"]:
                got.path.unlink(missing_ok=True)
                raise ReelFarmError(f"{name}: SHA-256 {got.sha256} does not match the manifest's {entry['sha256']}")
            done += got.size_bytes
        yield Blocking((out_dir / "manifest.json").write_text, (json.dumps(raw, indent=2),))
        return m.Manifest.model_validate(raw)


# --- v1: videos -----------------------------------------------------------------------------------


class Videos(Group):
    @route("POST", "/api/v1/videos/upload")
    def upload(self, path: Path | str, on_progress: ProgressCallback | None = None,
               template_video_id: str | None = None, *, content_type: str | None = None) -> m.Video:  # fmt: skip
        """Upload a video (streamed, multipart `file`); its probed metadata. Start a job with jobs.create."""
        path = Path(path)
        progress = Progress(path.stat().st_size, on_progress)
        fields = {"template_video_id": template_video_id} if template_video_id else {}

        def body():
            return multipart_body(fields, "file", path, content_type=_media_type(path, content_type),
                                  progress=progress)  # fmt: skip

        return self._run(Call("POST", "/api/v1/videos/upload", body=body, model=m.Video, envelope=True))

    @route("GET", "/api/v1/videos/{video_id}/file")
    def file(self, video_id: str, dest: Path | str, on_progress: ProgressCallback | None = None) -> Downloaded:
        return self._run(Call("GET", "/api/v1/videos/{video_id}/file", {"video_id": video_id}, dest=Path(dest),
                              on_progress=on_progress))  # fmt: skip

    @route("GET", "/api/v1/videos/{video_id}/style")
    def style(self, video_id: str) -> m.VideoStyle:
        """The video's Style DNA; `status` "extracting" (and no style_json) while it is being extracted."""
        return self._run(Call("GET", "/api/v1/videos/{video_id}/style", {"video_id": video_id}, model=m.VideoStyle,
                              envelope=True))  # fmt: skip


# --- v1 ingest: blobs, batches, assets ------------------------------------------------------------

UPLOAD_URLS = "/api/v1/blobs/upload_urls"
BLOB_PUT = "/api/v1/blobs/uploads/{token}"
BLOB_DOWNLOAD = "/api/v1/blobs/downloads/{token}"


class Blobs(Group):
    @route(("POST", UPLOAD_URLS), ("PUT", BLOB_PUT), ("GET", "/api/v1/blobs/{sha256}"))
    def upload(self, path: Path | str, on_progress: ProgressCallback | None = None, *,
               content_type: str | None = None) -> m.UploadedBlob:  # fmt: skip
        """Store a file as a content-addressed blob: its SHA-256 first, then an upload URL, and
        the bytes only when the server does not have them (`uploaded` says whether they went).
        Safe to repeat: the same bytes are the same blob."""
        return self._run(self._upload(Path(path), on_progress, content_type))

    def _upload(self, path: Path, on_progress: ProgressCallback | None, content_type: str | None):
        sha, size = yield Blocking(sha256_of, (path,))
        kind = _media_type(path, content_type)
        answers = yield Call("POST", UPLOAD_URLS, json={"blobs": [{"sha256": sha, "content_type": kind,
                                                                   "size_bytes": size}]},
                             model=m.UploadUrls, envelope=True, idempotent=True)  # fmt: skip
        answer = answers.blobs[0]
        uploaded = False
        progress = Progress(size, on_progress)
        if answer.status == "upload_required":
            if not answer.upload_url:
                raise ReelFarmError(f"blob {sha}: the server asked for an upload but gave no URL")
            headers = dict(answer.upload_headers or {})
            headers.pop("Content-Type", None)  # the body's own (the same type)
            yield Call(answer.upload_method or "PUT", BLOB_PUT, url=answer.upload_url, headers=headers,
                       body=lambda: file_body(path, kind, progress), idempotent=True, raw=True)  # fmt: skip
            uploaded = True
        progress.advance(size)
        blob = yield Call("GET", "/api/v1/blobs/{sha256}", {"sha256": sha}, model=m.Blob, envelope=True)
        return m.UploadedBlob.model_validate({**blob.model_dump(), "uploaded": uploaded})

    @route("GET", "/api/v1/blobs/{sha256}")
    def get(self, sha256: str) -> m.Blob:
        """One of the account's blobs, with signed download and preview URLs."""
        return self._run(Call("GET", "/api/v1/blobs/{sha256}", {"sha256": sha256}, model=m.Blob, envelope=True))

    @route("GET", "/api/v1/blobs")
    def list(self) -> list[m.Blob]:
        return self._run(self._list())

    def _list(self):
        found = yield Call("GET", "/api/v1/blobs", model=m.BlobList, envelope=True)
        return found.blobs

    @route("GET", BLOB_DOWNLOAD)
    def download(self, token_or_url: str, dest: Path | str, on_progress: ProgressCallback | None = None) -> Downloaded:
        """A blob's bytes by its signed download URL (a blob's download_url) or that URL's token."""
        if "/" in token_or_url:
            call = Call("GET", BLOB_DOWNLOAD, url=token_or_url, dest=Path(dest), on_progress=on_progress)
        else:
            call = Call("GET", BLOB_DOWNLOAD, {"token": token_or_url}, dest=Path(dest), on_progress=on_progress)
        return self._run(call)


class Batches(Group):
    @route("POST", "/api/v1/batches")
    def submit(self, manifest: dict | BaseModel) -> m.Batch:
        """Submit a batch manifest ({batch_ref, items: [...]}) of uploaded blobs; idempotent per batch_ref."""
        if isinstance(manifest, BaseModel):
            manifest = manifest.model_dump(mode="json", exclude_none=True)
        return self._run(Call("POST", "/api/v1/batches", json={"manifest": manifest}, model=m.Batch, envelope=True,
                              idempotent=True))  # fmt: skip

    @route("GET", "/api/v1/batches")
    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> list[m.Batch]:
        return self._run(self._list(status, limit, offset))

    def _list(self, status, limit, offset):
        found = yield Call("GET", "/api/v1/batches", params={"status": status, "limit": limit, "offset": offset},
                           model=m.BatchList, envelope=True)  # fmt: skip
        return found.batches

    @route("GET", "/api/v1/batches/{batch_id}")
    def get(self, batch_id: str) -> m.Batch:
        return self._run(Call("GET", "/api/v1/batches/{batch_id}", {"batch_id": batch_id}, model=m.Batch,
                              envelope=True))  # fmt: skip

    @route("POST", "/api/v1/batches/{batch_id}/approve")
    def approve(self, batch_id: str, reason: str | None = None) -> m.Batch:
        """Approve (a signed-in owner or admin): its items become visible to agents."""
        return self._run(Call("POST", "/api/v1/batches/{batch_id}/approve", {"batch_id": batch_id},
                              json={"reason": reason} if reason else None, model=m.Batch, envelope=True))  # fmt: skip

    @route("POST", "/api/v1/batches/{batch_id}/reject")
    def reject(self, batch_id: str, reason: str | None = None) -> m.Batch:
        """Reject with a reason (the API requires one)."""
        return self._run(Call("POST", "/api/v1/batches/{batch_id}/reject", {"batch_id": batch_id},
                              json={"reason": reason} if reason is not None else {}, model=m.Batch,
                              envelope=True))  # fmt: skip

    @route("POST", "/api/v1/batches/{batch_id}/distribute")
    def distribute(self, batch_id: str) -> m.Batch:
        return self._run(Call("POST", "/api/v1/batches/{batch_id}/distribute", {"batch_id": batch_id},
                              model=m.Batch, envelope=True))  # fmt: skip


class Assets(Group):
    @route("GET", "/api/v1/assets")
    def list(self, status: str | None = None, tag: str | None = None, category: str | None = None,
             platform: str | None = None, q: str | None = None, batch_id: str | None = None, limit: int = 50,
             offset: int = 0) -> list[m.Item]:  # fmt: skip
        return self._run(self._list({"status": status, "tag": tag, "category": category, "platform": platform,
                                     "q": q, "batch_id": batch_id, "limit": limit, "offset": offset}))  # fmt: skip

    def _list(self, params):
        found = yield Call("GET", "/api/v1/assets", params=params, model=m.ItemList, envelope=True)
        return found.items

    @route("GET", "/api/v1/assets/{item_id}")
    def get(self, item_id: str) -> m.Item:
        """One ingested item, with signed download URLs for its blobs."""
        return self._run(Call("GET", "/api/v1/assets/{item_id}", {"item_id": item_id}, model=m.Item, envelope=True))


# --- campaigns -------------------------------------------------------------------------------------

CAMPAIGN = "/api/v1/campaigns/{campaign_id}"


class Campaigns(Group):
    @route("POST", "/api/v1/campaigns")
    def create(self, url: str, languages: list[str] | None = None, **fields: Any) -> m.CampaignCreated:
        """A campaign made from a web page (`title`, `webhook_url` and other fields as keywords)."""
        body = {"url": url, **({"languages": languages} if languages is not None else {}), **fields}
        return self._run(Call("POST", "/api/v1/campaigns", json=body, model=m.CampaignCreated))

    @route("GET", "/api/v1/campaigns")
    def list(self) -> list[m.Campaign]:
        return self._run(self._list())

    def _list(self):
        found = yield Call("GET", "/api/v1/campaigns", model=m.CampaignList)
        return found.campaigns

    @route("GET", CAMPAIGN)
    def get(self, campaign_id: str) -> m.Campaign:
        return self._run(Call("GET", CAMPAIGN, {"campaign_id": campaign_id}, model=m.Campaign))

    @route("POST", CAMPAIGN + "/approve")
    def approve(self, campaign_id: str) -> m.Campaign:
        return self._run(Call("POST", CAMPAIGN + "/approve", {"campaign_id": campaign_id}, model=m.Campaign))

    @route("POST", CAMPAIGN + "/cancel")
    def cancel(self, campaign_id: str) -> m.CampaignCancelled:
        return self._run(Call("POST", CAMPAIGN + "/cancel", {"campaign_id": campaign_id}, model=m.CampaignCancelled,
                              idempotent=True))  # fmt: skip

    @route("GET", CAMPAIGN + "/videos/{video_id}/file")
    def video_file(self, campaign_id: str, video_id: str, dest: Path | str,
                   on_progress: ProgressCallback | None = None) -> Downloaded:  # fmt: skip
        return self._run(Call("GET", CAMPAIGN + "/videos/{video_id}/file",
                              {"campaign_id": campaign_id, "video_id": video_id}, dest=Path(dest),
                              on_progress=on_progress))  # fmt: skip

    @route("GET", CAMPAIGN + "/videos/{video_id}/poster")
    def video_poster(self, campaign_id: str, video_id: str, dest: Path | str) -> Downloaded:
        return self._run(Call("GET", CAMPAIGN + "/videos/{video_id}/poster",
                              {"campaign_id": campaign_id, "video_id": video_id}, dest=Path(dest)))  # fmt: skip


# --- webhooks --------------------------------------------------------------------------------------


class Webhooks(Group):
    @route("GET", "/api/webhooks/secret")
    def secret(self) -> m.WebhookSecret:
        """The workspace's signing secret (owners and admins, signed in)."""
        return self._run(Call("GET", "/api/webhooks/secret", model=m.WebhookSecret))

    @route("POST", "/api/webhooks/secret/rotate")
    def rotate_secret(self) -> m.WebhookSecret:
        return self._run(Call("POST", "/api/webhooks/secret/rotate", model=m.WebhookSecret))

    @route("GET", "/api/v1/webhooks/deliveries")
    def deliveries(self, limit: int = 50, offset: int = 0, event_id: str | None = None) -> list[m.Delivery]:
        return self._run(self._deliveries({"limit": limit, "offset": offset, "event_id": event_id}))

    def _deliveries(self, params):
        found = yield Call("GET", "/api/v1/webhooks/deliveries", params=params, model=m.Deliveries, envelope=True)
        return found.deliveries

    @route("POST", "/api/v1/webhooks/events/{event_id}/replay")
    def replay(self, event_id: str) -> m.ReplayedEvent:
        return self._run(Call("POST", "/api/v1/webhooks/events/{event_id}/replay", {"event_id": event_id},
                              model=m.ReplayedEvent, envelope=True, idempotent=True))  # fmt: skip


# --- the dev API (002) -------------------------------------------------------------------------------


class Dev(Group):
    @route("POST", "/api/dev/create-project")
    def create_project(self, name: str, account_id: str | None = None) -> m.Project:
        return self._run(self._project(name, account_id))

    def _project(self, name, account_id):
        body = {"name": name, **({"accountId": account_id} if account_id else {})}
        found = yield Call("POST", "/api/dev/create-project", json=body, model=m.ProjectCreated)
        return found.project

    @route("POST", "/api/dev/upload-video")
    def upload_video(self, path: Path | str, project_id: str, account_id: str | None = None,
                     on_progress: ProgressCallback | None = None) -> m.DevVideo:  # fmt: skip
        return self._run(self._upload_video(Path(path), project_id, account_id, on_progress))

    def _upload_video(self, path: Path, project_id: str, account_id: str | None, on_progress):
        progress = Progress(path.stat().st_size, on_progress)
        fields = {"project_id": project_id, **({"account_id": account_id} if account_id else {})}
        found = yield Call("POST", "/api/dev/upload-video", model=m.DevVideoUploaded,
                           body=lambda: multipart_body(fields, "file", path, content_type=_media_type(path, None),
                                                       progress=progress))  # fmt: skip
        return found.video

    @route("POST", "/api/dev/process-video-submit")
    def submit(self, video_id: str, max_clips: int = 3, min_duration: float = 30, max_duration: float = 60,
               aspect_ratio: str = "9:16", custom_instructions: str = "") -> m.DevSubmitted:  # fmt: skip
        body = {"videoId": video_id, "maxClips": max_clips, "minDuration": min_duration, "maxDuration": max_duration,
                "aspectRatio": aspect_ratio, "customInstructions": custom_instructions}  # fmt: skip
        return self._run(Call("POST", "/api/dev/process-video-submit", json=body, model=m.DevSubmitted))

    @route("GET", "/api/dev/process-video-result")
    def result(self, call_id: str) -> m.DevResult:
        """`running` with its progress (a 202) until the call is done, then its clips."""
        return self._run(Call("GET", "/api/dev/process-video-result", params={"callId": call_id},
                              model=m.DevResult))  # fmt: skip

    @route("GET", "/api/dev/videos/{video_id}/clips")
    def clips(self, video_id: str) -> list[m.DevClip]:
        return self._run(self._clips(video_id))

    def _clips(self, video_id):
        found = yield Call("GET", "/api/dev/videos/{video_id}/clips", {"video_id": video_id}, model=m.DevClips)
        return found.clips

    @route("GET", "/api/dev/videos/{video_id}/summary")
    def summary(self, video_id: str) -> m.DevSummary:
        return self._run(Call("GET", "/api/dev/videos/{video_id}/summary", {"video_id": video_id},
                              model=m.DevSummary))  # fmt: skip

    @route("GET", "/api/dev/preview/{clip_id}")
    def preview(self, preview_url: str, dest: Path | str | None = None) -> bytes | Downloaded:
        """A clip by its signed preview_url (no other credentials): its bytes, or into `dest`."""
        return self._run(Call("GET", "/api/dev/preview/{clip_id}", url=preview_url, raw=dest is None,
                              dest=Path(dest) if dest is not None else None))  # fmt: skip


class Groups:
    """The resource groups every client has (ReelFarm and AsyncReelFarm)."""

    GROUPS: ClassVar[dict[str, type]] = {"auth": Auth, "keys": Keys, "members": Members, "billing": Billing,
                               "uploads": Uploads, "jobs": Jobs, "clips": Clips, "videos": Videos,
                               "blobs": Blobs, "batches": Batches, "assets": Assets, "campaigns": Campaigns,
                               "webhooks": Webhooks, "dev": Dev}  # fmt: skip

    auth: Auth
    keys: Keys
    members: Members
    billing: Billing
    uploads: Uploads
    jobs: Jobs
    clips: Clips
    videos: Videos
    blobs: Blobs
    batches: Batches
    assets: Assets
    campaigns: Campaigns
    webhooks: Webhooks
    dev: Dev

    def __init__(self) -> None:
        for name, group in self.GROUPS.items():
            setattr(self, name, group(self))

    def _run(self, op: Any) -> Any:  # the executor (sync.py, aio.py)
        raise NotImplementedError

    def _iterate(self, gen: Any) -> Any:
        raise NotImplementedError

    @route("GET", "/livez")
    def health(self) -> m.Health:
        """The API process is up (GET /livez)."""
        return self._run(Call("GET", "/livez", model=m.Health))

    @route("GET", "/readyz")
    def ready(self) -> m.Readiness:
        """Readiness and each check (GET /readyz); a 503 "not_ready" is returned, not raised."""
        return self._run(Call("GET", "/readyz", model=m.Readiness, expect=(503,)))
