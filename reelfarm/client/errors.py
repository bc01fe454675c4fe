"""The client's one exception: an API error (its status and the body's `error`) or a network failure."""

from __future__ import annotations

from typing import Any


class ReelFarmError(Exception):
    """A request that failed.

    status       the HTTP status, or None when no answer came (connection refused, reset, timed out)
    message      the API's `error` message (or the network error's description)
    body         the parsed JSON body of the answer ({} when there was none or it was not JSON)
    retry_after  seconds the server asked to wait (its Retry-After), if it said
    """

    def __init__(self, message: str, *, status: int | None = None, body: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body if body is not None else {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status is not None else self.message

    def __repr__(self) -> str:
        return f"ReelFarmError(status={self.status!r}, message={self.message!r})"


# The name the first client used (reelfarm render, the tests).
ApiFailure = ReelFarmError
