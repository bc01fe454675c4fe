"""Who speaks when: speaker turns from the render nodes' voice features, without a model.

The features are MFCC statistics per window of speech (render_nodes/speech/diarize.py).
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

_BIC_PENALTY = 1.0
_PCA_DIMS = 3
_KMEANS_RESTARTS = 8
_KMEANS_ITERATIONS = 100


@dataclass(frozen=True)
class Turn:
    start: float  # seconds, the same timeline as the features' windows
    end: float
    speaker: int  # numbered by first appearance, from 0


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
