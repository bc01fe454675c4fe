"""Start-up cost of a one-shot render: `reelfarm render` against a bare ffmpeg encode of the same output.

Each round, in this order, on the same source (a 20 s 1920x1080 test pattern + tone, made once):
  - baseline: a bare `ffmpeg` encode of the same output (centre 9:16 crop to 1080x1920, libx264
    veryfast crf 23, AAC), as the render node's encoder is configured;
  - `reelfarm render SOURCE --out DIR` as a user runs it (default: the render node in a plain child
    process, started before the launcher's own imports);
  - `reelfarm render --ray` (the nodes as actors of a local Ray, as `serve` runs them);
  - one instrumented run per mode in a child process (this file with --phases), which does what
    `reelfarm render` does (EmbeddedStack, upload over HTTP, follow its events, download) and reports when each
    part was up, in seconds from the child's start: imports, Ray start (--ray only), scheduler up,
    API up, node(s) registered, first task dispatched (the job left `queued`), encode done
    (job completed), outputs downloaded, stack stopped.
Medians over the rounds; overhead = render - bare encode, measured in the same round.

Run (Ray binds every interface, so inside a private network namespace):
    RAY_AUTH_MODE=disabled unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/startup.py'
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.monotonic()
ROOT = Path(__file__).resolve().parents[1]
REELFARM = str(Path(sys.executable).with_name("reelfarm"))


def bare_encode(source: Path, out: Path) -> float:
    t = time.monotonic()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source),
                    "-vf", "crop=ih*9/16:ih,scale=1080:1920", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(out)],
                   check=True)  # fmt: skip
    return time.monotonic() - t


def cli_render(source: Path, out: Path, *extra: str) -> float:
    t = time.monotonic()
    done = subprocess.run([REELFARM, "render", str(source), "--out", str(out), *extra], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"reelfarm render {' '.join(extra)} failed: {done.stderr[-2000:]}")
    return time.monotonic() - t


def phases(source: Path, use_ray: bool) -> dict[str, float]:
    """One instrumented render in this process (what `reelfarm render` does); seconds from process start."""
    from reelfarm.node_process import NodeProcess
    from reelfarm.quiet import quiet_env
    from reelfarm.settings import load_settings

    quiet_env()
    with tempfile.TemporaryDirectory(prefix="rf-startup-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", scheduler_metrics_port=0)  # as `reelfarm render`
        early_nodes = [] if use_ray else [NodeProcess(0, settings)]  # as `reelfarm render` does: first
        from control_plane.accounts import service as accounts
        from reelfarm.client import ReelFarmClient
        from reelfarm.database import session_scope
        from reelfarm.embedded import EmbeddedStack

        marks = {"imports": time.monotonic() - T0}
        stack = EmbeddedStack(settings, nodes=1, port=0, ray_log_to_driver=False, use_ray=use_ray, verbose=False,
                              node_processes=early_nodes, deliver_webhooks=False)
        started = time.monotonic() - T0
        stack.start()
        for name, at in stack.timings.items():
            marks[name] = started + at
        with session_scope(stack.session_factory) as session:
            local = accounts.get_or_create_account(session=session, name="local", plan=stack.app.state.plans.default_plan)
            _, key = accounts.issue_account_key(session=session, account=local, name="bench", scopes=None,
                                                plans=stack.app.state.plans)  # fmt: skip
        client = ReelFarmClient(stack.base_url, key)
        job_id = client.upload(source, {"mode": "none"})["jobId"]
        marks["uploaded"] = time.monotonic() - T0

        def seen(job: dict) -> None:
            if job["status"] != "queued" and "dispatched" not in marks:
                marks["dispatched"] = time.monotonic() - T0

        job = client.follow(job_id, on_update=seen)  # as `reelfarm render` follows it
        assert job["status"] == "completed", job
        marks["encoded"] = time.monotonic() - T0
        client.download_all(job_id, Path(tmp) / "out")
        marks["downloaded"] = time.monotonic() - T0
        client.close()
        stack.stop()
        marks["stopped"] = time.monotonic() - T0
    return marks


def child_phases(source: Path, use_ray: bool) -> dict[str, float]:
    t = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--phases", str(source), *(["--ray"] if use_ray else [])],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    marks["total"] = time.monotonic() - t
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--phases", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ray", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(phases(args.phases, args.ray)))
        return

    with tempfile.TemporaryDirectory(prefix="rf-startup-") as tmp:
        work = Path(tmp)
        source = work / "source.mp4"
        subprocess.run([REELFARM, "sample", str(source), "--seconds", str(args.seconds), "--size", "1920x1080"],
                       check=True, capture_output=True)  # fmt: skip
        rows: dict[str, list] = {"bare": [], "cli": [], "cli_ray": [], "phases": [], "phases_ray": []}
        for r in range(args.rounds):
            rows["bare"].append(bare_encode(source, work / f"bare{r}.mp4"))
            rows["cli"].append(cli_render(source, work / f"cli{r}"))
            rows["cli_ray"].append(cli_render(source, work / f"ray{r}", "--ray"))
            rows["phases"].append(child_phases(source, use_ray=False))
            rows["phases_ray"].append(child_phases(source, use_ray=True))
            print(f"round {r + 1}: bare ffmpeg {rows['bare'][-1]:.2f} s  reelfarm render {rows['cli'][-1]:.2f} s"
                  f"  reelfarm render --ray {rows['cli_ray'][-1]:.2f} s", flush=True)

    med = statistics.median
    bare = med(rows["bare"])
    for key, label in (("cli", "reelfarm render"), ("cli_ray", "reelfarm render --ray")):
        over = med([c - b for c, b in zip(rows[key], rows["bare"], strict=True)])
        print(f"{label:<24} median {med(rows[key]):6.2f} s  bare ffmpeg {bare:5.2f} s  "
              f"overhead {over:+5.2f} s  ratio x{med(rows[key]) / bare:.2f}")
    names = ["imports", "ray", "scheduler", "api", "nodes", "uploaded", "dispatched", "encoded", "downloaded",
             "stopped", "total"]
    print("\nphases, seconds from process start (median of rounds):")
    print(f"{'':<12}" + "".join(f"{n:>11}" for n in names))
    for key in ("phases", "phases_ray"):
        cells = "".join(f"{med([m[n] for m in rows[key]]):>11.2f}" if n in rows[key][0] else f"{'-':>11}"
                        for n in names)  # fmt: skip
        print(f"{'child node' if key == 'phases' else 'ray':<12}" + cells)
        encode = med([m["encoded"] - m["dispatched"] for m in rows[key]])
        print(f"{'':<12}encode (dispatched -> completed) {encode:.2f} s; start-up (-> nodes) "
              f"{med([m['nodes'] for m in rows[key]]):.2f} s; after the encode {med([m['total'] - m['encoded'] for m in rows[key]]):.2f} s")


if __name__ == "__main__":
    main()
