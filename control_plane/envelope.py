"""The /api/v1 families' response envelope (`{success, message, data}`; errors `{success: false, error}`).

Every other family answers with its document's bare shapes and errors as `{error}`.
"""

from __future__ import annotations

V1_PREFIX = "/api/v1/"


def ok(message: str, data) -> dict:
    """A v1 success: `data` under the envelope."""
    return {"success": True, "message": message, "data": data}


def error_body(path: str, message: str) -> dict:
    """`{error}`, inside the envelope (`success: false`) on /api/v1."""
    if path.startswith(V1_PREFIX):
        return {"success": False, "error": message}
    return {"error": message}
