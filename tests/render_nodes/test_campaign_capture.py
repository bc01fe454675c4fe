"""The campaign page capture (render_nodes/campaigns/capture.py) against real pages on loopback.

A threading HTTP server serves tests/harness/pages/ on 127.0.0.1 and, on the same port,
127.0.0.2. The policy allow-lists 127.0.0.1/32 only, so 127.0.0.2 stands for an internal
address that is reachable but refused: the server's request log proves it was never asked.
"""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from reelfarm.address_guard import AddressPolicy, parse_networks
from reelfarm.page_preflight import normalise_url, preflight
from render_nodes.campaigns import capture as capture_mod
from render_nodes.campaigns.capture import (
    BrowserUnavailable,
    CaptureBrowser,
    CaptureFailed,
    capture_page,
    guess_language,
)

PAGES = Path(__file__).resolve().parents[1] / "harness" / "pages"
NEEDS_CHROMIUM = pytest.mark.skipif(
    not Path(capture_mod.CHROMIUM).exists(),
    reason=f"{capture_mod.CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk)",
)
ALLOW_LOOPBACK_1 = AddressPolicy(allow=parse_networks(["127.0.0.1/32"]))


def _png(size=(600, 400), colour=(40, 90, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


class PageServer:
    """Serves the test pages; `requests` records (server address, path) of every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.png = _png()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.server.server_address[0], self.path))
                server.handle(self)

            do_HEAD = do_GET

        self.first = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.first.server_address[1]
        self.second = ThreadingHTTPServer(("127.0.0.2", self.port), Handler)
        for httpd in (self.first, self.second):
            httpd.daemon_threads = True
            threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def asked_of(self, host: str) -> list[str]:
        return [path for address, path in self.requests if address == host]

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        if path in ("/hang", "/hang.png"):
            self.stop.wait(120)  # never answers while the tests run
            return
        if path == "/private":
            return self.send(h, 401, b"<h1>401 Unauthorized</h1>", headers={"WWW-Authenticate": 'Basic realm="x"'})
        if path == "/members":  # a 401 without an HTTP auth challenge: the browser shows the page
            return self.send(h, 401, b"<h1>Members only</h1><p>" + b"Please sign in to read this article. " * 3)
        if path == "/gone":
            return self.send(h, 404, b"<h1>Not found</h1><p>" + b"There is nothing here at all. " * 5 + b"</p>")
        if path == "/to-internal":
            return self.send(h, 302, b"", headers={"Location": self.url("/product_en.html", "127.0.0.2")})
        if path == "/to-product":
            return self.send(h, 302, b"", headers={"Location": "/product_en.html"})
        if path.endswith(".png"):
            return self.send(h, 200, self.png, "image/png")
        if path == "/slow-image.html":
            body = (b"<html lang='en'><title>Slow image</title><body><h1>A page with a slow image</h1>"
                    b"<p>The picture below never arrives, yet the page must still be captured in time.</p>"
                    b"<img src='/hang.png'></body></html>")
            return self.send(h, 200, body)
        if path == "/spin.html":
            body = (b"<html lang='en'><title>Spinner</title><body><h1>A page whose script never ends</h1>"
                    b"<p>Right after the document is parsed, a script spins forever and blocks the page.</p>"
                    b"<script>setTimeout(() => { for (;;) {} }, 0)</script></body></html>")
            return self.send(h, 200, body)
        if path == "/socket.html":
            body = (b"<html lang='en'><title>Socket</title><body><h1>A page that opens a WebSocket</h1>"
                    b"<p>Captures open no WebSockets, so this one is refused and recorded.</p><script>"
                    b"new WebSocket('ws://127.0.0.1:" + str(self.port).encode() + b"/ws')</script></body></html>")
            return self.send(h, 200, body)
        page = PAGES / path.lstrip("/")
        if path.endswith(".html") and page.is_file():
            return self.send(h, 200, page.read_bytes().replace(b"PORT", str(self.port).encode()))
        return self.send(h, 404, b"not found")

    @staticmethod
    def send(h, status: int, body: bytes, content_type: str = "text/html; charset=utf-8", headers=None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def close(self) -> None:
        self.stop.set()
        for httpd in (self.first, self.second):
            httpd.shutdown()
            httpd.server_close()


@pytest.fixture(scope="module")
def pages():
    server = PageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(capture_mod.CHROMIUM).exists():
        pytest.skip(f"{capture_mod.CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk)")
    holder = CaptureBrowser()
    yield holder
    holder.close()


def _assert_portrait_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1080, 1920)


# -- without a browser ------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("example.com", "https://example.com"),
    ("  example.com/pricing?x=1 ", "https://example.com/pricing?x=1"),
    ("//example.com/a", "https://example.com/a"),
    ("localhost:8080/x", "https://localhost:8080/x"),
    ("http://example.com", "http://example.com"),
    ("HTTPS://Example.com/", "HTTPS://Example.com/"),
])
def test_normalise_url_assumes_https(given, expected):
    assert normalise_url(given) == expected


def test_normalise_url_refuses_empty():
    with pytest.raises(ValueError, match="empty"):
        normalise_url("   ")


@pytest.mark.parametrize(("text", "expected"), [
    ("アクメノートは、書いたメモを正しいプロジェクトに自動で振り分けます。", "ja"),
    ("自動で整理されるノート", "ja"),
    ("메모가 스스로 정리됩니다. 지금 무료로 시작하세요.", "ko"),
    ("笔记自动整理，再也不用到处寻找。", "zh"),
    ("Notes that organise themselves, so you never search again.", None),  # Latin script says nothing
    ("Des notes qui se rangent toutes seules.", None),
    ("12345 !!!", None),
])
def test_guess_language_names_only_what_the_script_tells(text, expected):
    assert guess_language(text) == expected


def test_loopback_is_refused_without_the_allow_list(pages):
    reason = preflight(pages.url("/product_en.html"), AddressPolicy())
    assert reason is not None and "127.0.0.1 is a loopback address" in reason
    with pytest.raises(CaptureFailed, match="refused: 127.0.0.1 is a loopback address"):
        capture_page(pages.url("/product_en.html"), "unused", policy=AddressPolicy())
    with pytest.raises(CaptureFailed, match="cloud metadata"):
        capture_page("http://169.254.169.254/latest/meta-data/", "unused", policy=AddressPolicy())


def test_a_missing_browser_is_the_machines_fault_not_the_pages(pages, tmp_path):
    with CaptureBrowser(executable="/nonexistent/chromium") as missing, \
            pytest.raises(BrowserUnavailable, match="/nonexistent/chromium is missing"):
        capture_page(pages.url("/product_en.html"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=missing)


def test_preflight(pages):
    assert preflight(pages.url("/product_en.html"), ALLOW_LOOPBACK_1) is None
    assert preflight(pages.url("/to-product"), ALLOW_LOOPBACK_1) is None
    assert preflight(pages.url("/private"), ALLOW_LOOPBACK_1) == "the page requires sign-in (HTTP 401)"
    assert preflight(pages.url("/gone"), ALLOW_LOOPBACK_1) == "the page answered HTTP 404"
    assert preflight(pages.url("/login.html"), ALLOW_LOOPBACK_1) == "the page requires sign-in (it shows a password field)"
    assert preflight("", ALLOW_LOOPBACK_1) == "the URL is empty"
    assert "127.0.0.2 is a loopback address" in preflight(pages.url("/to-internal"), ALLOW_LOOPBACK_1)
    assert "only http and https" in preflight("ftp://example.com/x", ALLOW_LOOPBACK_1)
    started = time.monotonic()
    assert preflight(pages.url("/hang"), ALLOW_LOOPBACK_1, timeout=1.0) == "the page did not answer within 1 s"
    assert time.monotonic() - started < 3
    assert "127.0.0.2" not in {address for address, _ in pages.requests}


# -- with Chromium ----------------------------------------------------------------------


@NEEDS_CHROMIUM
def test_english_product_page(pages, browser, tmp_path):
    page = capture_page(pages.url("/product_en.html"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)

    assert page.url == pages.url("/product_en.html") and page.final_url == page.url
    assert page.title == "Acme Notes - notes that organise themselves"
    assert page.language == "en"  # from lang="en-GB"
    assert page.headings == ("Notes that organise themselves", "Find anything in a second", "Loved by 20,000 teams")
    assert page.paragraphs[0].startswith("Acme Notes files every note you write")
    assert "Works offline on every laptop and phone you own, and syncs when you are back." in page.paragraphs
    assert "Short" not in page.paragraphs
    assert page.calls_to_action == ("Start free trial", "Book a demo")  # not the plain nav links
    assert page.image_urls[:2] == (pages.url("/static/og.png"), pages.url("/static/hero.png"))
    assert "Type two letters and Acme Notes shows the note you meant" in page.main_text

    # Three sections of 1880 px (5.7k px in all): three viewports top to bottom, and the full page.
    assert [p.name for p in page.section_screenshots] == ["section_01.png", "section_02.png", "section_03.png"]
    for path in page.section_screenshots:
        assert path.parent == tmp_path
        _assert_portrait_png(path)
    with Image.open(page.full_page_screenshot) as full:
        assert full.format == "PNG" and full.size[0] == 1080 and 5640 < full.size[1] < 3 * 1920

    # The images at refused addresses were refused by the router and never fetched.
    refused = "\n".join(page.refused_requests)
    assert "http://10.1.2.3/x.png: 10.1.2.3 is a private address" in refused
    assert f"http://127.0.0.2:{pages.port}/secret.png: 127.0.0.2 is a loopback address" in refused
    assert pages.asked_of("127.0.0.2") == []
    assert "/static/hero.png" in pages.asked_of("127.0.0.1")


@NEEDS_CHROMIUM
def test_japanese_product_page(pages, browser, tmp_path):
    page = capture_page(pages.url("/product_ja.html"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)
    assert page.language == "ja"
    assert page.title == "アクメノート - 自動で整理されるノート"
    assert page.headings == ("自動で整理されるノート", "一秒で見つかる")
    assert page.calls_to_action == ("無料で試す",)
    assert "正しいプロジェクト" in page.main_text
    assert len(page.section_screenshots) == 1
    _assert_portrait_png(page.section_screenshots[0])
    _assert_portrait_png(page.full_page_screenshot)  # a short page: one viewport
    # The CJK font is installed: the heading is drawn, not tofu boxes (which are sparse).
    with Image.open(page.section_screenshots[0]) as shot:
        dark = shot.convert("L").crop((0, 0, 1080, 200)).point(lambda px: 255 if px < 128 else 0).histogram()[255]
    assert dark > 2000


@NEEDS_CHROMIUM
def test_redirect_is_followed_and_checked(pages, browser, tmp_path):
    page = capture_page(pages.url("/to-product"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)
    assert page.final_url == pages.url("/product_en.html")


@NEEDS_CHROMIUM
@pytest.mark.parametrize(("path", "reason"), [
    ("/login.html", "the page requires sign-in (it shows a password field)"),
    ("/private", "the page requires sign-in (HTTP 401)"),
    ("/members", "the page requires sign-in (HTTP 401)"),
    ("/gone", "the page answered HTTP 404"),
    ("/empty.html", "the page has next to no visible text (5 characters)"),
])
def test_pages_that_cannot_be_captured(pages, browser, tmp_path, path, reason):
    with pytest.raises(CaptureFailed) as failed:
        capture_page(pages.url(path), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)
    assert failed.value.reason == reason


@NEEDS_CHROMIUM
def test_page_that_never_answers_fails_in_bounded_time(pages, browser, tmp_path):
    started = time.monotonic()
    with pytest.raises(CaptureFailed, match=r"^the page did not load within 2 s$"):
        capture_page(pages.url("/hang"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser, goto_timeout=2)
    assert time.monotonic() - started < 6


@NEEDS_CHROMIUM
def test_hanging_image_does_not_hold_the_capture(pages, browser, tmp_path):
    started = time.monotonic()
    page = capture_page(pages.url("/slow-image.html"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser,
                        settle_timeout=1.5)
    assert time.monotonic() - started < 8
    assert page.headings == ("A page with a slow image",)


@NEEDS_CHROMIUM
def test_redirect_to_a_refused_address_fails_the_capture(pages, browser, tmp_path):
    # Playwright routes only the first URL of a redirect chain: the guard proxy refuses the hop.
    with pytest.raises(CaptureFailed, match="refused: 127.0.0.2 is a loopback address"):
        capture_page(pages.url("/to-internal"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)
    assert pages.asked_of("127.0.0.2") == []


@NEEDS_CHROMIUM
def test_web_sockets_are_refused(pages, browser, tmp_path):
    page = capture_page(pages.url("/socket.html"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)
    assert any(line.startswith(f"ws://127.0.0.1:{pages.port}/ws: ") for line in page.refused_requests)
    assert "/ws" not in pages.asked_of("127.0.0.1")


@NEEDS_CHROMIUM
def test_a_page_that_spins_is_stopped_by_the_watchdog(pages, browser, tmp_path):
    started = time.monotonic()
    with pytest.raises(CaptureFailed, match=r"^the page did not finish loading within 6 s$"):
        # Its own browser: the watchdog kills the browser of the capture that overran.
        capture_page(pages.url("/spin.html"), tmp_path, policy=ALLOW_LOOPBACK_1, settle_timeout=1, total_timeout=6)
    assert time.monotonic() - started < 12
    # The module's browser is untouched.
    page = capture_page(pages.url("/product_ja.html"), tmp_path, policy=ALLOW_LOOPBACK_1, browser=browser)
    assert page.language == "ja"
