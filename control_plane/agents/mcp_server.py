"""The agent (MCP) server: read access to an account's approved ingested assets.

Built on the official MCP Python SDK (`mcp` 2.x, whose high-level server is
`mcp.server.mcpserver.MCPServer`; 1.x called it FastMCP). Two transports, one server:

- stdio (`run_stdio`, `reelfarm mcp`, `python -m control_plane.agents.mcp_server`): the
  API key comes from REELFARM_API_KEY. It is checked at start (a missing, unknown or
  revoked key, or one without `assets:read`, exits with a message on stderr) and again on
  every call, so revoking the key stops a running server.
- streamable HTTP (`mcp_http_app`, served by the control plane at /mcp): the key comes with
  every HTTP request (`Authorization: Bearer rf_live_...` or `X-API-Key`). A missing or
  invalid key is a 401 and a key without `assets:read` a 403, as JSON `{"error": ...}`,
  before the SDK sees the request.

Every tool call resolves the key again, from the request that carries the call (the SDK
hands tools that HTTP request as `ctx.request_context.request`; stdio has none), so
concurrent requests with different keys cannot see each other's account: no shared or
per-task state is involved. Only items whose batch was approved (or distributed) are ever
visible; an unknown id, another account's item and an unapproved one answer alike.

The HTTP transport is stateless with JSON responses: every POST is complete in itself, so
any API process behind a load balancer can answer it, and no lifespan is needed (each
request runs its own short-lived SDK session manager). That keeps /mcp working under
servers that skip the lifespan (the embedded stack runs uvicorn with lifespan="off").
"""

import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from control_plane.accounts import service as accounts
from control_plane.accounts.service import Principal
from control_plane.batches import service as batches
from control_plane.billing.plans import PlanBook, PlansFileError
from control_plane.blobs import service as blobs
from control_plane.deps import api_key_from
from reelfarm.models.accounts import Account
from reelfarm.models.batches import BatchItem
from reelfarm.settings import Settings
from reelfarm.storage import Storage, open_storage

log = logging.getLogger(__name__)

READ_SCOPE = "assets:read"
API_KEY_ENV = "REELFARM_API_KEY"
NOT_FOUND = "asset not found"
MISSING_KEY = "missing API key: send Authorization: Bearer rf_live_... or X-API-Key"
SEARCH_LIMIT_MAX = 100

INSTRUCTIONS = f"""\
Read-only access to one ReelFarm account's approved media assets (ingested batches that a
person reviewed and approved). An item has a category, tags, usage rights and one entry per
platform (tiktok, youtube, instagram, ...) with a caption, a hook and its video, image and/or
audio file. Use search_assets to find items (by tag, category, platform or free text), then
get_asset with an item_id for file metadata and signed download URLs, valid for
{blobs.DOWNLOAD_URL_SECONDS // 60} minutes: fetch them with a plain HTTP GET, no API key.
Respect each item's usage_rights."""

# Every request must carry an API key and no ambient credential (cookie) is accepted, so
# the SDK's Host/Origin (DNS rebinding) checks add nothing here, and they would refuse the
# control plane's real host names. (POST bodies must still be application/json.)
_TRANSPORT_SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)

# Tool parameters, as agents see them.
_TAG = "Only items with this tag (case-insensitive), e.g. 'cats'."
_CATEGORY = "Only items in this category (exact match), e.g. 'pets'."
_PLATFORM = "Only items with an asset for this platform (exact match), e.g. 'tiktok', 'youtube', 'instagram'."
_QUERY = "Free text, matched (case-insensitive substring) against captions, hooks and item refs."
_LIMIT = "Items per page."
_OFFSET = "Items to skip: the next_offset of the previous page."
_ITEM_ID = "An item_id from search_assets, e.g. 'itm_...'."

ApiKeyResolver = Callable[[Context], str | None]


class KeyRefused(Exception):
    """The API key is missing or invalid (401), or lacks assets:read (403)."""

    def __init__(self, status_code: int, message: str, principal: Principal | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.principal = principal


class _NotVisible(Exception):
    """No such item for this caller: unknown, another account's, or not approved."""


def authorize(session: Session, plaintext: str | None, plans: PlanBook) -> Principal:
    """The principal of a key that may read assets (and whose plan has API access); KeyRefused otherwise."""
    if not plaintext:
        raise KeyRefused(401, MISSING_KEY)
    principal = accounts.principal_for_key(session=session, plaintext=plaintext)
    if principal is None:
        raise KeyRefused(401, accounts.INVALID_KEY)
    if not plans.of(principal.account.plan).api_access:
        raise KeyRefused(403, accounts.NO_API_ACCESS, principal)
    if READ_SCOPE not in principal.scopes:
        raise KeyRefused(403, accounts.missing_scope(READ_SCOPE), principal)
    return principal


def http_request_of(ctx: Context) -> Request | None:
    """The HTTP request that carried this MCP message (None on stdio)."""
    try:
        return ctx.request_context.request
    except ValueError:  # called outside of any MCP request
        return None


def http_api_key(ctx: Context) -> str | None:
    """The key sent with the HTTP request that carried this call (streamable HTTP)."""
    request = http_request_of(ctx)
    return api_key_from(request) if request is not None else None


def fixed_api_key(plaintext: str) -> ApiKeyResolver:
    """Every call uses this key (stdio: the key the server was started with)."""
    return lambda _ctx: plaintext


def build_mcp_server(settings: Settings, session_factory: sessionmaker[Session], storage: Storage, *,
                     api_key_resolver: ApiKeyResolver, public_url: str | None = None) -> MCPServer:  # fmt: skip
    """The MCP server with its tools and resource template.

    `api_key_resolver(ctx)` gives the plaintext key for the call in hand (`http_api_key`
    for HTTP, `fixed_api_key(key)` for stdio); it is checked on every call. Download URLs
    start with the calling HTTP request's base URL, else with `public_url` (default: the
    settings' public_url, REELFARM_PUBLIC_URL); on S3 they are presigned S3 URLs.
    """
    fallback_url = (public_url or settings.public_url).strip().rstrip("/")
    plans = PlanBook.from_settings(settings)
    # No subscriptions: the tool and resource lists never change, and a subscriptions/listen
    # stream would only hold an HTTP request open.
    server = MCPServer("reelfarm", title="ReelFarm assets", instructions=INSTRUCTIONS, version=_version(),
                       subscriptions=False)  # fmt: skip
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    def account_for(session: Session, ctx: Context, error: type[Exception]) -> Account:
        try:
            return authorize(session, api_key_resolver(ctx), plans).account
        except KeyRefused as exc:
            raise error(exc.message) from None

    def base_url_for(ctx: Context) -> str:
        request = http_request_of(ctx)
        return str(request.base_url).rstrip("/") if request is not None else fallback_url

    def render_blob(session: Session, account: Account, *, base_url: str | None):
        def render(sha256: str) -> dict:
            asset = blobs.get_asset(session=session, account=account, sha256=sha256)
            if asset is None:  # (a batch only references verified assets of its account)
                return {"sha256": sha256}
            view = blobs.asset_view(session=session, asset=asset, settings=settings, storage=storage,
                                    base_url=base_url or fallback_url, with_urls=base_url is not None)  # fmt: skip
            if base_url is None:  # compact, for listings
                view = {k: view[k] for k in ("sha256", "kind", "format", "content_type", "size_bytes", "metadata")}
            return view

        return render

    def visible_item(session: Session, account: Account, item_id: str, base_url: str) -> dict:
        item = session.get(BatchItem, item_id)
        if item is None or item.account_id != account.id or item.status not in batches.VISIBLE_TO_AGENTS:
            raise _NotVisible(item_id)
        view = batches.item_view(session=session, item=item, blob_view=render_blob(session, account, base_url=base_url))
        view["download_urls_valid_seconds"] = blobs.DOWNLOAD_URL_SECONDS
        return view

    # Tools are plain functions: the SDK runs them in a worker thread (database calls
    # do not block the event loop).
    def search_assets(
        ctx: Context,
        tag: Annotated[str | None, Field(max_length=100, description=_TAG)] = None,
        category: Annotated[str | None, Field(max_length=100, description=_CATEGORY)] = None,
        platform: Annotated[str | None, Field(max_length=50, description=_PLATFORM)] = None,
        query: Annotated[str | None, Field(max_length=200, description=_QUERY)] = None,
        limit: Annotated[int, Field(ge=1, le=SEARCH_LIMIT_MAX, description=_LIMIT)] = 20,
        offset: Annotated[int, Field(ge=0, le=batches.MAX_OFFSET, description=_OFFSET)] = 0,
    ) -> dict[str, Any]:
        """Find approved media items of this ReelFarm account. Filters combine (AND); with none,
        every approved item is listed (in a stable order). Each item has its item_id, category,
        tags, usage_rights and per-platform captions, hooks and file summaries (kind, format,
        size, dimensions/duration), without download URLs: call get_asset(item_id) for those.
        `next_offset` is set when there may be more results."""
        with session_factory() as session:
            account = account_for(session, ctx, ToolError)
            found = batches.find_items(session=session, account=account, statuses=batches.VISIBLE_TO_AGENTS,
                                       tag=tag, category=category, platform=platform, text=query, limit=limit,
                                       offset=offset)  # fmt: skip
            render = render_blob(session, account, base_url=None)
            items = [batches.item_view(session=session, item=item, blob_view=render) for item in found]
        return {"items": items, "count": len(items),
                "next_offset": offset + len(items) if len(items) == limit else None}  # fmt: skip

    def get_asset(
        ctx: Context,
        item_id: Annotated[str, Field(min_length=1, max_length=64, description=_ITEM_ID)],
    ) -> dict[str, Any]:
        """One approved media item with its metadata and, for each platform's video, image and
        audio file, a signed `download_url` (and a `preview_url`, a small preview image, or
        null). The URLs need no API key and expire after `download_urls_valid_seconds`; call
        again for fresh ones. Unknown or not (yet) approved item ids give 'asset not found'."""
        with session_factory() as session:
            account = account_for(session, ctx, ToolError)
            try:
                return visible_item(session, account, item_id, base_url_for(ctx))
            except _NotVisible:
                raise ToolError(NOT_FOUND) from None

    @server.resource("asset://{item_id}", name="asset", title="Approved asset", mime_type="application/json",
                     description="An approved item as get_asset returns it (JSON, signed download URLs).")  # fmt: skip
    def asset_resource(item_id: str, ctx: Context) -> str:
        with session_factory() as session:
            account = account_for(session, ctx, ResourceError)
            try:
                return json.dumps(visible_item(session, account, item_id, base_url_for(ctx)))
            except _NotVisible:
                raise ResourceNotFoundError(NOT_FOUND) from None

    for tool, title in ((search_assets, "Search approved assets"),
                        (get_asset, "Get an approved asset with download URLs")):  # fmt: skip
        # (The SDK would send the docstring with its source indentation.)
        server.add_tool(tool, title=title, description=inspect.cleandoc(tool.__doc__), annotations=read_only)
    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reelfarm")
    except PackageNotFoundError:
        return "0"


# ------------------------------------------------------------------ streamable HTTP


class McpHttpApp:
    """ASGI app for /mcp: checks the request's API key, then lets the SDK answer it.

    A class, not a function: Starlette serves a plain function endpoint as a GET-only
    request/response view, an object with __call__ as a raw ASGI app (every method).
    """

    def __init__(self, server: MCPServer, session_factory: sessionmaker[Session], plans: PlanBook) -> None:
        self.server = server
        self.session_factory = session_factory
        self.plans = plans
        # The SDK's session manager drives the low-level server; MCPServer keeps it in a
        # private attribute (its own streamable_http_app() reads it the same way).
        self._lowlevel = server._lowlevel_server

    def _authorize(self, plaintext: str | None) -> Principal:
        with self.session_factory() as session:
            return authorize(session, plaintext, self.plans)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            principal = await run_in_threadpool(self._authorize, api_key_from(HTTPConnection(scope)))
        except KeyRefused as exc:
            self._echo_scopes(scope, exc.principal)
            headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
            await JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=headers)(scope, receive, send)
            return
        self._echo_scopes(scope, principal)
        if scope["method"] != "POST":
            # Stateless: no session to end (DELETE) and nothing to push on a standalone
            # stream (GET, which would stay open for nothing). The spec's answer is a 405.
            await JSONResponse({"error": "method not allowed: MCP messages are POSTed to this URL"}, status_code=405,
                               headers={"Allow": "POST"})(scope, receive, send)  # fmt: skip
            return
        # Stateless: a fresh manager (and transport) per request, nothing kept between them.
        manager = StreamableHTTPSessionManager(app=self._lowlevel, stateless=True, json_response=True,
                                               security_settings=_TRANSPORT_SECURITY)  # fmt: skip
        async with manager.run():
            await manager.handle_request(scope, receive, send)

    @staticmethod
    def _echo_scopes(scope: Scope, principal: Principal | None) -> None:
        """Let the control plane's ScopesHeaderMiddleware echo the key's scopes, as on /api."""
        if principal is not None:
            scope.setdefault("state", {})["api_scopes"] = " ".join(principal.scopes)


def mcp_http_app(settings: Settings, session_factory: sessionmaker[Session], storage: Storage) -> McpHttpApp:
    """The streamable HTTP endpoint, an ASGI app for the control plane to route /mcp to.

    Needs no lifespan. Route it at the exact path (a Mount would make clients that POST
    to /mcp follow a redirect to /mcp/).
    """
    # The SDK logs every session manager start and stop at INFO: here that is every request.
    for name in ("mcp.server.streamable_http_manager", "mcp.server.streamable_http"):
        sdk_log = logging.getLogger(name)
        if sdk_log.level == logging.NOTSET:
            sdk_log.setLevel(logging.WARNING)
    server = build_mcp_server(settings, session_factory, storage, api_key_resolver=http_api_key)
    return McpHttpApp(server, session_factory, PlanBook.from_settings(settings))


# ------------------------------------------------------------------ stdio


def _exit(message: str) -> NoReturn:
    print(f"reelfarm mcp: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _existing_database(settings: Settings) -> sessionmaker[Session]:
    """The settings' database as it is: a reader does not create or migrate it."""
    from reelfarm.database import make_engine, make_session_factory

    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).is_file():
            _exit(f"no ReelFarm database at {path} (set REELFARM_DATA_DIR or REELFARM_DATABASE_URL)")
    return make_session_factory(make_engine(url))


def run_stdio(settings: Settings, *, api_key: str | None = None, public_url: str | None = None) -> None:
    """Serve MCP over stdin/stdout until the client closes it (`reelfarm mcp`).

    The key is `api_key` or REELFARM_API_KEY (the agent's credential, not a server setting);
    download URLs start with `public_url` or the settings' (REELFARM_PUBLIC_URL), the
    control plane's address as the agent reaches it. Exits with status 2 and a message on stderr when the key is
    missing, unknown, revoked, lacks assets:read or its plan has no API access, or the database cannot be read.
    Nothing but MCP messages is written to stdout.
    """
    from sqlalchemy.exc import SQLAlchemyError

    key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
    if not key:
        _exit(f"{API_KEY_ENV} is not set: create a key with the assets:read scope and pass it in that variable")
    try:
        plans = PlanBook.from_settings(settings)
    except PlansFileError as exc:
        _exit(str(exc))
    session_factory = _existing_database(settings)
    try:
        with session_factory() as session:
            principal = authorize(session, key, plans)
            account_name = principal.account.name
    except KeyRefused as exc:
        _exit(f"{API_KEY_ENV} refused: {exc.message}")
    except SQLAlchemyError as exc:
        _exit(f"cannot read the ReelFarm database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    server = build_mcp_server(settings, session_factory, open_storage(settings), api_key_resolver=fixed_api_key(key),
                              public_url=public_url)  # fmt: skip
    log.info("serving MCP over stdio for account %r", account_name)
    server.run("stdio")

