"""Analysis over a trace's arrays and the model's weights: plain NumPy in, plain NumPy out.

What is in:
- head role scores from attention patterns [head, query, key]: previous-token, first-token (sink), self,
  and induction (on a sequence made of one random block repeated twice);
- the logit lens: the residual stream after each block through the real final RMSNorm and the unembedding;
- a 2-D PCA of a matrix (the vocabulary's embeddings), nearest neighbours by cosine similarity, and the
  cosine-similarity matrix of a set of vectors (position embeddings).

What is out: running the model (pages do that through `model.trace.run_with_trace`, cached), and drawing
(`viz/`). No torch, no streamlit.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------------------
# Head role scores. pattern: [head, query_pos, key_pos], rows sum to 1 over the keys a query may read.
# --------------------------------------------------------------------------------------------------------

ROLES = ("previous-token", "first-token", "self", "induction")
ROLE_HELP = {
    "previous-token": "mean attention from each token to the token just before it",
    "first-token": "mean attention to the first token (a 'sink' many heads park unused attention on)",
    "self": "mean attention from each token to itself (the diagonal)",
    "induction": "on a random block repeated twice, mean attention from a token in the second copy to the "
                 "token that followed its earlier occurrence",
}


def previous_token_score(pattern: np.ndarray) -> np.ndarray:
    """Mean of pattern[h, q, q-1] over q = 1 .. T-1, per head. A perfect previous-token head scores 1.

    Query 0 is left out: it has no previous token. T=1 gives NaN (nothing to measure).
    """
    H, T, _ = pattern.shape
    if T < 2:
        return np.full(H, np.nan)
    q = np.arange(1, T)
    return pattern[:, q, q - 1].mean(axis=1)  # (H,)


def first_token_score(pattern: np.ndarray) -> np.ndarray:
    """Mean of pattern[h, q, 0] over q = 1 .. T-1 (query 0 can only read key 0, so it says nothing)."""
    H, T, _ = pattern.shape
    if T < 2:
        return np.full(H, np.nan)
    return pattern[:, 1:, 0].mean(axis=1)  # (H,)


def self_score(pattern: np.ndarray) -> np.ndarray:
    """Mean of the diagonal pattern[h, q, q] over q = 1 .. T-1 (query 0's diagonal is forced to 1)."""
    H, T, _ = pattern.shape
    if T < 2:
        return np.full(H, np.nan)
    q = np.arange(1, T)
    return pattern[:, q, q].mean(axis=1)  # (H,)


def induction_score(pattern: np.ndarray, period: int) -> np.ndarray:
    """On a sequence [r; r] with len(r) = period: mean of pattern[h, q, q - period + 1] for q in the second copy.

    Token q in the second copy equals token q - period; an induction head looks back to that earlier
    occurrence and attends to the token *after* it (q - period + 1), whose value predicts what comes next.
    Example: r = [a, b, c], sequence a b c a b c; the query at the second `b` (q=4) should attend to the
    first `c` (k=2).
    """
    H, T, _ = pattern.shape
    q = np.arange(period, T)
    if len(q) == 0:
        return np.full(H, np.nan)
    return pattern[:, q, q - period + 1].mean(axis=1)  # (H,)


def repeated_random_ids(period: int, vocab_size: int, seed: int = 0, low: int = 256) -> np.ndarray:
    """[r; r]: `period` random token ids drawn from [low, vocab_size - 1), repeated once.

    `low=256` skips the raw byte tokens and `vocab_size - 1` leaves out the special token, so the block is
    made of whole merged pieces the model saw in training — random enough that only copying can predict
    the second half.
    """
    r = np.random.default_rng(seed).integers(low, vocab_size - 1, size=period)
    return np.concatenate([r, r])  # (2 * period,)


def role_scores(patterns: list[np.ndarray], induction_patterns: list[np.ndarray] | None, period: int) -> dict:
    """{role: [layer, head] array} from the prompt's patterns (one [head, q, k] per layer) and, for induction,
    the patterns of a repeated random sequence of block length `period` (NaN where not given)."""
    out = {
        "previous-token": np.stack([previous_token_score(p) for p in patterns]),
        "first-token": np.stack([first_token_score(p) for p in patterns]),
        "self": np.stack([self_score(p) for p in patterns]),
    }
    if induction_patterns is not None:
        out["induction"] = np.stack([induction_score(p, period) for p in induction_patterns])
    else:
        out["induction"] = np.full_like(out["self"], np.nan)
    return out  # role -> (L, H)


def kv_groups(n_heads: int, n_kv_heads: int) -> list[list[int]]:
    """The query heads each K/V head serves, in Llama's repeat_kv order: n_heads=6, n_kv_heads=2 ->
    [[0, 1, 2], [3, 4, 5]]."""
    g = n_heads // n_kv_heads
    return [list(range(j * g, (j + 1) * g)) for j in range(n_kv_heads)]


# --------------------------------------------------------------------------------------------------------
# The logit lens
# --------------------------------------------------------------------------------------------------------


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x * rsqrt(mean(x²) + eps) * weight over the last axis: `model.RMSNorm` in NumPy (float32, like it)."""
    x = x.astype(np.float32)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * weight.astype(np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def lens_stages(n_layers: int) -> list[tuple[str, str]]:
    """(hook name, display name) of each point the lens reads: the stream before block 0, then after each."""
    return [("blocks.0.hook_resid_pre", "embedding")] + [
        (f"blocks.{l}.hook_resid_post", f"after block {l}") for l in range(n_layers)
    ]


def logit_lens(resids: np.ndarray, ln_weight: np.ndarray, eps: float, W_U: np.ndarray) -> np.ndarray:
    """Logits the model would give if it stopped here: unembed(RMSNorm_final(resid)).

    resids: (S, T, d) one residual stream per stage; W_U: (V, d). Returns (S, T, V). The last stage
    (after the last block) gives exactly the model's own logits — the test checks it.
    """
    return rms_norm(resids, ln_weight, eps) @ W_U.astype(np.float32).T  # (S, T, V)


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries on the last axis, largest first."""
    idx = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return idx, np.take_along_axis(probs, idx, axis=-1)


def next_token_probs(probs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """probs (S, T, V) -> (S, T): the probability each stage gives to the token that actually comes next.

    The last position has no next token in the prompt: NaN.
    """
    S, T, _ = probs.shape
    out = np.full((S, T), np.nan)
    if T > 1:
        out[:, :-1] = probs[:, np.arange(T - 1), np.asarray(ids)[1:]]
    return out


# --------------------------------------------------------------------------------------------------------
# Embedding geometry
# --------------------------------------------------------------------------------------------------------


def pca(X: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of X (N, d) on their top-n principal components.

    Returns (coords (N, n), explained variance ratio (n,), largest first).
    """
    Xc = X.astype(np.float64) - X.mean(axis=0, keepdims=True)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    var = s**2
    coords = Xc @ Vt[:n].T  # (N, n)
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
