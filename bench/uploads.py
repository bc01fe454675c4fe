"""Sending one large video to the API three ways, against the same running API, each against curl in the same run.

One source file (default ~256 MiB: a few seconds of 1080p30 testsrc2 with grain encoded at a high
bitrate, then stream-copied in a loop to --seconds, so ffprobe sees a real video), made once and
sent each round, in this order, to one embedded stack (API + scheduler + one Ray render node
actor, SQLite, local storage; `reelfarm.embedded.EmbeddedStack`, as tests/conftest.py starts it):
  1. baseline: `curl -F options=... -F video=@FILE $URL/api/upload` (one streamed multipart POST);
  2. the Python client, `ReelFarm(url, api_key=...).uploads.upload(path, options, on_progress=...)`;
  3. the dashboard's resumable protocol (control_plane/dashboard/resumable.py, as static/upload.js
     speaks it): POST /dashboard/uploads, then a PUT per chunk with Content-Range, over one
     keep-alive connection, with the signed-in session cookie and the CSRF token of the upload
     page; once per --chunk-mib size (8 MiB is what the page suggests).
The Python client and the chunked uploader run in child processes (this file, hidden flags), so
neither shares the API process's GIL; their time is taken from just before the first request to
the answer with the job (imports excluded); curl's around the subprocess.

Each upload makes a job: the options are {"mode": "none", "trimEnd": 1} (one 1 s clip) and the job
is cancelled (POST /api/v1/jobs/{id}/cancel) as soon as the upload answers, then the bench waits
for it to end before the next upload, so no render work overlaps a timed upload.

Before each upload the bench calls os.sync() and waits 0.5 s (untimed; --no-sync to skip), and
the order of the ways rotates from round to round.

Also recorded: the peak RSS of the API process (this process: the API, the scheduler and the
Ray driver; the render node is a Ray worker process) sampled every 50 ms during each upload,
and, for the chunked path, the client-side time of each PUT and the server-side time of the
step after the last byte (media_pages._finish, timed by a wrapper installed in this process:
copying the spool into storage, hashing, probing, the video and job rows).

Run (Ray binds every interface, so inside a private network namespace):
    RAY_AUTH_MODE=disabled unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/uploads.py --chunk-mib 8 32 128'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1_000_000
MIB = 1 << 20
OPTIONS = {"mode": "none", "trimEnd": 1}
EMAIL, PASSWORD = "bench-uploads@example.com", "correct horse battery staple"


# ------------------------------------------------------------------ the source video


def make_source(path: Path, mib: float, seconds: float) -> None:
    """A real, probeable MP4 of about `mib` MiB: 4 s encoded at the bitrate that gives that size
    over `seconds`, then looped by stream copy (fast: one short encode)."""
    bitrate = int(mib * MIB * 8 / seconds * 0.97)  # leave room for the audio and the container
    seed = path.with_name("seed.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=4",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
                    "-vf", "noise=alls=40:allf=t+u", "-c:v", "libx264", "-preset", "ultrafast",
                    "-b:v", str(bitrate), "-maxrate", str(bitrate), "-bufsize", str(bitrate),
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(seed)], check=True)  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(seed), "-t", str(seconds),
                    "-c", "copy", "-movflags", "+faststart", str(path)], check=True)  # fmt: skip
    seed.unlink()


# ------------------------------------------------------------------ the three ways (curl here, the others in children)


def via_curl(url: str, key: str, source: Path) -> dict:
    t = time.monotonic()
    done = subprocess.run(["curl", "-sS", "--fail-with-body", "-H", f"X-API-Key: {key}",
                           "-F", f"options={json.dumps(OPTIONS)}", "-F", f"video=@{source};type=video/mp4",
                           f"{url}/api/upload"], capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.monotonic() - t
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr[-500:]} {done.stdout[-500:]}")
    return {"wall_s": wall, "job_id": json.loads(done.stdout)["jobId"]}


def child_client(url: str, key: str, source: Path) -> dict:
    from reelfarm.client import ReelFarm

    calls = [0]

    def progress(sent: int, total: int) -> None:
        calls[0] += 1

    with ReelFarm(url, api_key=key) as rf:
        t = time.monotonic()
        created = rf.uploads.upload(source, OPTIONS, on_progress=progress)
        wall = time.monotonic() - t
    return {"wall_s": wall, "job_id": created.job_id, "progress_calls": calls[0]}


def child_resumable(url: str, source: Path, chunk: int, cookies: dict, csrf: str) -> dict:
    """What static/upload.js does, minus the browser: POST the upload, PUT the chunks in order
    (each read from the file as Blob.slice gives it to XHR), retrying on 409/429/503 as it does."""
    import httpx

    size = source.stat().st_size
    puts: list[float] = []
    retries = 0
    with httpx.Client(base_url=url, cookies=cookies, headers={"X-CSRF-Token": csrf}, timeout=600) as http, \
            source.open("rb") as fh:  # fmt: skip
        t = time.monotonic()
        created = http.post("/dashboard/uploads", json={"filename": source.name, "size": size, "options": OPTIONS})
        if created.status_code != 201:
            raise RuntimeError(f"POST /dashboard/uploads: {created.status_code} {created.text[:500]}")
        state = created.json()
        create_s = time.monotonic() - t
        upload = f"/dashboard/uploads/{state['upload_id']}"
        while not state["complete"]:
            start = state["offset"]
            if start >= size:
                headers, body = {"Content-Range": f"bytes */{size}"}, b""
            else:
                end = min(start + chunk, size)
                fh.seek(start)
                body = fh.read(end - start)
                headers = {"Content-Range": f"bytes {start}-{end - 1}/{size}"}
            # The body in 1 MiB pieces with its Content-Length (as a browser streams a Blob slice):
            # httpx given one large bytes object sends it at ~140 MB/s here (its socket write
            # re-slices the rest of the buffer after each send), against ~950 MB/s in pieces.
            headers["Content-Length"] = str(len(body))
            pieces = (body[i : i + MIB] for i in range(0, len(body), MIB))
            p = time.monotonic()
            answer = http.put(upload, content=pieces, headers=headers)
            puts.append(time.monotonic() - p)
            if answer.status_code in (409, 429, 503):
                retries += 1
                if answer.status_code == 409 and "offset" in answer.json():
                    state["offset"] = answer.json()["offset"]
                else:
                    time.sleep(float(answer.headers.get("Retry-After", "1")))
                continue
            if answer.status_code != 200:
                raise RuntimeError(f"PUT {headers}: {answer.status_code} {answer.text[:500]}")
            state = answer.json()
        wall = time.monotonic() - t
    return {"wall_s": wall, "job_id": state["job_id"], "create_s": create_s, "puts": puts, "retries": retries}


def run_child(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"child {argv[:2]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the API process's memory


class RssSampler:
    """This process's RSS every 50 ms; `peak` since the last `reset`."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="rss", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            rss = self.proc.memory_info().rss
            with self._lock:
                self.peak = max(self.peak, rss)

    def reset(self) -> int:
        rss = self.proc.memory_info().rss
        with self._lock:
            self.peak = rss
        return rss

    def stop(self) -> None:
        self._stop.set()


def install_timers(finish_log: list[float], append_log: list[float]) -> None:
    """Time the chunked path server-side: media_pages._append (receiving a chunk's body into the
    spool) and _finish (the step after the last byte). Both are looked up by name at each call,
    so wrapping them here changes nothing else."""
    from control_plane.dashboard import media_pages

    finish, append = media_pages._finish, media_pages._append

    def timed_finish(*args, **kwargs):
        t = time.monotonic()
        try:
            return finish(*args, **kwargs)
        finally:
            finish_log.append(time.monotonic() - t)

    async def timed_append(*args, **kwargs):
        t = time.monotonic()
        try:
            return await append(*args, **kwargs)
        finally:
            append_log.append(time.monotonic() - t)

    media_pages._finish, media_pages._append = timed_finish, timed_append


# ------------------------------------------------------------------ main


def sign_in(url: str, session_factory) -> tuple[str, dict, str, int]:
    """A signed-up user (the dashboard's cookie and CSRF token) and an API key of the same
    workspace, moved to the enterprise plan (no monthly video quota)."""
    import httpx

    from control_plane.accounts import service as accounts
    from reelfarm.database import session_scope
    from reelfarm.models.accounts import Account

    with httpx.Client(base_url=url, timeout=30) as http:
        me = http.post("/api/auth/signup", json={"email": EMAIL, "password": PASSWORD, "accountName": "bench"})
        if me.status_code != 201:
            raise RuntimeError(f"signup: {me.status_code} {me.text[:500]}")
        account_id = me.json()["accountId"]
        with session_scope(session_factory) as session:
            account = session.get(Account, account_id)
            account.plan = "enterprise"
            key = accounts.create_api_key(session=session, account=account, name="bench")
        page = http.get("/dashboard/upload")
        if page.status_code != 200:
            raise RuntimeError(f"GET /dashboard/upload: {page.status_code} {page.text[:500]}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        suggested = int(re.search(r'data-chunk-bytes="(\d+)"', page.text).group(1))
        return key, dict(http.cookies), csrf, suggested


def end_job(url: str, key: str, job_id: str) -> str:
    """Cancel the upload's job and wait until it has ended (no render work under the next upload)."""
    import httpx

    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as http:
        cancelled = http.post(f"/api/v1/jobs/{job_id}/cancel")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = http.get(f"/api/jobs/{job_id}").json()["status"]
            if status in ("completed", "failed", "cancelled"):
                return status
            time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not end after cancel ({cancelled.status_code} {cancelled.text[:200]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=float, default=256.0, help="size of the source video (MiB)")
    parser.add_argument("--seconds", type=float, default=90.0, help="its length (s)")
    parser.add_argument(
        "--chunk-mib",
        type=float,
        nargs="+",
        default=[8.0],
        help="chunk sizes of the resumable path (MiB; the page suggests 8)",
    )
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="do not os.sync() (untimed) before each upload: dirty pages of one upload slow the next",
    )
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        kind, url, *rest = args._child
        if kind == "client":
            out = child_client(url, rest[0], Path(rest[1]))
        else:
            out = child_resumable(url, Path(rest[0]), int(rest[1]), json.loads(rest[2]), rest[3])
        print(json.dumps(out))
        return

    from reelfarm.embedded import EmbeddedStack
    from reelfarm.quiet import quiet_env
    from reelfarm.settings import load_settings

    quiet_env()
    tmp = Path(tempfile.mkdtemp(prefix="rf-bench-uploads-"))
    stack = None
    sampler = None
    try:
        source = tmp / "source.mp4"
        t = time.monotonic()
        make_source(source, args.mib, args.seconds)
        size = source.stat().st_size
        print(f"source: {size / MIB:.1f} MiB, {args.seconds:g} s 1080p30 ({size * 8 / args.seconds / MB:.1f} Mbit/s),"
              f" made in {time.monotonic() - t:.1f} s", flush=True)  # fmt: skip

        settings = load_settings(data_dir=tmp / "data", scheduler_metrics_port=0,
                                 max_upload_bytes=max(1 << 30, 2 * size))  # fmt: skip
        finish_log: list[float] = []
        append_log: list[float] = []
        install_timers(finish_log, append_log)
        t = time.monotonic()
        stack = EmbeddedStack(settings, nodes=1, port=0, ray_log_to_driver=False, verbose=False,
                              deliver_webhooks=False).start()  # fmt: skip
        url = stack.base_url
        key, cookies, csrf, suggested = sign_in(url, stack.session_factory)
        print(f"embedded stack (Ray, 1 node) up in {time.monotonic() - t:.1f} s at {url}; the upload page suggests"
              f" {suggested / MIB:g} MiB chunks; {os.cpu_count()} CPUs, load average"
              f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
        sampler = RssSampler()

        warm = via_curl(url, key, source)  # untimed: the first store of the blob, cold caches
        end_job(url, key, warm["job_id"])
        ways = [("curl", None), ("client", None)] + [("resumable", int(c * MIB)) for c in args.chunk_mib]
        rows: dict[str, list[dict]] = {}
        for r in range(args.rounds):
            for kind, chunk in ways[r % len(ways) :] + ways[: r % len(ways)]:  # a different order each round
                name = kind if chunk is None else f"{kind} {chunk / MIB:g} MiB"
                if not args.no_sync:
                    os.sync()  # untimed: every upload starts with no dirty pages left by the one before
                    time.sleep(0.5)
                finish_log.clear()
                append_log.clear()
                before = sampler.reset()
                if kind == "curl":
                    out = via_curl(url, key, source)
                elif kind == "client":
                    out = run_child(["--_child", "client", url, key, str(source)])
                else:
                    out = run_child(["--_child", "resumable", url, str(source), str(chunk), json.dumps(cookies), csrf])
                out["rss_before"], out["rss_peak"] = before, sampler.peak
                if finish_log:
                    out["finish_s"] = finish_log[-1]
                    out["appends"] = list(append_log)
                out["ended"] = end_job(url, key, out["job_id"])
                rows.setdefault(name, []).append(out)
                extra = ""
                if "puts" in out:
                    body = out["puts"][:-1] or [0.0]
                    extra = (f"  {len(out['puts'])} PUTs (median {statistics.median(body) * 1000:.0f} ms,"
                             f" server _append median {statistics.median(out['appends']) * 1000:.0f} ms;"
                             f" last {out['puts'][-1]:.2f} s, of which _finish {out.get('finish_s', 0):.2f} s),"
                             f" retries {out['retries']}")  # fmt: skip
                print(f"round {r + 1} {name:<20} {out['wall_s']:6.2f} s  {size / out['wall_s'] / MB:6.0f} MB/s"
                      f"  RSS {before / MIB:.0f} -> peak {out['rss_peak'] / MIB:.0f} MiB  job {out['ended']}{extra}",
                      flush=True)  # fmt: skip
            leftovers = list((settings.resolved_work_dir / "dashboard-uploads").glob("*.part"))
            if leftovers:
                print(f"  spool leftovers: {leftovers}", flush=True)

        med = statistics.median
        base = med(o["wall_s"] for o in rows["curl"])
        print(f"\nmedians of {args.rounds} rounds, {size / MIB:.1f} MiB:")
        print(f"{'':<22}{'wall':>9}{'MB/s':>7}{'x curl':>8}{'RSS peak - before':>19}"
              f"   _finish median [min-max]   wall without _finish")  # fmt: skip
        for name, outs in rows.items():
            wall = med(o["wall_s"] for o in outs)
            growth = med((o["rss_peak"] - o["rss_before"]) / MIB for o in outs)
            peak = max(o["rss_peak"] for o in outs) / MIB
            tail = ""
            if "finish_s" in outs[0]:
                fin = [o["finish_s"] for o in outs]
                rest = med(o["wall_s"] - o["finish_s"] for o in outs)
                tail = f"   {med(fin):.2f} s [{min(fin):.2f}-{max(fin):.2f}]    {rest:.2f} s (x{rest / base:.2f} curl)"
            print(f"{name:<22}{wall:8.2f}s{size / wall / MB:7.0f}{wall / base:7.2f}x"
                  f"{growth:+10.0f} MiB ({peak:.0f}){tail}")  # fmt: skip
            if "puts" in outs[0]:
                body = [p for o in outs for p in o["puts"][:-1]]
                if body:
                    print(f"{'':<22}per chunk PUT: median {med(body) * 1000:.0f} ms"
                          f" ({chunk_mib(name) * MIB / med(body) / MB:.0f} MB/s), of which in _append (receiving"
                          f" into the spool) {med(a for o in outs for a in o['appends']) * 1000:.0f} ms,"
                          f" POST create {med(o['create_s'] for o in outs) * 1000:.0f} ms")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps({"size": size, "rows": rows}, indent=2))
    finally:
        if sampler:
            sampler.stop()
        if stack:
            stack.stop()
            stack.session_factory.kw["bind"].dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def chunk_mib(name: str) -> float:
    return float(name.split()[1])


if __name__ == "__main__":
    main()
