"""A small HTTP client for the public API (used by `reelfarm render` and the tests)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from reelfarm.states import JOB_MACHINE

TERMINAL = JOB_MACHINE.terminal


class ApiFailure(Exception):
    pass


class ReelFarmClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> dict:
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ApiFailure(f"{response.status_code}: {message}")
        return response.json()

    def upload(self, path: Path, options: dict) -> dict:
        with path.open("rb") as fh:
            response = self.http.post(
                "/api/upload", files={"video": (path.name, fh, "application/octet-stream")},
                data={"options": json.dumps(options)},
            )
        return self._json(response)

    def job(self, job_id: str) -> dict:
        return self._json(self.http.get(f"/api/jobs/{job_id}"))

    def wait(self, job_id: str, on_update: Callable[[dict], None] | None = None, poll: float = 0.25,
             timeout: float | None = None) -> dict:
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
        """Follow the job's server-sent events (GET /api/v1/jobs/{id}/events) until it ends; returns
        its last event ({job_id, status, current_stage, progress_percent, error})."""
        with self.http.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
            if response.status_code >= 400:
                response.read()
                self._json(response)
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:") and event == "job":
                    job = json.loads(line.removeprefix("data:"))
                    if on_update:
                        on_update(job)
                    if job["status"] in TERMINAL:
                        return job
        raise ApiFailure(f"the event stream of job {job_id} ended before the job did")

    def manifest(self, job_id: str) -> dict:
        return self._json(self.http.get(f"/api/clips/{job_id}"))

    def download_all(self, job_id: str, out_dir: Path) -> dict:
        """Download every artifact, check each SHA-256 against the manifest, write manifest.json."""
        manifest = self.manifest(job_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        for clip in manifest["clips"]:
            for entry in clip["files"]:
                target = out_dir / entry["filename"]
                digest = hashlib.sha256()
                with self.http.stream("GET", f"/api/clips/{job_id}/{entry['filename']}") as response:
                    if response.status_code != 200:
                        raise ApiFailure(f"{response.status_code} downloading {entry['filename']}")
                    with target.open("wb") as fh:
                        for chunk in response.iter_bytes(1 << 20):
                            digest.update(chunk)
                            fh.write(chunk)
                if digest.hexdigest() != entry["sha256"]:
                    raise ApiFailure(f"{entry['filename']}: SHA-256 does not match the manifest")
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return manifest
