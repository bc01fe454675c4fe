"""Who speaks when, without a model download: MFCC statistics per window, then clustering.

Features: 19 MFCCs (c1..c19, 25 ms frames every 10 ms, 26 mel bands, computed here with
numpy) summarised per window of about ``window_seconds`` of speech as their mean and
standard deviation (38 numbers). Frames more than 30 dB below the window's loud frames
(pauses inside a VAD segment) are left out. Nothing is normalised per window or per chunk,
so features of separately decoded chunks of one source can be clustered together.

Clustering: the windows' features are standardised together and reduced by PCA, then
k-means (k-means++ seeding, several restarts) splits them for each k in 1..max_speakers,
and the Bayesian information criterion picks k. The model behind the BIC is a mixture of
Gaussians with one shared diagonal covariance (hard assignments), so an extra speaker must
explain enough variance to pay for its means: one voice gives no such gain (k-means can
always split it, the BIC says the split is not worth it), two distinct voices give a large
one. A shared covariance, unlike per-cluster ones, does not reward tiny clusters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from render_nodes.speech.audio import pcm_to_float

N_MELS = 26
N_CEPS = 20  # c0 (loudness) is dropped: it says more about the microphone than the voice
FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
_QUIET_DB = 30.0
_MIN_FRAMES = 5
_BIC_PENALTY = 1.0
_PCA_DIMS = 3
_KMEANS_RESTARTS = 8
_KMEANS_ITERATIONS = 100


@dataclass(frozen=True)
class Turn:
    start: float  # seconds, the same timeline as the features' windows
    end: float
    speaker: int  # numbered by first appearance, from 0


def mfcc(pcm: bytes, sample_rate: int = 16000) -> np.ndarray:
    """(frames, N_CEPS - 1) MFCCs c1.. of a PCM16 buffer, one row per 10 ms."""
    feats, _ = _mfcc_and_energy(pcm_to_float(pcm).astype(np.float64), sample_rate)
    return feats


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


def cluster_speakers(features: Sequence[tuple[float, float, Sequence[float]]], max_speakers: int = 2, *,
                     num_speakers: int | None = None, merge_gap_seconds: float = 2.0) -> list[Turn]:
    """Label each window with a speaker and merge them into turns.

    The number of speakers is ``num_speakers`` when given, else the BIC's choice in
    1..``max_speakers``. Consecutive windows (in time order) of one speaker at most
    ``merge_gap_seconds`` apart become one turn.
    """
    if max_speakers < 1:
        raise ValueError("max_speakers must be >= 1")
    items = sorted(((float(a), float(b), np.asarray(v, dtype=np.float64)) for a, b, v in features),
                   key=lambda t: (t[0], t[1]))
    if not items:
        return []
    data = np.stack([v for _, _, v in items])
    labels = assign_speakers(data, max_speakers=max_speakers, num_speakers=num_speakers)

    # Number speakers by first appearance.
    order: dict[int, int] = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    turns: list[Turn] = []
    for (a, b, _), label in zip(items, labels, strict=True):
        speaker = order[int(label)]
        if turns and turns[-1].speaker == speaker and a - turns[-1].end <= merge_gap_seconds:
            turns[-1] = Turn(turns[-1].start, max(turns[-1].end, b), speaker)
        else:
            turns.append(Turn(a, b, speaker))
    return turns


def assign_speakers(data: np.ndarray, *, max_speakers: int = 2, num_speakers: int | None = None) -> np.ndarray:
    """Cluster labels (arbitrary numbering) for rows of ``data`` (windows x features)."""
    n = data.shape[0]
    if num_speakers is not None:
        if num_speakers < 1:
            raise ValueError("num_speakers must be >= 1")
        candidates = [min(num_speakers, n)]
    else:
        # At least three windows a speaker: fewer cannot show a voice apart from its words.
        candidates = [k for k in range(1, max_speakers + 1) if k == 1 or n >= 3 * k]
    z = _reduce(data)
    best_labels = np.zeros(n, dtype=int)
    best_score = -math.inf
    for k in candidates:
        labels = np.zeros(n, dtype=int) if k == 1 else _kmeans(z, k)
        score = bic(z, labels)
        if score > best_score:
            best_score, best_labels = score, labels
    return best_labels


def bic(z: np.ndarray, labels: np.ndarray, penalty: float = _BIC_PENALTY) -> float:
    """BIC of a hard-assignment Gaussian mixture with one shared diagonal covariance."""
    n, d = z.shape
    ks = np.unique(labels)
    resid = np.empty_like(z)
    loglik = 0.0
    for k in ks:
        members = labels == k
        resid[members] = z[members] - z[members].mean(axis=0)
        loglik += members.sum() * math.log(members.sum() / n)
    # Floor: a split may not claim more than a 100-fold variance cut in any direction.
    var = np.maximum((resid**2).mean(axis=0), 1e-2 * z.var(axis=0) + 1e-12)
    loglik += -0.5 * n * float(np.sum(np.log(2 * math.pi * var) + 1.0))
    params = len(ks) * d + d + (len(ks) - 1)
    return loglik - 0.5 * penalty * params * math.log(max(n, 2))


def _reduce(data: np.ndarray) -> np.ndarray:
    """Standardise columns, then project on the top principal components (whitened)."""
    n = data.shape[0]
    std = data.std(axis=0)
    z = (data - data.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)
    dims = max(1, min(_PCA_DIMS, n - 1, z.shape[1]))
    if n < 2:
        return z[:, :dims]
    # Not whitened: k-means must see the dominant direction as dominant (whitening gave
    # the noise components equal say and split the dialogue wrongly); the BIC is per-dim
    # scale-free anyway.
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    return (u * s)[:, :dims]


def _kmeans(z: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = z.shape[0]
    best: tuple[float, np.ndarray] | None = None
    for _ in range(_KMEANS_RESTARTS):
        centres = [z[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((z[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            centres.append(z[rng.choice(n, p=d2 / total)] if total > 0 else z[rng.integers(n)])
        c = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for it in range(_KMEANS_ITERATIONS):
            d2 = ((z[:, None, :] - c[None]) ** 2).sum(-1)
            new = d2.argmin(axis=1)
            if it and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if np.any(labels == j):
                    c[j] = z[labels == j].mean(axis=0)
        inertia = float(((z - c[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels.copy())
    assert best is not None
    return best[1]


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
