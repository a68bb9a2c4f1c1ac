"""The building blocks of one Llama-style block, taken apart on a real trace: RMSNorm step by step on one
token's vector (and, for comparison, the LayerNorm formula on the same vector), the residual stream's norm
through the layers, and the SwiGLU (or GeGLU) MLP's gate, up projection and product. Plain NumPy in and out.

Non-goals: running the model (pages trace it, cached), and any trained LayerNorm, post-norm, GELU-MLP or
mixture-of-experts model — none is shipped, so nothing here pretends to measure one.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------------------
# RMSNorm, one vector at a time
# --------------------------------------------------------------------------------------------------------

# Which norm a page can pick: (input hook, output hook, weight's parameter name) for layer l. The final norm
# reads the stream after the last block and ignores l.
NORMS = {
    "attn": "before attention (ln1)",
    "mlp": "before the MLP (ln2)",
    "final": "final, before the unembedding (ln_final)",
}


def norm_hooks(which: str, layer: int, n_layers: int) -> tuple[str, str, str]:
    """(input hook, output hook, weight parameter) of a norm.

    norm_hooks("mlp", 2, 4) -> ("blocks.2.hook_resid_mid", "blocks.2.ln2.hook_normalized", "blocks.2.ln2.weight")
    """
    if which == "attn":
        return f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.ln1.hook_normalized", f"blocks.{layer}.ln1.weight"
    if which == "mlp":
        return f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.ln2.weight"
    if which == "final":
        return f"blocks.{n_layers - 1}.hook_resid_post", "ln_final.hook_normalized", "ln_final.weight"
    raise ValueError(f"unknown norm {which!r}: one of {', '.join(NORMS)}")


def rmsnorm_steps(x: np.ndarray, g: np.ndarray, eps: float) -> dict:
    """Every intermediate of RMSNorm on one vector x (d,) with learned weight g (d,), in float64:

        rms = sqrt(mean(x²) + eps),   x̂ = x / rms,   out = x̂ · g

    The model computes the same in float32 (`RMSNorm.forward`); the two agree to ~1e-6. Also the norms a
    caption quotes: ‖x̂‖ is √d·sqrt(ms / (ms + eps)) — √d for any vector not tiny next to eps.
    x = [3, 4], g = [1, 1], eps = 0 -> rms = √12.5 ≈ 3.536, x̂ ≈ [0.849, 1.131], ‖x̂‖ = √2.
    """
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    ms = float(np.mean(x * x))
    rms = math.sqrt(ms + eps)
    x_hat = x / rms
    out = x_hat * g
    return dict(x=x, g=g, x_hat=x_hat, out=out, ms=ms, rms=rms, eps=float(eps),
                x_norm=float(np.linalg.norm(x)), x_hat_norm=float(np.linalg.norm(x_hat)),
                out_norm=float(np.linalg.norm(out)))


def layernorm_formula(x: np.ndarray, eps: float) -> dict:
    """The LayerNorm formula (no learned gain or bias) on one vector: (x − mean) / sqrt(var + eps), in float64.

    Not a trained model's LayerNorm: none is shipped. It shows what the subtraction of the mean changes next to
    RMSNorm's x / rms — for a vector whose mean is small next to its rms, almost nothing.
    x = [1, 3], eps = 0 -> mean 2, std 1, out [-1, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    mean = float(np.mean(x))
    var = float(np.mean((x - mean) ** 2))
    std = math.sqrt(var + eps)
    return dict(mean=mean, std=std, out=(x - mean) / std)


# --------------------------------------------------------------------------------------------------------
# The residual stream's norm, stage by stage
# --------------------------------------------------------------------------------------------------------


def residual_stages(n_layers: int) -> list[tuple[str, str]]:
    """(hook name, display name) of every point where the stream can be read: before block 0 (the embedding),
    then after each block's attention and after its MLP.

    residual_stages(1) -> [("blocks.0.hook_resid_pre", "embedding"), ("blocks.0.hook_resid_mid", "0: +attention"),
                           ("blocks.0.hook_resid_post", "0: +MLP")]
    """
    out = [("blocks.0.hook_resid_pre", "embedding")]
    for l in range(n_layers):
        out += [(f"blocks.{l}.hook_resid_mid", f"{l}: +attention"), (f"blocks.{l}.hook_resid_post", f"{l}: +MLP")]
    return out


def residual_norms(resids: np.ndarray) -> dict:
    """resids (S, T, d): the stream at each stage -> its L2 norm per (stage, position), the median per stage,
    and how many times the median grows from the first stage to the last (`growth`)."""
    norms = np.linalg.norm(np.asarray(resids, dtype=np.float64), axis=-1)  # (S, T)
    median = np.median(norms, axis=1)  # (S,)
    growth = float(median[-1] / median[0]) if median[0] > 0 else float("inf")
    return dict(norms=norms, median=median, growth=growth)


# --------------------------------------------------------------------------------------------------------
# The gated MLP: SwiGLU (ours, Llama) or GeGLU (Gemma)
# --------------------------------------------------------------------------------------------------------

ACT_NAMES = {"silu": "SiLU", "gelu_tanh": "GELU"}  # cfg.mlp_act -> how a page names the gate's nonlinearity
GLU_NAMES = {"silu": "SwiGLU", "gelu_tanh": "GeGLU"}


def activation(gate: np.ndarray, act: str) -> np.ndarray:
    """The gate's nonlinearity as `model.MLP` applies it, in NumPy: SiLU(z) = z·σ(z), or GELU's tanh form
    0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))). silu(0) = 0, silu(large z) ≈ z, silu(−large z) ≈ 0."""
    z = np.asarray(gate, dtype=np.float64)
    if act == "silu":
        return z / (1.0 + np.exp(-np.clip(z, -700, 700)))  # clip: exp overflow for very negative z
    if act == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))
    raise ValueError(f"unknown MLP activation {act!r}")


def top_neurons(post: np.ndarray, n: int) -> np.ndarray:
    """post (T, d_mlp): act(gate)·up at every position -> the n neurons with the largest max |post| over the
    prompt, largest first (ties: lower index first)."""
    peak = np.abs(np.asarray(post)).max(axis=0)  # (d_mlp,)
    n = max(0, min(n, peak.shape[0]))
    return np.argsort(-peak, kind="stable")[:n]


def firing_positions(post: np.ndarray, neurons: np.ndarray, k: int) -> np.ndarray:
    """For each neuron, the k positions where |post| is largest, largest first: (len(neurons), min(k, T))."""
    a = np.abs(np.asarray(post))[:, np.asarray(neurons, dtype=np.int64)].T  # (N, T)
    k = max(0, min(k, a.shape[1]))
    return np.argsort(-a, axis=1, kind="stable")[:, :k]
