"""POST /api/upload/url: background downloads through the address guard.

Media is served by a real HTTP server on 127.0.0.1 started here; the app allow-lists
loopback (fetch_allow_networks) except where a test checks the guard itself.

Refused addresses are answered in two places, by design: the submission resolves the
URL's host and answers 400 when it is refused (nothing is recorded); every connection the
download opens (each redirect hop) is checked again and a refused one fails the job.
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from api_fixtures import stand_in_node
from conftest import make_video
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.main import create_app
from control_plane.url_imports import downloads
from reelfarm.address_guard import AddressPolicy, FetchRefused, parse_networks
from harness.polling import wait_until
from reelfarm.database import make_engine, make_session_factory
from reelfarm.migrate import upgrade
from reelfarm.models.jobs import Job
from reelfarm.models.videos import Video
from reelfarm.options import ProcessOptions

LIMIT = 2 << 20  # max_upload_bytes in these tests
TIMEOUT = 30.0


# ------------------------------------------------------------------ media server


class MediaServer:
    """Routes: see Handler.do_GET. Records each request's path and Host header."""

    def __init__(self, video: bytes) -> None:
        self.video = video
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Host", "")))
                try:
                    self.route()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def route(self) -> None:
                path = self.path
                if path == "/talk.mp4":
                    self.send(200, server.video, "video/mp4")
                elif path == "/missing.mp4":
                    self.send(404, b"not here", "text/plain")
                elif path == "/watch":
                    self.send(200, b"<!doctype html><title>a video page</title>", "text/html; charset=utf-8")
                elif path.startswith("/page/"):  # a page embedding a video (HTML5), for yt-dlp's generic extractor
                    source = {"here": "/talk.mp4", "private": "http://10.255.1.2/talk.mp4",
                              "redirected": "/to-private.mp4"}[path.removeprefix("/page/")]
                    page = (f'<!doctype html><html><head><title>A talk</title></head><body>'
                            f'<video controls><source src="{source}" type="video/mp4"></video></body></html>')
                    self.send(200, page.encode(), "text/html; charset=utf-8")
                elif path == "/to-private.mp4":
                    self.send(302, b"", "text/plain", {"Location": "http://192.168.77.1/talk.mp4"})
                elif path == "/notes.mp4":
                    self.send(200, b"this is not a video at all\n" * 200, "video/mp4")
                elif path == "/huge.mp4":  # announces more than the limit
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(LIMIT + 1))
                    self.end_headers()
                    self.wfile.write(b"\0" * 1024)
                elif path == "/endless.mp4":  # no length: chunked past the limit
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"\0" * (256 << 10)
                    for _ in range(LIMIT // len(chunk) + 4):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                elif path == "/go":  # relative redirect to the video
                    self.send(302, b"", "text/plain", {"Location": "/talk.mp4"})
                elif path == "/loop":
                    self.send(302, b"", "text/plain", {"Location": "/loop"})
                elif path == "/to-metadata":
                    self.send(302, b"", "text/plain", {"Location": "http://169.254.169.254/latest/meta-data/"})
                elif path == "/to-ftp":
                    self.send(302, b"", "text/plain", {"Location": "ftp://127.0.0.1/talk.mp4"})
                else:
                    self.send(404, b"no route", "text/plain")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("media") / "talk.mp4", seconds=2.0).read_bytes()


@pytest.fixture
def media(video_bytes):
    server = MediaServer(video_bytes)
    yield server
    server.close()


# ------------------------------------------------------------------ apps and clients


@pytest.fixture
def make_app(settings):
    """Apps on the test's database; by default loopback is allow-listed. Pools stop at teardown."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    stand_in_node(make_session_factory(engine))  # no scheduler here: the API would answer 503
    apps = []

    def make(**update):
        merged = {"fetch_allow_networks": ["127.0.0.0/8"], "max_upload_bytes": LIMIT, **update}
        listener_calls: list[str] = []
        app = create_app(settings.model_copy(update=merged), session_factory=make_session_factory(engine),
                         job_listener=listener_calls.append)  # fmt: skip
        app.state.listener_calls = listener_calls
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.downloads.shutdown()
    engine.dispose()


@pytest.fixture
def api_app(make_app):
    """The default app (signed_up builds its clients on it)."""
    return make_app()


def sign_up(app, email: str) -> TestClient:
    client = TestClient(app)
    response = client.post("/api/auth/signup", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return client


def submit(client: TestClient, url: str, options: dict | None = None):
    body = {"url": url} if options is None else {"url": url, "options": options}
    return client.post("/api/upload/url", json=body)


def wait_for(client: TestClient, job_id: str, statuses=("queued", "failed"), timeout: float = TIMEOUT) -> dict:
    def job() -> dict:
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    return wait_until(lambda: (seen := job())["status"] in statuses and seen, timeout=timeout,
                      what=f"job {job_id} to be {' or '.join(statuses)}", describe=job)  # fmt: skip


def submitted(client: TestClient, url: str, options: dict | None = None) -> str:
    response = submit(client, url, options)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "downloading" and body["sizeBytes"] is None
    assert body["wsUrl"] == f"/ws?jobId={body['jobId']}"
    return body["jobId"]


def failed_with(client: TestClient, url: str) -> str:
    job = wait_for(client, submitted(client, url))
    assert job["status"] == "failed", job
    return job["error"]


def job_row(app, job_id: str) -> Job:
    with app.state.session_factory() as session:
        return session.get(Job, job_id)


# ------------------------------------------------------------------ downloads


def test_direct_mp4_is_downloaded_and_queued(api_app, signed_up, media, video_bytes):
    client = signed_up("a@example.com")
    response = submit(client, media.url("/talk.mp4"), {"mode": "none", "aspectRatio": "1:1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["originalName"] == "talk.mp4"
    assert body["options"]["aspectRatio"] == "1:1"
    assert body["status"] == "downloading" and body["sizeBytes"] is None

    job = wait_for(client, body["jobId"])
    assert job["status"] == "queued", job
    assert job["error"] is None
    row = job_row(api_app, body["jobId"])
    assert row.source_url == media.url("/talk.mp4")
    with api_app.state.session_factory() as session:
        video = session.get(Video, row.video_id)
        assert video.size_bytes == len(video_bytes)
        assert video.duration_seconds == pytest.approx(2.0, abs=0.2)
        assert api_app.state.storage.size(video.storage_key) == len(video_bytes)
    # The embedded scheduler would be woken for it.
    assert api_app.state.listener_calls == [body["jobId"]]


def test_redirect_is_followed(api_app, signed_up, media):
    client = signed_up("a@example.com")
    job = wait_for(client, submitted(client, media.url("/go")))
    assert job["status"] == "queued", job
    assert [path for path, _ in media.requests] == ["/go", "/talk.mp4"]


def test_api_key_with_upload_scope(api_app, signed_up, media):
    browser = signed_up("a@example.com")
    key = browser.post("/api/keys", json={"name": "ci", "scopes": ["uploads:write", "jobs:read"]}).json()["key"]
    reader = browser.post("/api/keys", json={"name": "ro", "scopes": ["jobs:read"]}).json()["key"]
    with TestClient(api_app) as client:
        response = client.post("/api/upload/url", json={"url": media.url("/talk.mp4")}, headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        refused = client.post("/api/upload/url", json={"url": media.url("/talk.mp4")}, headers={"X-API-Key": reader})
        assert refused.status_code == 403
        assert client.post("/api/upload/url", json={"url": media.url("/talk.mp4")}).status_code == 401


def test_http_error_fails_the_job(signed_up, media):
    assert failed_with(signed_up("a@example.com"), media.url("/missing.mp4")) == "download failed: HTTP 404"


def test_too_many_redirects(signed_up, media):
    assert failed_with(signed_up("a@example.com"), media.url("/loop")) == "download failed: more than 5 redirects"


def test_redirect_to_another_scheme_is_refused(signed_up, media):
    error = failed_with(signed_up("a@example.com"), media.url("/to-ftp"))
    assert error.startswith("download refused: redirect to 'ftp://127.0.0.1/talk.mp4' refused"), error


def test_html_page_without_yt_dlp(signed_up, media, monkeypatch):
    monkeypatch.setitem(sys.modules, "yt_dlp", None)  # not importable, installed or not
    error = failed_with(signed_up("a@example.com"), media.url("/watch"))
    assert error == "this page is not a video file and yt-dlp is not installed on this server"


def test_html_page_with_yt_dlp_disabled(make_app, media):
    client = sign_up(make_app(allow_yt_dlp=False), "a@example.com")
    assert "turned off" in failed_with(client, media.url("/watch"))


def test_video_page_is_imported_with_yt_dlp(api_app, signed_up, media, video_bytes):
    """001: page links go to yt-dlp (here its generic extractor, on a page with an HTML5 <video>)."""
    client = signed_up("a@example.com")
    job = wait_for(client, submitted(client, media.url("/page/here"), {"mode": "none"}))
    assert job["status"] == "queued", job
    assert job["originalName"].endswith(".mp4") and "talk" in job["originalName"].lower(), job["originalName"]
    with api_app.state.session_factory() as session:
        video = session.scalars(select(Video)).one()
        assert video.size_bytes == len(video_bytes)
    # Both the page and the video it embeds were fetched (through the guarded client; loopback is allow-listed).
    paths = [path for path, _host in media.requests]
    assert "/page/here" in paths and "/talk.mp4" in paths
    assert api_app.state.listener_calls == [job["jobId"]]


@pytest.mark.parametrize(("page", "address"), [("private", "10.255.1.2"), ("redirected", "192.168.77.1")])
def test_yt_dlp_requests_are_address_checked(signed_up, media, page, address):
    """The page's host is allowed; the video it points yt-dlp at (directly, or by a redirect) is not."""
    error = failed_with(signed_up("a@example.com"), media.url(f"/page/{page}"))
    assert error.startswith("download refused: ") and address in error and "private address" in error, error
    if page == "redirected":
        assert ("/to-private.mp4", f"127.0.0.1:{media.port}") in media.requests  # refused at the hop


def test_not_a_video(signed_up, media):
    error = failed_with(signed_up("a@example.com"), media.url("/notes.mp4"))
    assert "not a decodable video" in error, error


def test_announced_length_over_the_limit(signed_up, media):
    assert failed_with(signed_up("a@example.com"), media.url("/huge.mp4")) == f"download too large: over {LIMIT} bytes"


def test_chunked_body_over_the_limit(api_app, signed_up, media):
    assert failed_with(signed_up("a@example.com"), media.url("/endless.mp4")) == f"download too large: over {LIMIT} bytes"
    leftovers = [p for p in (api_app.state.settings.data_dir / "storage").rglob("*") if p.is_file()]
    assert leftovers == []


def test_trim_start_beyond_the_downloaded_duration(signed_up, media):
    client = signed_up("a@example.com")
    job = wait_for(client, submitted(client, media.url("/talk.mp4"), {"trimStart": 60}))
    assert job["status"] == "failed"
    assert job["error"].startswith("options.trimStart: beyond the video's duration")


def test_other_accounts_cannot_see_the_job(signed_up, media):
    owner, other = signed_up("a@example.com"), signed_up("b@example.com")
    job_id = submitted(owner, media.url("/talk.mp4"))
    assert other.get(f"/api/jobs/{job_id}").status_code == 404
    assert wait_for(owner, job_id)["status"] == "queued"
    response = other.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404 and response.json() == {"error": "job not found"}


def test_download_left_by_a_restart_is_resumed(make_app, media):
    """A job still `downloading` when the API starts (it stopped mid-download) is downloaded again."""
    first = make_app()
    client = sign_up(first, "a@example.com")
    account_id = client.get("/api/auth/me").json()["accountId"]
    with first.state.session_factory() as session:
        from reelfarm.models.accounts import Account

        job = downloads.submit_url(session=session, account=session.get(Account, account_id),
                                   url=media.url("/talk.mp4"), options=ProcessOptions(),
                                   settings=first.state.settings,
                                   plans=first.state.plans)  # never handed to a pool  # fmt: skip
    assert job.status == "downloading"
    second = make_app()
    with TestClient(second):  # its lifespan starts the pool, which finds the job
        wait_until(lambda: job_row(second, job.id).status != "downloading", timeout=TIMEOUT,
                   what="the restarted pool to resume the download")  # fmt: skip
    assert job_row(second, job.id).status == "queued"
    assert job_row(second, job.id).video_id is not None
    assert second.state.listener_calls == [job.id]


# ------------------------------------------------------------------ bad requests


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "url required"),
        ({}, "url: Field required"),
        ({"url": ""}, "url required"),
        ({"url": "ftp://127.0.0.1/a.mp4"}, "url refused: only http and https URLs are allowed (not ftp:)"),
        ({"url": "file:///etc/passwd"}, "url refused: only http and https URLs are allowed (not file:)"),
        ({"url": "/talk.mp4"}, "url refused: not an absolute http(s) URL"),
        ({"url": "http://user:pw@127.0.0.1/a.mp4"}, "url refused: URLs with a user name or password are not allowed"),
        ({"url": "http://no-such-host.invalid/a.mp4"}, "url: could not resolve host no-such-host.invalid"),
        ({"url": "http://127.0.0.1/" + "a" * 2000}, "url: longer than 2000 characters"),
        ({"url": "http://127.0.0.1/a.mp4", "options": {"numClips": 11}}, "options.numClips"),
        ({"url": "http://127.0.0.1/a.mp4", "options": "{numClips"}, "options: not valid JSON"),
        ({"url": "http://127.0.0.1/a.mp4", "extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_are_400(signed_up, body, message):
    client = signed_up("a@example.com")
    response = client.post("/api/upload/url", json=body) if body is not None else client.post("/api/upload/url")
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(message), response.json()
    assert client.get("/api/jobs").json()["jobs"] == []


# ------------------------------------------------------------------ the address guard


@pytest.mark.parametrize(
    "host, reason",
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("localhost", "localhost resolves to "),  # 127.0.0.1 or ::1
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("192.168.1.20", "192.168.1.20 is a private address"),
        ("100.64.0.1", "100.64.0.1 is a shared (CGNAT) address"),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("[fd00:ec2::254]", "fd00:ec2::254 is a cloud metadata address"),
        ("[::1]", "::1 is a loopback address"),
        ("[::ffff:127.0.0.1]", "::ffff:"),  # the IPv4 it wraps is judged: loopback
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("2130706433", "2130706433 resolves to 127.0.0.1, which is a loopback address"),
    ],
)
def test_refused_addresses_without_the_allow_list(make_app, media, host, reason):
    client = sign_up(make_app(fetch_allow_networks=[]), "a@example.com")
    response = submit(client, f"http://{host}:{media.port}/talk.mp4")
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"url refused: {reason}"), response.json()
    assert response.json()["error"].endswith(("address", "address)")), response.json()
    assert client.get("/api/jobs").json()["jobs"] == []
    assert media.requests == []


def test_name_resolving_to_a_private_address(make_app, media):
    client = sign_up(make_app(fetch_allow_networks=[]), "a@example.com")
    response = submit(client, media.url("/talk.mp4", host="localhost"))
    assert response.status_code == 400
    assert "loopback address" in response.json()["error"]


class Spy:
    """Wraps socket.getaddrinfo (fake names -> chosen answers) and records create_connection."""

    def __init__(self, monkeypatch, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.connections: list[tuple] = []
        self.lookups: list[str] = []
        self.answers = answers or {}
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

        def getaddrinfo(host, port, *args, **kwargs):
            if host in self.answers:
                self.lookups.append(host)
                ips = self.answers[host].pop(0) if len(self.answers[host]) > 1 else self.answers[host][0]
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]
            return real_getaddrinfo(host, port, *args, **kwargs)

        def create_connection(address, *args, **kwargs):
            self.connections.append(address)
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


def test_redirect_to_metadata_is_refused_on_the_hop(make_app, media, monkeypatch):
    spy = Spy(monkeypatch)
    client = sign_up(make_app(fetch_allow_networks=["127.0.0.1/32"]), "a@example.com")
    error = failed_with(client, media.url("/to-metadata"))
    assert error == "download refused: 169.254.169.254 is a cloud metadata address"
    assert [path for path, _ in media.requests] == ["/to-metadata"]
    assert ("127.0.0.1", media.port) in spy.connections
    assert not [a for a in spy.connections if a[0].startswith("169.254.")]


def test_connection_goes_to_the_checked_address_with_the_original_host(make_app, media, monkeypatch):
    """The name is resolved once per connection and the socket opened to that address
    (no second lookup to rebind); Host still carries the name."""
    spy = Spy(monkeypatch, {"media.test": [["127.0.0.1"]]})
    client = sign_up(make_app(fetch_allow_networks=["127.0.0.1/32"]), "a@example.com")
    job = wait_for(client, submitted(client, media.url("/talk.mp4", host="media.test")))
    assert job["status"] == "queued", job
    assert media.requests == [("/talk.mp4", f"media.test:{media.port}")]
    assert spy.connections == [("127.0.0.1", media.port)]
    assert spy.lookups == ["media.test", "media.test"]  # submission, then the download's connection


def test_dns_answer_changing_after_submission_is_refused(make_app, media, monkeypatch):
    """DNS rebinding: public at submission, loopback when the download connects."""
    spy = Spy(monkeypatch, {"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    client = sign_up(make_app(fetch_allow_networks=[]), "a@example.com")
    error = failed_with(client, media.url("/talk.mp4", host="rebind.test"))
    assert error == "download refused: rebind.test resolves to 127.0.0.1, which is a loopback address"
    assert spy.connections == [] and media.requests == []


def test_any_refused_address_refuses_the_name(monkeypatch):
    Spy(monkeypatch, {"mixed.test": [["93.184.216.34", "10.1.2.3"]]})
    with pytest.raises(FetchRefused, match="mixed.test resolves to 10.1.2.3, which is a private address"):
        AddressPolicy().check_url("https://mixed.test/v.mp4")
    AddressPolicy(parse_networks(["10.0.0.0/8"])).check_url("https://mixed.test/v.mp4")


def test_allow_list_setting_is_validated():
    from reelfarm.settings import Settings

    assert Settings(fetch_allow_networks="10.1.2.3/8, ::1").fetch_allow_networks == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError, match="not an IP network"):
        Settings(fetch_allow_networks=["nope"])


def test_job_rows_only_for_accepted_urls(api_app, signed_up, media):
    client = signed_up("a@example.com")
    submitted(client, media.url("/talk.mp4"))
    assert submit(client, "ftp://x/y").status_code == 400
    with api_app.state.session_factory() as session:
        assert len(session.scalars(select(Job)).all()) == 1
