"""Where position enters the model: RoPE's rotations, Vaswani's sinusoidal table, ALiBi's slopes.

Torch in, torch out; the NumPy mirrors the pages use for drawing are in `model/analysis/rope.py`, tested
equal to these. A learned table is an `nn.Embedding` in the model and needs no function here.
"""

from __future__ import annotations

import math

import torch


def rope_inv_freq(head_dim: int, theta: float) -> torch.Tensor:
    """θ_i = theta^(-2i/head_dim) for i = 0 .. head_dim/2 - 1 (fast pairs first). Computed as Llama does."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (hd/2,)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> torch.Tensor:
    """The rotation angle m·θ_i for each position m and pair i."""
    return positions.to(torch.float32)[:, None] * rope_inv_freq(head_dim, theta)[None, :]  # (T, hd/2)


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
