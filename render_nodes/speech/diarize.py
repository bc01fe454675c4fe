"""What each voice sounds like, without a model download: MFCC statistics per window of speech.

Features: 19 MFCCs (c1..c19, 25 ms frames every 10 ms, 26 mel bands, computed here with
numpy) summarised per window of about ``window_seconds`` of speech as their mean and
standard deviation (38 numbers). Frames more than 30 dB below the window's loud frames
(pauses inside a VAD segment) are left out. Nothing is normalised per window or per chunk,
so features of separately decoded chunks of one source can be clustered together.

The clustering of these features into speaker turns is content analysis: analysis/speakers.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from render_nodes.speech.audio import pcm_to_float

N_MELS = 26
N_CEPS = 20  # c0 (loudness) is dropped: it says more about the microphone than the voice
FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
_QUIET_DB = 30.0
_MIN_FRAMES = 5


def speaker_features(pcm: bytes, speech: Sequence[tuple[float, float]], sample_rate: int = 16000, *,
                     offset: float = 0.0, window_seconds: float = 1.0) -> list[tuple[float, float, list[float]]]:
    """(start, end, feature vector) per window of speech.

    ``speech`` is VAD segments in seconds relative to ``pcm``; each is cut into
    ``max(1, round(length / window_seconds))`` equal windows. Returned times are
    ``offset`` + relative, so chunks decoded separately line up on one timeline.
    Windows too short to describe (under ~60 ms) are left out.
    """
    x = pcm_to_float(pcm).astype(np.float64)
    if x.size == 0:
        return []
    feats, energy = _mfcc_and_energy(x, sample_rate)
    hop = HOP_SECONDS
    frame = FRAME_SECONDS
    out: list[tuple[float, float, list[float]]] = []
    for seg_start, seg_end in speech:
        seg_start, seg_end = max(0.0, float(seg_start)), min(x.size / sample_rate, float(seg_end))
        length = seg_end - seg_start
        if length <= 0:
            continue
        n = max(1, round(length / window_seconds))
        for i in range(n):
            a = seg_start + length * i / n
            b = seg_start + length * (i + 1) / n
            # Frames wholly inside [a, b).
            first = max(0, math.ceil(a / hop - 1e-9))
            last = min(len(feats), math.floor((b - frame) / hop + 1e-9) + 1)
            if last - first < _MIN_FRAMES:
                continue
            f, e = feats[first:last], energy[first:last]
            loud = e >= np.percentile(e, 90) - _QUIET_DB
            if loud.sum() >= _MIN_FRAMES:
                f = f[loud]
            vector = np.concatenate([f.mean(axis=0), f.std(axis=0)])
            out.append((round(offset + a, 3), round(offset + b, 3), [float(v) for v in vector]))
    return out


def _mfcc_and_energy(x: np.ndarray, sample_rate: int, block_frames: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """MFCCs c1.. and log energies (dB) per 10 ms frame, computed in blocks of frames so a
    long chunk needs tens of MB, not GB."""
    frame = round(FRAME_SECONDS * sample_rate)
    hop = round(HOP_SECONDS * sample_rate)
    if x.size < frame:
        return np.zeros((0, N_CEPS - 1)), np.zeros(0)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    count = 1 + (x.size - frame) // hop
    nfft = 1 << (frame - 1).bit_length()
    window = np.hamming(frame)
    bank = _mel_filterbank(sample_rate, nfft).T
    dct = _dct_matrix(N_MELS, N_CEPS)[1:].T
    ceps = np.empty((count, N_CEPS - 1))
    energy = np.empty(count)
    offsets = np.arange(frame)[None, :]
    for first in range(0, count, block_frames):
        n = min(block_frames, count - first)
        frames = x[offsets + hop * np.arange(first, first + n)[:, None]] * window
        power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
        energy[first : first + n] = 10.0 * np.log10(power.sum(axis=1) + 1e-10)
        ceps[first : first + n] = np.log(power @ bank + 1e-10) @ dct
    return ceps, energy


def _mel_filterbank(sample_rate: int, nfft: int) -> np.ndarray:
    def hz_to_mel(f: np.ndarray | float) -> np.ndarray | float:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), N_MELS + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    bank = np.zeros((N_MELS, bins.size))
    for m in range(N_MELS):
        lo, mid, hi = hz[m], hz[m + 1], hz[m + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        bank[m] = np.maximum(0.0, np.minimum(rising, falling))
    return bank


def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II rows 0..n_out-1."""
    k = np.arange(n_out)[:, None]
    i = np.arange(n_in)[None, :]
    m = np.cos(math.pi * k * (2 * i + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m
