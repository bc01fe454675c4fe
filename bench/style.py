"""Style DNA extraction time against one plain ffmpeg decode of the same file.

The source: SECONDS (default 60) of 1920x1080 at 30 fps (a typical upload) made of shots of ffmpeg's test sources
with hard cuts every 4 s and a fade, over a 120 bpm kick-and-hat track (so every part of the
extraction has work: cuts, motion, colour, loudness, beats). Each round, on the same file:
  - baseline: `ffmpeg -i SOURCE -f null -` (decode video and audio, nothing else);
  - `analysis.style.extract.extract_style(SOURCE)` twice in a fresh process (`--extract`): the
    first ("cold") pays the imports and loading librosa's numba-compiled beat tracker (from its
    on-disk cache; compiling it the first time ever costs 25-40 s more); the second ("warm") is
    what a long-lived render node pays for every source after its first.
Prints per round and the median ratios extraction / decode; target <= 1.5x (issue 17), warm.

Run:  .venv/bin/python bench/style.py [--rounds 3] [--seconds 60]
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

ROOT = Path(__file__).resolve().parents[1]


def make_source(path: Path, seconds: float) -> None:
    """Shots of test sources with hard cuts every 4 s, one fade through black, and a 120 bpm track."""
    shot = 4.0
    sources = ["testsrc2", "smptehdbars", "mandelbrot", "rgbtestsrc", "testsrc", "cellauto"]
    count = max(2, int(seconds // shot))
    parts, inputs = [], []
    for i in range(count):
        name = sources[i % len(sources)]
        inputs += ["-f", "lavfi", "-t", f"{shot}", "-i", f"{name}=size=1920x1080:rate=30"]
        fade = ",fade=t=out:st=3.5:d=0.5" if i == 1 else (",fade=t=in:st=0:d=0.5" if i == 2 else "")
        parts.append(f"[{i}:v]format=yuv420p,setsar=1{fade}[v{i}]")
    concat = "".join(f"[v{i}]" for i in range(count)) + f"concat=n={count}:v=1:a=0[v]"
    # Kick (60 Hz burst) on every beat, hat (noise burst) on the off-beats: 120 bpm.
    audio = (f"aevalsrc='0.8*sin(2*PI*60*t)*exp(-30*mod(t,0.5))+0.2*(random(0)-0.5)*exp(-80*mod(t+0.25,0.5))'"
             f":s=44100:d={count * shot}")  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-f", "lavfi", "-i", audio,
                    "-filter_complex", ";".join(parts) + ";" + concat, "-map", "[v]", "-map", f"{count}:a",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", "-b:a", "128k",
                    str(path)], check=True)  # fmt: skip


def plain_decode(path: Path) -> float:
    t = time.monotonic()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True)
    return time.monotonic() - t


def extract_in_child(path: Path) -> dict:
    t = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--extract", str(path)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["total"] = time.monotonic() - t
    return result


def extract_here(path: Path) -> dict:
    t0 = time.monotonic()
    sys.path.insert(0, str(ROOT))
    from analysis.style.extract import extract_style

    imported = time.monotonic() - t0
    t1 = time.monotonic()
    extract_style(path)
    t2 = time.monotonic()
    dna = extract_style(path)
    return {"imports": imported, "cold": t2 - t1, "warm": time.monotonic() - t2, "dna": dna.as_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--extract", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.extract:
        print(json.dumps(extract_here(args.extract)))
        return
    with tempfile.TemporaryDirectory(prefix="rf-style-") as tmp:
        source = Path(tmp) / "source.mp4"
        make_source(source, args.seconds)
        decodes, colds, warms = [], [], []
        for r in range(args.rounds):
            decode = plain_decode(source)
            extracted = extract_in_child(source)
            decodes.append(decode)
            colds.append(extracted["imports"] + extracted["cold"])
            warms.append(extracted["warm"])
            dna = extracted["dna"]
            print(f"round {r + 1}: plain decode {decode:.2f} s  extraction cold {colds[-1]:.2f} s "
                  f"(x{colds[-1] / decode:.2f}; imports {extracted['imports']:.2f} s)  warm {warms[-1]:.2f} s "
                  f"(x{warms[-1] / decode:.2f})  [cuts/min {dna['cut_frequency']}, tempo {dna['tempo_bpm']}, "
                  f"transition {dna['primary_transition']['type']}]", flush=True)
    med = statistics.median
    per_minute = 60.0 / args.seconds
    print(f"median per source minute: plain decode {med(decodes) * per_minute:.2f} s, extraction cold "
          f"{med(colds) * per_minute:.2f} s (x{med(c / d for c, d in zip(colds, decodes, strict=True)):.2f}), "
          f"warm {med(warms) * per_minute:.2f} s (x{med(w / d for w, d in zip(warms, decodes, strict=True)):.2f}; "
          f"target <= 1.5)")


if __name__ == "__main__":
    main()
