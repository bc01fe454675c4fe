"""The /api/v1 families' response envelope (`{success, message, data}`; errors `{success: false, error}`).

The dev API's errors add the code its document (002) names for the status (`bad_request`,
`not_found`, `server_error`, ...). Every other family answers with its document's bare
shapes and errors as `{error}`.
"""

from __future__ import annotations

from http import HTTPStatus

V1_PREFIX = "/api/v1/"
DEV_PREFIX = "/api/dev/"


def ok(message: str, data) -> dict:
    """A v1 success: `data` under the envelope."""
    return {"success": True, "message": message, "data": data}


def error_code(status: int) -> str:
    """The dev API's code for a status: 400 bad_request, 404 not_found, 500 server_error..."""
    if status >= 500 and status != 503:
        return "server_error"
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "bad_request" if status < 500 else "server_error"


def error_body(path: str, message: str, status: int) -> dict:
    """`{error}`, inside the envelope (`success: false`) on /api/v1, with a `code` on /api/dev."""
    if path.startswith(V1_PREFIX):
        return {"success": False, "error": message}
    if path.startswith(DEV_PREFIX):
        return {"error": message, "code": error_code(status)}
    return {"error": message}
