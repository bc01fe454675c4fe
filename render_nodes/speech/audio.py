"""Audio for speech analysis: mono 16-bit PCM decoded by ffmpeg, and a loudness profile.

PCM here is always signed 16-bit little-endian, mono, at ``sample_rate`` (16 kHz unless
told): what webrtcvad and pocketsphinx take as-is.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import numpy as np

from reelfarm import media
from reelfarm.media import MediaError
from render_nodes.ffmpeg import FfmpegFailed, failure_reason

BYTES_PER_SAMPLE = 2
_DB_FLOOR = -90.0
_PROBE_TIMEOUT_SECONDS = 60.0


def pcm_seconds(pcm: bytes, sample_rate: int = 16000) -> float:
    """Duration of a PCM16 mono buffer in seconds."""
    return len(pcm) // BYTES_PER_SAMPLE / sample_rate


def pcm_to_float(pcm: bytes) -> np.ndarray:
    """float32 samples in [-1, 1)."""
    usable = len(pcm) - len(pcm) % BYTES_PER_SAMPLE
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0


def has_audio_stream(source: str | os.PathLike[str]) -> bool:
    """Whether ffprobe finds an audio stream in ``source``; MediaError if it cannot read it."""
    cmd = [media.FFPROBE, "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
           "-of", "csv=p=0", str(source)]
    try:
        proc = subprocess.run(media.dies_with_parent(cmd), check=False, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=_PROBE_TIMEOUT_SECONDS)
    except FileNotFoundError as exc:
        raise MediaError(f"{media.FFPROBE} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffprobe timed out after {_PROBE_TIMEOUT_SECONDS:.0f} s") from exc
    if proc.returncode != 0:
        first = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), "")
        raise MediaError(f"not a decodable file: {first or f'ffprobe exit code {proc.returncode}'}")
    return bool(proc.stdout.strip())


def decode_pcm16(source: str | Path, start: float = 0.0, end: float | None = None,
                 sample_rate: int = 16000, *, timeout: float | None = None) -> bytes:
    """Decode [start, end) seconds of ``source``'s first audio stream to mono PCM16 LE.

    The seek is sample-accurate (``-ss`` before ``-i`` decodes from the preceding
    keyframe and discards up to ``start``). A source with no audio stream (a silent
    video) gives ``b""``; an unreadable one raises :class:`MediaError`.
    """
    if start < 0 or not math.isfinite(start):
        raise ValueError(f"start must be a finite number >= 0, not {start!r}")
    if end is not None and not end > start:
        raise ValueError(f"end ({end!r}) must be after start ({start!r})")
    cmd = [media.FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error"]
    if start > 0:
        cmd += ["-ss", f"{start:.6f}"]
    if end is not None:
        cmd += ["-t", f"{end - start:.6f}"]
    cmd += ["-i", str(source), "-map", "0:a:0?", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(sample_rate),
            "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    try:
        proc = subprocess.run(media.dies_with_parent(cmd), check=False, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise MediaError(f"{media.FFMPEG} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"audio decode timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        # "Output file does not contain any stream" when the optional map matched nothing:
        # a video without sound is valid input, so ask ffprobe rather than parse messages.
        if os.path.exists(source) and not has_audio_stream(source):
            return b""
        lines = proc.stderr.decode("utf-8", "replace").splitlines()
        raise FfmpegFailed(failure_reason(lines, proc.returncode), proc.returncode)
    pcm = proc.stdout
    return pcm[: len(pcm) - len(pcm) % BYTES_PER_SAMPLE]


def loudness_profile(pcm: bytes, sample_rate: int = 16000, window_seconds: float = 0.5) -> list[float]:
    """RMS level in dBFS (a full-scale square wave is 0) per window, floored at -90.

    Window i covers [i * window_seconds, (i + 1) * window_seconds); a shorter last
    window is included.
    """
    if window_seconds <= 0:
        raise ValueError("window_seconds must be > 0")
    x = pcm_to_float(pcm).astype(np.float64)
    if x.size == 0:
        return []
    win = max(1, round(window_seconds * sample_rate))
    n = -(-x.size // win)
    padded = np.zeros(n * win)
    padded[: x.size] = x * x
    sums = padded.reshape(n, win).sum(axis=1)
    counts = np.full(n, win, dtype=np.float64)
    counts[-1] = x.size - (n - 1) * win
    rms = np.sqrt(sums / counts)
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(rms)
    return [float(v) for v in np.maximum(db, _DB_FLOOR)]
