"""Where position enters the model: RoPE's rotations (with the scalings that stretch them to a longer context,
and the permutation between our interleaved pairs and Hugging Face's halves), Vaswani's sinusoidal table, ALiBi's
slopes.

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

    Both kinds are a change of the frequencies alone (as transformers' `ROPE_INIT_FUNCTIONS` computes them):
      linear  position interpolation (Chen et al. 2023): every θ_i / factor, so position m turns as m / factor
              did. {"rope_type": "linear", "factor": 2} halves every frequency.
      llama3  Llama 3.1: only the slow pairs are interpolated. A pair whose wavelength 2π/θ_i is longer than
              original_max_position_embeddings / low_freq_factor never turned once in pre-training: θ_i / factor.
              One shorter than … / high_freq_factor turned many times: kept. In between, a linear blend of
              the two in (original context / wavelength), so the frequencies do not jump.
    """
    kind, factor = scaling["rope_type"], scaling["factor"]
    if kind == "linear":
        return inv_freq / factor  # (hd/2,)
    if kind != "llama3":
        raise ValueError(f"unknown rope_scaling type {kind!r} (linear or llama3)")
    old_ctx = scaling["original_max_position_embeddings"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    wavelen = 2 * math.pi / inv_freq  # (hd/2,) positions per turn
    smooth = (old_ctx / wavelen - low) / (high - low)  # (hd/2,) 0 at the slow edge, 1 at the fast edge
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq  # (hd/2,)
    out = torch.where(wavelen > old_ctx / low, inv_freq / factor, blended)  # (hd/2,) slow pairs: interpolated
    return torch.where(wavelen < old_ctx / high, inv_freq, out)  # (hd/2,) fast pairs: as trained


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float, scaling: Optional[dict] = None) -> torch.Tensor:
    """The rotation angle m·θ_i for each position m and pair i."""
    return positions.to(torch.float32)[:, None] * rope_inv_freq(head_dim, theta, scaling)[None, :]  # (T, hd/2)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x_2i, x_2i+1) of every head by angle m·θ_i, as llama2.c does.

    x: (B, T, H, hd); angles: (T, hd/2). Rotating q at m and k at n makes q·k depend on m − n only.
    """
    cos = angles.cos()[None, :, None, :]  # (1, T, 1, hd/2)
    sin = angles.sin()[None, :, None, :]  # (1, T, 1, hd/2)
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
