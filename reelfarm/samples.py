"""The sample video `reelfarm sample` writes (ffmpeg test pattern + tone): something to try ReelFarm on.

The tests' and benchmarks' ground-truth media (faces on known paths, scripted dialogue)
are test harness: tests/harness/media.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_sample_video(path: Path, *, seconds: float = 4.0, size: str = "320x240", rate: int = 25,
                      audio: bool = True, preset: str = "ultrafast") -> Path:
    """An H.264/AAC video of ffmpeg's testsrc2 pattern with a 440 Hz tone."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "aac"] if audio else []
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*cmd, str(path)], check=True)
    return path
