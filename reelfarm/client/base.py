"""What the sync and the async client share: configuration, credentials, building a request."""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from reelfarm.client import resources
from reelfarm.client.core import SESSION_COOKIE, Body, Call, RetryPolicy, same_origin, session_cookie

# Credentials never leave for another origin (a presigned S3 URL).
CREDENTIAL_HEADERS = ("x-api-key", "cookie", "authorization")


def no_cookie_jar() -> CookieJar:
    """The session cookie is kept by the client itself (core.session_cookie), not by a jar."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def default_user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"reelfarm-client/{version('reelfarm')}"
    except PackageNotFoundError:
        return "reelfarm-client"


class ClientBase(resources.Groups):
    http: httpx.Client | httpx.AsyncClient

    def _configure(self, base_url: str, api_key: str | None, timeout: float,
                   max_retries: int, backoff: float, user_agent: str | None) -> dict[str, Any]:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.policy = RetryPolicy(max_retries=max_retries, backoff=backoff)
        headers = {"User-Agent": user_agent or default_user_agent(), "Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._session_token: str | None = None
        resources.Groups.__init__(self)
        return {"base_url": self.base_url, "headers": headers, "timeout": timeout, "cookies": no_cookie_jar()}

    @property
    def session_token(self) -> str | None:
        """The reels_session cookie this client sends (set by auth.login/signup, cleared by logout)."""
        return self._session_token

    @session_token.setter
    def session_token(self, token: str | None) -> None:
        self._session_token = token or None
        if self._session_token:
            self.http.headers["Cookie"] = f"{SESSION_COOKIE}={self._session_token}"
        else:
            self.http.headers.pop("Cookie", None)

    def _session_effect(self, call: Call, response: httpx.Response) -> None:
        if call.session == "keep":
            token = session_cookie(response)
            if token is not None:
                self.session_token = token
        elif call.session == "drop":
            self.session_token = None

    def _build(self, call: Call, body: Body | None, content: Any) -> httpx.Request:
        headers = dict(call.headers or {})
        kwargs: dict[str, Any] = {"params": {k: v for k, v in (call.params or {}).items() if v is not None}}
        if body is not None:
            headers.update(body.headers)
            kwargs["content"] = content
        elif call.json is not None:
            kwargs["json"] = call.json
        if call.timeout is not None:
            kwargs["timeout"] = call.timeout
        request = self.http.build_request(call.method, call.target(), headers=headers, **kwargs)
        if not same_origin(str(request.url), self.http.base_url):
            for name in CREDENTIAL_HEADERS:
                request.headers.pop(name, None)
        return request

    def _stream_timeout(self, read: float | None) -> httpx.Timeout:
        t = self.http.timeout
        return httpx.Timeout(connect=t.connect, read=read, write=t.write, pool=t.pool)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"
