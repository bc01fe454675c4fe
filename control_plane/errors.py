"""Every error leaves the API as JSON with an `error` field; never an HTML page or a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.envelope import error_body

log = logging.getLogger(__name__)


class ApiError(Exception):
    """`extra` fields join `error` in the body (e.g. per-item `errors` of a rejected batch)."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None,
                 extra: dict | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers
        self.extra = extra


def _format_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        body = {**error_body(request.url.path, exc.message, exc.status_code), **(exc.extra or {})}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        body = error_body(request.url.path, message, exc.status_code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse(error_body(request.url.path, _format_validation(exc), 400), status_code=400)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError):
        # The database refused a value the request carried (PostgreSQL rejects NUL characters
        # in text, numbers beyond a column's range): bad input, and nothing was committed.
        log.info("database refused a request value: %s", exc.orig)
        message = "text may not contain NUL (0x00) characters" if "NUL" in str(exc.orig) else "invalid value"
        return JSONResponse(error_body(request.url.path, message, 400), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        return JSONResponse(error_body(request.url.path, "internal server error", 500), status_code=500)
