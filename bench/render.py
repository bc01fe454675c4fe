"""Render pipeline benchmarks (issue 3), each against a baseline measured in the same run.

P1  full reframe render (analysis overlapping the encode of finished shots, crop path,
    encode, join, poster) wall time divided by
    a bare ffmpeg static centre-crop encode of the same output (same size, encoder,
    preset), at 1080x1920 and 720x1280. Target <= 1.10.
P2  analysis seconds per source minute (the scan run on its own), and as a share of
    that bare encode. Target <= 10%.
P7  peak RSS of a render node process (and of its ffmpeg child) rendering a clip from
    a 10-minute and a 60-minute 1080p source. Target <= 1.5 GiB and flat in duration.

Run:  .venv/bin/python bench/render.py            (about 10 minutes on 2 cores)
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

from render_nodes.analysis import scan_source  # noqa: E402
from render_nodes.faces import make_detector  # noqa: E402
from render_nodes.geometry import centre_crop, output_size  # noqa: E402
from render_nodes.media import probe  # noqa: E402
from render_nodes.pipeline import RenderRequest, render_clip  # noqa: E402
from render_nodes.samples import make_sample_video  # noqa: E402

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


def full_render(source: Path, work: Path, aspect: str, height: int | None, seconds: float, detector,
                fast_decode: bool) -> tuple[float, dict]:
    width, height = output_size(aspect, height)
    req = RenderRequest(
        source_path=source, clip_index=1, start_seconds=0.0, end_seconds=seconds, aspect_ratio=aspect,
        output_width=width, output_height=height, encoder="libx264", x264_preset=PRESET, work_dir=work,
        detector=detector, fast_decode=fast_decode,
    )  # fmt: skip
    started = time.perf_counter()
    result = render_clip(req)
    return time.perf_counter() - started, result.info


def analysis_alone(source: Path, seconds: float, detector, fast_decode: bool) -> float:
    """P2's numerator: the scan on its own (inside a render it overlaps the encode)."""
    started = time.perf_counter()
    scan_source(source, start=0.0, end=seconds, detector=detector, fast_decode=fast_decode)
    return time.perf_counter() - started


def p1_p2(workdir: Path, seconds: float, runs: int) -> dict:
    source = face_source(workdir / "face1080.mp4", seconds)
    detector = make_detector("blazeface")
    results = {}
    for label, height in (("1080x1920", None), ("720x1280", 1280)):
        row = {}
        bare = [bare_encode(source, workdir / f"bare_{label}.mp4", "9:16", height, seconds) for _ in range(runs)]
        row["bare_encode_s"] = statistics.median(bare)
        for mode, fast in (("exact_cuts", False), ("fast_decode", True)):
            timings = [full_render(source, workdir / f"full_{label}_{mode}", "9:16", height, seconds, detector, fast)
                       for _ in range(runs)]
            wall = statistics.median(t for t, _ in timings)
            analysis = statistics.median(analysis_alone(source, seconds, detector, fast) for _ in range(runs))
            row[mode] = {
                "render_s": wall,
                "p1_ratio": wall / row["bare_encode_s"],
                "analysis_s_per_source_min": analysis * 60 / seconds,
                "p2_share_of_encode": analysis / row["bare_encode_s"],
                "face_coverage": timings[0][1]["face_coverage"],
                "crop_jitter": timings[0][1]["crop_jitter"],
            }
        results[label] = row
        print(f"P1/P2 {label}: bare encode {row['bare_encode_s']:.2f} s")
        for mode in ("exact_cuts", "fast_decode"):
            r = row[mode]
            print(f"      {mode:>11}: full render {r['render_s']:.2f} s -> ratio x{r['p1_ratio']:.3f} (target <= 1.10)"
                  f" | analysis {r['analysis_s_per_source_min']:.2f} s per source minute ="
                  f" {100 * r['p2_share_of_encode']:.1f}% of the encode (target <= 10%)"
                  f" | coverage {r['face_coverage']} jitter {r['crop_jitter']}")
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
    parser.add_argument("--runs", type=int, default=2, help="runs per measurement (median)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="P7 clip length")
    parser.add_argument("--skip-p7", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="reelfarm-bench-render-") as tmp:
        results = {"p1_p2": p1_p2(Path(tmp), args.seconds, args.runs)}
        if not args.skip_p7:
            results["p7"] = p7(Path(tmp), args.clip_seconds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
