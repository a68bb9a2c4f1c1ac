"""Embedding geometry: a 2-D PCA of a matrix (the vocabulary's embeddings), nearest neighbours by cosine
similarity, the cosine-similarity matrix of a set of rows (position tables) and what it says about distance
(`cosine_by_distance`, behind the pages' sentences on position tables). Plain NumPy in and out.

A zero row has cosine similarity 0 with everything (never-trained rows can be exactly zero after decay).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------------------
# Embedding geometry
# --------------------------------------------------------------------------------------------------------


def pca(X: np.ndarray, n: int = 2, fit: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of X (N, d) on their top-n principal components.

    fit: a boolean mask (N,) of the rows the components (and the centre) are computed from — e.g. leaving out
    never-trained tokens; every row is still projected. Default: all rows.
    Returns (coords (N, n), explained variance ratio (n,) of the fitted rows, largest first).
    """
    X64 = X.astype(np.float64)
    F = X64 if fit is None else X64[np.asarray(fit, dtype=bool)]
    mean = F.mean(axis=0, keepdims=True)
    Fc = F - mean
    # The eigenvectors of the d × d scatter matrix are the principal directions: for a tall X (a 49,152 × 576
    # vocabulary) that is 0.7 s where the SVD of X itself takes 10 s, and float64 keeps it exact enough here.
    var, vecs = np.linalg.eigh(Fc.T @ Fc)  # ascending
    var, vecs = np.clip(var[::-1], 0, None), vecs[:, ::-1]  # (d,), (d, d) largest first
    coords = (X64 - mean) @ vecs[:, :n]  # (N, n)
    return coords, var[:n] / var.sum()


def cosine_matrix(X: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of rows of X (N, d) -> (N, N). A zero row has similarity 0."""
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    Xn = X / np.where(n == 0, 1, n)
    return Xn @ Xn.T


def nearest_neighbours(E: np.ndarray, idx: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of E most cosine-similar to row idx, most similar first (row idx itself comes first).

    Returns (indices (k,), cosine similarities (k,)).
    """
    n = np.linalg.norm(E, axis=-1)
    n = np.where(n == 0, 1, n)
    sims = (E @ E[idx]) / (n * n[idx])  # (N,)
    sims[idx] = np.inf  # itself first, even where another row is an exact copy
    order = np.argsort(-sims, kind="stable")[:k]
    out = sims[order].copy()
    out[order == idx] = 1.0
    return order, out


def cosine_by_distance(S: np.ndarray, distances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a position table's similarity matrix S (N, N) says about distance: for each distance k, the mean,
    5th and 95th percentile of S[m, m + k] over every pair of positions k apart (NaN where k >= N). The mean
    alone hides pairs that disagree with it (a learned table's neighbours range from negative to 0.8).

    Example: S of the rows [1, 0], [0, 1], [1, 0] -> distance 1: mean 0, distance 2: mean 1.
    Returns (mean, p5, p95), each (len(distances),).
    """
    N = S.shape[0]
    out = np.full((3, len(distances)), np.nan)
    for j, k in enumerate(distances):
        if 0 <= k < N:
            diag = np.diagonal(S, int(k)).astype(np.float64)  # (N - k,)
            out[:, j] = diag.mean(), np.percentile(diag, 5), np.percentile(diag, 95)
    return out[0], out[1], out[2]
