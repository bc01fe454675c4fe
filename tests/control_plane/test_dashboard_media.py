"""The dashboard's media and review pages (control_plane/dashboard/media_pages.py, review_pages.py).

In-process (TestClient over create_app, a stand-in render node so jobs are accepted; nothing
runs them) for the forms, the resumable upload protocol and the review buttons; on an
embedded stack (a real render) for a finished job's page, its clips and the live streams.
A tiny HTTP server on 127.0.0.1 serves a video (URL ingest) and a page (campaigns); the apps
allow-list loopback for it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from api_fixtures import stand_in_node
from conftest import make_video
from sqlalchemy import select

from control_plane.dashboard.resumable import UploadSpool
from control_plane.main import create_app
from harness.polling import wait_until
from reelfarm.database import make_engine, make_session_factory, session_scope
from reelfarm.migrate import upgrade
from reelfarm.models.campaigns import Campaign
from reelfarm.models.jobs import Job
from reelfarm.models.videos import Video

LIMIT = 4 << 20  # max_upload_bytes of the in-process apps
PAGE = (b'<!doctype html><html lang="en"><head><title>Acme Widgets</title></head><body><h1>Acme Widgets</h1>'
        b"<p>Acme makes the sturdiest widgets for every workshop, shipped the next day, with a lifetime "
        b"guarantee and friendly support.</p></body></html>")  # fmt: skip


# ------------------------------------------------------------------ fixtures


class Media:
    """GET /talk.mp4 (the video) and /page (a capturable English page)."""

    def __init__(self, video: bytes) -> None:
        media = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body, kind = {"/talk.mp4": (media.video, "video/mp4"),
                              "/page": (PAGE, "text/html; charset=utf-8")}.get(self.path, (b"no", "text/plain"))  # fmt: skip
                self.send_response(200 if body != b"no" else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.video = video
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("media") / "talk.mp4", seconds=2.0).read_bytes()


@pytest.fixture(scope="module")
def media(video_bytes):
    server = Media(video_bytes)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def api_app(settings):
    """The app `signed_up` builds its browsers on: loopback allow-listed, a small upload limit."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    stand_in_node(sessions)
    app = create_app(settings.model_copy(update={"fetch_allow_networks": ["127.0.0.0/8"], "max_upload_bytes": LIMIT}),
                     session_factory=sessions)  # fmt: skip
    yield app
    app.state.downloads.shutdown()
    engine.dispose()


def csrf_of(client, path: str = "/dashboard/upload") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def new_upload(client, token: str, size: int, options: dict | None = None, filename: str = "talk.mp4"):
    return client.post("/dashboard/uploads", json={"filename": filename, "size": size, "options": options or {}},
                       headers={"X-CSRF-Token": token})  # fmt: skip


def put(client, token: str, upload_id: str, content_range: str, body: bytes = b""):
    return client.put(f"/dashboard/uploads/{upload_id}", content=body,
                      headers={"X-CSRF-Token": token, "Content-Range": content_range})  # fmt: skip


def error_of(page) -> str:
    found = re.search(r'<p class="(?:flash )?error"[^>]*>([^<]*)</p>', page.text)
    return found.group(1) if found else page.text[:500]


# ------------------------------------------------------------------ uploads


def test_options_are_checked_before_an_upload_starts(signed_up):
    browser = signed_up("opts@example.com")
    token = csrf_of(browser)
    page = browser.get("/dashboard/upload").text
    # The form mirrors ProcessOptions' documented ranges.
    assert re.search(r'name="numClips"[^>]*min="1" max="10" step="1"[^>]*value="3"', page, re.DOTALL)
    assert all(f'<option value="{ratio}"' in page for ratio in ("9:16", "1:1", "4:5", "16:9"))
    assert 'name="minDuration"' in page and 'max="600"' in page and 'name="trimEnd"' in page
    assert '<label for="opt-captionPreset">' in page and '<label for="video">' in page

    refused = new_upload(browser, token, 1000, {"numClips": 11})
    assert refused.status_code == 400
    assert refused.json()["error"] == "options.numClips: Input should be less than or equal to 10"
    refused = new_upload(browser, token, 1000, {"trimStart": 5, "trimEnd": 2})
    assert refused.status_code == 400 and "trimEnd must be greater than trimStart" in refused.json()["error"]
    assert new_upload(browser, token, LIMIT + 1).status_code == 413
    assert new_upload(browser, token, 0).status_code == 400
    # Without the CSRF header (a cross-site form or script) nothing is made.
    assert browser.post("/dashboard/uploads", json={"filename": "a.mp4", "size": 10}).status_code == 403

    # The plain form (no JavaScript) refuses bad options too, and shows the form again with the message.
    plain = browser.post("/dashboard/upload", data={"csrf_token": token, "options_form": "1", "numClips": "0"},
                         files={"video": ("talk.mp4", b"not a video", "video/mp4")})  # fmt: skip
    assert plain.status_code == 400
    assert "options.numClips: Input should be greater than or equal to 1" in error_of(plain)
    assert 'id="upload-form"' in plain.text


def test_a_chunked_upload_survives_a_break_and_becomes_a_job_of_the_same_bytes(signed_up, api_app, video_bytes):
    browser = signed_up("chunks@example.com")
    token = csrf_of(browser)
    size = len(video_bytes)
    created = new_upload(browser, token, size, {"mode": "none", "aspectRatio": "1:1"})
    assert created.status_code == 201, created.text
    upload_id = created.json()["upload_id"]
    assert created.json()["offset"] == 0 and upload_id.startswith("upl_")

    first = size // 3
    sent = put(browser, token, upload_id, f"bytes 0-{first - 1}/{size}", video_bytes[:first])
    assert sent.status_code == 200 and sent.json()["offset"] == first and sent.json()["complete"] is False

    # The break: the next chunk's body ends early (as a dropped connection would).
    arrived = 1000
    cut = put(browser, token, upload_id, f"bytes {first}-{size - 1}/{size}", video_bytes[first : first + arrived])
    assert cut.status_code == 400 and cut.json()["offset"] == first + arrived
    # The browser asks where the upload stands, and goes on from there.
    asked = browser.get(f"/dashboard/uploads/{upload_id}")
    assert asked.status_code == 200 and asked.json()["offset"] == first + arrived
    assert browser.head(f"/dashboard/uploads/{upload_id}").headers["upload-offset"] == str(first + arrived)
    resume = first + arrived
    # A chunk from the wrong place is refused with the offset to send from.
    stale = put(browser, token, upload_id, f"bytes {first}-{size - 1}/{size}", video_bytes[first:])
    assert stale.status_code == 409 and stale.json()["offset"] == resume

    done = put(browser, token, upload_id, f"bytes {resume}-{size - 1}/{size}", video_bytes[resume:])
    assert done.status_code == 200, done.text
    state = done.json()
    assert state["complete"] is True and state["offset"] == size
    job_id = state["job_id"]
    assert state["job_url"] == f"/dashboard/jobs/{job_id}"

    with api_app.state.session_factory() as session:
        job = session.get(Job, job_id)
        video = session.get(Video, job.video_id)
        assert (job.original_name, job.options["aspectRatio"], job.options["mode"]) == ("talk.mp4", "1:1", "none")
        assert video.sha256 == hashlib.sha256(video_bytes).hexdigest() and video.size_bytes == size
        with api_app.state.storage.open_read(video.storage_key) as stored:
            assert stored.read() == video_bytes
    # The last chunk sent again (its answer lost) answers the same job; the spool's bytes are gone.
    again = put(browser, token, upload_id, f"bytes {resume}-{size - 1}/{size}", video_bytes[resume:])
    assert again.status_code == 200 and again.json()["job_id"] == job_id
    spool = UploadSpool(api_app.state.settings.resolved_work_dir)
    assert not (spool.root / f"{upload_id}.part").exists()
    with api_app.state.session_factory() as session:
        assert len(session.scalars(select(Job).where(Job.id != "")).all()) == 1

    page = browser.get(f"/dashboard/jobs/{job_id}")
    assert page.status_code == 200 and 'id="job-status"' in page.text and "talk.mp4" in page.text
    assert f'sse-connect="/dashboard/jobs/{job_id}/stream"' in page.text  # still queued: live
    assert f'action="/dashboard/jobs/{job_id}/cancel"' in page.text


def test_wrong_content_ranges_are_refused_and_leave_the_upload_as_it_was(signed_up, video_bytes):
    browser = signed_up("ranges@example.com")
    token = csrf_of(browser)
    size = len(video_bytes)
    upload_id = new_upload(browser, token, size).json()["upload_id"]
    assert put(browser, token, upload_id, f"bytes 0-99/{size}", video_bytes[:100]).json()["offset"] == 100

    for header, body, status in [
        ("", video_bytes[100:200], 400),  # none
        ("bytes=100-199", video_bytes[100:200], 400),  # a Range, not a Content-Range
        (f"bytes 199-100/{size}", b"", 400),  # backwards
        (f"bytes 100-{size}/{size}", video_bytes[100:], 400),  # past the end
        (f"bytes 100-199/{size + 1}", video_bytes[100:200], 400),  # another total
        (f"bytes 150-199/{size}", video_bytes[150:200], 409),  # a gap
        (f"bytes 0-99/{size}", video_bytes[:100], 409),  # again
        (f"bytes 100-199/{size}", video_bytes[100:300], 400),  # a body longer than its range
        (f"bytes */{size}", b"", 409),  # finishing before every byte is in
    ]:
        refused = put(browser, token, upload_id, header, body)
        assert refused.status_code == status, (header, refused.text)
        assert browser.get(f"/dashboard/uploads/{upload_id}").json()["offset"] == 100, header
    assert put(browser, token, "upl_" + "0" * 32, f"bytes 0-9/{size}", video_bytes[:10]).status_code == 404
    assert browser.get("/dashboard/uploads/../../etc").status_code == 404


def test_another_workspaces_upload_job_and_stream_are_not_found(signed_up, video_bytes):
    owner, other = signed_up("owner@example.com"), signed_up("other@example.com")
    token, other_token = csrf_of(owner), csrf_of(other)
    size = len(video_bytes)
    upload_id = new_upload(owner, token, size, {"mode": "none"}).json()["upload_id"]
    assert other.get(f"/dashboard/uploads/{upload_id}").status_code == 404
    assert put(other, other_token, upload_id, f"bytes 0-{size - 1}/{size}", video_bytes).status_code == 404
    job_id = put(owner, token, upload_id, f"bytes 0-{size - 1}/{size}", video_bytes).json()["job_id"]
    assert other.get(f"/dashboard/uploads/{upload_id}").status_code == 404

    for path in (f"/dashboard/jobs/{job_id}", f"/dashboard/jobs/{job_id}/stream"):
        seen = other.get(path)
        assert seen.status_code == 404 and "job not found" in seen.text, path
    assert other.post(f"/dashboard/jobs/{job_id}/cancel", data={"csrf_token": other_token}).status_code == 404
    assert job_id not in other.get("/dashboard/jobs").text
    assert job_id in owner.get("/dashboard/jobs").text

    # The owner's cancel button: one click, then the job shows it is being cancelled.
    cancelled = owner.post(f"/dashboard/jobs/{job_id}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/dashboard/jobs/{job_id}"
    assert "(cancelling)" in owner.get(f"/dashboard/jobs/{job_id}").text
    assert owner.post(f"/dashboard/jobs/{job_id}/cancel").status_code == 403  # no CSRF token


def test_the_plain_file_form_and_the_url_form_make_jobs(signed_up, api_app, media, video_bytes):
    browser = signed_up("forms@example.com")
    token = csrf_of(browser)
    fields = {"csrf_token": token, "options_form": "1", "numClips": "2", "clipLength": "short", "aspectRatio": "4:5",
              "captionPreset": "karaoke", "genre": "vlog", "trimStart": "0", "prompt": "the best bit", "autoHook": "on"}  # fmt: skip
    made = browser.post("/dashboard/upload", data=fields, files={"video": ("plain.mp4", video_bytes, "video/mp4")},
                        follow_redirects=False)  # fmt: skip
    assert made.status_code == 303, error_of(made)
    job_id = made.headers["location"].rsplit("/", 1)[1]
    with api_app.state.session_factory() as session:
        job = session.get(Job, job_id)
        assert job.original_name == "plain.mp4"
        assert {k: job.options[k] for k in ("numClips", "clipLength", "aspectRatio", "captionPreset", "genre",
                                            "prompt", "autoHook", "removeAiVoice")} == {
            "numClips": 2, "clipLength": "short", "aspectRatio": "4:5", "captionPreset": "karaoke", "genre": "vlog",
            "prompt": "the best bit", "autoHook": True, "removeAiVoice": False}  # fmt: skip
        assert session.get(Video, job.video_id).sha256 == hashlib.sha256(video_bytes).hexdigest()
    # The CSRF token must come first, before the file: without it nothing is stored.
    forged = browser.post("/dashboard/upload", data={"options_form": "1"},
                          files={"video": ("x.mp4", video_bytes, "video/mp4")})  # fmt: skip
    assert forged.status_code == 403
    not_video = browser.post("/dashboard/upload", data={"csrf_token": token},
                             files={"video": ("notes.mp4", b"just text\n" * 50, "video/mp4")})  # fmt: skip
    assert not_video.status_code == 400 and "not a decodable video" in error_of(not_video)

    by_url = browser.post("/dashboard/upload/url", data={"csrf_token": token, "options_form": "1",
                                                         "url": media.url("/talk.mp4"), "mode": "none"},
                          follow_redirects=False)  # fmt: skip
    assert by_url.status_code == 303, error_of(by_url)
    url_job = by_url.headers["location"].rsplit("/", 1)[1]

    def downloaded():
        with api_app.state.session_factory() as session:
            job = session.get(Job, url_job)
            return job.video_id and job.status == "queued" and session.get(Video, job.video_id)

    video = wait_until(downloaded, timeout=30, what="the URL job's download")
    assert video.sha256 == hashlib.sha256(video_bytes).hexdigest()
    assert 'id="job-status"' in browser.get(f"/dashboard/jobs/{url_job}").text

    refused = browser.post("/dashboard/upload/url", data={"csrf_token": token, "url": "ftp://example.com/a.mp4"})
    assert refused.status_code == 400 and "url" in error_of(refused)
    assert 'value="ftp://example.com/a.mp4"' in refused.text  # the form again, as filled in
    assert browser.post("/dashboard/upload/url", data={"url": media.url("/talk.mp4")}).status_code == 403


# ------------------------------------------------------------------ batches and campaigns


def submit_batch(browser, video: bytes, ref: str) -> str:
    sha = hashlib.sha256(video).hexdigest()
    asked = browser.post("/api/v1/blobs/upload_urls",
                         json={"blobs": [{"sha256": sha, "content_type": "video/mp4", "size_bytes": len(video)}]})  # fmt: skip
    assert asked.status_code == 200, asked.text
    blob = asked.json()["data"]["blobs"][0]
    if blob["upload_url"]:
        stored = browser.put(blob["upload_url"], content=video, headers={"Content-Type": "video/mp4"})
        assert stored.status_code == 200, stored.text
    manifest = {"batch_ref": ref, "items": [{"item_ref": f"{ref}-hero", "category": "brand", "tags": ["summer"],
                "platform_assets": [{"platform": "youtube", "video_sha256": sha, "hook": "Watch this"}]}]}  # fmt: skip
    made = browser.post("/api/v1/batches", json={"manifest": manifest})
    assert made.status_code == 201, made.text
    return made.json()["data"]["batch_id"]


def batch_status(browser, batch_id: str) -> str:
    return browser.get(f"/api/v1/batches/{batch_id}").json()["data"]["status"]


def test_batches_are_approved_and_rejected_with_one_click(signed_up, video_bytes):
    browser = signed_up("review@example.com")
    token = csrf_of(browser, "/dashboard/batches")
    approve_me, reject_me = submit_batch(browser, video_bytes, "q3-one"), submit_batch(browser, video_bytes, "q3-two")

    queue = browser.get("/dashboard/batches").text
    pending = queue.split('id="other-batches"')[0]
    assert "q3-one-hero" in pending and "q3-two-hero" in pending and "Watch this" in pending and "video mp4" in pending
    assert f'action="/dashboard/batches/{approve_me}/approve"' in pending

    # A plain form: one click, then back to the queue.
    approved = browser.post(f"/dashboard/batches/{approve_me}/approve", data={"csrf_token": token},
                            follow_redirects=False)  # fmt: skip
    assert approved.status_code == 303 and approved.headers["location"] == "/dashboard/batches"
    assert batch_status(browser, approve_me) == "approved"
    # htmx: the batch's row comes back, swapped in place.
    rejected = browser.post(f"/dashboard/batches/{reject_me}/reject", data={"csrf_token": token, "reason": "off-brand"},
                            headers={"HX-Request": "true"})  # fmt: skip
    assert rejected.status_code == 200
    assert rejected.text.lstrip().startswith(
        f'<article class="card batch" id="batch-{reject_me}" data-status="rejected"'
    )
    assert "off-brand" in rejected.text and "/reject" not in rejected.text  # no buttons once reviewed
    assert batch_status(browser, reject_me) == "rejected"

    again = browser.post(f"/dashboard/batches/{reject_me}/approve", data={"csrf_token": token})
    assert again.status_code == 409 and batch_status(browser, reject_me) == "rejected"
    assert browser.post(f"/dashboard/batches/{approve_me}/reject", data={}).status_code == 403  # no CSRF token
    queue = browser.get("/dashboard/batches").text
    assert "Nothing is waiting for review" in queue
    detail = browser.get(f"/dashboard/batches/{approve_me}")
    assert detail.status_code == 200 and "q3-one-hero" in detail.text

    other = signed_up("stranger@example.com")
    assert other.get(f"/dashboard/batches/{approve_me}").status_code == 404
    assert other.post(f"/dashboard/batches/{approve_me}/reject",
                      data={"csrf_token": csrf_of(other)}).status_code == 404  # fmt: skip
    assert "q3-one" not in other.get("/dashboard/batches").text


def test_a_campaign_is_made_from_the_form_and_approved_only_in_review(signed_up, api_app, media):
    browser = signed_up("campaigns@example.com")
    token = csrf_of(browser, "/dashboard/campaigns")
    refused = browser.post("/dashboard/campaigns", data={"csrf_token": token, "url": media.url("/page"),
                                                         "languages": ["xx"]})  # fmt: skip
    assert refused.status_code == 400 and "languages" in error_of(refused)
    made = browser.post("/dashboard/campaigns", data={"csrf_token": token, "url": media.url("/page"),
                                                      "title": "Widgets", "languages": ["en"]},
                        follow_redirects=False)  # fmt: skip
    assert made.status_code == 303, error_of(made)
    campaign_id = made.headers["location"].rsplit("/", 1)[1]
    page = browser.get(f"/dashboard/campaigns/{campaign_id}")
    assert page.status_code == 200 and "Widgets" in page.text and 'data-status="collecting"' in page.text
    assert "Approve and publish" not in page.text and "Cancel campaign" in page.text
    assert campaign_id in browser.get("/dashboard/campaigns").text
    # The API's campaign routes (the videos' file and poster among them) take the session cookie.
    assert browser.get(f"/api/v1/campaigns/{campaign_id}").status_code == 200

    early = browser.post(f"/dashboard/campaigns/{campaign_id}/approve", data={"csrf_token": token})
    assert early.status_code == 409 and "only a campaign in review can be approved" in error_of(early)
    with session_scope(api_app.state.session_factory) as session:  # as the scheduler leaves it
        session.get(Campaign, campaign_id).status = "review"
    assert "Approve and publish" in browser.get(f"/dashboard/campaigns/{campaign_id}").text
    other = signed_up("nosy@example.com")
    assert other.get(f"/dashboard/campaigns/{campaign_id}").status_code == 404
    assert other.post(f"/dashboard/campaigns/{campaign_id}/approve",
                      data={"csrf_token": csrf_of(other)}).status_code == 404  # fmt: skip
    approved = browser.post(f"/dashboard/campaigns/{campaign_id}/approve", data={"csrf_token": token},
                            follow_redirects=False)  # fmt: skip
    assert approved.status_code == 303
    assert 'data-status="published"' in browser.get(f"/dashboard/campaigns/{campaign_id}").text
    cancel = browser.post(f"/dashboard/campaigns/{campaign_id}/cancel", data={"csrf_token": token})
    assert cancel.status_code == 409


def test_the_spool_forgets_uploads_untouched_for_a_day(tmp_path):
    import os
    import time

    spool = UploadSpool(tmp_path)
    old = spool.create(account_id="acc_1", filename="old.mp4", size=10, options={})
    fresh = spool.create(account_id="acc_1", filename="new.mp4", size=10, options={})
    day_ago = time.time() - 86400 - 60
    for path in spool.root.glob(f"{old.id}.*"):
        os.utime(path, (day_ago, day_ago))
    assert spool.remove_stale() == 1
    assert sorted(p.name for p in spool.root.iterdir()) == [f"{fresh.id}.json", f"{fresh.id}.part"]


# ------------------------------------------------------------------ a real render


def test_a_finished_jobs_page_plays_its_clips_and_the_streams_report_it(stack, sample_video):
    browser = httpx.Client(base_url=stack.base_url, timeout=60)
    assert browser.post("/api/auth/signup", json={"email": "render@example.com",
                                                  "password": "correct horse battery"}).status_code == 201  # fmt: skip
    token = csrf_of(browser)
    data = sample_video.read_bytes()
    upload_id = new_upload(browser, token, len(data), {"mode": "none"}, "sample.mp4").json()["upload_id"]
    job_id = put(browser, token, upload_id, f"bytes 0-{len(data) - 1}/{len(data)}", data).json()["job_id"]

    # The list's stream: first the whole table, with the new job's row.
    with browser.stream("GET", "/dashboard/jobs/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: jobs"
        event = []
        for line in lines:
            if not line:
                break
            event.append(line)
        assert event[0].startswith('data: <tbody id="jobs-body" hx-swap-oob="true">')
        assert any(f'<tr id="job-{job_id}" data-status=' in line for line in event), event

    def finished():
        seen = browser.get(f"/api/jobs/{job_id}").json()
        return seen["status"] in ("completed", "failed", "cancelled") and seen

    job = wait_until(finished, timeout=180, what="the job to finish")
    assert job["status"] == "completed", job

    page = browser.get(f"/dashboard/jobs/{job_id}").text
    assert "sse-connect" not in page  # finished: nothing to listen to
    poster, src = f"/api/clips/{job_id}/clip_01.jpg", f"/api/clips/{job_id}/clip_01.mp4"
    assert f'<video controls preload="metadata" poster="{poster}" src="{src}"' in page
    assert f'href="{src}" download' in page and "Cancel job" not in page
    clip = browser.get(src)  # the API's artifact route takes the session cookie
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4" and clip.content[4:8] == b"ftyp"
    assert browser.get(poster).content[:3] == b"\xff\xd8\xff"

    # A finished job's stream: its final status and its clips, then `done` (the page stops listening).
    events = browser.get(f"/dashboard/jobs/{job_id}/stream").text
    assert "event: job\n" in events and events.rstrip().endswith("event: done\ndata:")
    assert 'data: <section id="job-status" class="card" data-status="completed" hx-swap-oob="true">' in events
    assert f'poster="{poster}"' in events
    browser.close()
