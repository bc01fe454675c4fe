"""Render pipeline benchmarks (issue 3), each against a baseline measured in the same run.

P1  full reframe render (one decode feeding the analysis and, once planned, the
    encoder; crop path, scale, encode, poster) wall time divided by a bare ffmpeg
    static centre-crop encode of the same output (same size, encoder, preset, audio),
    at 1080x1920 and 720x1280. Target <= 1.10. Runs alternate bare/full so drift in
    this shared machine's speed hits both alike.
P2  analysis seconds per source minute: the work the render adds for analysis
    (histograms, scaling samples, face detection; the decode is shared with the
    encode), measured on a quiet machine as (decode + analysis) - (decode alone) of the
    same frames, alternated, median; and as a share of that bare encode. Target <= 10%.
    Also printed: the same work timed inside the render, where it waits for the cores
    x264 is using (P1 already charges that), and the analysis-only pass (`scan_source`,
    its own decode).
P7  peak RSS of a render node process (and of its ffmpeg child) rendering a clip from
    a 10-minute and a 60-minute 1080p source. Target <= 1.5 GiB and flat in duration.

Two 20 s 1080p30 sources: `patterns` (ffmpeg's test patterns with a face photo: cheap
to encode, ~2x realtime at 1080x1920, so fixed costs weigh most) and `grain` (the same
with camera-like sensor grain, ~17 Mbit/s: x264 works about as hard as on the footage
in shared/FACTS.md, 0.64x realtime).

Run:  .venv/bin/python bench/render.py            (about 15 minutes on 2 cores)
      .venv/bin/python bench/render.py --skip-p7  (P1 and P2 only)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelfarm.geometry import centre_crop, output_size  # noqa: E402
from reelfarm.media import probe  # noqa: E402
from reelfarm.samples import make_sample_video  # noqa: E402
from render_nodes.faces import make_detector  # noqa: E402
from render_nodes.pipeline import RenderRequest, render_clip  # noqa: E402
from render_nodes.scan import FrameAnalyser, SourceScan, open_video, scan_source  # noqa: E402

PRESET = "veryfast"


def face_source(path: Path, seconds: float) -> Path:
    """1080p30 stand-in for real footage: a real face photo drifting over ffmpeg's moving
    test patterns (motion everywhere, as a camera gives, so a static crop is not
    artificially cheap to encode), with a cut every 5 s to another pattern."""
    import skimage.data
    import skimage.io

    head = path.with_suffix(".png")
    skimage.io.imsave(head, skimage.data.astronaut()[10:210, 135:315])
    shots = max(1, math.ceil(seconds / 5))
    inputs, graph = [], [f"[{shots}:v]scale=-2:330,split={shots}" + "".join(f"[h{i}]" for i in range(shots))]
    for i in range(shots):
        length = min(5.0, seconds - 5 * i)
        pattern = ("testsrc2", "testsrc", "rgbtestsrc")[i % 3]
        inputs += ["-f", "lavfi", "-i", f"{pattern}=s=1920x1080:r=30:d={length}"]
        x = 500 + 350 * (i % 3)
        graph.append(f"[{i}:v]hue=H={1.3 * i}[bg{i}];"
                     f"[bg{i}][h{i}]overlay=x='{x}+150*sin(t)':y='300+30*cos(t)':shortest=1[s{i}]")
    graph.append("".join(f"[s{i}]" for i in range(shots)) + f"concat=n={shots}:v=1[v]")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, "-loop", "1", "-i", str(head),
         "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={seconds}",
         "-filter_complex", ";".join(graph), "-map", "[v]", "-map", f"{shots + 1}:a",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def grain_source(path: Path, patterns: Path) -> Path:
    """`patterns` with temporal sensor grain, re-encoded as a camera would (CRF 23)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(patterns), "-vf", "noise=alls=9:allf=t",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "copy", str(path)], check=True)
    return path


def bare_encode(source: Path, out: Path, aspect: str, height: int | None, seconds: float) -> float:
    info = probe(source)
    crop_w, crop_h, x, y = centre_crop(info.width, info.height, aspect)
    width, height = output_size(aspect, height)
    started = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "0", "-i", str(source), "-t", f"{seconds:.3f}",
         "-map", "0:v:0", "-map", "0:a:0?",
         "-vf", f"crop={crop_w}:{crop_h}:{x}:{y},scale={width}:{height},setsar=1,format=yuv420p",
         "-c:v", "libx264", "-preset", PRESET, "-crf", "23", "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
         "-movflags", "+faststart", str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def full_render(source: Path, work: Path, aspect: str, height: int | None, seconds: float, detector
                ) -> tuple[float, dict]:
    width, height = output_size(aspect, height)
    req = RenderRequest(
        source_path=source, clip_index=1, start_seconds=0.0, end_seconds=seconds, aspect_ratio=aspect,
        output_width=width, output_height=height, encoder="libx264", x264_preset=PRESET, work_dir=work,
        detector=detector,
    )  # fmt: skip
    started = time.perf_counter()
    result = render_clip(req)
    return time.perf_counter() - started, result.info


def decode_pass(source: Path, seconds: float, detector, analyse: bool) -> float:
    """Decode the source as the render does, pushing every frame through the analysis or not."""
    scan = SourceScan(start=0.0, end=seconds)
    analyser = FrameAnalyser(scan, detector)
    container, stream = open_video(source)
    started = time.perf_counter()
    with container:
        for frame in container.decode(stream):
            if frame.time >= seconds:
                break
            if analyse:
                analyser.push(frame, frame.time)
    analyser.flush()
    return time.perf_counter() - started


def analysis_increment(source: Path, seconds: float, detector, runs: int) -> float:
    plain, analysed = [], []
    for _ in range(runs):
        plain.append(decode_pass(source, seconds, detector, analyse=False))
        analysed.append(decode_pass(source, seconds, detector, analyse=True))
    return max(0.0, statistics.median(analysed) - statistics.median(plain))


def analysis_only(source: Path, seconds: float, detector) -> float:
    """The analysis-only pass with its own decode, for reference."""
    started = time.perf_counter()
    scan_source(source, start=0.0, end=seconds, detector=detector)
    return time.perf_counter() - started


def p1_p2(workdir: Path, seconds: float, runs: int, only: str | None = None) -> dict:
    patterns = face_source(workdir / "patterns.mp4", seconds)
    sources = {"patterns": patterns}
    if only != "patterns":
        sources["grain"] = grain_source(workdir / "grain.mp4", patterns)
    if only == "grain":
        del sources["patterns"]
    detector = make_detector("blazeface")
    results: dict = {}
    for name, source in sources.items():
        megabits = source.stat().st_size * 8 / 1e6 / seconds
        increment_s = analysis_increment(source, seconds, detector, runs)
        for label, height in (("1080x1920", None), ("720x1280", 1280)):
            bare, full = [], []
            for _ in range(runs):
                bare.append(bare_encode(source, workdir / f"bare_{label}.mp4", "9:16", height, seconds))
                full.append(full_render(source, workdir / f"full_{label}", "9:16", height, seconds, detector))
            bare_s = statistics.median(bare)
            render_s = statistics.median(t for t, _ in full)
            in_render_s = statistics.median(info["analysis_seconds"] for _, info in full)
            alone_s = analysis_only(source, seconds, detector)
            info = full[0][1]
            row = {
                "source_mbit_s": round(megabits, 1),
                "bare_encode_s": bare_s,
                "bare_runs": bare,
                "render_s": render_s,
                "render_runs": [t for t, _ in full],
                "p1_ratio": render_s / bare_s,
                "analysis_s_per_source_min": increment_s * 60 / seconds,
                "p2_share_of_encode": increment_s / bare_s,
                "analysis_in_render_s_per_source_min": in_render_s * 60 / seconds,
                "analysis_in_render_share_of_encode": in_render_s / bare_s,
                "analysis_only_pass_s_per_source_min": alone_s * 60 / seconds,
                "face_coverage": info["face_coverage"],
                "crop_jitter": info["crop_jitter"],
                "cameras": [s["camera"] for s in info["shots"]],
            }
            results[f"{name} {label}"] = row
            print(f"P1/P2 {name} ({megabits:.1f} Mbit/s) -> {label}: bare encode {bare_s:.2f} s"
                  f" ({seconds / bare_s:.2f}x realtime), full render {render_s:.2f} s -> P1 x{row['p1_ratio']:.3f}"
                  f" (target <= 1.10) | analysis {row['analysis_s_per_source_min']:.2f} s per source minute ="
                  f" P2 {100 * row['p2_share_of_encode']:.1f}% of the encode (target <= 10%)"
                  f" | inside the render (waiting for cores) {row['analysis_in_render_s_per_source_min']:.2f} s/min ="
                  f" {100 * row['analysis_in_render_share_of_encode']:.1f}%"
                  f" | analysis-only pass {row['analysis_only_pass_s_per_source_min']:.2f} s per source minute"
                  f" | coverage {row['face_coverage']} jitter {row['crop_jitter']}", flush=True)
    return results


_P7_CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path
import psutil
sys.path.insert(0, sys.argv[1])
from render_nodes.faces import make_detector
from render_nodes.pipeline import RenderRequest, render_clip
source, work, start, end = Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
me = psutil.Process()
peak = {"python": 0, "python_plus_children": 0}
def sample():
    while True:
        rss = me.memory_info().rss
        kids = sum(c.memory_info().rss for c in me.children(recursive=True) if c.is_running())
        peak["python"] = max(peak["python"], rss)
        peak["python_plus_children"] = max(peak["python_plus_children"], rss + kids)
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
req = RenderRequest(source_path=source, clip_index=1, start_seconds=start, end_seconds=end, aspect_ratio="9:16",
                    output_width=720, output_height=1280, encoder="libx264", x264_preset="ultrafast", work_dir=work,
                    detector=make_detector("blazeface"))
render_clip(req)
peak["ru_maxrss_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak["ru_maxrss_children"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps(peak))
"""


def p7(workdir: Path, clip_seconds: float) -> dict:
    minute = make_sample_video(workdir / "minute.mp4", seconds=60, size="1920x1080", rate=30)
    results = {}
    for minutes in (10, 60):
        listing = workdir / f"list{minutes}.txt"
        listing.write_text("".join(f"file '{minute}'\n" for _ in range(minutes)))
        long_source = workdir / f"long{minutes}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c", "copy", str(long_source)], check=True)
        duration = probe(long_source).duration_seconds
        start = duration - clip_seconds - 1
        out = subprocess.run(
            [sys.executable, "-c", _P7_CHILD, str(Path(__file__).resolve().parents[1]), str(long_source),
             str(workdir / f"p7_{minutes}"), str(start), str(start + clip_seconds)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        peak = json.loads(out.strip().splitlines()[-1])
        results[f"{minutes}min"] = peak
        long_source.unlink()
        print(f"P7 {minutes:>2}-minute 1080p source, {clip_seconds:.0f} s clip at its end: peak RSS python "
              f"{peak['python'] / 2**20:.0f} MiB, python + ffmpeg {peak['python_plus_children'] / 2**20:.0f} MiB"
              f" (target <= 1536 MiB, flat in duration)")
    ratio = results["60min"]["python_plus_children"] / results["10min"]["python_plus_children"]
    print(f"P7 60-minute / 10-minute peak: x{ratio:.2f}")
    results["ratio_60_to_10"] = ratio
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="P1/P2 source length")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="P7 clip length")
    parser.add_argument("--skip-p7", action="store_true")
    parser.add_argument("--only", choices=["patterns", "grain"], help="one P1/P2 source")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="reelfarm-bench-render-") as tmp:
        results = {"p1_p2": p1_p2(Path(tmp), args.seconds, args.runs, args.only)}
        if not args.skip_p7:
            results["p7"] = p7(Path(tmp), args.clip_seconds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
