"""Where position enters the model: RoPE's rotations (with the scalings that stretch them to a longer context —
linear, llama3, ntk, yarn with its attention factor — and the permutation between our interleaved pairs and
Hugging Face's halves), Vaswani's sinusoidal table, ALiBi's slopes.

Torch in, torch out; the NumPy mirrors the pages use for drawing are in `model/analysis/rope.py`, tested
equal to these. A learned table is an `nn.Embedding` in the model and needs no function here.
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def rope_inv_freq(head_dim: int, theta: float, scaling: Optional[dict] = None) -> torch.Tensor:
    """θ_i = theta^(-2i/head_dim) for i = 0 .. head_dim/2 - 1 (fast pairs first), computed as Llama does;
    then rescaled when the model was trained with a context-extending `scaling` (see `scale_inv_freq`)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (hd/2,)
    return inv_freq if scaling is None else scale_inv_freq(inv_freq, scaling)  # (hd/2,)


def scale_inv_freq(inv_freq: torch.Tensor, scaling: dict) -> torch.Tensor:
    """RoPE scaling: how a model stretched to a longer context than it was pre-trained on turns its pairs.

    Every kind is a change of the frequencies (as transformers' `ROPE_INIT_FUNCTIONS` computes them); YaRN also
    scales the attention logits (`rope_attention_factor`). With s = factor and d = head_dim = 2·len(inv_freq):
      linear  position interpolation (Chen et al. 2023): every θ_i / s, so position m turns as m / s did.
              {"rope_type": "linear", "factor": 2} halves every frequency.
      llama3  Llama 3.1: only the slow pairs are interpolated. A pair whose wavelength 2π/θ_i is longer than
              original_max_position_embeddings / low_freq_factor never turned once in pre-training: θ_i / factor.
              One shorter than … / high_freq_factor turned many times: kept. In between, a linear blend of
              the two in (original context / wavelength), so the frequencies do not jump.
      ntk     static NTK-aware scaling (bloc97 2023): a larger base, base · s^(d/(d−2)), so θ_i is divided by
              s^(2i/(d−2)): pair 0 is kept, the slowest pair is divided by exactly s, the rest in between
              (geometrically). Static: fixed by the config, whatever the length. transformers has no such type;
              its "dynamic" (emozilla) recomputes the base from the current length L as
              base · (s·L/L₀ − (s − 1))^(d/(d−2)) — with factor 1 at L = s·L₀ that is exactly this one
              (tests/test_rope_scaling.py checks it so).
      yarn    YaRN (Peng et al. 2023): per pair, by how many turns r_i = L₀·θ_i/2π it makes in the original
              context L₀ = original_max_position_embeddings: pairs turning more than beta_fast (32) times keep
              θ_i (extrapolation), pairs turning less than beta_slow (1) time get θ_i / s (interpolation), a
              linear ramp in the pair index between (the index bounds floored and ceiled, transformers'
              `truncate`). Plus the attention factor 0.1·ln(s) + 1.
    The pair index of YaRN's ramp needs the base: it is read back from the slowest pair (θ_{d/2−1} =
    base^(−(d−2)/d)), so this works on any inv_freq that `rope_inv_freq` or its float64 mirror made.
    """
    kind, factor = scaling["rope_type"], scaling["factor"]
    if kind == "linear":
        return inv_freq / factor  # (hd/2,)
    if kind == "ntk":
        P = len(inv_freq)
        if P < 2:
            raise ValueError("ntk RoPE scaling needs head_dim > 2 (its exponent is d/(d − 2))")
        i = torch.arange(P, dtype=inv_freq.dtype)  # (hd/2,)
        return inv_freq * factor ** (-2 * i / (2 * P - 2))  # (hd/2,) = 1 / (base·s^(d/(d−2)))^(2i/d)
    if kind == "yarn":
        keep = _yarn_keep(inv_freq, scaling)  # (hd/2,) 1 = as trained, 0 = interpolated
        return inv_freq / factor * (1 - keep) + inv_freq * keep  # (hd/2,) transformers' order of the terms
    if kind != "llama3":
        raise ValueError(f"unknown rope_scaling type {kind!r} (linear, llama3, ntk or yarn)")
    old_ctx = scaling["original_max_position_embeddings"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    wavelen = 2 * math.pi / inv_freq  # (hd/2,) positions per turn
    smooth = (old_ctx / wavelen - low) / (high - low)  # (hd/2,) 0 at the slow edge, 1 at the fast edge
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq  # (hd/2,)
    out = torch.where(wavelen > old_ctx / low, inv_freq / factor, blended)  # (hd/2,) slow pairs: interpolated
    return torch.where(wavelen < old_ctx / high, inv_freq, out)  # (hd/2,) fast pairs: as trained


YARN_BETA_FAST, YARN_BETA_SLOW = 32.0, 1.0  # the paper's (and transformers') defaults, in turns per old context


def _yarn_keep(inv_freq: torch.Tensor, scaling: dict) -> torch.Tensor:
    """YaRN's share of each pair kept as trained (1 − transformers' ramp): 1 for the fast pairs, 0 for the slow.

    The pair that turns r times in L₀ positions sits at index d·ln(L₀ / (2π·r)) / (2·ln base) (the paper's
    correction range); transformers floors the fast bound and ceils the slow one, then ramps linearly in the index.
    Worked example, ours (d 32, base 10000, L₀ 256): r = 32 at index 0.42 → 0, r = 1 at 6.44 → 7: pair 0 kept,
    pairs 1–6 blended (6/7 … 1/7 kept), pairs 7–15 interpolated.
    """
    P = len(inv_freq)
    if P < 2:  # one pair: θ_0 = 1 whatever the base, and the ramp starts at index ≥ 0, so it is kept
        return torch.ones_like(inv_freq)
    d = 2 * P
    ln_base = -math.log(float(inv_freq[-1])) * d / (d - 2)  # θ_{P−1} = base^(−(d−2)/d)
    old_ctx = scaling["original_max_position_embeddings"]

    def index_turning(turns: float) -> float:
        return d * math.log(old_ctx / (turns * 2 * math.pi)) / (2 * ln_base)

    low = max(math.floor(index_turning(scaling.get("beta_fast", YARN_BETA_FAST))), 0)
    high = min(math.ceil(index_turning(scaling.get("beta_slow", YARN_BETA_SLOW))), d - 1)
    if low == high:
        high += 0.001  # transformers' guard against a zero-width ramp
    ramp = ((torch.arange(P, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)  # (hd/2,) 0 fast … 1 slow
    return 1 - ramp.to(inv_freq.dtype)  # (hd/2,)


def rope_attention_factor(scaling: Optional[dict]) -> float:
    """What a scaling multiplies cos and sin by, so q and k both, so every q·k by its square: 1, except YaRN's
    √(1/t) = 0.1·ln(s) + 1 for s > 1 (Peng et al. 2023; transformers' `yarn_get_mscale`). s = 4 -> 1.1386,
    logits × 1.2965: sharper attention, against the flatter softmax that more, interpolated keys would give."""
    if scaling is None or scaling["rope_type"] != "yarn" or scaling["factor"] <= 1:
        return 1.0
    return 0.1 * math.log(scaling["factor"]) + 1.0


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float, scaling: Optional[dict] = None) -> torch.Tensor:
    """The rotation angle m·θ_i for each position m and pair i."""
    return positions.to(torch.float32)[:, None] * rope_inv_freq(head_dim, theta, scaling)[None, :]  # (T, hd/2)


def apply_rope(x: torch.Tensor, angles: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Rotate interleaved pairs (x_2i, x_2i+1) of every head by angle m·θ_i, as llama2.c does.

    x: (B, T, H, hd); angles: (T, hd/2). Rotating q at m and k at n makes q·k depend on m − n only. `scale` is
    a scaling's attention factor (`rope_attention_factor`: 1, or YaRN's): cos and sin times it, as transformers
    does, so the rotated vector is that much longer and q·k is scale² times larger.
    """
    cos = angles.cos()[None, :, None, :]  # (1, T, 1, hd/2)
    sin = angles.sin()[None, :, None, :]  # (1, T, 1, hd/2)
    if scale != 1.0:  # 1: not even a multiply, so unscaled models compute exactly what they always did
        cos, sin = cos * scale, sin * scale
    x0, x1 = x[..., 0::2], x[..., 1::2]  # (B, T, H, hd/2) each
    out0 = x0 * cos - x1 * sin
    out1 = x0 * sin + x1 * cos
    return torch.stack((out0, out1), dim=-1).flatten(-2)  # (B, T, H, hd), pairs interleaved back


def rope_permutation(head_dim: int) -> torch.Tensor:
    """Row order within a head that maps our interleaved pairs to Hugging Face's halves (x_j, x_{j + hd/2}):
    head_dim=6 -> [0, 2, 4, 1, 3, 5]. Its inverse (`argsort`) maps halves back to pairs. Permuting q's and k's
    rows alike leaves every q·k, so every output, unchanged (transformers' convert_llama_weights_to_hf.py
    applies the same permutation to Meta's interleaved checkpoints)."""
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))  # (hd,)


def sinusoidal_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Vaswani et al.: PE[m, 2i] = sin(m / 10000^(2i/d)), PE[m, 2i+1] = cos(same). A formula, so any m works."""
    inv = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    ang = positions.to(torch.float32)[:, None] * inv[None, :]  # (T, d/2)
    return torch.stack((ang.sin(), ang.cos()), dim=-1).flatten(-2)  # (T, d), sin/cos interleaved


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Press et al.'s per-head slopes: a geometric series 2^(-8/n), 2^(-16/n), …

    For a head count that is not a power of two, take the closest power of two below and fill in with
    every other slope of the next power of two (the paper's recipe). n_heads=4 -> [0.25, 0.0625, 0.0156, 0.0039].
    """

    def pow2(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = pow2(closest) + pow2(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)  # (nh,)
