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

Then the styled render (--render-rounds, default 3): the whole source rendered to 1280x720
(16:9, no reframing crop, no face detector: the static path) with a warm, saturated, loud
target DNA applied (the colour fit on the clip's frames, the audio chain, in the one encode),
against a bare ffmpeg encode of the same output (scale, libx264 veryfast crf 23, loudnorm AAC);
target <= 1.15x.

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


TARGET_DNA = {"color_grade": {"temperature": 40, "tint": 5, "saturation": 35, "contrast": 20, "highlights": 5,
                               "shadows": -5},
              "audio_style": {"normalization_level": 0.8, "compression_ratio": 3.0, "bass_boost": 30,
                              "enhance_speech": False}}  # fmt: skip


def bare_encode(source: Path, out: Path) -> float:
    t = time.monotonic()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vf", "scale=1280:720,setsar=1,format=yuv420p",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-af", "loudnorm=I=-14:TP=-1.5:LRA=11",
                    "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-movflags", "+faststart", str(out)],
                   check=True)  # fmt: skip
    return time.monotonic() - t


def styled_render(source: Path, work: Path) -> tuple[float, float]:
    """(seconds for the whole styled render, of which fitting the filters)."""
    sys.path.insert(0, str(ROOT))
    from analysis.style import audio
    from analysis.style.apply import application_filters
    from reelfarm.media import probe
    from render_nodes import pipeline

    # The source's own DNA comes from its style task, which runs before any render: not timed here.
    own_audio, _ = audio.analyze_audio_file(source)
    t = time.monotonic()
    info = probe(source)
    filters = application_filters(source, 0.0, info.duration_seconds, TARGET_DNA,
                                  {"audio_style": own_audio.as_dict()}, source_frame_rate=info.frame_rate)  # fmt: skip
    fitted = time.monotonic() - t
    pipeline.render_clip(pipeline.RenderRequest(
        source_path=source, clip_index=1, start_seconds=0.0, end_seconds=info.duration_seconds, aspect_ratio="16:9",
        output_width=1280, output_height=720, encoder="libx264", work_dir=work, style=filters))  # fmt: skip
    return time.monotonic() - t, fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--render-rounds", type=int, default=3)
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
        bares, styled, fits = [], [], []
        for r in range(args.render_rounds):
            bares.append(bare_encode(source, Path(tmp) / f"bare{r}.mp4"))
            took, fitted = styled_render(source, Path(tmp) / f"styled{r}")
            styled.append(took)
            fits.append(fitted)
            print(f"render round {r + 1}: bare encode {bares[-1]:.2f} s  styled render {took:.2f} s "
                  f"(fitting {fitted:.2f} s)  x{took / bares[-1]:.2f}", flush=True)
    med = statistics.median
    if styled:
        print(f"styled render: median x{med(s / b for s, b in zip(styled, bares, strict=True)):.2f} of the bare "
              f"encode (fitting {med(fits):.2f} s; target <= 1.15)")
    per_minute = 60.0 / args.seconds
    print(f"median per source minute: plain decode {med(decodes) * per_minute:.2f} s, extraction cold "
          f"{med(colds) * per_minute:.2f} s (x{med(c / d for c, d in zip(colds, decodes, strict=True)):.2f}), "
          f"warm {med(warms) * per_minute:.2f} s (x{med(w / d for w, d in zip(warms, decodes, strict=True)):.2f}; "
          f"target <= 1.5)")


if __name__ == "__main__":
    main()
