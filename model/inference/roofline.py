"""Prefill vs decode on a roofline: the arithmetic intensity (FLOPs per byte moved) of every matmul, the ridge
points of a few machines and of this one (measured), and decode speed measured against the roofline's
prediction.

A kernel that does F FLOPs and moves B bytes to and from slow memory takes at least max(F / peak, B / bandwidth)
seconds (Williams et al. 2009): below the ridge point peak / bandwidth FLOPs per byte it is memory-bound.

Per matmul (`matmul_costs`), nothing fused, each reads its inputs and writes its output once:
- FLOPs: `model.accounting.counts.forward_flops`, term by term (2·m·n·k per matmul, summed over layers);
- weights: the term's parameters (`count_params`) × the dtype's bytes — the tied embedding for the unembedding;
- K/V: the keys and values the two attention matmuls read, exactly what `kv_cache_bytes` counts at decode;
- activations: the matmul's input rows and output rows (n = batch × new tokens of them).
So Σ FLOPs = forward_flops and, at decode, Σ K/V = kv_cache_bytes (tested). The whole step's intensity and the
batch at which decode turns compute-bound are the calculator's own `decode_intensity` / `prefill_intensity`
/ `decode_compute_bound_batch` (weights + K/V, activations left out), not re-derived here.

Worked example (bf16, 2 bytes): a d×d projection at decode batch B moves 2·(d² + 2·B·d) bytes for 2·B·d²
FLOPs: intensity B·d / (d + 2B) ≈ B for B ≪ d — so it turns compute-bound only near B ≈ the ridge (≈ 200 on an
A100). The attention matmuls read every cached key for 2·nh·hd FLOPs a key: intensity ≈ nh / nkv whatever B.

What is out: the kernels' real efficiency (tensor-core utilisation, launch overheads), caches between slow
memory and the cores, fused kernels (FlashAttention removes the scores' traffic — model/inference/flash.py).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from model.accounting.arch import Arch
from model.accounting.counts import (HARDWARE, Hardware, count_params, decode_intensity, decode_step_flops,
                                     dtype_bits, forward_flops, keys_attended)

# A laptop CPU for scale: Intel Core i7-1185G7, 4 cores at the 3.0 GHz base clock × 32 fp32 FLOPs per cycle
# (one 512-bit FMA: 16 lanes × 2), against LPDDR4x-4266 on a 128-bit bus = 68.3 GB/s. The GPUs' peaks are bf16
# tensor-core FLOP/s; a CPU runs our model in fp32, so its fp32 peak is the fair one.
LAPTOP_CPU = Hardware("Laptop CPU (i7-1185G7, fp32)", 4 * 3.0e9 * 32, 68.3e9)


# --------------------------------------------------------------------------------------------------------
# Per-matmul intensity
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatmulCost:
    name: str  # the forward_flops term: "attn.W_q", "attn.scores q·kᵀ", "mlp.W_up", …
    flops: int
    weight_bytes: int
    kv_bytes: int
    act_bytes: int

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.kv_bytes + self.act_bytes

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else float("inf")


def matmul_costs(a: Arch, batch: int, new_tokens: int, past: int = 0, dtype: str = "bf16") -> list[MatmulCost]:
    """Every matmul of one forward of `new_tokens` per sequence after `past` cached positions (see the module
    docstring): a prefill of T is (b, T, 0), a decode step at context c is (b, 1, c − 1)."""
    by = dtype_bits(dtype) / 8
    flops = forward_flops(a, batch, new_tokens, past).as_dict()
    params = count_params(a).as_dict()
    V, d, L, nh, nkv, hd, m = a.vocab_size, a.d_model, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, a.d_mlp
    n = batch * new_tokens  # rows through every projection
    # Keys each new query reads, summed over layers (windowed layers read at most w of them).
    Lw = a.n_window_layers
    keys = (L - Lw) * keys_attended(a, new_tokens, past, False) + Lw * keys_attended(a, new_tokens, past, True)
    Ld, Lm, E, nk, me, ms = a.n_dense_layers, a.n_moe_layers, a.n_experts, n * a.experts_per_token, a.d_expert, a.d_shared
    io = {  # (input elements, output elements, layers) from the shapes
        "attn.W_q": (n * d, n * nh * hd, L), "attn.W_k": (n * d, n * nkv * hd, L), "attn.W_v": (n * d, n * nkv * hd, L),
        "attn.W_o": (n * nh * hd, n * d, L), "mlp.W_gate": (n * d, n * m, Ld), "mlp.W_up": (n * d, n * m, Ld),
        "mlp.W_down": (n * m, n * d, Ld),
        # A mixture: the router's E logits per token, then n·k rows (each token once per chosen expert) through
        # the experts, whose weights all count as read — as `decode_intensity` counts every weight; at batch × k
        # ≥ E a step touches every expert anyway. The shared expert and its d → 1 gate see every token.
        "moe.router": (n * d, n * E, Lm), "moe.experts.W_gate": (nk * d, nk * me, Lm),
        "moe.experts.W_up": (nk * d, nk * me, Lm), "moe.experts.W_down": (nk * me, nk * d, Lm),
        "moe.shared.W_gate": (n * d, n * ms, Lm), "moe.shared.W_up": (n * d, n * ms, Lm),
        "moe.shared.W_down": (n * ms, n * d, Lm), "moe.shared gate": (n * d, n, Lm),
    }
    out = []
    for name, f in flops.items():
        if name in io:
            i, o, layers = io[name]
            out.append(MatmulCost(name, f, int(params[name] * by), 0, int(layers * (i + o) * by)))
        elif name == "unembedding":
            w = V * d  # the embedding table itself when tied
            out.append(MatmulCost(name, f, int(w * by), 0, int((n * d + n * V) * by)))
        elif name == "attn.scores q·kᵀ":  # reads q and K, writes the scores
            out.append(MatmulCost(name, f, 0, int(batch * keys * nkv * hd * by),
                                  int((L * n * nh * hd + batch * nh * new_tokens * keys) * by)))
        elif name == "attn.pattern·v":  # reads the pattern and V, writes z
            out.append(MatmulCost(name, f, 0, int(batch * keys * nkv * hd * by),
                                  int((batch * nh * new_tokens * keys + L * n * nh * hd) * by)))
        else:
            raise KeyError(f"no byte count for the matmul {name!r}")
    return out


def prefill_matmuls(a: Arch, seq_len: int, batch: int = 1, dtype: str = "bf16") -> list[MatmulCost]:
    return matmul_costs(a, batch, seq_len, 0, dtype)


def decode_matmuls(a: Arch, batch: int, context: int, dtype: str = "bf16") -> list[MatmulCost]:
    return matmul_costs(a, batch, 1, context - 1, dtype)


def n_params(a: Arch) -> int:
    return count_params(a).total


def attainable(intensity, hw: Hardware):
    """The roofline: min(peak, bandwidth × intensity) FLOP/s."""
    return np.minimum(hw.peak_flops, hw.mem_bandwidth * np.asarray(intensity, dtype=np.float64))


def step_seconds(flops: float, n_bytes: float, hw: Hardware) -> float:
    """The roofline's lower bound on a step: max(F / peak, bytes / bandwidth)."""
    return max(flops / hw.peak_flops, n_bytes / hw.mem_bandwidth)


def predicted_decode_tokens_per_s(a: Arch, batches: Sequence[int], context: int, hw: Hardware,
                                  dtype: str = "fp32") -> list[float]:
    """B / (the roofline's time for one decode step at batch B): FLOPs `decode_step_flops`, bytes
    `decode_intensity` (every weight once + each sequence's cache)."""
    out = []
    for b in batches:
        t = step_seconds(decode_step_flops(a, b, context).total, decode_intensity(a, b, context, dtype, dtype).bytes, hw)
        out.append(b / t)
    return out


# --------------------------------------------------------------------------------------------------------
# Measuring this machine (torch, imported when called)
# --------------------------------------------------------------------------------------------------------


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-touch page faults, thread pools
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peak_flops(n: int = 512, inner: int = 2, repeats: int = 15) -> float:
    """fp32 FLOP/s of an n×n by n×n torch matmul (2·n³ FLOPs), `inner` in a row, best of `repeats`: as close
    to the peak as a plain matmul gets on the threads torch is set to use. Many short bursts rather than one
    long one: on a shared CPU the best burst is the one nobody else interrupted."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)

    def run():
        for _ in range(inner):
            torch.mm(a, b, out=c)

    return 2 * n**3 * inner / _best_seconds(run, repeats)


def measure_bandwidth(n_bytes: int = 64 * 2**20, repeats: int = 10) -> float:
    """Bytes/s of `dst.copy_(src)` over `n_bytes` (far past the caches): n read + n written per copy. Counted as
    2n: the cache's write-allocate read of dst, if the CPU does one, makes the true traffic up to 3n."""
    import torch

    src = torch.ones(n_bytes // 4)
    dst = torch.empty_like(src)
    return 2 * n_bytes / _best_seconds(lambda: dst.copy_(src), repeats)


@dataclass(frozen=True)
class MachineMeasurement:
    hardware: Hardware  # the measured peak and bandwidth, as the calculator's Hardware
    threads: int  # torch threads during the measurement
    matmul_n: int
    copy_bytes: int
    seconds: float  # how long measuring took


@functools.lru_cache(maxsize=4)
def measure_machine(threads: int = 1, matmul_n: int = 512, copy_bytes: int = 64 * 2**20) -> MachineMeasurement:
    """This machine's fp32 matmul FLOP/s and copy bandwidth on `threads` torch threads (restored afterwards).
    A second or so; cached per process. On a shared CPU other jobs lower both numbers."""
    import torch

    before = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        torch.set_num_threads(threads)
        peak = measure_peak_flops(matmul_n)
        bw = measure_bandwidth(copy_bytes)
    finally:
        torch.set_num_threads(before)
    name = f"This CPU ({threads} thread{'s' if threads > 1 else ''}, measured)"
    return MachineMeasurement(Hardware(name, peak, bw), threads, matmul_n, copy_bytes, time.perf_counter() - t0)


def machines(measured: Hardware | None = None) -> dict[str, Hardware]:
    """The calculator's GPUs, the laptop CPU, and this machine when measured."""
    out = {**HARDWARE, LAPTOP_CPU.name: LAPTOP_CPU}
    if measured is not None:
        out[measured.name] = measured
    return out


def measure_decode(model, batches: Sequence[int], context: int = 64, steps: int = 8, repeats: int = 3,
                   seed: int = 0) -> list[dict]:
    """Decode tokens/s of `model` at each batch size on this machine: one prompt of context − 1 random tokens is
    prefilled and copied into every sequence's cache (`model.inference.batched.SlotCache`), then `steps` batched
    decode steps are timed, best of `repeats`. Each step's context is context … context + steps − 1."""
    import torch

    from model.inference.batched import SlotCache, decode_step, prefill

    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    prompt = torch.randint(0, cfg.vocab_size, (context - 1,), generator=g).tolist()
    one = SlotCache.for_model(cfg, 1)
    prefill(model, [prompt], one)
    rows = []
    for b in batches:
        def run():
            cache = SlotCache([t.expand(b, -1, -1, -1).clone() for t in one.k],
                              [t.expand(b, -1, -1, -1).clone() for t in one.v], one.lengths.repeat(b), one.window)
            tok = torch.randint(0, cfg.vocab_size, (b,), generator=g)
            t0 = time.perf_counter()
            for _ in range(steps):
                tok = decode_step(model, tok, cache).argmax(-1)
            return time.perf_counter() - t0

        run()  # warm-up
        best = min(run() for _ in range(repeats))
        rows.append({"batch": b, "seconds_per_step": best / steps, "tokens_per_s": b * steps / best})
    return rows
