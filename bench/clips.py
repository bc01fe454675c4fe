"""Finding the moments benchmark (issue 6): upload -> all clips ready, split by stage.

Source: a 10-minute spoken "talk" (espeak-ng, two voices taking turns, over a 720p test
pattern), made once per run. Uploaded to the embedded default (SQLite, local storage, local
Ray with --nodes render nodes) with the default ProcessOptions (mode ai, 3 medium clips,
9:16, captions karaoke). The job is polled every 50 ms and each stage's wall time recorded.

Baseline, measured in the same run: the time spent encoding the clips (the rendering
stage). Target: transcription + selection (the transcribing, analyzing and selecting
stages) <= 0.5 x the rendering stage. Also printed: transcription speed as x realtime per
node (audio seconds of each transcribe task / its wall time on its node).

Run (Ray binds every interface, so inside a private network namespace):
    RAY_AUTH_MODE=disabled unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/clips.py'
    ... bench/clips.py --minutes 2      (a quicker look)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test harness: spoken media

TOPICS = [
    ("how did you get started", "I started when I was twelve years old, with my father, in a small workshop near our "
     "village, and I have been building things ever since"),
    ("what is the biggest mistake people make", "the biggest mistake is waiting for the perfect moment. nobody tells "
     "you this, but the perfect moment never comes, so start today with what you have"),
    ("tell me about your morning routine", "I wake up at six, I drink a big cup of coffee, I walk the dog for half an "
     "hour, and then I write for two hours before I look at my phone"),
    ("what are the three rules you follow", "first, never skip the basics. second, write everything down. third, ask "
     "for help early, because a small problem today is a big problem next month"),
    ("why do so many projects fail", "most projects fail because the team does not talk. the plan looks good on paper, "
     "but nobody checks it against the real world until it is too late"),
    ("what surprised you the most", "honestly, what surprised me the most was how kind people are. strangers helped me "
     "again and again, and I try to do the same for others now"),
    ("what would you tell your younger self", "I would say relax. the things you worry about at twenty do not matter "
     "at forty, and the things that matter are the people around you"),
    ("how do you deal with failure", "I write down what went wrong, I sleep on it, and the next morning I pick one "
     "thing to change. one thing, not ten, because ten changes never happen"),
]


def talk_script(minutes: float) -> list[tuple[int, str]]:
    """Host questions and guest answers, repeated to about `minutes` of speech."""
    script: list[tuple[int, str]] = []
    seconds, i = 0.0, 0
    while seconds < minutes * 60:
        question, answer = TOPICS[i % len(TOPICS)]
        script += [(0, question), (1, answer)]
        seconds += (len(question.split()) + len(answer.split())) / 2.9 + 1.6  # espeak-ng "150 wpm" measured ~2.9 words/s here
        i += 1
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import ray

    from control_plane.accounts import service as accounts
    from harness.media import make_spoken_video
    from reelfarm.client import ReelFarmClient
    from reelfarm.database import session_scope
    from reelfarm.embedded import EmbeddedStack
    from reelfarm.models.tasks import Task
    from reelfarm.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="reelfarm-bench-clips-"))
    source = tmp / "talk.mp4"
    began = time.monotonic()
    turns = make_spoken_video(source, talk_script(args.minutes), size="1280x720", rate=30)
    print(f"source: {turns[-1].end / 60:.1f} min talk, 1280x720 30 fps, {len(turns)} turns "
          f"(made in {time.monotonic() - began:.0f} s); {os.cpu_count()} CPUs, {args.nodes} render node(s)", flush=True)

    ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False, object_store_memory=100 << 20,
             resources={"render_slot": args.nodes}, log_to_driver=False)  # fmt: skip
    settings = Settings(data_dir=tmp / "data", environment="test")
    stack = EmbeddedStack(settings, nodes=args.nodes, port=0).start()
    try:
        with session_scope(stack.session_factory) as session:
            key = accounts.create_api_key(session=session,
                                          account=accounts.get_or_create_account(session=session, name="bench",
                                                                                  plan="enterprise"))  # fmt: skip
        client = ReelFarmClient(stack.base_url, key, timeout=600)
        options = {"captionPreset": "karaoke"}
        uploaded = time.monotonic()
        job_id = client.upload(source, options)["jobId"]
        stage_started: dict[str, float] = {}
        while True:
            job = client.job(job_id)
            now = time.monotonic()
            if job["stage"] and job["stage"] not in stage_started:
                stage_started[job["stage"]] = now
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.05)
        done = time.monotonic()
        if job["status"] != "completed":
            raise SystemExit(f"job {job['status']}: {job['error']}")
        manifest = client.manifest(job_id)
        with session_scope(stack.session_factory) as session:
            from sqlalchemy import select

            tasks = session.scalars(select(Task).where(Task.job_id == job_id)).all()
            transcribe = [(t.result or {}) for t in tasks if t.kind == "transcribe"]
            renders = [(t.result or {}) for t in tasks if t.kind == "render"]
    finally:
        stack.stop()
        ray.shutdown()

    order = [s for s in ("transcribing", "analyzing", "selecting", "rendering") if s in stage_started]
    spans = {}
    for i, stage in enumerate(order):
        end = stage_started[order[i + 1]] if i + 1 < len(order) else done
        spans[stage] = end - stage_started[stage]
    queued = (stage_started[order[0]] if order else done) - uploaded
    finding = sum(spans.get(s, 0.0) for s in ("transcribing", "analyzing", "selecting"))
    rendering = spans.get("rendering", 0.0)
    per_node = [r["audio_seconds"] / r["transcribe_seconds"] for r in transcribe if r.get("transcribe_seconds")]
    print(f"upload -> all clips ready: {done - uploaded:.1f} s  (upload+queue {queued:.1f} s)")
    for stage in order:
        print(f"  {stage:13s} {spans[stage]:7.1f} s")
    if per_node:
        print(f"transcription: {len(transcribe)} parts, x{min(per_node):.1f}-x{max(per_node):.1f} realtime per node "
              f"(median x{sorted(per_node)[len(per_node) // 2]:.1f}), {sum(len(r['words']) for r in transcribe)} words")
    encode = sum(r.get("render_seconds", 0.0) for r in renders)
    print(f"clips: {len(manifest['clips'])}, {sum(c['duration'] for c in manifest['clips']):.0f} s of video; "
          f"render tasks' own time {encode:.1f} s")
    ratio = finding / rendering if rendering else float("inf")
    print(f"transcription + selection {finding:.1f} s = x{ratio:.2f} of encoding the clips {rendering:.1f} s "
          f"(target <= 0.5): {'met' if ratio <= 0.5 else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"stages": spans, "total": done - uploaded, "ratio": ratio,
                                         "x_realtime": per_node, "clips": manifest["clips"]}, indent=2))


if __name__ == "__main__":
    main()
