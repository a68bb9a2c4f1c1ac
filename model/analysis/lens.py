"""The logit lens: the residual stream after each block read out through the model's own ending — its final
norm (RMSNorm, or LayerNorm with its bias) and the unembedding (nostalgebraist 2020) — and what each stage would
predict. A post-norm model has no final norm: every block already ends in one, so its ending is the unembedding
alone and the lens reads `hook_resid_post` through it directly. Plain NumPy in and out (`final_norm` reads the
parameters off a model without importing torch).

Non-goals: the tuned lens (a trained affine map per layer), and running the model (pages trace it, cached).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------------------
# The logit lens
# --------------------------------------------------------------------------------------------------------


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x * rsqrt(mean(x²) + eps) * weight over the last axis: `model.RMSNorm` in NumPy (float32, like it)."""
    x = x.astype(np.float32)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * weight.astype(np.float32)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """(x − mean) / sqrt(var + eps) * weight + bias over the last axis: `model.LayerNorm` in NumPy (float32)."""
    x = x.astype(np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    return (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * weight.astype(np.float32)
            + bias.astype(np.float32))


NORM_KINDS = ("rmsnorm", "layernorm", "none")  # what `apply_norm` takes: ModelConfig.norm, or no final norm


def apply_norm(x: np.ndarray, ln_weight, eps: float, norm: str = "rmsnorm", ln_bias=None) -> np.ndarray:
    """The final norm of kind `norm` on x (float32): RMSNorm, LayerNorm (weight and bias) or, for "none" (a
    post-norm model), x itself."""
    if norm == "rmsnorm":
        return rms_norm(x, ln_weight, eps)
    if norm == "layernorm":
        return layer_norm(x, ln_weight, ln_bias, eps)
    if norm == "none":
        return np.asarray(x, dtype=np.float32)
    raise ValueError(f"unknown norm {norm!r}: one of {', '.join(NORM_KINDS)}")


def final_norm(model) -> dict:
    """The model's own final norm as `logit_lens` / `lens_summary` keyword arguments: ln_weight, eps, norm and
    ln_bias, read off `model.ln_final` (its class decides the kind). A post-norm model has none: norm="none".

        lens_summary(resids, W_U=W_U, ids=ids, k=5, **final_norm(model))
    """
    ln = model.ln_final
    if ln is None:
        return dict(ln_weight=None, eps=0.0, norm="none", ln_bias=None)
    kind = {"RMSNorm": "rmsnorm", "LayerNorm": "layernorm"}[type(ln).__name__]  # model/net/transformer.py's two
    bias = ln.bias.detach().cpu().float().numpy() if kind == "layernorm" else None
    return dict(ln_weight=ln.weight.detach().cpu().float().numpy(), eps=float(ln.eps), norm=kind, ln_bias=bias)


def lens_stages(n_layers: int) -> list[tuple[str, str]]:
    """(hook name, display name) of each point the lens reads: the stream before block 0, then after each."""
    return [("blocks.0.hook_resid_pre", "embedding")] + [
        (f"blocks.{l}.hook_resid_post", f"after block {l}") for l in range(n_layers)
    ]


def logit_lens(resids: np.ndarray, ln_weight, eps: float, W_U: np.ndarray, norm: str = "rmsnorm",
               ln_bias=None) -> np.ndarray:
    """Logits the model would give if it stopped here: unembed(final_norm(resid)) — `apply_norm` of kind
    `norm` (RMSNorm by default; "none" for a post-norm model, which has no final norm).

    resids: (S, T, d) one residual stream per stage; W_U: (V, d). Returns (S, T, V). The last stage
    (after the last block) gives exactly the model's own logits — the test checks it.
    """
    return apply_norm(resids, ln_weight, eps, norm, ln_bias) @ W_U.astype(np.float32).T  # (S, T, V)


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


def lens_summary(resids: np.ndarray, ln_weight, eps: float, W_U: np.ndarray, ids: np.ndarray,
                 k: int, norm: str = "rmsnorm", ln_bias=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a page keeps of the lens: (top-k ids (S, T, k), their probabilities (S, T, k), p(actual next) (S, T)).

    The same numbers as `top_k(softmax(logit_lens(...)), k)` and `next_token_probs`, one stage at a time: a
    30-layer model with a 49,152-token vocabulary would otherwise hold (31, T, 49152) logits and as many
    probabilities at once — 0.4 GB for 30 tokens. The k best come from an argpartition, then a stable sort.
    """
    from model.decoding.sampling import softmax

    S, T = resids.shape[:2]
    ids = np.asarray(ids)
    idx = np.zeros((S, T, k), dtype=np.int64)
    val = np.zeros((S, T, k), dtype=np.float32)
    p_next = np.full((S, T), np.nan)
    for s in range(S):
        probs = softmax(logit_lens(resids[s:s + 1], ln_weight, eps, W_U, norm, ln_bias))[0]  # (T, V)
        kk = min(k, probs.shape[-1])
        cand = np.sort(np.argpartition(-probs, kk - 1, axis=-1)[:, :kk], axis=-1)  # (T, kk), ascending ids
        order = np.argsort(-np.take_along_axis(probs, cand, axis=-1), axis=-1, kind="stable")
        idx[s, :, :kk] = np.take_along_axis(cand, order, axis=-1)
        val[s, :, :kk] = np.take_along_axis(probs, idx[s, :, :kk], axis=-1)
        if T > 1:
            p_next[s, :-1] = probs[np.arange(T - 1), ids[1:]]
    return idx, val, p_next

