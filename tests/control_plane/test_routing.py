"""PlainRoute: documented like any route, called with the request and path parameters only."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from control_plane.routing import PlainRoute


def test_plain_route_is_documented_and_gets_request_and_path_params():
    router = APIRouter(route_class=PlainRoute)

    @router.get("/things/{thing_id}/parts/{part}", summary="A part")
    async def get_part(request: Request, thing_id: str, part: str) -> JSONResponse:
        return JSONResponse({"thing": thing_id, "part": part, "q": request.query_params.get("q")})

    app = FastAPI()
    app.include_router(router)
    body = TestClient(app).get("/things/t1/parts/p%202?q=x").json()
    assert body == {"thing": "t1", "part": "p 2", "q": "x"}
    operation = app.openapi()["paths"]["/things/{thing_id}/parts/{part}"]["get"]
    assert operation["summary"] == "A part"
    assert {p["name"] for p in operation["parameters"]} == {"thing_id", "part"}


@pytest.mark.parametrize("extra", ["query", "no_request"])
def test_plain_route_refuses_what_it_would_not_run(extra):
    router = APIRouter(route_class=PlainRoute)
    with pytest.raises(TypeError, match="only `request: Request` and path parameters"):
        if extra == "query":

            @router.get("/things/{thing_id}")
            async def with_query(request: Request, thing_id: str, limit: int = 10): ...

        else:

            @router.get("/things/{thing_id}")
            async def without_request(thing_id: str): ...
