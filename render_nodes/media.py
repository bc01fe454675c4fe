"""Thin, dependable wrappers around the ffmpeg and ffprobe command-line tools.

Everything here shells out to the binaries on PATH; errors are turned into
:class:`MediaError` subclasses whose ``str()`` is short enough to show a user.
"""

from __future__ import annotations

import functools
import json
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

_STDERR_TAIL_LINES = 50
_REASON_MAX_LINES = 3
_REASON_MAX_CHARS = 500
_TERMINATE_GRACE_SECONDS = 5.0
_PROBE_TIMEOUT_SECONDS = 60.0
_CAPABILITY_TIMEOUT_SECONDS = 20.0


class MediaError(Exception):
    """A media file or ffmpeg run could not be handled; str() is user-readable."""


class FfmpegFailed(MediaError):
    """ffmpeg exited nonzero; ``reason`` holds its most telling stderr lines."""

    def __init__(self, reason: str, returncode: int) -> None:
        super().__init__(f"ffmpeg failed (exit code {returncode}): {reason}")
        self.reason = reason
        self.returncode = returncode


class Cancelled(MediaError):
    """The caller asked for the ffmpeg run to stop and it was stopped."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


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
    duration = _to_float(fmt.get("duration")) or _to_float(video.get("duration"))
    if not duration or duration <= 0:
        raise MediaError("duration unknown or zero")

    rotation = display_rotation(video)
    if rotation in (90, 270):
        width, height = height, width
    frame_rate = _parse_rate(video.get("avg_frame_rate")) or _parse_rate(video.get("r_frame_rate")) or 0.0
    bit_rate = _to_float(fmt.get("bit_rate")) or _to_float(video.get("bit_rate"))
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
            return normal_rotation(_to_float(side["rotation"]) or 0.0)
    return 0


def normal_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4 * 90


def _to_float(value: Any) -> float | None:
    """ffprobe reports numbers as strings and uses "N/A" for unknown."""
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
    n, d = _to_float(num), _to_float(den or "1")
    if n is None or not d:
        return None
    rate = n / d
    return rate if rate > 0 else None


# ----------------------------------------------------------------------- run_ffmpeg

_EOF = object()


def run_ffmpeg(
    args: list[str],
    *,
    expected_duration: float,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> None:
    """Run ffmpeg to completion, reporting percent done and honouring ``cancel``.

    ``on_progress`` is called on the calling thread with non-decreasing values
    in 0..100, once per ``-progress`` block and a final 100 on success.
    """
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", *args]
    try:
        proc = subprocess.Popen(
            dies_with_parent(cmd),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise MediaError(f"{FFMPEG} is not installed") from exc

    assert proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    updates: queue.Queue[object] = queue.Queue()
    stderr_reader = threading.Thread(target=_collect_lines, args=(proc.stderr, tail), daemon=True)
    stdout_reader = threading.Thread(
        target=_read_progress, args=(proc.stdout, expected_duration, updates), daemon=True
    )
    stderr_reader.start()
    stdout_reader.start()

    reported = 0.0
    try:
        while True:
            if cancel is not None and cancel.is_set():
                _stop(proc)
                raise Cancelled()
            try:
                item = updates.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _EOF:
                break
            assert isinstance(item, float)
            if on_progress is not None and item >= reported:
                reported = item
                on_progress(item)
        returncode = proc.wait()
    finally:
        # Reached with the process still running only if a callback raised.
        if proc.poll() is None:
            _stop(proc)
        stdout_reader.join()
        stderr_reader.join()
        proc.stdout.close()
        proc.stderr.close()

    if returncode != 0:
        raise FfmpegFailed(_failure_reason(tail, returncode), returncode)
    if on_progress is not None and reported < 100.0:
        on_progress(100.0)


class FfmpegPipe:
    """ffmpeg reading raw frames on stdin, fed from a writer thread.

    ``write`` queues a frame (a sequence of buffers written back to back) and returns at
    once unless ``max_queued`` frames are waiting, so the caller decodes the next frame
    while ffmpeg encodes; ``close`` waits for ffmpeg and raises :class:`FfmpegFailed`
    with its stderr's explanation when it failed.
    """

    # Linux lets an unprivileged process grow a pipe to 1 MiB: fewer wake-ups per frame.
    _PIPE_BYTES = 1 << 20
    _F_SETPIPE_SZ = 1031

    def __init__(self, args: list[str], *, cwd: str | os.PathLike[str] | None = None, max_queued: int = 8) -> None:
        cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-v", "error", *args]
        try:
            self._proc = subprocess.Popen(
                dies_with_parent(cmd), cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=False,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise MediaError(f"{FFMPEG} is not installed") from exc
        assert self._proc.stdin is not None and self._proc.stderr is not None
        try:
            import fcntl

            fcntl.fcntl(self._proc.stdin.fileno(), self._F_SETPIPE_SZ, self._PIPE_BYTES)
        except (ImportError, OSError):
            pass  # a smaller pipe only means more context switches
        self._tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._frames: queue.Queue[Sequence[Any] | None] = queue.Queue(maxsize=max_queued)
        self._broken = threading.Event()  # ffmpeg stopped reading: it failed
        self._stderr_reader = threading.Thread(
            target=_collect_lines,
            args=((line.decode("utf-8", "replace") for line in self._proc.stderr), self._tail),
            daemon=True,
        )
        self._writer = threading.Thread(target=self._write_frames, daemon=True)
        self._stderr_reader.start()
        self._writer.start()

    def _write_frames(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while (frame := self._frames.get()) is not None:
                if not self._broken.is_set():
                    for buffer in frame:
                        stdin.write(buffer)
        except (BrokenPipeError, OSError):
            self._broken.set()
            while self._frames.get() is not None:  # unblock the producer until close()
                pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def queued(self) -> int:
        """Frames written but not yet handed to ffmpeg: 0 means it may soon sit idle."""
        return self._frames.qsize()

    def write(self, frame: Sequence[Any]) -> None:
        if self._broken.is_set():
            self._fail()
        self._frames.put(frame)

    def close(self) -> None:
        """Finish the stream and wait for ffmpeg; raises FfmpegFailed if it failed."""
        self._frames.put(None)
        self._writer.join()
        returncode = self._proc.wait()
        self._stderr_reader.join()
        if returncode != 0:
            raise FfmpegFailed(_failure_reason(self._tail, returncode), returncode)

    def kill(self) -> None:
        """Abandon the output (cancel, or a failure on our side)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._broken.set()
        if self._writer.is_alive():
            self._frames.put(None)
        self._writer.join()
        self._proc.wait()
        self._stderr_reader.join()

    def _fail(self) -> None:
        returncode = self._proc.wait()
        self._stderr_reader.join()
        raise FfmpegFailed(_failure_reason(self._tail, returncode or 1), returncode or 1)


def _read_progress(stream: Iterable[str], expected_duration: float, updates: queue.Queue[object]) -> None:
    """Turn ``-progress`` key=value blocks into percentages on ``updates``."""
    out_time_us: float | None = None
    for line in stream:
        key, _, value = line.strip().partition("=")
        # out_time_ms is microseconds too (a historical ffmpeg misnomer).
        if key in ("out_time_us", "out_time_ms"):
            parsed = _to_float(value)
            if parsed is not None:
                out_time_us = parsed
        elif key == "progress":
            if out_time_us is not None and expected_duration > 0:
                percent = out_time_us / 1e6 / expected_duration * 100.0
                updates.put(min(100.0, max(0.0, percent)))
    updates.put(_EOF)


def _collect_lines(stream: Iterable[str], tail: deque[str]) -> None:
    """Drain stderr so ffmpeg never blocks on a full pipe; keep only the tail."""
    for line in stream:
        tail.append(line.rstrip())


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ask ffmpeg to finish, then force it."""
    proc.terminate()
    try:
        proc.wait(timeout=_TERMINATE_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_NOISE_PREFIXES = (
    "Input #",
    "Output #",
    "Stream mapping:",
    "Press [q]",
    "frame=",
    "size=",
    "video:",
    "Last message repeated",
    "Conversion failed!",
)
_ADDRESS = re.compile(r"^\[([^\]]+?) @ 0x[0-9a-fA-F]+\]\s*")
_ERRORISH = re.compile(
    r"error|invalid|fail|cannot|can't|could not|unable|not found|no such|unknown|unrecognized"
    r"|not supported|unsupported|denied|does not|mismatch|out of memory",
    re.IGNORECASE,
)


def _failure_reason(lines: Iterable[str], returncode: int) -> str:
    """Pick the stderr lines that explain a failure, minus banner noise.

    Lines tagged "[component @ 0x...]" come from the library that hit the
    problem and usually name the cause; untagged ones are the CLI's generic
    consequences, so tagged errors are preferred.
    """
    candidates: list[tuple[str, bool]] = []
    for line in lines:
        if not line.strip() or line[:1].isspace() or line.startswith(_NOISE_PREFIXES):
            continue
        tagged = _ADDRESS.match(line) is not None
        cleaned = _ADDRESS.sub(lambda m: f"{m.group(1)}: ", line.strip())
        if not candidates or candidates[-1][0] != cleaned:
            candidates.append((cleaned, tagged))
    errors = [i for i, (text, _) in enumerate(candidates) if _ERRORISH.search(text)]
    if errors:
        tagged_errors = [i for i in errors if candidates[i][1]][-_REASON_MAX_LINES:]
        others = [i for i in errors if i not in tagged_errors]
        room = _REASON_MAX_LINES - len(tagged_errors)
        chosen = sorted(tagged_errors + (others[-room:] if room else []))
    else:
        chosen = list(range(len(candidates)))[-_REASON_MAX_LINES:]
    reason = " | ".join(candidates[i][0] for i in chosen) or f"ffmpeg exited with code {returncode}"
    if len(reason) > _REASON_MAX_CHARS:
        reason = reason[: _REASON_MAX_CHARS - 1] + "…"
    return reason


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


# -------------------------------------------------------------- capability checks


def _exits_cleanly(cmd: list[str]) -> bool:
    try:
        proc = subprocess.run(
            dies_with_parent(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_CAPABILITY_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@functools.lru_cache(maxsize=None)
def encoder_works(encoder: str) -> bool:
    """Encode one real frame: ``ffmpeg -encoders`` lists e.g. h264_nvenc even without a GPU."""
    return _exits_cleanly(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "lavfi", "-i", "color=c=black:s=256x256:r=25",
            "-frames:v", "1", "-c:v", encoder, "-f", "null", "-",
        ]
    )  # fmt: skip


@functools.lru_cache(maxsize=None)
def hwaccel_works(name: str) -> bool:
    """Check that a hardware device of this type (e.g. "cuda") can really be opened."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return False
    return _exits_cleanly(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-init_hw_device", f"{name}=hw",
            "-f", "lavfi", "-i", "nullsrc=s=64x64", "-frames:v", "1", "-f", "null", "-",
        ]
    )  # fmt: skip


def probe_encoders() -> list[str]:
    """H.264 encoders usable on this machine, preferred first."""
    return [enc for enc in ("h264_nvenc", "libx264") if encoder_works(enc)]
