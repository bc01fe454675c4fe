"""Campaigns through the public API on the embedded stack (seeds/004, issue 18).

Real parts: the pages are served on loopback (allow-listed), Chromium captures them, the voices
are the installed engines, ffmpeg renders. The translator is the one outside service that
cannot run here: a LibreTranslate-compatible server on loopback answers for Japanese.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import new_api_key
from sqlalchemy import select

from control_plane.webhooks import service as webhooks
from harness.polling import wait_until
from harness.webhook_receiver import WebhookReceiver
from reelfarm.database import session_scope
from reelfarm.models import Account
from reelfarm.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt chromium)")

PRODUCT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme Notes</title></head>
<body style="font-family:sans-serif;font-size:32px">
<section style="min-height:1900px">
<h1>Notes that organise themselves</h1>
<p>Acme Notes files every note you write into the right project, so you never search for anything again.</p>
<button>Start your free trial</button></section>
<section style="min-height:1900px"><h2>Find anything in a second</h2>
<p>Type two letters and Acme Notes shows the note you meant, even from a photo of a whiteboard.</p>
<p>It works offline on every laptop and phone you own, and it syncs the moment you are back online.</p></section>
<section><h2>Made for busy teams</h2>
<p>Share a whole notebook with a single link, and your team sees every change as it happens.</p>
<p>Reminders follow you from your desk to your phone, so nothing you promised slips through the cracks.</p>
<p>Your notes are encrypted on your device before they ever leave it, and only you hold the key.</p>
<p>More than twenty thousand teams switched last year, and most of them never looked back.</p></section>
</body></html>"""
PRODUCT_JA = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>アクメノート</title></head>
<body style="font-size:32px"><section style="min-height:1900px"><h1>メモが自分で整理されるノートアプリ</h1>
<p>アクメノートは、あなたが書いたメモを自動で正しいプロジェクトに振り分けます。</p>
<p>もう探し物に時間を使う必要はありません。二文字入力するだけで目的のメモが見つかります。</p>
<button>無料で試してみる</button></section><section><h2>チームのための機能</h2>
<p>ホワイトボードの写真からも文字を読み取り、あとから検索できるようにします。</p>
<p>オフラインでも動作し、オンラインに戻った瞬間にすべての端末で同期されます。</p>
<p>リンクひとつでノートを共有でき、チームの変更がリアルタイムで反映されます。</p>
<p>リマインダーは机からスマートフォンまで、あなたの予定についていきます。</p>
<p>メモは端末の上で暗号化され、鍵を持っているのはあなただけです。</p>
<p>昨年は二万以上のチームが乗り換え、そのほとんどが満足しています。</p></section></body></html>"""
LOGIN = """<!doctype html><html lang="en"><head><title>Sign in</title></head><body><h1>Sign in</h1>
<form><input name="user"><input type="password" name="pw"><button>Sign in</button></form></body></html>"""
EMPTY = """<!doctype html><html lang="en"><head><title>x</title></head><body><div></div></body></html>"""
# What the fake translator answers for Japanese: real Japanese (so the voice and the captions meet
# kana and kanji), one line per line asked, roughly as long.
JAPANESE = ["アクメノートは、書いたメモを自動で正しいプロジェクトに整理します。",
            "二文字入力するだけで、探していたメモがすぐに見つかります。",
            "オフラインでも使えて、オンラインに戻った瞬間に同期されます。",
            "リンクひとつでノートをチームと共有できます。",
            "リマインダーは机からスマートフォンまであなたについていきます。",
            "メモは端末の上で暗号化され、鍵を持つのはあなただけです。",
            "昨年は二万以上のチームが乗り換えました。",
            "今すぐ無料でお試しください。"]  # fmt: skip


class _Pages(BaseHTTPRequestHandler):
    routes = {"/product": (200, PRODUCT), "/ja": (200, PRODUCT_JA), "/login": (200, LOGIN), "/private": (401, "<h1>no</h1>"),
              "/empty": (200, EMPTY)}  # fmt: skip

    def do_GET(self):  # noqa: N802 - http.server's name
        status, body = self.routes.get(self.path, (404, "not found"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - the fake LibreTranslate: POST /translate
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        lines = asked["q"] if isinstance(asked["q"], list) else [asked["q"]]
        if asked["target"] == "ja":
            answer = [JAPANESE[i % len(JAPANESE)] for i in range(len(lines))]
        else:
            answer = [f"[{asked['target']}] {line}" for line in lines]
        data = json.dumps({"translatedText": answer if isinstance(asked["q"], list) else answer[0]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path, pages) -> Settings:
    """SQLite only (the pipeline, not the database, is under test); loopback pages allowed."""
    return Settings(environment="test", data_dir=tmp_path / "data", node_timeout_seconds=2.0,
                    retry_backoff_seconds=0.1, retry_backoff_max_seconds=0.5, progress_flush_seconds=0.2,
                    poll_interval_seconds=0.1, x264_preset="ultrafast", fetch_allow_networks=["127.0.0.0/8"],
                    translate_url=pages)  # fmt: skip


def _http(stack, **kw) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, headers={"X-API-Key": new_api_key(stack.session_factory, **kw)},
                        timeout=60)  # fmt: skip


def _finished(http: httpx.Client, campaign_id: str, timeout: float = 900) -> dict:
    def campaign() -> dict:
        return http.get(f"/api/v1/campaigns/{campaign_id}").json()

    return wait_until(lambda: (c := campaign())["status"] in ("review", "failed", "published") and c,
                      timeout=timeout, interval=1.0, what=f"campaign {campaign_id} to finish", describe=campaign)  # fmt: skip


def _probe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)


def test_a_two_language_campaign_reaches_review_with_voiced_videos_and_is_published(stack, pages, tmp_path):
    http = _http(stack)
    with WebhookReceiver() as receiver:
        created = http.post("/api/v1/campaigns", json={"url": f"{pages}/product", "languages": ["en", "ja"],
                                                       "webhook_url": receiver.url})  # fmt: skip
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["success"] and body["status"] == "collecting" and body["job_id"]
        assert created.headers.get("X-RateLimit-Plan") and created.headers.get("X-RateLimit-Limit")
        campaign = _finished(http, body["campaign_id"])
        assert campaign["status"] == "review", campaign
        (delivery,) = receiver.wait_for(1, timeout=60)
    with session_scope(stack.session_factory) as session:
        account_id = session.scalar(select(Account.id).where(Account.name == "tester"))
        secret = webhooks.account_secret(session=session, account_id=account_id)
    assert delivery.verify(secret)
    event = delivery.json()
    assert event["event"] == "campaign.completed" and event["campaign_id"] == body["campaign_id"]
    assert event["status"] == "review" and len(event["videos"]) == len(campaign["videos"])

    assert campaign["title"] == "127.0.0.1" and campaign["languages"] == ["en", "ja"]
    assert {v["platform"] for v in campaign["videos"]} == {"youtube_shorts", "tiktok", "instagram_reels"}
    by_language = {v["language"]: v for v in campaign["videos"]}
    assert set(by_language) == {"en", "ja"}
    for language, video in by_language.items():
        assert video["status"] == "ready" and video["published_at"] is None
        assert 30 <= video["duration_seconds"] <= 45, video
        path = tmp_path / f"{language}.mp4"
        # Absolute on REELFARM_PUBLIC_URL (the stack's own address may differ here): fetch its path.
        assert video["file_url"].startswith(stack.settings.public_url.rstrip("/") + "/api/v1/campaigns/")
        fetched = http.get(httpx.URL(video["file_url"]).path)
        assert fetched.status_code == 200, fetched.text
        path.write_bytes(fetched.content)
        probed = _probe(path)
        kinds = {s["codec_type"]: s for s in probed["streams"]}
        assert (kinds["video"]["width"], kinds["video"]["height"]) == (1080, 1920) and "audio" in kinds
        assert abs(float(probed["format"]["duration"]) - video["duration_seconds"]) < 0.5
    assert by_language["en"]["voice"] == "piper"

    approved = http.post(f"/api/v1/campaigns/{body['campaign_id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "published" and approved.json()["published_at"]
    assert all(v["published_at"] for v in approved.json()["videos"])
    assert http.post(f"/api/v1/campaigns/{body['campaign_id']}/cancel").status_code == 409
    # Its job is the campaign's, not a video job: the job listing leaves it out.
    assert body["job_id"] not in {j["jobId"] for j in http.get("/api/jobs").json()["jobs"]}
    # Another account sees nothing of it.
    other = _http(stack, account="someone-else")
    assert other.get(f"/api/v1/campaigns/{body['campaign_id']}").status_code == 404
    assert other.get(httpx.URL(by_language["en"]["file_url"]).path).status_code == 404


def test_pages_that_cannot_be_captured_and_bad_requests_are_refused_before_anything_is_made(stack, pages):
    http = _http(stack)

    def post(**body):
        return http.post("/api/v1/campaigns", json=body)

    login = post(url=f"{pages}/login", languages=["en"])
    assert login.status_code == 422 and "sign-in" in login.json()["error"], login.text
    unauthorised = post(url=f"{pages}/private", languages=["en"])
    assert unauthorised.status_code == 422 and "401" in unauthorised.json()["error"]
    assert post(languages=["en"]).status_code == 400
    assert post(url="https://", languages=["en"]).status_code == 400
    too_many = post(url=f"{pages}/product", languages=["en", "ja", "ko", "es", "de", "fr", "pt", "it", "nl"])
    assert too_many.status_code == 400 and "up to 8" in too_many.json()["error"]
    unvoiced = post(url=f"{pages}/product", languages=["en", "xx"])
    assert unvoiced.status_code == 400 and "cannot voice xx" in unvoiced.json()["error"]
    bad_hook = post(url=f"{pages}/product", languages=["en"], webhook_url="ftp://example.com/hook")
    assert bad_hook.status_code == 400 and bad_hook.json()["error"].startswith("webhook_url")
    # Nothing was made, and nothing was charged.
    assert http.get("/api/v1/campaigns").json()["campaigns"] == []
    # A plan without API access: 403.
    assert _http(stack, account="free-one", plan="free").post(
        "/api/v1/campaigns", json={"url": f"{pages}/product"}).status_code == 403


def test_a_page_with_no_text_fails_the_campaign_with_the_reason(stack, pages):
    http = _http(stack)
    created = http.post("/api/v1/campaigns", json={"url": f"{pages}/empty", "languages": ["en"]})
    assert created.status_code == 200, created.text
    campaign = _finished(http, created.json()["campaign_id"], timeout=180)
    assert campaign["status"] == "failed" and "could not capture the page" in campaign["error"], campaign
    assert campaign["videos"] == []


def test_without_a_translator_only_the_pages_own_language_is_accepted(start_stack, settings, pages):
    stack = start_stack(settings.model_copy(update={"translate_url": None, "translator": "auto"}))
    http = _http(stack)
    refused = http.post("/api/v1/campaigns", json={"url": f"{pages}/product", "languages": ["en", "ja"]})
    assert refused.status_code == 400 and "ja need a translator" in refused.json()["error"], refused.text
    default = http.post("/api/v1/campaigns", json={"url": f"{pages}/product"})
    assert default.status_code == 200 and default.json()["languages"] == ["en"], default.text
    http.post(f"/api/v1/campaigns/{default.json()['campaign_id']}/cancel")


def test_scope_quota_and_a_page_that_never_answers(stack, pages):
    from control_plane.accounts import service as accounts
    from reelfarm import quotas

    with session_scope(stack.session_factory) as session:
        owner = accounts.get_or_create_account(session=session, name="scoped", plan="growth")
        narrow = accounts.create_api_key(session=session, account=owner, scopes=["jobs:read"])
        quotas.charge(session, account_id=owner.id, videos=39, limit=None)  # 39 of growth's 40 used
    body = {"url": f"{pages}/product", "languages": ["en", "ja"]}
    refused = httpx.post(f"{stack.base_url}/api/v1/campaigns", json=body, headers={"X-API-Key": narrow}, timeout=30)
    assert refused.status_code == 403 and "campaigns:create" in refused.json()["error"], refused.text
    http = _http(stack, account="scoped", plan="growth")
    over = http.post("/api/v1/campaigns", json=body)  # two videos, one left
    assert over.status_code == 429 and "39 of 40" in over.json()["error"], over.text
    assert http.get("/api/v1/campaigns").json()["campaigns"] == []  # nothing made or charged
    assert http.post("/api/v1/campaigns", json={**body, "languages": ["en"]}).status_code == 200

    # A page that never answers: the pre-flight gives up within its bound, and says so.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        began = time.monotonic()
        hung = http.post("/api/v1/campaigns", json={"url": f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                                   "languages": ["en"]})  # fmt: skip
        assert hung.status_code == 422 and "did not answer" in hung.json()["error"], hung.text
        assert time.monotonic() - began < 15
    finally:
        silent.close()


def test_a_japanese_page_is_voiced_in_japanese_without_translation(stack, pages):
    http = _http(stack)
    created = http.post("/api/v1/campaigns", json={"url": f"{pages}/ja", "languages": ["ja"]})
    assert created.status_code == 200, created.text
    campaign = _finished(http, created.json()["campaign_id"])
    assert campaign["status"] == "review" and campaign["page_language"] == "ja", campaign
    (video, *_) = campaign["videos"]
    assert video["language"] == "ja" and video["voice"] == "kokoro" and 30 <= video["duration_seconds"] <= 45
