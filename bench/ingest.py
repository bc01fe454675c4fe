"""Content-addressed ingest benchmark (issue 5), against a baseline measured in the same run.

I1  Upload + verify of a 2 GiB video blob through the control plane (local storage, the
    embedded default): POST /api/v1/blobs/upload_urls, then `curl -X PUT --upload-file` of
    the file to the returned URL (as the document's flow does; curl costs little CPU next
    to the server); timed from the PUT's first byte to its 200 "verified" answer (the body
    hashed as it is written, size and SHA-256 checked, format sniffed, ffprobe'd, poster
    made, stored by hash, rows written). Baseline: `sha256sum` of the same file, in the
    same run. Target: sha256sum seconds / upload+verify seconds >= 0.8.
I2  Peak RSS of the API process during those uploads (sampled every 50 ms). Target <= 150 MB.

The file is a real MP4 (a few seconds of ffmpeg's test pattern) followed by a 64-bit
`free` box filling it to the size with random bytes: a valid video to every reader, cheap
to make. Each round rewrites its last 8 bytes, so every upload is new content (no dedup).
Rounds alternate baseline/upload; medians are reported. The file is read from the page
cache by both (each reads it once right before it is timed).

Run:  .venv/bin/python bench/ingest.py                  (about 2 minutes on 2 cores)
      .venv/bin/python bench/ingest.py --gib 0.5 --rounds 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIB = 1 << 30
MB = 1_000_000
RSS_TARGET_BYTES = 150 * MB
RATIO_TARGET = 0.8


def make_big_mp4(path: Path, size: int) -> None:
    from reelfarm.samples import make_sample_video

    head = path.with_suffix(".head.mp4")
    make_sample_video(head, seconds=3.0)
    data = head.read_bytes()
    head.unlink()
    pad = size - len(data) - 16
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(data)
        f.write((1).to_bytes(4, "big") + b"free" + (pad + 16).to_bytes(8, "big"))  # size 1: 64-bit size follows
        left = pad
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def retag(path: Path, round_no: int) -> str:
    """New content for this round (the last 8 bytes), and its SHA-256 (not timed)."""
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(round_no.to_bytes(8, "big"))
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def serve(args: argparse.Namespace) -> None:
    from control_plane.main import create_app, run_api_server
    from reelfarm.migrate import open_database
    from reelfarm.settings import Settings

    settings = Settings(environment="test", data_dir=Path(args.data_dir))
    _, sessions = open_database(settings)
    run_api_server(create_app(settings, session_factory=sessions), host="127.0.0.1", port=args.port,
                   log_level="warning", access_log=False)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        p = argparse.ArgumentParser()
        p.add_argument("_serve")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--data-dir", required=True)
        serve(p.parse_args())
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0, help="size of the uploaded file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import httpx
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="reelfarm-bench-ingest-"))
    proc = None
    results: dict = {"cpus": os.cpu_count(), "gib": args.gib, "rounds": []}
    try:
        size = int(args.gib * GIB)
        video = tmp / "big.mp4"
        make_big_mp4(video, size)
        port = free_port()
        log = open(tmp / "api.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen([sys.executable, __file__, "_serve", "--port", str(port), "--data-dir",
                                 str(tmp / "data")], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"API did not start:\n{(tmp / 'api.log').read_text()[-3000:]}")
            time.sleep(0.1)
        server = psutil.Process(proc.pid)
        browser = httpx.Client(base_url=base, timeout=600)
        assert browser.post("/api/auth/signup", json={"email": "bench@example.com",
                                                      "password": "correct horse battery"}).status_code == 201  # fmt: skip
        key = browser.post("/api/keys", json={}).json()["key"]
        api = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=600)
        print(f"Machine: {os.cpu_count()} CPUs; {size / GIB:g} GiB MP4 (real header + `free` box);"
              f" API: uvicorn 1 worker, SQLite + local storage (embedded default); {args.rounds} rounds", flush=True)

        for r in range(args.rounds):
            sha = retag(video, r)
            started = time.perf_counter()
            out = subprocess.run(["sha256sum", str(video)], check=True, capture_output=True, text=True)
            baseline_s = time.perf_counter() - started
            assert out.stdout.split()[0] == sha

            blob = api.post("/api/v1/blobs/upload_urls", json={"blobs": [
                {"sha256": sha, "content_type": "video/mp4", "size_bytes": size}]}).json()["data"]["blobs"][0]  # fmt: skip
            assert blob["status"] == "upload_required", blob
            samples: list[int] = []
            stop = threading.Event()

            def sample(stop: threading.Event = stop, samples: list[int] = samples) -> None:
                while not stop.is_set():
                    try:
                        samples.append(server.memory_info().rss)
                    except psutil.NoSuchProcess:
                        return
                    stop.wait(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            rss_before = server.memory_info().rss
            sampler.start()
            cpu_before = server.cpu_times()
            started = time.perf_counter()
            # curl, as the document's flow does: the client costs little CPU next to the server.
            put = subprocess.run(["curl", "-sS", "-X", "PUT", "--upload-file", str(video), "-H", "Content-Type: video/mp4",
                                  "-w", "\n%{http_code}", blob["upload_url"]], check=True, capture_output=True, text=True)  # fmt: skip
            upload_s = time.perf_counter() - started
            cpu_after = server.cpu_times()
            server_cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
            answer, _, status = put.stdout.rpartition("\n")
            stop.set()
            sampler.join()
            assert status == "200", (status, answer[-500:])
            row = {"sha256": sha, "sha256sum_s": baseline_s, "upload_verify_s": upload_s,
                   "ratio": baseline_s / upload_s, "mb_per_s": size / MB / upload_s,
                   "sha256sum_mb_per_s": size / MB / baseline_s, "rss_before": rss_before,
                   "rss_peak": max(samples), "rss_after": server.memory_info().rss, "server_cpu_s": server_cpu_s}  # fmt: skip
            results["rounds"].append(row)
            print(f"  round {r + 1}: sha256sum {baseline_s:6.2f} s ({row['sha256sum_mb_per_s']:4.0f} MB/s)  "
                  f"upload+verify {upload_s:6.2f} s ({row['mb_per_s']:4.0f} MB/s)  ratio x{row['ratio']:.2f}  "
                  f"API CPU {server_cpu_s:5.2f} s  API RSS {rss_before / MB:.0f} -> peak {row['rss_peak'] / MB:.0f} MB", flush=True)
            check = api.get(f"/api/v1/blobs/{sha}").json()["data"]
            assert check["size_bytes"] == size and check["format"] == "mp4", check

        ratio = statistics.median(r["ratio"] for r in results["rounds"])
        peak = max(r["rss_peak"] for r in results["rounds"])
        results.update(ratio=ratio, rss_peak=peak)
        print(f"I1 upload+verify vs sha256sum of the same file: median ratio x{ratio:.2f}"
              f" (target >= {RATIO_TARGET}) {'met' if ratio >= RATIO_TARGET else 'NOT met'}")
        print(f"I2 API peak RSS {peak / MB:.0f} MB (target <= 150 MB)"
              f" {'met' if peak <= RSS_TARGET_BYTES else 'NOT met'}")
        leftovers = [p for p in (tmp / "data" / "storage" / "tmp").glob("*")] if (tmp / "data").exists() else []
        print(f"Spool leftovers after the run: {len(leftovers)}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
