"""Operating conditions: where a machine runs (altitude and throttle, load and speed) changes what
its sensors read far more than wear does. Conditions are found by clustering the settings, so that
each sensor can be judged against its own condition's normal.
"""

from __future__ import annotations

import numpy as np

MAX_CONDITIONS = 10


def fit_conditions(settings: np.ndarray, k: int | None, seed: int) -> dict:
    """Operating conditions as k-means clusters of the settings; k from the silhouette when not given.

    Settings that only jitter around one operating point (C-MAPSS FD001) form no clusters: k-means
    splits the noise with a silhouette around 0.3-0.5, while real conditions separate at 0.9+.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n, d = settings.shape
    one = {"k": 1, "labels": np.zeros(n, dtype=np.int64), "scale": np.ones(max(d, 1)), "centroids": np.zeros((1, max(d, 1)))}
    if d == 0 or k == 1 or n < 10:
        return one
    filled = np.where(np.isnan(settings), np.nanmedian(settings, axis=0), settings)
    scale = filled.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    scaled = filled / scale
    sample = scaled[np.random.default_rng(seed).permutation(n)[:4000]]

    def cluster(kk: int):
        return KMeans(kk, n_init=4, random_state=seed).fit(sample)

    if k is None:
        best, best_score = None, 0.8  # below this the 'clusters' are noise
        for kk in range(2, min(MAX_CONDITIONS, len(np.unique(sample, axis=0)) - 1) + 1):
            fitted = cluster(kk)
            score = silhouette_score(sample, fitted.labels_, sample_size=min(2000, len(sample)), random_state=seed)
            if score > best_score:
                best, best_score = fitted, score
        if best is None:
            return one
    else:
        best = cluster(k)
    centroids = best.cluster_centers_
    labels = ((scaled[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return {"k": len(centroids), "labels": labels, "scale": scale, "centroids": centroids}


def sensor_moves(values: np.ndarray, labels: np.ndarray) -> bool:
    """A sensor worth learning from: more than two distinct readings within some operating condition."""
    for c in np.unique(labels):
        column = values[labels == c]
        if len(np.unique(column[~np.isnan(column)])) > 2:
            return True
    return False
