"""ReelFarmClient: the first client's interface (dicts in the reels API's wire shape), kept for
`reelfarm render`, the benches and the tests that use it. New code uses ReelFarm."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reelfarm.client import models as m
from reelfarm.client.core import Call
from reelfarm.client.errors import ReelFarmError
from reelfarm.client.sync import ReelFarm
from reelfarm.states import JOB_MACHINE

TERMINAL = JOB_MACHINE.terminal


class ReelFarmClient(ReelFarm):
    """ReelFarm, plus the first client's methods, which answer the API's JSON as dicts."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0, **kw: Any) -> None:
        super().__init__(base_url, api_key, timeout=timeout, **kw)

    def upload(self, path: Path, options: dict | None = None) -> dict:
        """POST /api/upload: {jobId, originalName, sizeBytes, wsUrl, options}."""
        return self.uploads.upload(path, options).model_dump(by_alias=True)

    def job(self, job_id: str) -> dict:
        """GET /api/jobs/{id}, as sent."""
        return self._run(Call("GET", "/api/jobs/{job_id}", {"job_id": job_id}))

    def wait(self, job_id: str, on_update: Callable[[dict], None] | None = None, poll: float = 0.25,
             timeout: float | None = None) -> dict:  # fmt: skip
        """Poll GET /api/jobs/{id} until the job ends; its last state (TimeoutError after `timeout`)."""
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            job = self.job(job_id)
            if on_update:
                on_update(job)
            if job["status"] in TERMINAL:
                return job
            if deadline and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll)

    def follow(self, job_id: str, on_update: Callable[[dict], None] | None = None) -> dict:
        """Follow the job's server-sent events until it ends; its last event as a dict
        ({job_id, status, current_stage, progress_percent, error})."""
        last: m.JobEvent | None = None
        for event in self.jobs.events(job_id):
            last = event
            if on_update:
                on_update(event.model_dump())
            if event.finished:
                return event.model_dump()
        raise ReelFarmError(f"the event stream of job {job_id} ended before the job did"
                            + (f" (last {last.status})" if last else ""))  # fmt: skip

    def manifest(self, job_id: str) -> dict:
        return self._run(Call("GET", "/api/clips/{job_id}", {"job_id": job_id}))

    def download_all(self, job_id: str, out_dir: Path) -> dict:
        """Download every artifact, check each SHA-256 against the manifest, write manifest.json."""
        return self.clips.download(job_id, out_dir).model_dump(by_alias=True)


__all__ = ["TERMINAL", "ReelFarmClient"]
