"""Verification metrics shared by every identity measurement (faces and voices)."""

from __future__ import annotations

import numpy as np


def equal_error_rate(same: np.ndarray, different: np.ndarray) -> tuple[float, float]:
    """EER of a similarity score (higher = more alike) and the threshold where it is reached.

    Sweeps every observed score as a threshold; the false-reject rate (same pairs below the
    threshold) and false-accept rate (different pairs at or above it) cross at the EER.
    """
    same, different = np.asarray(same, np.float64), np.asarray(different, np.float64)
    if same.size == 0 or different.size == 0:
        raise ValueError("equal_error_rate needs at least one same pair and one different pair")
    thresholds = np.unique(np.concatenate([same, different]))
    s, d = np.sort(same), np.sort(different)
    frr = np.searchsorted(s, thresholds, side="left") / s.size  # same pairs scored below t
    far = 1.0 - np.searchsorted(d, thresholds, side="left") / d.size  # different pairs scored >= t
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(thresholds[i])


def pair_scores(
    embeddings: np.ndarray, labels: np.ndarray, metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs similarity split into same-label and different-label scores.

    ``metric="cosine"`` returns cosine similarity; ``"neg_l2"`` returns minus the Euclidean
    distance (dlib's convention: distance < 0.6 means the same person).
    """
    e = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    if metric == "cosine":
        e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
        sim = e @ e.T
    elif metric == "neg_l2":
        sim = -np.linalg.norm(e[:, None] - e[None], axis=-1)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    iu = np.triu_indices(len(labels), 1)
    same_mask = labels[iu[0]] == labels[iu[1]]
    return sim[iu][same_mask], sim[iu][~same_mask]
