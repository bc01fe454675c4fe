"""The dashboard: server-rendered pages under /dashboard over the API's services.

`install(app)` adds the static files (htmx, vendored with its licence; the stylesheet),
the page routers, and HTML error pages for /dashboard paths (the API keeps its JSON errors).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.dashboard import pages
from control_plane.dashboard.web import PREFIX, LoginRequired, login_redirect, render
from control_plane.errors import ApiError

STATIC_DIR = Path(__file__).parent / "static"


def _is_page(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def install(app: FastAPI) -> None:
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    for router in pages.ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(PREFIX, status_code=307)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired):
        if request.headers.get("hx-request"):  # htmx swaps fragments: send the whole page to the login
            return Response(status_code=200, headers={"HX-Redirect": f"{PREFIX}/login"})
        return login_redirect(exc.next_path)

    # The API's JSON errors stay for /api; pages get the same message as an HTML page.
    for exc_class in (ApiError, StarletteHTTPException, RequestValidationError):
        _wrap_handler(app, exc_class)


def _wrap_handler(app: FastAPI, exc_class: type[Exception]) -> None:
    json_handler = app.exception_handlers[exc_class]

    async def handler(request: Request, exc: Exception):
        if not _is_page(request):
            return await json_handler(request, exc)
        if isinstance(exc, ApiError):
            status, message, headers = exc.status_code, exc.message, exc.headers
        elif isinstance(exc, StarletteHTTPException):
            status, headers = exc.status_code, exc.headers
            message = exc.detail if isinstance(exc.detail, str) else "request failed"
        else:
            status, message, headers = 400, "the form was not filled in correctly", None
        response = render(request, "error.html", status_code=status, status=status, message=message)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    app.add_exception_handler(exc_class, handler)
