"""Agglomerative clustering of embeddings (average linkage, cut at a distance threshold)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist


def cluster_embeddings(
    emb: np.ndarray,
    threshold: float,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    cannot_link: np.ndarray | None = None,
) -> np.ndarray:
    """Labels ``(N,)`` (0-based, in order of first appearance) for embeddings ``(N, D)``.

    Average linkage: two groups merge while their mean pairwise distance is below ``threshold``
    (dlib faces: euclidean, 0.6 = same person; resemblyzer voices: cosine distance).
    ``cannot_link`` (N, N) bool marks pairs that are known to differ (two faces on screen at the
    same time): their distance is set far above the threshold, which average linkage carries into
    every group holding them.
    """
    emb = np.asarray(emb, np.float64)
    if emb.ndim != 2:
        raise ValueError(f"expected (N, D) embeddings, got {emb.shape}")
    n = emb.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.zeros(1, np.int64)
    dist = pdist(emb, metric=metric)  # condensed (N*(N-1)/2,)
    if cannot_link is not None:
        iu = np.triu_indices(n, k=1)
        dist = np.where(np.asarray(cannot_link, bool)[iu], dist + 1e3 * max(threshold, 1.0), dist)
    raw = fcluster(linkage(dist, method="average"), t=threshold, criterion="distance")
    first: dict[int, int] = {}
    return np.asarray([first.setdefault(int(r), len(first)) for r in raw], np.int64)
