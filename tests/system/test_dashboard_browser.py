"""The dashboard in a real browser (Debian's Chromium driven by Playwright) on an embedded stack.

One stack, one browser, one test: sign up, create an API key (shown once), upload the sample
video through the upload page's script (its progress bar reaches 100%), watch the job page
reach 100% live, play a clip, see the job list update itself over server-sent events, and
approve a batch (submitted with the key) in the review queue.

With REELFARM_SCREENSHOTS=1 it also writes the screenshots docs/dashboard.md shows
(docs/dashboard/*.png; the API key is masked first). Without /usr/bin/chromium it skips.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import httpx
import pytest

from reelfarm.models.jobs import Job
from reelfarm.models.videos import Video

CHROMIUM = Path("/usr/bin/chromium")
# render_nodes/campaigns/capture.py's flags (../shared/FACTS.md, 'Chromium').
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--headless=new", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
SCREENSHOTS = os.environ.get("REELFARM_SCREENSHOTS") == "1"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
TIMEOUT_MS = 180_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                              "(apt-get install chromium)")  # fmt: skip

# Recorded in the tab's sessionStorage, so it survives the page's navigation to the job.
INIT_SCRIPT = """
document.addEventListener('reelfarm:upload-progress', (e) => {
  const seen = Number(sessionStorage.getItem('upload-max') || 0);
  sessionStorage.setItem('upload-max', String(Math.max(seen, e.detail.percent)));
});
document.addEventListener('htmx:sseOpen', () => { window.sseOpen = true; });
"""


@pytest.fixture
def database_url() -> str | None:
    """SQLite only: the browser is under test, not the database (one stack keeps the suite fast)."""
    return None


def shoot(page, name: str) -> None:
    if SCREENSHOTS:
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def submit_batch(base_url: str, key: str, video: Path, ref: str) -> str:
    """A batch through the API with the key (seeds/000): request an upload URL, PUT the bytes, POST the manifest."""
    data = video.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=60) as api:
        asked = api.post("/api/v1/blobs/upload_urls",
                         json={"blobs": [{"sha256": sha, "content_type": "video/mp4", "size_bytes": len(data)}]})  # fmt: skip
        assert asked.status_code == 200, asked.text
        url = asked.json()["data"]["blobs"][0]["upload_url"]
        if url:
            assert httpx.put(url, content=data, headers={"Content-Type": "video/mp4"}).status_code == 200
        manifest = {"batch_ref": ref, "items": [{
            "item_ref": "hero-video", "category": "brand", "tags": ["summer"],
            "platform_assets": [{"platform": "youtube", "video_sha256": sha, "hook": "The summer drop is here",
                                 "caption": "Q3 brand campaign"}]}]}  # fmt: skip
        made = api.post("/api/v1/batches", json={"manifest": manifest})
        assert made.status_code == 201, made.text
        return made.json()["data"]["batch_id"]


def test_the_dashboard_end_to_end_in_chromium(stack, sample_video):
    from playwright.sync_api import sync_playwright

    base = stack.base_url
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(30_000)
            context.add_init_script(INIT_SCRIPT)
            page = context.new_page()

            # Sign up: lands on the (empty) job list.
            page.goto(f"{base}/dashboard/signup")
            page.fill("#signup-email", "browser@example.com")
            page.fill("#signup-password", "correct horse battery")
            page.fill("#signup-account", "Browser Studio")
            page.click("button[type=submit]")
            page.wait_for_url("**/dashboard/jobs")

            # An API key, shown once.
            page.goto(f"{base}/dashboard/settings/keys")
            page.fill("#key-name", "ci")
            page.click("text=Create key")
            key = page.input_value("#new-key")
            assert key.startswith("rf_live_"), key
            page.eval_on_selector("#new-key", "el => { el.value = 'rf_live_' + '•'.repeat(32); el.blur(); }")
            shoot(page, "keys")

            # A second tab on the job list, listening before the upload: the new job's row arrives live.
            jobs_tab = context.new_page()
            jobs_tab.goto(f"{base}/dashboard/jobs")
            jobs_tab.wait_for_function("window.sseOpen === true")
            assert jobs_tab.locator("#jobs-empty").count() == 1

            # Upload through the page's script (chunked, resumable): the bar reaches 100%, then the job page.
            page.goto(f"{base}/dashboard/upload")
            page.select_option("#opt-mode", "none")
            page.select_option("#opt-aspectRatio", "9:16")
            page.set_input_files("#video", str(sample_video))
            shoot(page, "upload")
            # Small chunks, and the connection drops during the second one: the script asks where the
            # upload stands and goes on from there.
            page.eval_on_selector("#upload-form", "form => { form.dataset.chunkBytes = String(32 * 1024); }")
            puts: list[str] = []

            def drop_second_chunk(route) -> None:
                if route.request.method == "PUT":
                    puts.append(route.request.headers.get("content-range", ""))
                    if len(puts) == 2:
                        route.abort("connectionreset")
                        return
                route.continue_()

            page.route(re.compile(r".*/dashboard/uploads/upl_[0-9a-f]+$"), drop_second_chunk)
            page.click("#upload-button")
            page.wait_for_url(re.compile(r".*/dashboard/jobs/[0-9a-z]+$"), timeout=60_000)
            assert page.evaluate("sessionStorage.getItem('upload-max')") == "100"
            job_id = page.url.rsplit("/", 1)[1]
            size = sample_video.stat().st_size
            assert len(puts) >= 5 and puts[1] == puts[2] == f"bytes 32768-65535/{size}", puts  # the dropped one again
            with stack.session_factory() as session:
                source = session.get(Video, session.get(Job, job_id).video_id)
                assert source.sha256 == hashlib.sha256(sample_video.read_bytes()).hexdigest()

            # The job page follows the job to 100% and swaps its clips in.
            page.wait_for_function("document.getElementById('job-progress').value === 100", timeout=TIMEOUT_MS)
            page.wait_for_selector("#job-status[data-status=completed]", timeout=TIMEOUT_MS)
            assert page.evaluate("window.sseOpen === true")  # it was live: the clips came over the stream
            video = page.wait_for_selector("#job-clips video")
            assert video.get_attribute("poster") == f"/api/clips/{job_id}/clip_01.jpg"
            duration = page.evaluate("""async () => {
                const v = document.querySelector('#job-clips video');
                if (v.readyState < 1) await new Promise((ok, fail) => {
                    v.addEventListener('loadedmetadata', ok, {once: true});
                    v.addEventListener('error', () => fail(new Error('video error ' + (v.error && v.error.code))), {once: true});
                });
                return v.duration;
            }""")  # fmt: skip
            assert duration > 0
            page.evaluate(
                "() => { const v = document.querySelector('#job-clips video'); v.muted = true; return v.play(); }"
            )
            page.wait_for_function("document.querySelector('#job-clips video').currentTime > 0")
            page.evaluate(
                "() => { const v = document.querySelector('#job-clips video'); v.pause(); v.currentTime = 1; }"
            )
            shoot(page, "job")

            # The list tab saw the job appear and finish, without a reload.
            jobs_tab.wait_for_selector(f"#job-{job_id}[data-status=completed]", timeout=TIMEOUT_MS)
            assert jobs_tab.locator("#jobs-empty").count() == 0
            assert jobs_tab.locator(f"#job-{job_id} progress").get_attribute("value") == "100"
            shoot(jobs_tab, "jobs")
            jobs_tab.close()

            # A batch submitted with the key, approved in the queue with one click (htmx swaps its row).
            batch_id = submit_batch(base, key, sample_video, "summer-drop-001")
            page.goto(f"{base}/dashboard/batches")
            row = page.locator(f"#batch-{batch_id}")
            assert row.get_attribute("data-status") == "pending_review"
            shoot(page, "batches")
            page.click(f"#batch-{batch_id} button.approve")
            page.wait_for_selector(f"#batch-{batch_id}[data-status=approved]")
            assert page.url.endswith("/dashboard/batches")  # swapped in place, no navigation
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as api:
                assert api.get(f"/api/v1/batches/{batch_id}").json()["data"]["status"] == "approved"

            page.goto(f"{base}/dashboard/campaigns")
            assert page.locator("#campaign-url").count() == 1
            shoot(page, "campaigns")
            page.goto(f"{base}/dashboard/settings/webhooks")
            shoot(page, "webhooks")
        finally:
            browser.close()
