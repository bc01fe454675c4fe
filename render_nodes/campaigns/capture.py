"""Capture a web page for a campaign: screenshots, visible text with its structure, language.

`capture_page(url, out_dir, policy=...)` drives Debian's Chromium (/usr/bin/chromium) with
Python Playwright's sync API (no `playwright install`: no browser is downloaded) and
returns a `PageCapture` (render_nodes/campaigns/types.py):

- a 1080x1920 viewport screenshot per section, scrolling one viewport height at a time
  from the top (at most `max_sections`), and a full-page screenshot (its height capped at
  `max_sections` viewports), PNGs in `out_dir`;
- the title, the visible h1-h3 headings, paragraphs, calls to action (buttons and links
  styled as buttons), image URLs, the page's language (`<html lang>`'s primary subtag;
  else a script-based guess that only names ja/ko/zh; else None) and trafilatura's main
  text of the rendered HTML.

"Could not capture" raises `CaptureFailed(reason)`: the URL or its address refused, the
navigation failing or timing out, HTTP status >= 400, a visible password field ("requires
sign-in") or fewer than `MIN_VISIBLE_CHARS` characters of visible text.

Server-side request forgery: every request the browser makes is checked against the
`AddressPolicy` of reelfarm/address_guard.py, twice over:

1. route interception (`context.route("**/*")`) resolves each request's host and aborts
   the request when an address is refused (recorded in `PageCapture.refused_requests`);
   a refused main document fails the capture, naming why;
2. Playwright routes only the first URL of a redirect chain, and Chromium resolves the
   name again after the check (DNS rebinding), so the browser also reaches the network
   only through a small forward proxy of ours (`_GuardProxy`, one per capture): it resolves
   every CONNECT / absolute-URI target with the policy and opens the socket to the address
   it checked. Redirect hops, WebSockets, preconnects and service workers (blocked anyway)
   all pass through it. Chromium's implicit proxy bypass for loopback is switched off.

Waits are bounded: `goto(wait_until="domcontentloaded")` within `goto_timeout`, then at
most `settle_timeout` for `load` and network idle (a hanging image must not hold the
capture), and a watchdog kills the browser when the whole capture overruns `total_timeout`
(a script stuck in a loop blocks every DevTools call, and those have no timeout of their own).

`normalise_url` and the cheap, bounded check the API runs before answering a POST live on the
ground floor, reelfarm/page_preflight.py, so that the API can import them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from reelfarm.address_guard import AddressPolicy, FetchError, FetchRefused, check_url_syntax
from reelfarm.page_preflight import USER_AGENT, normalise_url, status_reason
from render_nodes.campaigns.types import PageCapture

log = logging.getLogger(__name__)

__all__ = ["BrowserUnavailable", "CaptureBrowser", "CaptureFailed", "capture_page", "guess_language", "normalise_url"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--dns-prefetch-disable",
    # WebRTC may only use the (guarded) proxy: no UDP of its own to private addresses.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
VIEWPORT = {"width": 1080, "height": 1920}
MAX_SECTIONS = 8
MIN_VISIBLE_CHARS = 40
GOTO_TIMEOUT = 20.0
SETTLE_TIMEOUT = 4.0
TOTAL_TIMEOUT = 90.0
_LANG_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_].*)?$")


class BrowserUnavailable(RuntimeError):
    """This machine cannot capture pages (no Chromium, no Playwright): the node's fault, not the page's."""


class CaptureFailed(Exception):
    """The page could not be captured; `reason` is short and readable by the campaign's owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the browser ------------------------------------------------------------------------


class CaptureBrowser:
    """One Chromium for many captures (each in a fresh context), on the thread that made it.

    Playwright's sync API is bound to the thread that started it: use a holder from one
    thread only (a render node task thread, a test module). `close()` when done; a watchdog
    kill (a capture overran its time) makes the next capture relaunch the browser.
    """

    _launch_lock = threading.Lock()

    def __init__(self, executable: str = CHROMIUM) -> None:
        self.executable = executable
        self._driver = None
        self._browser = None
        self._pids: set[int] = set()
        self._thread = threading.get_ident()

    def browser(self):
        if threading.get_ident() != self._thread:
            raise RuntimeError("a CaptureBrowser is used from the thread that created it only")
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        self._close_browser()
        if not os.access(self.executable, os.X_OK):
            raise BrowserUnavailable(f"no browser to capture pages with ({self.executable} is missing)")
        if self._driver is None:
            self._driver = _Driver.acquire()
        # Note the Chromium processes that appear while launching: the watchdog kills those.
        with self._launch_lock:
            before = _chromium_pids()
            self._browser = self._driver.playwright.chromium.launch(
                executable_path=self.executable, args=list(CHROMIUM_ARGS), headless=True,
                # Every context brings its own guard proxy; this one, for any other context,
                # leads nowhere (fail closed).
                proxy={"server": "http://per-context"},
            )
            self._pids = _chromium_pids() - before
        return self._browser

    def kill(self) -> None:
        """Kill this holder's Chromium (from any thread): pending calls on it fail at once."""
        import psutil

        for pid in self._pids:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass

    def _close_browser(self) -> None:
        if self._browser is not None:
            try:
                self._browser.close()
            except Exception:  # noqa: BLE001 - already gone (killed, crashed)
                pass
            self._browser = None
            self.kill()
            self._pids = set()

    def close(self) -> None:
        self._close_browser()
        if self._driver is not None:
            self._driver.release()
            self._driver = None

    def __enter__(self) -> CaptureBrowser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Driver:
    """The Playwright driver of a thread: the sync API allows one per thread, holders share it."""

    _local = threading.local()

    def __init__(self) -> None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise BrowserUnavailable(f"Playwright is not installed ({exc})") from None
        self.playwright = sync_playwright().start()
        self.users = 0

    @classmethod
    def acquire(cls) -> _Driver:
        driver = getattr(cls._local, "driver", None)
        if driver is None:
            driver = cls._local.driver = cls()
        driver.users += 1
        return driver

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self._local.driver = None
            try:
                self.playwright.stop()
            except Exception:  # noqa: BLE001 - its driver process is gone already
                pass


def _chromium_pids() -> set[int]:
    """Chromium browser processes (not its helpers) below this process."""
    import psutil

    pids = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if cmdline and "chrom" in os.path.basename(cmdline[0]) and not any(a.startswith("--type=") for a in cmdline):
            pids.add(child.pid)
    return pids


# -- the capture ------------------------------------------------------------------------


@dataclass
class _Refusals:
    """Requests refused during one capture: 'URL: why' lines, in order."""

    lines: list[str]
    lock: threading.Lock

    def add(self, line: str) -> None:
        with self.lock:
            if line not in self.lines:
                self.lines.append(line)

    def snapshot(self) -> tuple[str, ...]:
        with self.lock:
            return tuple(self.lines)


def capture_page(url: str, out_dir: str | os.PathLike, *, policy: AddressPolicy,
                 browser: CaptureBrowser | None = None, goto_timeout: float = GOTO_TIMEOUT,
                 settle_timeout: float = SETTLE_TIMEOUT, total_timeout: float = TOTAL_TIMEOUT,
                 max_sections: int = MAX_SECTIONS) -> PageCapture:
    """Capture `url` into `out_dir` (created if needed); CaptureFailed(reason) when it cannot be.

    `browser`: a CaptureBrowser to reuse (made on this thread); without one, a Chromium is
    launched for this capture and closed after it. BrowserUnavailable when this machine
    has no Chromium or Playwright (not the page's fault).
    """
    asked = url
    try:
        target = str(check_url_syntax(normalise_url(url)))
        policy.check_url(target)
    except ValueError as exc:
        raise CaptureFailed(str(exc)) from None
    except FetchRefused as exc:
        raise CaptureFailed(f"the URL was refused: {exc}") from None
    except FetchError as exc:
        raise CaptureFailed(f"the page could not be fetched: {exc}") from None

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own = browser is None
    holder = browser or CaptureBrowser()
    refusals = _Refusals([], threading.Lock())
    proxy = _GuardProxy(policy, refusals)
    watchdog = threading.Timer(total_timeout, _overran, args=(holder, proxy))
    watchdog.daemon = True
    context = None
    try:
        chromium = holder.browser()
        watchdog.start()
        context = chromium.new_context(
            viewport=VIEWPORT, device_scale_factor=1, user_agent=USER_AGENT,
            service_workers="block", accept_downloads=False,
            proxy={"server": f"http://127.0.0.1:{proxy.port}", "bypass": "<-loopback>"},
        )
        context.route("**/*", _router(policy, refusals))
        context.route_web_socket("**/*", _web_socket_router(policy, refusals))
        page = context.new_page()
        return _capture(page, asked, target, out, refusals, proxy, goto_timeout=goto_timeout,
                        settle_timeout=settle_timeout, max_sections=max_sections)
    except BrowserUnavailable:
        raise
    except CaptureFailed:
        if proxy.overran:
            raise CaptureFailed(f"the page did not finish loading within {total_timeout:g} s") from None
        raise
    except Exception as exc:  # Playwright's errors: the browser died, was killed, a call failed
        if proxy.overran:
            raise CaptureFailed(f"the page did not finish loading within {total_timeout:g} s") from None
        log.warning("capture of %s failed", target, exc_info=True)
        raise CaptureFailed(f"the browser failed while capturing the page ({_first_line(exc)})") from None
    finally:
        if context is not None:
            try:
                context.close()  # still under the watchdog: a hung renderer cannot hold it
            except Exception:  # noqa: BLE001 - the browser is gone
                pass
        watchdog.cancel()
        proxy.close()
        if own:
            holder.close()


def _overran(holder: CaptureBrowser, proxy: _GuardProxy) -> None:
    proxy.overran = True
    log.warning("a page capture overran its time: killing its browser")
    holder.kill()


def _capture(page, asked: str, target: str, out: Path, refusals: _Refusals, proxy: _GuardProxy, *,
             goto_timeout: float, settle_timeout: float, max_sections: int) -> PageCapture:
    from playwright.sync_api import Error as PlaywrightError

    try:
        response = page.goto(target, wait_until="domcontentloaded", timeout=goto_timeout * 1000)
    except PlaywrightError as exc:
        refused = _main_refusal(refusals, target, proxy)
        if refused:
            raise CaptureFailed(f"the page's address was refused: {refused}") from None
        if "Timeout" in type(exc).__name__ or "Timeout" in str(exc).split("\n")[0]:
            raise CaptureFailed(f"the page did not load within {goto_timeout:g} s") from None
        if "ERR_INVALID_AUTH_CREDENTIALS" in str(exc):  # an HTTP auth challenge nobody answers
            raise CaptureFailed(status_reason(401)) from None
        raise CaptureFailed(f"the page could not be loaded ({_first_line(exc)})") from None
    if response is not None and response.status >= 400:
        refused = proxy.refusal_for(response.url)
        if refused:
            raise CaptureFailed(f"the page's address was refused: {refused}") from None
        raise CaptureFailed(status_reason(response.status))

    deadline = time.monotonic() + settle_timeout
    for state in ("load", "networkidle"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            page.wait_for_load_state(state, timeout=left * 1000)
        except PlaywrightError:
            break  # a hanging image or a chatty page: capture what is there

    facts = page.evaluate(_PAGE_FACTS)
    if facts["password"] or _password_in_frames(page):
        raise CaptureFailed("the page requires sign-in (it shows a password field)")
    visible = facts["bodyText"]
    if len(visible) < MIN_VISIBLE_CHARS:
        raise CaptureFailed(f"the page has next to no visible text ({len(visible)} characters)")

    sections = _screenshots(page, out, facts["height"], max_sections)
    html = page.content()
    final_url = page.url
    host = httpx.URL(final_url).host or ""
    return PageCapture(
        url=asked,
        final_url=final_url,
        title=facts["title"] or (facts["headings"] or [host])[0],
        language=_language(facts["lang"], visible),
        headings=tuple(facts["headings"]),
        paragraphs=tuple(facts["paragraphs"]),
        calls_to_action=tuple(facts["ctas"]),
        main_text=_main_text(html, final_url),
        section_screenshots=tuple(sections[:-1]),
        full_page_screenshot=sections[-1],
        image_urls=tuple(facts["images"]),
        refused_requests=refusals.snapshot(),
    )


def _main_refusal(refusals: _Refusals, target: str, proxy: _GuardProxy) -> str | None:
    """Why the navigation was refused, when it was (by the router or, for a redirect hop, the proxy)."""
    for line in refusals.snapshot():
        if line.startswith(target + ": "):
            return line[len(target) + 2:]
    # Nothing else loads before the document: a refusal during a failed navigation is its own.
    return proxy.first_refusal()


def _password_in_frames(page) -> bool:
    for frame in page.frames[1:]:
        try:
            if frame.evaluate(_PASSWORD_VISIBLE):
                return True
        except Exception:  # noqa: BLE001 - a frame that went away
            continue
    return False


def _screenshots(page, out: Path, height: int, max_sections: int) -> list[Path]:
    """Viewport screenshots top to bottom, then the full page (last in the list)."""
    step = VIEWPORT["height"]
    count = max(1, min(max_sections, math.ceil(max(height, 1) / step)))
    paths = []
    for index in range(count):
        page.evaluate("y => window.scrollTo(0, y)", index * step)
        page.wait_for_timeout(150)  # scroll-triggered content and lazy images
        path = out / f"section_{index + 1:02d}.png"
        page.screenshot(path=str(path), type="png", animations="disabled", caret="hide", timeout=15_000)
        paths.append(path)
    page.evaluate("() => window.scrollTo(0, 0)")
    full = out / "full_page.png"
    clip_height = min(max(height, step), max_sections * step)
    page.screenshot(path=str(full), type="png", full_page=True, animations="disabled", caret="hide",
                    clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": clip_height}, timeout=15_000)
    paths.append(full)
    return paths


def _main_text(html: str, url: str) -> str:
    import trafilatura

    try:
        text = trafilatura.extract(html, url=url, include_comments=False, include_tables=False)
    except Exception:  # extraction is best effort: the structure is still there
        log.warning("trafilatura failed on %s", url, exc_info=True)
        return ""
    return text or ""


def _language(tag: str | None, text: str) -> str | None:
    """`<html lang>`'s primary subtag, else a script-based guess (ja, ko, zh only), else None."""
    match = _LANG_TAG.match((tag or "").strip())
    if match and match.group(1).lower() not in ("und", "mul", "zxx"):
        return match.group(1).lower()
    return guess_language(text)


def guess_language(text: str) -> str | None:
    """ja / ko / zh from the writing system; None for everything else (no detector is installed,
    and Latin or Cyrillic script alone does not say which language it is)."""
    kana = hangul = han = letters = 0
    for ch in text:
        code = ord(ch)
        if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F:
            kana += 1
        elif 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            hangul += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            han += 1
        elif not ch.isalpha():
            continue
        letters += 1
    if letters == 0:
        return None
    if kana / letters >= 0.05:  # Japanese text always has kana among its kanji
        return "ja"
    if hangul / letters >= 0.3:
        return "ko"
    if han / letters >= 0.3:
        return "zh"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# -- the SSRF checks --------------------------------------------------------------------


def _router(policy: AddressPolicy, refusals: _Refusals):
    """context.route handler: abort requests whose host resolves to a refused address."""
    decided: dict[tuple[str, int], str | None] = {}

    def handle(route) -> None:
        url = route.request.url
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            refusals.add(f"{url[:300]}: not a valid URL")
            route.abort("blockedbyclient")
            return
        if parsed.scheme not in ("http", "https"):
            if parsed.scheme in ("data", "blob"):  # in-page content, no network
                route.continue_()
                return
            refusals.add(f"{url[:300]}: only http and https requests are allowed")
            route.abort("blockedbyclient")
            return
        key = (parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
        if key not in decided:
            try:
                policy.resolve(*key)
                decided[key] = None
            except FetchError as exc:  # FetchRefused or unresolvable
                decided[key] = str(exc)
        reason = decided[key]
        if reason is not None:
            refusals.add(f"{url[:300]}: {reason}")
            route.abort("blockedbyclient" if "resolve" not in reason else "namenotresolved")
            return
        route.continue_()

    return handle


def _web_socket_router(policy: AddressPolicy, refusals: _Refusals):
    """WebSockets are not routed by context.route: a capture needs none, so none is opened."""

    def handle(ws) -> None:
        refusals.add(f"{ws.url[:300]}: WebSockets are not opened during a capture")
        ws.close(code=1008, reason="not allowed")

    return handle


class _GuardProxy:
    """An HTTP forward proxy on 127.0.0.1 that opens connections only to addresses the policy allows.

    CONNECT host:port (https, wss) and absolute-URI requests (http) alike: the host is
    resolved once with `AddressPolicy.resolve` and the socket goes to an address that was
    checked, so neither a redirect hop (not routed by Playwright) nor a DNS answer that
    changes after the router's check reaches a refused address. Refusals answer 403.
    """

    MAX_HEAD = 64 * 1024
    IDLE = 30.0

    def __init__(self, policy: AddressPolicy, refusals: _Refusals, connect_timeout: float = 10.0) -> None:
        self.policy = policy
        self.refusals = refusals
        self.connect_timeout = connect_timeout
        self.overran = False
        self._refused_hosts: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._socks: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, name="capture-proxy", daemon=True).start()

    def first_refusal(self) -> str | None:
        with self._lock:
            return self._refused_hosts[0][1] if self._refused_hosts else None

    def refusal_for(self, url: str) -> str | None:
        try:
            host = httpx.URL(url).host
        except (httpx.InvalidURL, ValueError):
            return None
        with self._lock:
            return next((why for h, why in self._refused_hosts if h == host), None)

    def close(self) -> None:
        self._closed.set()
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _addr = self._server.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), name="capture-proxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(self.IDLE)
            head, rest = self._read_head(client)
            if head is None:
                return
            lines = head.split(b"\r\n")
            method, _, remainder = lines[0].partition(b" ")
            target, _, version = remainder.partition(b" ")
            if method.upper() == b"CONNECT":
                host, port = _split_host_port(target.decode("latin-1"))
                upstream = self._connect(host, port, f"{host}:{port}", client)
                if upstream is None:
                    return
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                try:
                    url = httpx.URL(target.decode("latin-1"))
                except (httpx.InvalidURL, ValueError):
                    url = None
                if url is None or url.scheme != "http" or not url.host:
                    self._refuse(client, "", "not an absolute http URL")
                    return
                host, port = url.host, url.port or 80
                upstream = self._connect(host, port, str(url)[:300], client)
                if upstream is None:
                    return
                kept = [line for line in lines[1:] if line and line.split(b":", 1)[0].strip().lower()
                        not in (b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive")]
                request = b"\r\n".join([method + b" " + (url.raw_path or b"/") + b" " + version, *kept,
                                        b"Connection: close"]) + b"\r\n\r\n"
                upstream.sendall(request)
            if rest:
                upstream.sendall(rest)
            _relay(client, upstream, self.IDLE, self._closed)
        except (OSError, ValueError, UnicodeError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
                    with self._lock:
                        self._socks.discard(sock)

    def _read_head(self, client: socket.socket) -> tuple[bytes | None, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(8192)
            if not chunk:
                return None, b""
            data += chunk
            if len(data) > self.MAX_HEAD:
                return None, b""
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _connect(self, host: str, port: int, what: str, client: socket.socket) -> socket.socket | None:
        try:
            addresses = self.policy.resolve(host, port)
        except FetchError as exc:
            self._refuse(client, host, str(exc), what)
            return None
        last: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            self._track(sock)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(sockaddr)  # the checked address itself: no second lookup
                sock.settimeout(self.IDLE)
                return sock
            except OSError as exc:
                last = exc
                sock.close()
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        log.debug("capture proxy: could not connect to %s (%s)", what, last)
        return None

    def _refuse(self, client: socket.socket, host: str, reason: str, what: str = "") -> None:
        with self._lock:
            self._refused_hosts.append((host, reason))
        if what:
            self.refusals.add(f"{what}: {reason}")
        body = reason.encode("utf-8", "replace")
        client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def _split_host_port(target: str) -> tuple[str, int]:
    if target.startswith("["):
        host, _, port = target[1:].partition("]:")
    else:
        host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bad CONNECT target {target!r}")
    return host, int(port)


def _relay(a: socket.socket, b: socket.socket, idle: float, closed: threading.Event) -> None:
    """Copy bytes both ways until both sides are done, or nothing moves for `idle` seconds."""
    peer = {a: b, b: a}
    open_ends = {a, b}
    with selectors.DefaultSelector() as sel:
        for sock in (a, b):
            sel.register(sock, selectors.EVENT_READ)
        while open_ends and not closed.is_set():
            ready = sel.select(timeout=min(idle, 1.0))
            if not ready:
                idle -= 1.0
                if idle <= 0:
                    return
                continue
            for key, _ in ready:
                sock = key.fileobj
                data = sock.recv(65536)
                if not data:
                    sel.unregister(sock)
                    open_ends.discard(sock)
                    try:
                        peer[sock].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                peer[sock].sendall(data)


# Everything the capture reads from the page, in one evaluation.
_PAGE_FACTS = r"""
() => {
  const visible = el => {
    if (el.checkVisibility && !el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const clean = s => (s || "").replace(/\s+/g, " ").trim();
  const label = el => clean(el.innerText || el.value || el.getAttribute("aria-label") || el.title);
  const collect = (selector, min, max, skip) => {
    const out = [], seen = new Set();
    for (const el of document.querySelectorAll(selector)) {
      if ((skip && skip(el)) || !visible(el)) continue;
      const t = label(el);
      if (t.length < min || t.length > max || seen.has(t)) continue;
      seen.add(t); out.push(t);
    }
    return out;
  };
  const prominent = a => {
    const cls = (typeof a.className === "string" ? a.className : "") + " " + (a.id || "");
    if (/(^|[\s_-])(btn|button|cta)/i.test(cls) || a.getAttribute("role") === "button") return true;
    const s = getComputedStyle(a);
    const bg = s.backgroundColor || "";
    const painted = bg && bg !== "transparent" && !/rgba\(.*,\s*0\)$/.test(bg);
    return painted && (parseFloat(s.paddingTop) || 0) + (parseFloat(s.paddingBottom) || 0) >= 8;
  };
  const ctas = [], seenCta = new Set();
  for (const el of document.querySelectorAll(
      'button, input[type=submit], input[type=button], [role=button], a[href]')) {
    if (el.tagName === "A" && !prominent(el)) continue;
    if (!visible(el)) continue;
    const t = label(el);
    if (t.length < 2 || t.length > 60 || seenCta.has(t)) continue;
    seenCta.add(t); ctas.push(t);
  }
  const images = [], seenImg = new Set();
  const addImage = src => {
    if (!src) return;
    let abs;
    try { abs = new URL(src, document.baseURI).href; } catch (e) { return; }
    if (!/^https?:/.test(abs) || seenImg.has(abs)) return;
    seenImg.add(abs); images.push(abs);
  };
  for (const m of document.querySelectorAll('meta[property="og:image"], meta[name="twitter:image"]'))
    addImage(m.getAttribute("content"));
  for (const img of document.querySelectorAll("img")) addImage(img.currentSrc || img.getAttribute("src"));
  const meta = document.querySelector('meta[http-equiv="content-language" i]');
  const og = document.querySelector('meta[property="og:title"]');
  const body = document.body;
  return {
    title: clean(document.title) || clean(og && og.getAttribute("content")),
    headings: collect("h1, h2, h3", 1, 300),
    paragraphs: collect("p, li, blockquote, dd", 2, 5000,
                        el => el.tagName !== "P" && (el.querySelector("p, li") || label(el).length < 25)),
    ctas,
    images: images.slice(0, 100),
    lang: document.documentElement.getAttribute("lang") || (meta && meta.getAttribute("content")) || null,
    bodyText: body ? clean(body.innerText) : "",
    password: [...document.querySelectorAll("input[type=password]")].some(visible),
    height: Math.max(document.documentElement.scrollHeight, body ? body.scrollHeight : 0),
  };
}
"""

_PASSWORD_VISIBLE = r"""
() => [...document.querySelectorAll("input[type=password]")].some(el => {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && (!el.checkVisibility || el.checkVisibility({checkVisibilityCSS: true}));
})
"""
