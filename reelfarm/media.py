"""Media probing: what a video file is (ffprobe), for the API, the scheduler and the nodes.

Everything here shells out to the binaries on PATH; errors are MediaError, whose
``str()`` is short enough to show a user. Running ffmpeg to make media is the render
nodes' business (render_nodes/ffmpeg.py).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

_PROBE_TIMEOUT_SECONDS = 60.0


class MediaError(Exception):
    """A media file or ffmpeg run could not be handled; str() is user-readable."""


@dataclass(frozen=True)
class MediaInfo:
    duration_seconds: float
    width: int  # as displayed: phone footage stored sideways is reported upright
    height: int
    frame_rate: float
    codec: str
    has_audio: bool
    bitrate_kbps: int | None
    format_name: str
    raw: dict[str, Any]
    # Counter-clockwise degrees the stored frames must turn to be shown (display matrix).
    rotation: int = 0


# --------------------------------------------------------------------------- probe


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a video file, refusing anything a render could not start from."""
    cmd = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        proc = subprocess.run(
            dies_with_parent(cmd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=_PROBE_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as exc:
        raise MediaError(f"{FFPROBE} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffprobe timed out after {_PROBE_TIMEOUT_SECONDS:.0f} s") from exc

    if proc.returncode != 0:
        first = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), "")
        raise MediaError(f"not a decodable video: {first or f'ffprobe exit code {proc.returncode}'}")
    try:
        raw = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise MediaError("not a decodable video: ffprobe returned unreadable output") from exc

    streams = raw.get("streams") or []
    fmt = raw.get("format") or {}
    # Cover art (e.g. in audio files) shows up as a one-frame "video" stream.
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise MediaError("no video stream")
    width, height = video.get("width"), video.get("height")
    if not width or not height:
        raise MediaError("video stream has no width/height")
    duration = parse_number(fmt.get("duration")) or parse_number(video.get("duration"))
    if not duration or duration <= 0:
        raise MediaError("duration unknown or zero")

    rotation = display_rotation(video)
    if rotation in (90, 270):
        width, height = height, width
    frame_rate = _parse_rate(video.get("avg_frame_rate")) or _parse_rate(video.get("r_frame_rate")) or 0.0
    bit_rate = parse_number(fmt.get("bit_rate")) or parse_number(video.get("bit_rate"))
    return MediaInfo(
        duration_seconds=duration,
        width=int(width),
        height=int(height),
        frame_rate=frame_rate,
        codec=str(video.get("codec_name") or "unknown"),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        bitrate_kbps=round(bit_rate / 1000) if bit_rate else None,
        format_name=str(fmt.get("format_name") or ""),
        raw=raw,
        rotation=rotation,
    )


def display_rotation(stream: dict[str, Any]) -> int:
    """0, 90, 180 or 270: how far (counter-clockwise) a stream's frames turn for display."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return normal_rotation(parse_number(side["rotation"]) or 0.0)
    return 0


def normal_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4 * 90


def parse_number(value: Any) -> float | None:
    """A number ffmpeg printed, or None: ffprobe reports numbers as strings and uses "N/A" for unknown."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _parse_rate(value: Any) -> float | None:
    """Parse a rational such as "30000/1001"; "0/0" means unknown."""
    if not isinstance(value, str) or not value:
        return None
    num, _, den = value.partition("/")
    n, d = parse_number(num), parse_number(den or "1")
    if n is None or not d:
        return None
    rate = n / d
    return rate if rate > 0 else None


# ------------------------------------------------------------------ child process


@functools.lru_cache(maxsize=None)
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def dies_with_parent(cmd: list[str]) -> list[str]:
    """`cmd`, run so that the kernel kills it when the thread that started it dies.

    util-linux's `setpriv --pdeathsig KILL` sets PR_SET_PDEATHSIG and execs the command.
    Not a preexec_fn: that makes subprocess fork() and run Python in the child, where
    gRPC's fork handlers ran too and sometimes failed ("Epoll1Poller ... Bad file
    descriptor" came back as ffprobe's error and failed a job, on a node serving gRPC).
    Without one, subprocess uses vfork/posix_spawn and nothing runs between fork and exec.
    Raises FileNotFoundError when the program is not installed, as Popen would.
    """
    setpriv = _setpriv()
    if setpriv is None:
        return cmd
    program = shutil.which(cmd[0])
    if program is None:
        raise FileNotFoundError(cmd[0])
    return [setpriv, "--pdeathsig", "KILL", "--", program, *cmd[1:]]
