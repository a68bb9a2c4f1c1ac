"""Head roles from attention patterns, and which query heads share a K/V head: plain NumPy in and out.

Role scores from patterns [head, query, key]: previous-token, first-token (sink), self, and induction (on a
sequence made of one random block repeated twice). Attention statistics per head — mean attended distance,
entropy, first-token share — for `model.evaluation` and the Compare page. The GQA mapping (`kv_head_of`,
`kv_groups`) is here once: the model's own `repeat_interleave` is the reference it is tested against.

Non-goals: running the model (pages do that through `model.net.trace.run_with_trace`, cached) and drawing (`viz/`).
No torch, no streamlit.
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


def _readable_rows(pattern: np.ndarray) -> np.ndarray | None:
    """pattern [..., head, q, k] as float64 (B, H, T-1, T): queries 1 … T-1 with any leading axes flattened into
    B. None when T < 2 (query 0 can only read key 0, so it says nothing about a head)."""
    p = np.asarray(pattern, dtype=np.float64)
    p = p.reshape(-1, *p.shape[-3:])  # (B, H, T, T)
    return p[:, :, 1:, :] if p.shape[-1] >= 2 else None


def first_token_score(pattern: np.ndarray) -> np.ndarray:
    """Mean of pattern[h, q, 0] over q = 1 .. T-1 and any leading (batch) axes: the share parked on the first
    token — an attention "sink" when large. (H,)"""
    rows = _readable_rows(pattern)
    if rows is None:
        return np.full(pattern.shape[-3], np.nan)
    return rows[..., 0].mean(axis=(0, 2))  # (H,)


def mean_distance_score(pattern: np.ndarray) -> np.ndarray:
    """Mean attended distance Σ_k pattern[h, q, k]·(q − k), over q = 1 .. T-1 and any leading axes: how far
    back the head looks. A previous-token head scores 1; attention spread evenly, `uniform_reference`. (H,)"""
    rows = _readable_rows(pattern)
    if rows is None:
        return np.full(pattern.shape[-3], np.nan)
    T = rows.shape[-1]
    dist = np.clip(np.arange(1, T)[:, None] - np.arange(T)[None, :], 0, None)  # (T-1, T) q − k where readable
    return (rows * dist).sum(-1).mean(axis=(0, 2))  # (H,)


def entropy_score(pattern: np.ndarray) -> np.ndarray:
    """Mean entropy −Σ_k p log p of each query's row, in nats, over q = 1 .. T-1 and any leading axes:
    0 = one key only, log(q + 1) = spread evenly over all a query may read. (H,)"""
    rows = _readable_rows(pattern)
    if rows is None:
        return np.full(pattern.shape[-3], np.nan)
    plogp = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1.0)), 0.0)
    return (-plogp.sum(-1)).mean(axis=(0, 2))  # (H,)


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


# --------------------------------------------------------------------------------------------------------
# Attention statistics: how far back, how spread out, how much on the first token (the Compare page's numbers)
# --------------------------------------------------------------------------------------------------------


def attention_stats(pattern: np.ndarray) -> dict[str, np.ndarray]:
    """mean_distance, entropy and first_token per head of pattern [..., head, query, key], averaged over
    queries 1 … T−1 and any leading batch axes. A head that always reads the previous token has mean_distance
    1, entropy 0 and first_token 1/(T−1) (at query 1, key 0 *is* the previous token)."""
    return {"mean_distance": mean_distance_score(pattern), "entropy": entropy_score(pattern),
            "first_token": first_token_score(pattern)}


def uniform_reference(T: int) -> dict[str, float]:
    """The same statistics for attention spread evenly over every readable key (queries 1 … T−1):
    mean distance q/2, entropy log(q + 1), first-token share 1/(q + 1). T=256 -> distance 64.0."""
    q = np.arange(1, T)
    return {"mean_distance": float((q / 2).mean()), "entropy": float(np.log(q + 1).mean()),
            "first_token": float((1 / (q + 1)).mean())}


# --------------------------------------------------------------------------------------------------------
# Grouped-query attention: which K/V head each query head reads
# --------------------------------------------------------------------------------------------------------


def kv_head_of(head: int, n_heads: int, n_kv_heads: int) -> int:
    """The K/V head a query head reads under GQA (Llama's repeat_kv order): 6 q heads, 2 kv heads: 4 -> 1."""
    return head // (n_heads // n_kv_heads)


def kv_groups(n_heads: int, n_kv_heads: int) -> list[list[int]]:
    """The query heads each K/V head serves, in Llama's repeat_kv order: n_heads=6, n_kv_heads=2 ->
    [[0, 1, 2], [3, 4, 5]]."""
    groups: list[list[int]] = [[] for _ in range(n_kv_heads)]
    for h in range(n_heads):
        groups[kv_head_of(h, n_heads, n_kv_heads)].append(h)
    return groups
