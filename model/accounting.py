"""Exact parameter, FLOP and memory accounting for a decoder-only transformer, from its architecture alone.

    python -m model.accounting checkpoints/gqa-rope/config.json --seq-len 256 --json
    python -m model.accounting llama2_7b_config.json --seq-len 4096 --dtype fp16

Read top to bottom: the architecture (`Arch`, one dataclass that describes our model and the Llama / Mistral /
Qwen2 / Gemma / GPT-2 families; `model/hf_configs.py` reads Hugging Face configs into it) → parameters →
FLOPs → memory → arithmetic intensity → checking against a live torch model → the CLI.

Every count is a Python int (no NumPy: 405B parameters × a 1M-token context × batch 1024 overflows int64), and
every term carries the formula it computes, so a table of terms explains itself. Symbols in the formulas:
V vocab, d d_model, L layers, nh query heads, nkv K/V heads, hd head_dim, m d_mlp, P position-table rows,
b batch, s new tokens in this forward, c context (keys attended), w sliding window.

FLOPs follow `torch.utils.flop_counter.FlopCounterMode`: every matmul (m×k)·(k×n) is 2·m·n·k and nothing else
counts (norms, softmax, RoPE, activations, bias adds, embedding lookups are ignored). Attention is counted as
our model computes it — the full s×c score matrix, masked afterwards — and, labelled separately, causal-aware:
only the (query, key) pairs the causal mask and the window allow. Tests check the first against
FlopCounterMode on a real forward, and the parameter count against `sum(p.numel())`.

What is out: mixture-of-experts, encoder-decoders, multimodal towers, quantisation overheads (int4/int8
weights are counted as exactly 4/8 bits per parameter, no scales or zero points), activation memory, and
kernel-level details (FlashAttention skips masked tiles; the causal count is the lower bound it approaches).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Optional

# --------------------------------------------------------------------------------------------------------
# The architecture
# --------------------------------------------------------------------------------------------------------

MLP_KINDS = ("gated", "plain")  # gated: SwiGLU / GeGLU, 3 matrices (gate, up, down); plain: GELU, 2 (up, down)
NORM_KINDS = ("rmsnorm", "layernorm")  # rmsnorm: weight only (Llama); layernorm: weight + bias (GPT-2)
POSITIONS = ("rope", "learned", "sinusoidal", "alibi", "none")  # only "learned" has parameters
DTYPE_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "int8": 8, "int4": 4}  # int4 = half a byte per number

# Upper bounds that only nonsense exceeds (the largest public dense models are well inside them). They turn a
# typo like hidden_size = 40960000000 into a named error instead of a silly answer.
LIMITS = {
    "vocab_size": 2**24,  # 16.7M tokens; the largest vocabularies are ~256k
    "d_model": 2**20,
    "n_layers": 2**16,
    "n_heads": 2**16,
    "n_kv_heads": 2**16,
    "head_dim": 2**16,
    "d_mlp": 2**22,
    "n_positions": 2**32,  # learned-table rows or declared context
    "max_seq_len": 2**32,
    "sliding_window": 2**32,
}


@dataclass(frozen=True)
class Arch:
    """What the counts depend on: shapes, which optional tensors exist, and how attention is windowed."""

    name: str = "model"  # shown in tables and charts
    vocab_size: int = 2048  # V: rows of the token embedding (and of the unembedding)
    d_model: int = 192  # d: residual width
    n_layers: int = 4  # L: transformer blocks
    n_heads: int = 6  # nh: query heads
    n_kv_heads: int = 2  # nkv: K/V heads (= nh MHA, 1 MQA); sets the KV cache size
    head_dim: int = 32  # hd: often d / nh, but Gemma-7B has 16 × 256 = 4096 ≠ 3072
    d_mlp: int = 512  # m: MLP hidden width
    mlp: str = "gated"  # one of MLP_KINDS
    norm: str = "rmsnorm"  # one of NORM_KINDS
    norms_per_layer: int = 2  # pre-attention and pre-MLP; Gemma-2 adds two post-norms (4)
    final_norm: bool = True  # a norm after the last block (every family here has one)
    qkv_bias: bool = False  # biases on W_q, W_k, W_v (Qwen2, GPT-2)
    o_bias: bool = False  # bias on W_o (GPT-2; Llama with attention_bias)
    mlp_bias: bool = False  # biases on the MLP matrices (GPT-2)
    positions: str = "rope"  # one of POSITIONS
    n_positions: int = 0  # rows of the learned position table (only when positions == "learned")
    tie_embeddings: bool = True  # the unembedding reuses the token embedding (counted once)
    sliding_window: Optional[int] = None  # w: a query sees its last w keys; None = full causal attention
    window_layers: Optional[int] = None  # how many layers use the window (None = all; Gemma-2: every other)
    max_seq_len: int = 256  # the declared context; only used for defaults and display

    def __post_init__(self) -> None:
        validate(self)

    @property
    def attention_kind(self) -> str:
        return "MHA" if self.n_kv_heads == self.n_heads else "MQA" if self.n_kv_heads == 1 else "GQA"

    @property
    def n_window_layers(self) -> int:
        """Layers whose keys are limited to the window (0 when there is no window)."""
        if self.sliding_window is None:
            return 0
        return self.n_layers if self.window_layers is None else self.window_layers


def short(v, n: int = 40) -> str:
    """repr(v), cut to n characters: error messages echo what they were given without echoing a novel."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 1] + "…"


def check_int(name: str, v, lo: int = 1, hi: Optional[int] = None) -> int:
    """v as an int in [lo, hi], or ValueError naming `name`. Bools and floats (even 4096.0) are refused."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name} must be an integer, got {short(v)}")
    if v < lo:
        raise ValueError(f"{name} must be {'positive' if lo == 1 else f'>= {lo}'}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} = {v} is implausibly large (limit {hi})")
    return v


def validate(a: Arch) -> None:
    """Raise ValueError naming the field when `a` cannot describe a working model."""
    for f in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_mlp", "max_seq_len"):
        check_int(f, getattr(a, f), 1, LIMITS[f])
    if a.n_kv_heads > a.n_heads or a.n_heads % a.n_kv_heads:
        raise ValueError(f"n_kv_heads ({a.n_kv_heads}) must divide n_heads ({a.n_heads})")
    for f, kinds in (("mlp", MLP_KINDS), ("norm", NORM_KINDS), ("positions", POSITIONS)):
        if getattr(a, f) not in kinds:
            raise ValueError(f"{f} must be one of {', '.join(kinds)}; got {short(getattr(a, f))}")
    check_int("norms_per_layer", a.norms_per_layer, 0, 16)
    for f in ("final_norm", "qkv_bias", "o_bias", "mlp_bias", "tie_embeddings"):
        if not isinstance(getattr(a, f), bool):
            raise ValueError(f"{f} must be true or false, got {short(getattr(a, f))}")
    check_int("n_positions", a.n_positions, 1 if a.positions == "learned" else 0, LIMITS["n_positions"])
    if a.sliding_window is not None:
        check_int("sliding_window", a.sliding_window, 1, LIMITS["sliding_window"])
    if a.window_layers is not None:
        check_int("window_layers", a.window_layers, 0, a.n_layers)


def arch_from_model_config(cfg, name: str = "our model") -> Arch:
    """Our `model.config.ModelConfig` → Arch. Our model: SwiGLU, RMSNorm, no biases (see model/model.py)."""
    return Arch(
        name=name, vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, d_mlp=cfg.d_mlp, mlp="gated", norm="rmsnorm",
        positions=cfg.pos_encoding, n_positions=cfg.max_seq_len if cfg.pos_encoding == "learned" else 0,
        tie_embeddings=cfg.tie_embeddings, sliding_window=cfg.sliding_window, max_seq_len=cfg.max_seq_len,
    )


def attention_variants(a: Arch) -> dict[str, Arch]:
    """MHA, GQA and MQA versions of the same model (only n_kv_heads changes).

    GQA keeps the model's own n_kv_heads when it is GQA already; otherwise the divisor of n_heads nearest
    n_heads / 4 (Llama-2-70B's 64 → 8 is n_heads / 8; any middle value makes the point). None when n_heads
    has no divisor strictly between 1 and itself (then GQA does not exist for this model).
    """
    out = {"MHA": replace(a, n_kv_heads=a.n_heads, name=f"{a.name} · MHA")}
    if 1 < a.n_kv_heads < a.n_heads:
        out["GQA"] = replace(a, name=f"{a.name} · GQA")
    else:
        mids = [k for k in range(2, a.n_heads) if a.n_heads % k == 0]
        if mids:
            out["GQA"] = replace(a, n_kv_heads=min(mids, key=lambda k: abs(k - a.n_heads / 4)), name=f"{a.name} · GQA")
    out["MQA"] = replace(a, n_kv_heads=1, name=f"{a.name} · MQA")
    return out


# --------------------------------------------------------------------------------------------------------
# A breakdown: named terms, each with its formula
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    name: str  # "attn.W_q"
    group: str  # "embedding", "attention", "mlp", "norms", "head" (params); also "attention scores" (FLOPs)
    value: int  # exact
    formula: str  # how `value` was computed, in the symbols of the module docstring


@dataclass(frozen=True)
class Breakdown:
    terms: tuple[Term, ...]

    @property
    def total(self) -> int:
        return sum(t.value for t in self.terms)

    def as_dict(self) -> dict[str, int]:
        return {t.name: t.value for t in self.terms}

    def by_group(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.terms:
            out[t.group] = out.get(t.group, 0) + t.value
        return out

    def rows(self) -> list[dict]:
        """One row per term for a table; counts as strings with separators, since a table's int64 can overflow."""
        tot = self.total or 1
        return [
            {"component": t.name, "group": t.group, "formula": t.formula, "count": f"{t.value:,}",
             "share": f"{100 * t.value / tot:.2f} %"}
            for t in self.terms
        ]


# --------------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------------


def count_params(a: Arch) -> Breakdown:
    """Every parameter tensor, counted once (a tied unembedding adds nothing).

    Llama-2-7B: V=32000, d=4096, L=32, nh=nkv=32, hd=128, m=11008, untied →
    2·32000·4096 + 32·(4·4096² + 3·4096·11008 + 2·4096) + 4096 = 6,738,415,616.
    """
    V, d, L, nh, nkv, hd, m = a.vocab_size, a.d_model, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, a.d_mlp
    norm_size = 2 * d if a.norm == "layernorm" else d  # LayerNorm has a bias as well as a weight
    norm_formula = "2·d" if a.norm == "layernorm" else "d"
    t = [Term("embedding", "embedding", V * d, "V·d")]
    if a.positions == "learned":
        t.append(Term("position table", "embedding", a.n_positions * d, "P·d"))
    t += [
        Term("attn.W_q", "attention", L * d * nh * hd, "L·d·nh·hd"),
        Term("attn.W_k", "attention", L * d * nkv * hd, "L·d·nkv·hd"),
        Term("attn.W_v", "attention", L * d * nkv * hd, "L·d·nkv·hd"),
        Term("attn.W_o", "attention", L * nh * hd * d, "L·nh·hd·d"),
    ]
    if a.qkv_bias:
        t.append(Term("attn.b_qkv", "attention", L * (nh + 2 * nkv) * hd, "L·(nh + 2·nkv)·hd"))
    if a.o_bias:
        t.append(Term("attn.b_o", "attention", L * d, "L·d"))
    if a.mlp == "gated":
        t.append(Term("mlp.W_gate", "mlp", L * d * m, "L·d·m"))
    t += [Term("mlp.W_up", "mlp", L * d * m, "L·d·m"), Term("mlp.W_down", "mlp", L * m * d, "L·m·d")]
    if a.mlp_bias:
        n_in = 2 if a.mlp == "gated" else 1  # gate and up biases are m wide, the down bias d wide
        t.append(Term("mlp.biases", "mlp", L * (n_in * m + d), f"L·({n_in}·m + d)" if n_in > 1 else "L·(m + d)"))
    if a.norms_per_layer:
        t.append(Term("block norms", "norms", L * a.norms_per_layer * norm_size,
                      f"L·{a.norms_per_layer}·{norm_formula}"))
    if a.final_norm:
        t.append(Term("final norm", "norms", norm_size, norm_formula))
    t.append(Term("unembedding", "head", 0 if a.tie_embeddings else V * d,
                  "0 (tied: reuses the embedding)" if a.tie_embeddings else "V·d"))
    return Breakdown(tuple(t))


def seeds_param_formula(a: Arch) -> int:
    """The seeds' GPT-2 count `Vd + L(12d² + 13d)`: MHA, a 4d two-matrix MLP, LayerNorm and biases everywhere,
    tied head — and no position table and no final norm (which is why GPT-2 small's true total is 787,968
    higher: 1024·768 + 2·768)."""
    V, d, L = a.vocab_size, a.d_model, a.n_layers
    return V * d + L * (12 * d * d + 13 * d)


# --------------------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------------------


def check_run(name: str, v, lo: int = 1) -> int:
    """Batch, sequence lengths and contexts: integers, and not absurd (2^40 tokens is far past any context)."""
    return check_int(name, v, lo, 2**40)


def _sum_min(lo: int, hi: int, w: Optional[int]) -> int:
    """Σ_{n=lo}^{hi} min(n, w) in closed form (w=None: no cap). _sum_min(1, 4, 2) = 1+2+2+2 = 7."""
    if hi < lo:
        return 0
    if w is None or hi <= w:
        return (lo + hi) * (hi - lo + 1) // 2
    if lo > w:
        return w * (hi - lo + 1)
    return (lo + w) * (w - lo + 1) // 2 + w * (hi - w)


def keys_attended(a: Arch, new: int, past: int, windowed: bool) -> int:
    """Tk: keys each of the `new` queries is scored against in our model, after `past` earlier positions.

    The cache holds at most w positions; a forward of `new` tokens needs only new + w - 1 keys
    (model/kv_cache.py). A prefill with a window still scores all s keys, then masks.
    """
    w = a.sliding_window if windowed else None
    if w is None:
        return past + new
    return min(min(past, w) + new, new + w - 1)


def causal_pairs(a: Arch, new: int, past: int, windowed: bool) -> int:
    """(query, key) pairs the mask allows: the query at position p reads min(p + 1, w) keys."""
    return _sum_min(past + 1, past + new, a.sliding_window if windowed else None)


def forward_flops(a: Arch, batch: int, new_tokens: int, past: int = 0, causal: bool = False) -> Breakdown:
    """Matmul FLOPs of one forward of `new_tokens` tokens per sequence, after `past` cached positions.

    A prefill of s tokens is (batch, s, past=0); one cached decode step at context c is (batch, 1, c - 1).
    causal=False is FlopCounterMode's count of our model (full s×c scores); causal=True counts only
    the allowed pairs. Projections, MLP and unembedding are the same either way: 2·b·s·(in·out) each.
    """
    b, s = check_run("batch", batch), check_run("new_tokens", new_tokens)
    past = check_run("past", past, 0)
    V, d, L, nh, nkv, hd, m = a.vocab_size, a.d_model, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, a.d_mlp
    n = b * s  # rows of every projection matmul
    t = [
        Term("attn.W_q", "attention projections", 2 * n * d * nh * hd * L, "2·b·s·d·nh·hd·L"),
        Term("attn.W_k", "attention projections", 2 * n * d * nkv * hd * L, "2·b·s·d·nkv·hd·L"),
        Term("attn.W_v", "attention projections", 2 * n * d * nkv * hd * L, "2·b·s·d·nkv·hd·L"),
    ]
    # Per layer, the score matmul q·kᵀ and the weighted sum pattern·v each cost 2·b·nh·hd per (query, key)
    # pair (K/V heads are expanded to all nh query heads first, so GQA does not save attention FLOPs).
    Lw = a.n_window_layers  # layers whose keys are windowed; the other L - Lw see every earlier position

    def layer_pairs(windowed: bool) -> int:
        return causal_pairs(a, s, past, windowed) if causal else s * keys_attended(a, s, past, windowed)

    pairs = (L - Lw) * layer_pairs(False) + Lw * layer_pairs(True)  # Σ over layers
    full, win = ("Σ_q (q+1)", "Σ_q min(q+1, w)") if causal else ("s·c", "s·min(c, s+w-1)")
    pf = f"L·{full}" if Lw == 0 else f"L·{win}" if Lw == L else f"((L-Lw)·{full} + Lw·{win})"
    t += [
        Term("attn.scores q·kᵀ", "attention scores", 2 * b * nh * hd * pairs, f"2·b·nh·hd·{pf}"),
        Term("attn.pattern·v", "attention scores", 2 * b * nh * hd * pairs, f"2·b·nh·hd·{pf}"),
        Term("attn.W_o", "attention projections", 2 * n * nh * hd * d * L, "2·b·s·nh·hd·d·L"),
    ]
    if a.mlp == "gated":
        t.append(Term("mlp.W_gate", "mlp", 2 * n * d * m * L, "2·b·s·d·m·L"))
    t += [
        Term("mlp.W_up", "mlp", 2 * n * d * m * L, "2·b·s·d·m·L"),
        Term("mlp.W_down", "mlp", 2 * n * m * d * L, "2·b·s·m·d·L"),
        Term("unembedding", "unembedding", 2 * n * d * V, "2·b·s·d·V (every position, as model(ids) does)"),
    ]
    return Breakdown(tuple(t))


def prefill_flops(a: Arch, batch: int, seq_len: int, causal: bool = False) -> Breakdown:
    return forward_flops(a, batch, seq_len, 0, causal)


def decode_step_flops(a: Arch, batch: int, context: int, cached: bool = True) -> Breakdown:
    """Make the token at position context-1 (context counts it). With a cache: 1 query against the cached
    keys (at most w of them). Without: recompute all `context` positions, i.e. a prefill of `context`."""
    c = check_run("context", context)
    return forward_flops(a, batch, 1, c - 1) if cached else forward_flops(a, batch, c, 0)


def training_flops(a: Arch, batch: int, seq_len: int) -> int:
    """Forward + backward ≈ 3 × forward: each matmul's backward is two matmuls of the same size (the
    gradient for its input and for its weight). Exact in FlopCounterMode's convention for our model."""
    return 3 * prefill_flops(a, batch, seq_len).total


def seeds_forward_flops(a: Arch, batch: int, seq_len: int) -> int:
    """The seeds' `(24bsd² + 4bds²)L + 2bsdV`. Assumes MHA with nh·hd = d (q, k, v, o: 8bsd²), a plain
    two-matrix MLP of width 4d (16bsd²), and attention over all s×s positions (4bds²)."""
    b, s = check_run("batch", batch), check_run("seq_len", seq_len)
    d, L, V = a.d_model, a.n_layers, a.vocab_size
    return (24 * b * s * d * d + 4 * b * d * s * s) * L + 2 * b * s * d * V


def seeds_comparison(a: Arch, batch: int, seq_len: int) -> list[dict]:
    """The seeds' formula term by term beside ours (FlopCounterMode convention), and why each differs."""
    b, s, d, L = batch, seq_len, a.d_model, a.n_layers
    ours = prefill_flops(a, b, s).by_group()
    why_proj = "equal" if a.n_kv_heads == a.n_heads and a.n_heads * a.head_dim == d else (
        f"seeds assume MHA with nh·hd = d; here nkv = {a.n_kv_heads} of nh = {a.n_heads}, nh·hd = {a.n_heads * a.head_dim}"
    )
    n_mat = 3 if a.mlp == "gated" else 2
    why_mlp = "equal" if (n_mat == 2 and a.d_mlp == 4 * d) else (
        f"seeds assume 2 matrices of width 4d = {4 * d}; here {n_mat} matrices of width {a.d_mlp}"
    )
    why_attn = "equal" if a.n_heads * a.head_dim == d else f"seeds use d = {d}; the scores use nh·hd = {a.n_heads * a.head_dim}"
    rows = [
        ("q, k, v, o projections", 8 * b * s * d * d * L, ours["attention projections"], why_proj),
        ("MLP", 16 * b * s * d * d * L, ours["mlp"], why_mlp),
        ("attention scores + weighted sum", 4 * b * d * s * s * L, ours["attention scores"],
         why_attn + " (both count all s×s pairs; the causal mask needs only s(s+1)/2)"),
        ("unembedding", 2 * b * s * d * a.vocab_size, ours["unembedding"], "equal (every position)"),
    ]
    out = [{"term": n, "seeds": x, "ours": y, "difference": y - x, "why": w} for n, x, y, w in rows]
    out.append({"term": "total", "seeds": seeds_forward_flops(a, b, s), "ours": prefill_flops(a, b, s).total,
                "difference": prefill_flops(a, b, s).total - seeds_forward_flops(a, b, s), "why": ""})
    return out


def flops_by_group_vs_seq_len(a: Arch, seq_lens: list[int], batch: int = 1) -> dict[str, list[int]]:
    """Prefill FLOPs per group (attention projections, attention scores, mlp, unembedding) at each s."""
    rows = [prefill_flops(a, batch, s).by_group() for s in seq_lens]
    return {g: [r[g] for r in rows] for g in rows[0]}


def attention_crossover_seq_len(a: Arch) -> Fraction:
    """The s where the s² attention term equals the MLP: per layer 4·b·s²·nh·hd = 2·b·s·(n_mat·d·m),
    so s* = n_mat·d·m / (2·nh·hd). Llama-2-7B: 3·4096·11008 / (2·4096) = 16,512 tokens."""
    n_mat = 3 if a.mlp == "gated" else 2
    return Fraction(n_mat * a.d_model * a.d_mlp, 2 * a.n_heads * a.head_dim)


# --------------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------------


def dtype_bits(dtype: str) -> int:
    if dtype not in DTYPE_BITS:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BITS)}; got {short(dtype)}")
    return DTYPE_BITS[dtype]


def weight_bytes(a: Arch, dtype: str) -> int:
    """Parameters × bits / 8, rounded up (int4 packs two per byte). Llama-2-7B at fp32: 26,953,662,464 B
    = 25.1 GiB (the seeds' "25.1 G" is GiB; in GB, 10⁹ bytes, it is 27.0)."""
    return -(-count_params(a).total * dtype_bits(dtype) // 8)


def kv_cache_bytes_per_token(a: Arch, dtype: str) -> int:
    """K and V, every layer, n_kv_heads × head_dim each: 2·L·nkv·hd·bytes. Llama-2-7B fp16: 524,288 B."""
    return 2 * a.n_layers * a.n_kv_heads * a.head_dim * dtype_bits(dtype) // 8


def kv_cache_bytes(a: Arch, context: int, batch: int, dtype: str) -> int:
    """The cache after `context` positions for `batch` sequences; windowed layers hold at most w positions.
    Llama-2-7B, 4096 tokens, fp16, batch 1: 2,147,483,648 B = 2.0 GiB."""
    c, b = check_run("context", context, 0), check_run("batch", batch)
    Lw = a.n_window_layers
    positions = (a.n_layers - Lw) * c + Lw * min(c, a.sliding_window or c)  # Σ over layers of what each holds
    return 2 * a.n_kv_heads * a.head_dim * dtype_bits(dtype) * positions * b // 8


def gib(n_bytes: int) -> float:
    """Bytes → GiB (2³⁰ bytes). GB would be 10⁹; the two differ by 7.4 %."""
    return n_bytes / 2**30


def gib_text(n_bytes: int) -> str:
    """'25.10 GiB', or three significant digits below 1 GiB ('0.000244 GiB') so small models show too."""
    g = gib(n_bytes)
    return f"{g:,.2f} GiB" if g >= 1 else f"{g:.3g} GiB"


def kv_cache_vs_context(variants: dict[str, Arch], contexts: list[int], batch: int, dtype: str) -> dict[str, list[int]]:
    return {k: [kv_cache_bytes(v, c, batch, dtype) for c in contexts] for k, v in variants.items()}


# --------------------------------------------------------------------------------------------------------
# Arithmetic intensity: when is a step limited by the GPU's FLOP/s and when by its memory bandwidth?
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    name: str
    peak_flops: float  # dense FLOP/s at the weight dtype (bf16 tensor cores), no sparsity
    mem_bandwidth: float  # HBM bytes/s

    @property
    def ridge(self) -> float:
        """FLOPs per byte at which compute time = memory time; below it a kernel is memory-bound."""
        return self.peak_flops / self.mem_bandwidth


HARDWARE = {
    # The seeds' "memory-bound below batch ≈ 200" is this card: 312 / 1.555 = 201 FLOP/byte.
    "A100 40GB": Hardware("A100 40GB", 312e12, 1.555e12),
    "A100 80GB": Hardware("A100 80GB", 312e12, 2.039e12),  # ridge 153
    "H100 SXM": Hardware("H100 SXM", 989e12, 3.35e12),  # ridge 295
}


@dataclass(frozen=True)
class Intensity:
    flops: int
    bytes: int  # weights read once + KV cache read/written; activations are left out

    @property
    def flops_per_byte(self) -> float:
        return self.flops / self.bytes


def prefill_intensity(a: Arch, batch: int, seq_len: int, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> Intensity:
    """Every weight read once for b·s tokens, the KV cache written once: intensity grows ~ b·s."""
    return Intensity(prefill_flops(a, batch, seq_len).total,
                     weight_bytes(a, weight_dtype) + kv_cache_bytes(a, seq_len, batch, kv_dtype))


def decode_intensity(a: Arch, batch: int, context: int, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> Intensity:
    """Every weight read once for b tokens, plus each sequence's whole cache: ~ b FLOPs/byte at bf16.

    Counts every parameter as read (an untied embedding table is really gathered row by row, so this
    overstates decode traffic by its share, ~2 % for Llama-2-7B)."""
    return Intensity(decode_step_flops(a, batch, context).total,
                     weight_bytes(a, weight_dtype) + kv_cache_bytes(a, context, batch, kv_dtype))


def decode_compute_bound_batch(a: Arch, hw: Hardware, context: int, weight_dtype: str = "bf16",
                               kv_dtype: str = "bf16") -> Optional[int]:
    """Smallest batch at which a decode step reaches the ridge point; None if it never does.

    FLOPs = b·F₁ and bytes = W + b·K₁ (F₁, K₁: one sequence's FLOPs and cache bytes), so
    b·F₁ ≥ R·(W + b·K₁) ⇔ b ≥ R·W / (F₁ − R·K₁). Long contexts make K₁ large: when F₁ ≤ R·K₁ the
    cache traffic alone keeps decode memory-bound at any batch. Llama-2-7B bf16, short context:
    ≈ 204 on the A100 40GB (the seeds' ≈ 200), ≈ 156 on the A100 80GB.
    """
    R = Fraction(hw.peak_flops) / Fraction(hw.mem_bandwidth)
    F1 = decode_step_flops(a, 1, context).total
    K1 = kv_cache_bytes(a, context, 1, kv_dtype)
    W = weight_bytes(a, weight_dtype)
    if F1 <= R * K1:
        return None
    return max(1, math.ceil(R * W / (F1 - R * K1)))


# --------------------------------------------------------------------------------------------------------
# Everything at once (the CLI's JSON and the page's tables)
# --------------------------------------------------------------------------------------------------------


def report(a: Arch, seq_len: int, batch: int = 1, dtype: str = "bf16") -> dict:
    """All the numbers for one (arch, s, b, dtype), as plain JSON-able Python (ints stay exact)."""
    s, b = check_run("seq_len", seq_len), check_run("batch", batch)
    dtype_bits(dtype)
    params = count_params(a)
    fwd, fwd_causal = prefill_flops(a, b, s), prefill_flops(a, b, s, causal=True)
    return {
        "name": a.name,
        "arch": asdict(a),
        "seq_len": s, "batch": b, "dtype": dtype,
        "total_params": params.total,
        "params": params.as_dict(),
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(a, dtype),
        "kv_cache_bytes": kv_cache_bytes(a, s, b, dtype),
        "weight_bytes": {k: weight_bytes(a, k) for k in DTYPE_BITS},
        "forward_flops": fwd.total,
        "forward_flops_breakdown": fwd.as_dict(),
        "forward_flops_causal": fwd_causal.total,
        "decode_step_flops_cached": decode_step_flops(a, b, s, cached=True).total,
        "decode_step_flops_recompute": decode_step_flops(a, b, s, cached=False).total,
        "training_step_flops": training_flops(a, b, s),
        "seeds_forward_flops": seeds_forward_flops(a, b, s),
    }


# --------------------------------------------------------------------------------------------------------
# Checking against a live torch model (the only place torch is imported, and only when called)
# --------------------------------------------------------------------------------------------------------


def measure_model(model, batch: int, seq_len: int) -> dict:
    """The references, on one real model: `sum(p.numel())`; FlopCounterMode on a forward of `seq_len` random
    token ids; on a prefill of seq_len - 1 tokens into a KV cache then one cached decode step (context
    seq_len); and the cache's own byte count after that step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model.kv_cache import KVCache

    ids = torch.randint(0, model.cfg.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    out = {"params": sum(p.numel() for p in model.parameters())}
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            model(ids)
        out["forward_flops"] = fc.get_total_flops()
        cache = KVCache.for_model(model.cfg)
        if seq_len > 1:
            model(ids[:, :-1], cache=cache)
        with FlopCounterMode(display=False) as fc:
            model(ids[:, -1:], cache=cache)
        out["decode_step_flops"] = fc.get_total_flops()
        out["kv_cache_bytes"] = cache.nbytes()
    return out


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def _table(r: dict) -> str:
    a = r["arch"]
    lines = [
        f"{r['name']}: V={a['vocab_size']} d={a['d_model']} L={a['n_layers']} nh={a['n_heads']} "
        f"nkv={a['n_kv_heads']} hd={a['head_dim']} m={a['d_mlp']} ({a['mlp']} MLP, {a['norm']}, {a['positions']}, "
        f"{'tied' if a['tie_embeddings'] else 'untied'})",
        "",
        "parameters",
    ]
    lines += [f"  {k:<22}{v:>26,}" for k, v in r["params"].items()]
    lines += [f"  {'total':<22}{r['total_params']:>26,}", "",
              f"forward FLOPs, prefill of {r['seq_len']} tokens × batch {r['batch']} (FlopCounterMode convention)"]
    lines += [f"  {k:<22}{v:>26,}" for k, v in r["forward_flops_breakdown"].items()]
    lines += [
        f"  {'total':<22}{r['forward_flops']:>26,}",
        f"  {'causal-aware total':<22}{r['forward_flops_causal']:>26,}",
        f"  {'seeds formula':<22}{r['seeds_forward_flops']:>26,}",
        f"  {'decode step, cached':<22}{r['decode_step_flops_cached']:>26,}   (context {r['seq_len']})",
        f"  {'decode, recompute':<22}{r['decode_step_flops_recompute']:>26,}",
        f"  {'training step (3×)':<22}{r['training_step_flops']:>26,}",
        "",
        "memory",
    ]
    for k, v in r["weight_bytes"].items():
        lines.append(f"  {'weights ' + k:<22}{v:>26,} B  = {gib_text(v)}")
    lines += [
        f"  {'KV cache / token':<22}{r['kv_cache_bytes_per_token']:>26,} B  ({r['dtype']})",
        f"  {'KV cache, s × b':<22}{r['kv_cache_bytes']:>26,} B  = {gib_text(r['kv_cache_bytes'])}",
    ]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    from model.hf_configs import arch_from_json_file  # here, not at the top: hf_configs imports this module

    p = argparse.ArgumentParser(description="Exact parameters, FLOPs and memory of a decoder-only transformer.")
    p.add_argument("config", help="a Hugging Face config.json (llama, mistral, qwen2, gemma, gemma2, gpt2) "
                                  "or one of our ModelConfig JSONs (checkpoints/<variant>/config.json)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens in the prefill (default: the model's context)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="bf16", choices=list(DTYPE_BITS), help="for the KV cache figures")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        arch = arch_from_json_file(args.config)
        r = report(arch, args.seq_len if args.seq_len is not None else arch.max_seq_len, args.batch, args.dtype)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=1) if args.json else _table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
