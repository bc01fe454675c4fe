"""Running ffmpeg on a render node: to completion with progress, fed frames on a pipe,
and the one-frame capability checks (NVENC, hardware decoders).

Errors are reelfarm.media.MediaError subclasses whose ``str()`` is short enough to show
a user; probing a file is reelfarm.media.probe.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from reelfarm.media import FFMPEG, MediaError, dies_with_parent, parse_number

# The H.264 encoders a render may use, with their settings (clips and campaign videos alike).
ENCODERS = ("libx264", "h264_nvenc")
# Social platforms normalise to about -14 LUFS; matching it avoids their turning us down.
LOUDNORM = "loudnorm=I=-14:TP=-1.5:LRA=11"


def video_encoder_args(encoder: str, x264_preset: str) -> list[str]:
    if encoder == "h264_nvenc":
        # -b:v 0 lifts nvenc's default bitrate cap so -cq alone sets the quality.
        return ["-c:v", "h264_nvenc", "-preset", "p4", "-rc", "vbr", "-cq", "23", "-b:v", "0"]
    return ["-c:v", "libx264", "-preset", x264_preset, "-crf", "23"]


_STDERR_TAIL_LINES = 50
_REASON_MAX_LINES = 3
_REASON_MAX_CHARS = 500
_TERMINATE_GRACE_SECONDS = 5.0
_CAPABILITY_TIMEOUT_SECONDS = 20.0


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
        raise FfmpegFailed(failure_reason(tail, returncode), returncode)
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
            raise FfmpegFailed(failure_reason(self._tail, returncode), returncode)

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
        raise FfmpegFailed(failure_reason(self._tail, returncode or 1), returncode or 1)


def _read_progress(stream: Iterable[str], expected_duration: float, updates: queue.Queue[object]) -> None:
    """Turn ``-progress`` key=value blocks into percentages on ``updates``."""
    out_time_us: float | None = None
    for line in stream:
        key, _, value = line.strip().partition("=")
        # out_time_ms is microseconds too (a historical ffmpeg misnomer).
        if key in ("out_time_us", "out_time_ms"):
            parsed = parse_number(value)
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


def failure_reason(lines: Iterable[str], returncode: int) -> str:
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
