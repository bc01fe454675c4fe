"""A two-language campaign end to end, by stage, and its render against a bare encode.

An embedded stack (API, scheduler, two render nodes in child processes, as `reelfarm serve`
without Ray) on SQLite; a product page and a LibreTranslate-compatible translator (Japanese
lines) on loopback, as tests/system/test_campaigns.py serves them. Each round:
  - POST /api/v1/campaigns {url, languages: ["en", "ja"]}, then every 0.1 s: when each
    status was first seen, and the total to `review` (target < 90 s on this machine, issue 18);
  - each video's voice and render seconds, as its node measured them;
  - baseline: a bare ffmpeg encode of the same output (one screenshot looped at 1080x1920 with
    the video's own audio, libx264 veryfast, AAC), against the node's render of that video.

Run (the nodes bind loopback only; no network needed):
    .venv/bin/python bench/campaigns.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "system")]

STATUSES = ("collecting", "processing", "scripting", "voiceover", "rendering", "review")


def serve_pages() -> tuple[ThreadingHTTPServer, str]:
    from test_campaigns import _Pages  # the test's page and fake translator

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def bare_encode(video: Path, out: Path) -> float:
    """The same output from one still: a frame of the video looped for its length, its own audio."""
    still = out.with_suffix(".png")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "5", "-i", str(video), "-frames:v", "1", str(still)],
                   check=True)  # fmt: skip
    duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                     "default=nw=1:nk=1", str(video)], capture_output=True, text=True,
                                    check=True).stdout)  # fmt: skip
    t = time.monotonic()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "30", "-i", str(still), "-i", str(video),
                    "-map", "0:v", "-map", "1:a", "-t", f"{duration:.3f}", "-vf", "format=yuv420p",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-af", "loudnorm=I=-14:TP=-1.5:LRA=11",
                    "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(out)], check=True)  # fmt: skip
    return time.monotonic() - t


def one_round(http, pages: str, stack, work: Path) -> dict:
    import httpx
    from sqlalchemy import select

    from reelfarm.database import session_scope
    from reelfarm.models import Campaign, Task

    started = time.monotonic()
    created = http.post("/api/v1/campaigns", json={"url": f"{pages}/product", "languages": ["en", "ja"]})
    created.raise_for_status()
    campaign_id = created.json()["campaign_id"]
    seen: dict[str, float] = {}
    while True:  # from the database, every 0.1 s (GET that often would meet the /api/v1 rate limit)
        with session_scope(stack.session_factory) as session:
            status = session.get(Campaign, campaign_id).status
        seen.setdefault(status, time.monotonic() - started)
        if status in ("review", "failed"):
            break
        time.sleep(0.1)
    campaign = http.get(f"/api/v1/campaigns/{campaign_id}").json()
    if campaign["status"] != "review":
        raise RuntimeError(f"campaign failed: {campaign['error']}")
    with session_scope(stack.session_factory) as session:
        job_id = session.get(Campaign, campaign_id).job_id
        results = [t.result for t in session.scalars(select(Task).where(Task.job_id == job_id,
                                                                        Task.kind == "campaign_video"))]  # fmt: skip
    videos = {r["language"]: r for r in results}
    by_language = {v["language"]: v for v in campaign["videos"]}
    path = work / f"{campaign_id}_en.mp4"
    # file_url is on REELFARM_PUBLIC_URL; this stack listens elsewhere: fetch its path.
    path.write_bytes(http.get(httpx.URL(by_language["en"]["file_url"]).path).content)
    bare = bare_encode(path, work / f"{campaign_id}_bare.mp4")
    return {"total": seen["review"], "seen": seen, "videos": videos, "bare_encode": bare,
            "render_en": videos["en"]["render_seconds"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import httpx
    from conftest import new_api_key

    from reelfarm.embedded import EmbeddedStack
    from reelfarm.quiet import quiet_env
    from reelfarm.settings import Settings

    quiet_env()
    server, pages = serve_pages()
    with tempfile.TemporaryDirectory(prefix="rf-campaigns-") as tmp:
        settings = Settings(environment="test", data_dir=Path(tmp) / "data", fetch_allow_networks=["127.0.0.0/8"],
                            translate_url=pages, poll_interval_seconds=0.1, progress_flush_seconds=0.2)  # fmt: skip
        stack = EmbeddedStack(settings, nodes=2, port=0, use_ray=False, verbose=False,
                              deliver_webhooks=False).start()  # fmt: skip
        try:
            http = httpx.Client(base_url=stack.base_url, headers={"X-API-Key": new_api_key(stack.session_factory)},
                                timeout=120)  # fmt: skip
            rounds = []
            for r in range(args.rounds):
                result = one_round(http, pages, stack, Path(tmp))
                rounds.append(result)
                stages = "  ".join(f"{s} {result['seen'][s]:.1f}" for s in STATUSES if s in result["seen"])
                per_video = "  ".join(f"{lang}: voice {v['voice_seconds']:.1f} s ({v['engine']}), render "
                                      f"{v['render_seconds']:.1f} s, {v['duration_seconds']:.1f} s long"
                                      for lang, v in sorted(result["videos"].items()))  # fmt: skip
                print(f"round {r + 1}: review after {result['total']:.1f} s  [first seen, s: {stages}]", flush=True)
                print(f"    {per_video}", flush=True)
                print(f"    en render {result['render_en']:.1f} s against a bare encode of the same output "
                      f"{result['bare_encode']:.1f} s: x{result['render_en'] / result['bare_encode']:.2f}", flush=True)
            http.close()
        finally:
            stack.stop()
            server.shutdown()
    med = statistics.median
    print(json.dumps({"median_total_seconds": round(med(r["total"] for r in rounds), 1),
                      "median_render_over_bare": round(med(r["render_en"] / r["bare_encode"] for r in rounds), 2),
                      "target_total_seconds": 90}))  # fmt: skip


if __name__ == "__main__":
    main()
