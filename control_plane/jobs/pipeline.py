"""Is there a pipeline to run a new job? Checked before anything is stored or created.

The API never talks to the scheduler or the nodes: it reads the nodes the scheduler has
published (reelfarm/nodes.py, table node_heartbeats). With none seen within
`node_timeout_seconds` (no node registered, all of them gone, or the scheduler stopped)
a job-creating request answers 503 `Pipeline unavailable` (001's error table) instead
of making a job that would wait forever.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from control_plane.deps import SessionDep, SettingsDep
from control_plane.errors import ApiError
from reelfarm import nodes

PIPELINE_UNAVAILABLE = "Pipeline unavailable"
# Seconds a client is told to wait before trying again (a node registers within a heartbeat).
RETRY_AFTER_SECONDS = 5


def require_pipeline(session: SessionDep, settings: SettingsDep) -> None:
    if not nodes.any_live_node(session, settings.node_timeout_seconds):
        raise ApiError(503, PIPELINE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


# Put it after the route's account parameter: a caller who may not submit learns that first (401/403).
PipelineReady = Annotated[None, Depends(require_pipeline)]
