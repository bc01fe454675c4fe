"""GET /ws?jobId=: the reels API's WebSocket, pushing status, stage and progress."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from control_plane.accounts.service import require_scope
from control_plane.deps import principal_from
from control_plane.errors import ApiError
from control_plane.jobs import service, shapes
from control_plane.jobs.events import job_updates

router = APIRouter(tags=["reels"])


@router.websocket("/ws")
async def job_socket(websocket: WebSocket, jobId: str = ""):
    """Same auth as the REST API (cookie, X-API-Key or Bearer) and job ownership; another
    account's job is refused exactly like a missing one (HTTP 404 on the handshake)."""
    factory = websocket.app.state.session_factory
    try:
        with factory() as session:
            principal = principal_from(websocket, session)
            require_scope(principal, "jobs:read")
            service.get_job(session=session, account=principal.account, job_id=jobId)
    except ApiError as exc:
        await websocket.send_denial_response(
            JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=exc.headers)
        )
        return
    await websocket.accept()
    try:
        async for update in job_updates(factory, jobId):
            if update is not None:
                await websocket.send_json(shapes.reels_update(update))
        await websocket.close()
    except WebSocketDisconnect:
        pass
