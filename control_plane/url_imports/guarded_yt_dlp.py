"""yt-dlp with every request it makes going through the address guard (reelfarm/address_guard.py).

yt-dlp has its own HTTP stack (urllib, requests, curl_cffi, websockets), and a page it
reads names further hosts: the video's CDN, manifests, fragments, redirects. Checking only
the page's host would let a page point the server at its own network. So:

- `GuardedYoutubeDL` builds its request director with ONE handler, `GuardedRH`, instead of
  yt-dlp's registered ones: every request yt-dlp makes (pages, API calls, media, HLS/DASH
  fragments) is sent by the guarded httpx transport, which resolves, checks and connects to
  the checked address on every connection, and redirects are followed here, hop by hop,
  each hop checked again. No proxy is used (through a proxy the guard would see the
  proxy's address): environment proxies are turned off, and a request naming one is refused.
- downloads stay in-process: the native downloader for every protocol (never curl, wget,
  aria2c), formats limited to the protocols it fetches through the director (http(s),
  native HLS and DASH), and ffmpeg, should yt-dlp still hand it a stream (an HLS playlist
  the native downloader cannot read), may open local files and pipes only, never a URL.

A refused address becomes a `DownloadRefused` the caller reports as such (yt-dlp's own
error would bury it as "Unable to download webpage: ...").
"""

from __future__ import annotations

import functools
import io
import urllib.request
from email.message import Message

import httpx
import yt_dlp
from yt_dlp.networking.common import RequestHandler, Response
from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError

from reelfarm.address_guard import (
    DEFAULT_MAX_REDIRECTS,
    AddressPolicy,
    FetchRefused,
    check_url_syntax,
    guarded_client,
)

# What the native downloaders fetch through the request director (formats of other protocols,
# rtmp, rtsp, mms, websockets..., would be fetched by another program, or not at all).
PROTOCOL_FILTER = "[protocol~='^(https?|m3u8_native|http_dash_segments)$']"
# ffmpeg as a downloader opens URLs itself: allow it no network protocol at all.
FFMPEG_NO_NETWORK = ["-protocol_whitelist", "file,pipe,crypto,data"]
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class DownloadRefused(RequestError):
    """yt-dlp asked for an address the policy refuses; str() says which and why."""


class _Stream(io.RawIOBase):
    """An httpx streamed response as the file object yt-dlp's Response reads (decoded bytes)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.iter_bytes()
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, amt: int | None = None) -> bytes:
        if amt is None or amt < 0:
            data, self._buffer = self._buffer + b"".join(self._chunks), b""
            self.close()
            return data
        while len(self._buffer) < amt:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:amt], self._buffer[amt:]
        if not data:
            self.close()
        return data

    def close(self) -> None:
        self._response.close()
        super().close()


class _HttpxResponse(Response):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(fp=_Stream(response), url=str(response.url), headers={}, status=response.status_code,
                         reason=response.reason_phrase or None)  # fmt: skip
        decoded = bool(response.headers.get("content-encoding"))
        for name, value in response.headers.multi_items():
            # The body is handed over decoded: its encoding and encoded length no longer apply.
            if decoded and name.lower() in ("content-encoding", "content-length"):
                continue
            self.headers.add_header(name, value)

    def read(self, amt: int | None = None) -> bytes:
        try:
            return super().read(amt)
        except httpx.HTTPError as exc:
            raise TransportError(cause=exc) from exc


class _CookieResponse:
    """What http.cookiejar reads Set-Cookie from (`info()`)."""

    def __init__(self, response: httpx.Response) -> None:
        self._message = Message()
        for value in response.headers.get_list("set-cookie"):
            self._message["Set-Cookie"] = value

    def info(self) -> Message:
        return self._message


class GuardedRH(RequestHandler):
    """A yt-dlp request handler over address_guard's httpx transport (RH_KEY "Guarded")."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")
    _SUPPORTED_PROXY_SCHEMES = ()  # any proxy is refused
    _SUPPORTED_FEATURES = ()

    def __init__(self, *, policy: AddressPolicy, refusals: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.refusals = refusals
        self._client = guarded_client(policy, verify=self._make_sslcontext(),
                                      timeout=httpx.Timeout(self.timeout))  # fmt: skip

    def _check_extensions(self, extensions) -> None:
        super()._check_extensions(extensions)
        for handled in ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing"):
            extensions.pop(handled, None)

    def close(self) -> None:
        self._client.close()

    def _refuse(self, message: str) -> DownloadRefused:
        self.refusals.append(message)
        return DownloadRefused(message)

    def _send(self, request):
        headers = self._get_headers(request)
        jar = self._get_cookiejar(request)
        timeout = self._calculate_timeout(request)
        method, url, data = request.method, request.url, request.data
        for _hop in range(DEFAULT_MAX_REDIRECTS + 1):
            try:
                target = check_url_syntax(url)
            except FetchRefused as exc:
                raise self._refuse(f"{url[:200]!r} refused: {exc}") from None
            cookies = urllib.request.Request(str(target), headers=headers, method=method)
            jar.add_cookie_header(cookies)
            sent = {**headers, **dict(cookies.unredirected_hdrs)}
            try:
                response = self._client.send(self._client.build_request(method, target, headers=sent, content=data,
                                                                        timeout=timeout), stream=True)  # fmt: skip
            except FetchRefused as exc:
                raise self._refuse(str(exc)) from None
            except httpx.HTTPError as exc:
                raise TransportError(cause=exc) from exc
            jar.extract_cookies(_CookieResponse(response), cookies)
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                response.close()
                url = str(target.join(location))
                if response.status_code in (301, 302, 303) and method != "HEAD":
                    # As browsers do: the next hop is a GET without the body.
                    method, data = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
                continue
            adapted = _HttpxResponse(response)
            if not 200 <= response.status_code < 300:
                raise HTTPError(adapted)
            return adapted
        raise RequestError(f"more than {DEFAULT_MAX_REDIRECTS} redirects")


class GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """YoutubeDL whose only way out is GuardedRH; `refusals` lists the addresses it was refused."""

    def __init__(self, params: dict, *, policy: AddressPolicy) -> None:
        self.policy = policy
        self.refusals: list[str] = []
        guarded = {
            "proxy": "",  # no environment proxies
            "external_downloader": {"default": "native"},
            "external_downloader_args": {"ffmpeg_i": FFMPEG_NO_NETWORK},
            "hls_prefer_native": True,
        }
        super().__init__({**params, **guarded})

    def build_request_director(self, handlers, preferences=None):
        return super().build_request_director(
            [functools.partial(GuardedRH, policy=self.policy, refusals=self.refusals)], preferences)


def guarded_format(selector: str) -> str:
    """`selector` with every alternative's every format limited to PROTOCOL_FILTER ("bv*+ba/b")."""
    return "/".join("+".join(part + PROTOCOL_FILTER for part in alternative.split("+"))
                    for alternative in selector.split("/"))  # fmt: skip
