"""PlainRoute: for the endpoints clients poll, FastAPI's documentation without its per-request cost.

A PlainRoute is documented from its endpoint's signature like any APIRoute, but at run
time the endpoint is called as `endpoint(request=request, **path_params)`: no dependency
solving and no response validation; it returns a Response and does its own auth. In
bench/api.py's in-process timing a job-status request cost ~78 us through an ordinary
route in an included router and ~48 us as a PlainRoute, against ~43 us for a bare FastAPI
hello: FastAPI's dependency solving and its nested-router matching were the difference.

Because dependencies would silently not run, an endpoint that declares anything besides
the Request and path parameters is refused when the route is built.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class PlainRoute(APIRoute):
    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        dependant = self.dependant
        declared = (dependant.query_params, dependant.header_params, dependant.cookie_params, dependant.body_params,
                    dependant.dependencies)  # fmt: skip
        if any(declared) or dependant.request_param_name != "request":
            raise TypeError(f"PlainRoute {path}: the endpoint may take only `request: Request` and path parameters")

    def get_route_handler(self):
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            return await endpoint(request=request, **request.path_params)

        return handle
