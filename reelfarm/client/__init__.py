"""The typed Python client of the ReelFarm API: ReelFarm (blocking) and AsyncReelFarm (asyncio).

    from reelfarm.client import ReelFarm, ReelFarmError

    with ReelFarm("http://127.0.0.1:8000", api_key) as rf:
        created = rf.uploads.upload(Path("talk.mp4"), {"numClips": 3}, on_progress=lambda s, t: ...)
        job = rf.jobs.wait(created.job_id, timeout=900, on_progress=print)   # server-sent events
        if job.status == "completed":
            rf.clips.download(created.job_id, Path("out"))                   # SHA-256 checked

Resource groups, one method per route (resources.py; client_routes() lists them): auth, keys,
members, billing, uploads, jobs, clips, videos, blobs, batches, assets, campaigns, webhooks,
dev, and health()/ready(). Requests that are refused (429, 503) or lost on the way (502, 504,
a network error) are sent again after the server's Retry-After or an exponential backoff, as
far as each request is safe to repeat (core.py). Errors are ReelFarmError: .status, .message
(the API's `error`), .body, .retry_after.

ReelFarmClient and ApiFailure are the first client's names (compat.py).
"""

from reelfarm.client.aio import AsyncReelFarm
from reelfarm.client.compat import TERMINAL, ReelFarmClient
from reelfarm.client.core import Downloaded, RetryPolicy
from reelfarm.client.errors import ApiFailure, ReelFarmError
from reelfarm.client.models import validate_strict
from reelfarm.client.resources import OUTSIDE_SCHEMA, client_routes
from reelfarm.client.sync import ReelFarm

__all__ = [
    "OUTSIDE_SCHEMA",
    "TERMINAL",
    "ApiFailure",
    "AsyncReelFarm",
    "Downloaded",
    "ReelFarm",
    "ReelFarmClient",
    "ReelFarmError",
    "RetryPolicy",
    "client_routes",
    "validate_strict",
]
