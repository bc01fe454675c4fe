"""Before a web page is captured: its URL made absolute, and a cheap, bounded look at it.

On the ground floor so that both the API (before it answers POST /api/v1/campaigns) and the
render node's capture (render_nodes/campaigns/capture.py) use the same rules and words.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx

from reelfarm.address_guard import AddressPolicy, FetchError, FetchRefused, check_url_syntax, describe, open_url

PREFLIGHT_TIMEOUT = 5.0
PREFLIGHT_BYTES = 256 * 1024  # enough of the document to see a sign-in form near its top
# A desktop Chrome's user agent: sites answer unknown clients and scripts differently.
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/130.0.0.0 Safari/537.36")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PASSWORD_FIELD = re.compile(rb"<input[^>]*\stype\s*=\s*[\"']?password", re.IGNORECASE)
_HTML_LANG = re.compile(rb"<html[^>]*\slang\s*=\s*[\"']?([A-Za-z]{2,3})\b", re.IGNORECASE)


@dataclass(frozen=True)
class PageLook:
    """What the pre-flight saw: `problem` (why the page cannot be captured; None: it looks
    capturable), `refused` (the problem is the URL or its address, not the page), and the
    page's own language when its <html lang> says (primary subtag)."""

    problem: str | None = None
    refused: bool = False
    language: str | None = None


def normalise_url(url: str) -> str:
    """The URL with surrounding blanks removed and `https://` put in front when it has no scheme.

    "example.com/pricing" -> "https://example.com/pricing"; "//example.com" -> "https://example.com".
    Only adds a scheme (ValueError when empty): whether the result is acceptable is
    `check_url_syntax`'s call.
    """
    url = (url or "").strip()
    if not url:
        raise ValueError("the URL is empty")
    if url.startswith("//"):
        return "https:" + url
    if not _SCHEME.match(url):
        return "https://" + url
    return url


def status_reason(status: int) -> str:
    """Why a page that answered `status` (>= 400) cannot be captured."""
    if status in (401, 407):
        return f"the page requires sign-in (HTTP {status})"
    return f"the page answered HTTP {status}"


def preflight(url: str, policy: AddressPolicy, timeout: float = PREFLIGHT_TIMEOUT) -> str | None:
    """None when the page looks capturable, else why not ("the page answered HTTP 401", ...)."""
    return look(url, policy, timeout).problem


def look(url: str, policy: AddressPolicy, timeout: float = PREFLIGHT_TIMEOUT) -> PageLook:
    """The pre-flight: whether the page looks capturable (PageLook), and its declared language.

    URL syntax, the address policy, then one GET of the document through the guarded client
    (redirects followed by hand, each hop checked) reading at most PREFLIGHT_BYTES of it for a
    password field. `timeout` bounds each connect and read, and the body is read for at most
    `timeout` seconds. Coarse on purpose: the browser capture decides the rest (scripts, text).
    """
    try:
        target = check_url_syntax(normalise_url(url))
        policy.check_url(target)
        with open_url(target, policy=policy, timeout=httpx.Timeout(timeout),
                      headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.8"}) as response:
            head, deadline = b"", time.monotonic() + timeout
            if "html" in response.headers.get("content-type", "html"):
                for chunk in response.iter_bytes():
                    head += chunk
                    if len(head) >= PREFLIGHT_BYTES or time.monotonic() > deadline:
                        break
    except ValueError as exc:
        return PageLook(str(exc), refused=True)
    except FetchRefused as exc:
        return PageLook(f"the URL was refused: {exc}", refused=True)
    except FetchError as exc:
        text = str(exc)
        if text.startswith("HTTP ") and text[5:].isdigit():
            return PageLook(status_reason(int(text[5:])))
        return PageLook(f"the page could not be fetched: {text}")
    except httpx.TimeoutException:
        return PageLook(f"the page did not answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return PageLook(f"the page could not be fetched: {describe(exc)}")
    if _PASSWORD_FIELD.search(head):
        return PageLook("the page requires sign-in (it shows a password field)")
    declared = _HTML_LANG.search(head)
    return PageLook(language=declared.group(1).decode().lower() if declared else None)
