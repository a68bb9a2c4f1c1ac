"""RoPE measured on the model's own queries and keys: angles, wavelengths, scores at moved positions, the decay.

The rotation itself is `model.net.transformer.apply_rope` — the very function the model runs — fed float64 angles: the
model rounds its angles to float32 (an error of ~3e-5 rad at position 500), which would blur the
relative-position check below the 1e-5 it is shown to; in float64 the property holds to ~1e-12.

Worked example (head_dim 4, theta 10000): θ = [1, 0.01]; at position 3 pair 0 turns by 3 rad and pair 1 by
0.03 rad; their wavelengths are 2π ≈ 6.3 and 200π ≈ 628 positions.

The relative-position property: with R(m) the rotation at position m, (R(m)q)·(R(n)k) = q·R(n − m)k, so the
score depends on m − n only; moving both to (m + Δ, n + Δ) leaves it unchanged (to float rounding).

For the other variants it only compares a position table's rows (`model.analysis.geometry.cosine_matrix`); the tables themselves
are `model.net.transformer.sinusoidal_table`, the learned `pos_embed` and `alibi_slopes`. No batching: one q and one k
at a time.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from model.net.positions import (alibi_slopes, apply_rope, rope_attention_factor,
                                  scale_inv_freq, sinusoidal_table)

# `scaling` below is a config's rope_scaling (an imported Llama-3.1 or linearly interpolated model; None for ours):
# the frequencies are then rescaled exactly as the model rescales them (`model.net.positions.scale_inv_freq`).


def inv_freq(head_dim: int, theta: float, scaling: dict | None = None) -> np.ndarray:
    """θ_i = theta^(-2i/hd) for each pair i, fast pairs first, in float64 (`rope_inv_freq` is float32). (hd/2,)"""
    base = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    return base if scaling is None else scale_inv_freq(torch.from_numpy(base), scaling).numpy()


def angle_table(n_positions: int, head_dim: int, theta: float, scaling: dict | None = None) -> np.ndarray:
    """m·θ_i, radians, for m = 0 … n_positions-1 and every pair i. (T, hd/2)"""
    return np.arange(n_positions, dtype=np.float64)[:, None] * inv_freq(head_dim, theta, scaling)[None, :]


def wavelengths(head_dim: int, theta: float, scaling: dict | None = None) -> np.ndarray:
    """2π/θ_i: how many positions pair i takes to turn once. (hd/2,)"""
    return 2 * np.pi / inv_freq(head_dim, theta, scaling)


def rotate(x: np.ndarray, positions: np.ndarray, theta: float, scaling: dict | None = None) -> np.ndarray:
    """Rotate vectors x (N, hd) — one per entry of positions (N,) — as the model rotates q and k."""
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float64))[None, :, None, :]  # (1, N, 1, hd)
    pos = np.asarray(positions, dtype=np.float64)
    angles = torch.as_tensor(pos[:, None] * inv_freq(x_t.shape[-1], theta, scaling)[None, :])  # (N, hd/2) float64
    # YaRN lengthens q and k as the model does
    return apply_rope(x_t, angles, rope_attention_factor(scaling))[0, :, 0, :].numpy()  # (N, hd)


def scores_at(q: np.ndarray, k: np.ndarray, m, n, theta: float, scaling: dict | None = None) -> np.ndarray:
    """The scaled score (R(m)q)·(R(n)k)/√hd of one unrotated q (hd,) and k (hd,) placed at positions m and n
    (equal-length arrays, or scalars). Scaled as the model's `hook_attn_scores` is, before any mask."""
    m, n = np.atleast_1d(np.asarray(m)), np.atleast_1d(np.asarray(n))
    m, n = np.broadcast_arrays(m, n)
    hd = q.shape[-1]
    rq = rotate(np.repeat(q[None], len(m), 0), m, theta, scaling)  # (N, hd)
    rk = rotate(np.repeat(k[None], len(n), 0), n, theta, scaling)  # (N, hd)
    return (rq * rk).sum(-1) / math.sqrt(hd)  # (N,)


def sinusoidal_position_table(cfg) -> np.ndarray:
    """The sinusoidal table (max_seq_len, d_model) for a config's sizes: a formula, so no weights are needed."""
    return sinusoidal_table(torch.arange(cfg.max_seq_len), cfg.d_model).numpy()


def absolute_position_table(model) -> np.ndarray:
    """The (max_seq_len, d_model) table an absolute-position variant adds to the token embeddings: the
    sinusoidal formula, or a copy of the learned `pos_embed` (read, never written). Empty for the others."""
    cfg = model.cfg
    if cfg.pos_encoding == "sinusoidal":
        return sinusoidal_position_table(cfg)
    if cfg.pos_encoding == "learned":
        return model.pos_embed.weight.detach().numpy().copy()
    return np.zeros((0, cfg.d_model), dtype=np.float32)


def alibi_head_slopes(n_heads: int) -> np.ndarray:
    """ALiBi's per-head slopes, as the model uses them. (nh,)"""
    return alibi_slopes(n_heads).numpy()


def scores_by_distance(Q: np.ndarray, K: np.ndarray, distances, theta: float,
                       scaling: dict | None = None) -> np.ndarray:
    """Every unrotated query of Q (Nq, hd) against every key of K (Nk, hd), the query placed `distance` after
    the key: (R(r)q)·(R(0)k)/√hd for each r in distances -> (Nq·Nk, R). Computed with complex pairs
    (x_2i + i·x_2i+1): the score is Re Σ_i q̃_i·conj(k̃_i)·e^{i·r·θ_i} / √hd — the same numbers as `scores_at`."""
    Q, K = np.asarray(Q, dtype=np.float64), np.asarray(K, dtype=np.float64)
    hd = Q.shape[-1]
    qc, kc = Q[:, 0::2] + 1j * Q[:, 1::2], K[:, 0::2] + 1j * K[:, 1::2]  # (Nq, hd/2), (Nk, hd/2)
    z = (qc[:, None, :] * np.conj(kc)[None, :, :]).reshape(-1, hd // 2)  # (Nq·Nk, hd/2)
    r = np.asarray(distances, dtype=np.float64)
    phase = np.exp(1j * np.outer(inv_freq(hd, theta, scaling), r))  # (hd/2, R)
    return (z @ phase).real * rope_attention_factor(scaling) ** 2 / math.sqrt(hd)  # YaRN: q·k × factor²


def mean_abs_by_distance(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean |score| over the pairs (rows of `scores_by_distance`) at each distance, and its standard error
    (std / √pairs; the pairs share tokens, so it understates the uncertainty somewhat). (R,), (R,)"""
    a = np.abs(np.asarray(scores, dtype=np.float64))
    n = a.shape[0]
    se = a.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(a.shape[1], np.nan)
    return a.mean(axis=0), se
