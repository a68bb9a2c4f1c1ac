"""Exact parameter, FLOP and memory accounting for a decoder-only transformer, from its architecture alone.

Read top to bottom: parameters → FLOPs → memory → training (memory and compute) → arithmetic intensity →
checking against a live torch model.
The architecture is `arch.py`'s `Arch`; the CLI (`python -m model.accounting`) is `cli.py`.

Every count is a Python int (no NumPy: 405B parameters × a 1M-token context × batch 1024 overflows int64), and
every term carries the formula it computes, so a table of terms explains itself. Symbols in the formulas:
V vocab, d d_model, L layers, nh query heads, nkv K/V heads, hd head_dim, m d_mlp, P position-table rows,
b batch, s new tokens in this forward, c context (keys attended), w sliding window; for a mixture of experts
E routed experts, k of them per token, me an expert's width, ms the shared expert's, Lm layers with experts and
Ld = L − Lm dense ones.

A mixture-of-experts model has two parameter counts: every tensor (`count_params`, what memory holds) and the
ones a token's forward uses (`active_params`: the router, its k experts, the shared expert, everything else).
Its FLOPs count the k experts a token is routed to, and the router. FlopCounterMode can miss those matmuls when
transformers runs the experts as one grouped kernel, so the tests check MoE FLOPs against an equivalent dense
model instead (k experts of width me = one MLP of width k·me, plus the router's d×E matmul).

FLOPs follow `torch.utils.flop_counter.FlopCounterMode`: every matmul (m×k)·(k×n) is 2·m·n·k and nothing else
counts (norms, softmax, RoPE, activations, bias adds, embedding lookups are ignored). Attention is counted as
our model computes it — the full s×c score matrix, masked afterwards — and, labelled separately, causal-aware:
only the (query, key) pairs the causal mask and the window allow. Tests check the first against
FlopCounterMode on a real forward, and the parameter count against `sum(p.numel())`.

Quantized weights and KV caches are counted with their scales (the formats of `model/quantize/formats.py`).
Training memory (weights, gradients, AdamW's states, activations with and without checkpointing) is
Korthikanti et al. (2022)'s accounting adapted to these architectures; see `activation_memory`.
What is out: encoder-decoders, multimodal towers, zero points and k-quants' nested scales (no format here has
them), and kernel-level details (FlashAttention skips masked tiles; the causal count is the lower bound it approaches).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Optional

from model.accounting.arch import DTYPE_BITS, Arch, arch_from_model_config, attention_variants, check_int, short  # noqa: F401
from model.quantize.formats import FORMATS as QUANT_FORMATS, matrix_bytes

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
    Ld = a.n_dense_layers
    Lf = "L" if Ld == L else "Ld"  # the symbol for the dense layers: every layer, or the ones without experts
    if Ld and a.mlp == "gated":
        t.append(Term("mlp.W_gate", "mlp", Ld * d * m, f"{Lf}·d·m"))
    if Ld:
        t += [Term("mlp.W_up", "mlp", Ld * d * m, f"{Lf}·d·m"), Term("mlp.W_down", "mlp", Ld * m * d, f"{Lf}·m·d")]
    if Ld and a.mlp_bias:
        n_in = 2 if a.mlp == "gated" else 1  # gate and up biases are m wide, the down bias d wide
        t.append(Term("mlp.biases", "mlp", Ld * (n_in * m + d), f"{Lf}·({n_in}·m + d)" if n_in > 1 else f"{Lf}·(m + d)"))
    t += _moe_params(a, a.n_experts, "E")
    if a.norms_per_layer:
        t.append(Term("block norms", "norms", L * a.norms_per_layer * norm_size,
                      f"L·{a.norms_per_layer}·{norm_formula}"))
    if a.qk_norm:
        t.append(Term("attn.q_norm, k_norm", "norms", L * 2 * hd, "L·2·hd"))
    if a.final_norm:
        t.append(Term("final norm", "norms", norm_size, norm_formula))
    t.append(Term("unembedding", "head", 0 if a.tie_embeddings else V * d,
                  "0 (tied: reuses the embedding)" if a.tie_embeddings else "V·d"))
    return Breakdown(tuple(t))


def _expert_matrices(a: Arch) -> list[str]:
    return (["W_gate"] if a.mlp == "gated" else []) + ["W_up", "W_down"]


def _moe_params(a: Arch, routed: int, sym: str) -> list[Term]:
    """The MoE layers' router, `routed` experts each (E for the model, k for a token) and the shared expert."""
    Lm, d, me, ms = a.n_moe_layers, a.d_model, a.d_expert, a.d_shared
    if not Lm:
        return []
    t = [Term("moe.router", "mlp", Lm * d * a.n_experts, "Lm·d·E")]
    t += [Term(f"moe.experts.{w}", "mlp", Lm * routed * d * me, f"Lm·{sym}·d·me") for w in _expert_matrices(a)]
    if ms:
        t += [Term(f"moe.shared.{w}", "mlp", Lm * d * ms, "Lm·d·ms") for w in _expert_matrices(a)]
        t.append(Term("moe.shared gate", "mlp", Lm * d, "Lm·d"))  # a d → 1 sigmoid gate on the shared expert
    return t


def active_params(a: Arch) -> Breakdown:
    """The parameters one token's forward uses: `count_params` with each MoE layer's E experts cut to the k it is
    routed to (the router, the shared expert, attention, embeddings and norms all count). A dense model: the same.
    The embedding counts, as in the published "active" figures, though a token reads one row of it.

    Mixtral-8x7B: 46,702,792,704 − 32·(8 − 2)·3·4096·14336 = 12,879,925,248 (published: 46.7 B / 12.9 B).
    """
    full = count_params(a)
    if not a.n_moe_layers:
        return full
    active = {t.name: t for t in _moe_params(a, a.experts_per_token, "k")}
    return Breakdown(tuple(active.get(t.name, t) for t in full.terms))


def gpt2_param_formula(a: Arch) -> int:
    """GPT-2's architecture (Radford et al. 2019) counted in closed form, `Vd + L(12d² + 13d)`: per layer
    attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d; MHA, a 4d two-matrix MLP, LayerNorm and biases
    everywhere, tied head — and no position table and no final norm (which is why GPT-2 small's true total is
    787,968 higher: 1024·768 + 2·768)."""
    V, d, L = a.vocab_size, a.d_model, a.n_layers
    return V * d + L * (12 * d * d + 13 * d)


# Kaplan et al. (2020), "Scaling Laws for Neural Language Models", §2.1 and Table 1. Their N leaves out the
# embeddings (token and position tables; an untied unembedding is one more vocabulary matrix, left out too).


def non_embedding_params(a: Arch, active: bool = False) -> int:
    """Every parameter but the token embedding, a position table and an untied unembedding: Kaplan et al.'s N,
    counted exactly. Llama-2-7B: 6,738,415,616 − 2·32000·4096 = 6,476,271,616. active=True: of the parameters a
    token uses (`active_params`), the N of the FLOP estimates 2N and 6N for a mixture of experts."""
    g = (active_params(a) if active else count_params(a)).by_group()
    return sum(v for k, v in g.items() if k not in ("embedding", "head"))


def kaplan_params(a: Arch) -> int:
    """Kaplan et al.'s N ≈ 2·d·L·(2·d_attn + d_ff) with d_attn = nh·hd and d_ff = m: four d×d_attn attention
    matrices (so K and V as wide as Q: MHA) and a two-matrix MLP; no biases, no norms."""
    return 2 * a.d_model * a.n_layers * (2 * a.n_heads * a.head_dim + a.d_mlp)


def twelve_d2_params(a: Arch) -> int:
    """The common per-layer estimate 12·d², i.e. Kaplan et al.'s N with d_attn = d and d_ff = 4d: 12·L·d².
    Llama-2-7B: 12·32·4096² = 6,442,450,944 (its MLP is 3 × 4096 × 11008, not 2 × 4096 × 16384)."""
    return 12 * a.n_layers * a.d_model**2


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
    (model/net/kv_cache.py). A prefill with a window still scores all s keys, then masks.
    """
    w = a.sliding_window if windowed else None
    if w is None:
        return past + new
    return min(min(past, w) + new, new + w - 1)


def causal_pairs(a: Arch, new: int, past: int, windowed: bool) -> int:
    """(query, key) pairs the mask allows: the query at position p reads min(p + 1, w) keys."""
    return _sum_min(past + 1, past + new, a.sliding_window if windowed else None)


def forward_flops(a: Arch, batch: int, new_tokens: int, past: int = 0, causal: bool = False,
                  logits_to_keep: int = 0) -> Breakdown:
    """Matmul FLOPs of one forward of `new_tokens` tokens per sequence, after `past` cached positions.

    A prefill of s tokens is (batch, s, past=0); one cached decode step at context c is (batch, 1, c - 1).
    causal=False is FlopCounterMode's count of our model (full s×c scores); causal=True counts only
    the allowed pairs. Projections and MLP are the same either way: 2·b·s·(in·out) each.

    `logits_to_keep` (Hugging Face's name for the same thing): 0 unembeds every position, as `model(ids)`
    does; k > 0 only the last k. Generating needs only the last position's logits, so a forward that exists
    to pick the next token pays 2·b·d·V for the head, not 2·b·s·d·V.
    """
    b, s = check_run("batch", batch), check_run("new_tokens", new_tokens)
    past = check_run("past", past, 0)
    keep = s if logits_to_keep == 0 else min(check_run("logits_to_keep", logits_to_keep), s)
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
    Ld, Lm = a.n_dense_layers, a.n_moe_layers
    Lf = "L" if Ld == L else "Ld"
    if Ld and a.mlp == "gated":
        t.append(Term("mlp.W_gate", "mlp", 2 * n * d * m * Ld, f"2·b·s·d·m·{Lf}"))
    if Ld:
        t += [Term("mlp.W_up", "mlp", 2 * n * d * m * Ld, f"2·b·s·d·m·{Lf}"),
              Term("mlp.W_down", "mlp", 2 * n * m * d * Ld, f"2·b·s·m·d·{Lf}")]
    if Lm:  # every token: the router's d × E logits, then k experts (and the shared one), none of the others
        E, k, me, ms = a.n_experts, a.experts_per_token, a.d_expert, a.d_shared
        t.append(Term("moe.router", "mlp", 2 * n * d * E * Lm, "2·b·s·d·E·Lm"))
        t += [Term(f"moe.experts.{w}", "mlp", 2 * n * k * d * me * Lm, "2·b·s·k·d·me·Lm") for w in _expert_matrices(a)]
        if ms:
            t += [Term(f"moe.shared.{w}", "mlp", 2 * n * d * ms * Lm, "2·b·s·d·ms·Lm") for w in _expert_matrices(a)]
            t.append(Term("moe.shared gate", "mlp", 2 * n * d * Lm, "2·b·s·d·Lm"))
    t += [
        Term("unembedding", "unembedding", 2 * b * keep * d * V,
             "2·b·s·d·V (every position, as model(ids) does)" if keep == s and logits_to_keep == 0 else
             "2·b·d·V (the last position only)" if keep == 1 else f"2·b·{keep}·d·V (the last {keep} positions)"),
    ]
    return Breakdown(tuple(t))


def prefill_flops(a: Arch, batch: int, seq_len: int, causal: bool = False) -> Breakdown:
    return forward_flops(a, batch, seq_len, 0, causal)


def decode_step_flops(a: Arch, batch: int, context: int, cached: bool = True) -> Breakdown:
    """The logits that choose the next token, with `context` positions fed so far (the newest included).

    With a cache: 1 query against the cached keys (at most w of them). Without: every layer recomputed at
    all `context` positions (their keys and values are what the cache would have held) — but the head only
    at the last one, the only logits a step uses. Llama-2-7B, context 4096, no cache: the head is 2·d·V =
    262,144,000 FLOPs, not 4096× that; the ratio to a cached step is below `context` for that reason alone.
    """
    c = check_run("context", context)
    return forward_flops(a, batch, 1, c - 1) if cached else forward_flops(a, batch, c, 0, logits_to_keep=1)


def training_flops(a: Arch, batch: int, seq_len: int) -> int:
    """Forward + backward ≈ 3 × forward: each matmul's backward is two matmuls of the same size (the
    gradient for its input and for its weight). Exact in FlopCounterMode's convention for our model."""
    return 3 * prefill_flops(a, batch, seq_len).total


def megatron_forward_flops(a: Arch, batch: int, seq_len: int) -> int:
    """The forward FLOPs of Narayanan et al. (2021, "Efficient Large-Scale Language Model Training on GPU
    Clusters Using Megatron-LM"), `(24bsd² + 4bs²d)L + 2bsdV`. Assumes MHA with nh·hd = d (q, k, v, o: 8bsd²),
    a plain two-matrix MLP of width 4d (16bsd²), and attention over all s×s positions (4bds²). Their count per
    training iteration, 96·b·s·L·d²·(1 + s/6d + V/16Ld), is these layers × 4 (forward, backward ×2, and the
    forward again under activation recomputation) and the logit layer × 3."""
    b, s = check_run("batch", batch), check_run("seq_len", seq_len)
    d, L, V = a.d_model, a.n_layers, a.vocab_size
    return (24 * b * s * d * d + 4 * b * d * s * s) * L + 2 * b * s * d * V


def megatron_comparison(a: Arch, batch: int, seq_len: int) -> list[dict]:
    """Narayanan et al.'s formula term by term beside ours (FlopCounterMode convention), and why each differs."""
    b, s, d, L = batch, seq_len, a.d_model, a.n_layers
    ours = prefill_flops(a, b, s).by_group()
    why_proj = "equal" if a.n_kv_heads == a.n_heads and a.n_heads * a.head_dim == d else (
        f"the formula assumes MHA with nh·hd = d; here nkv = {a.n_kv_heads} of nh = {a.n_heads}, nh·hd = {a.n_heads * a.head_dim}"
    )
    n_mat = 3 if a.mlp == "gated" else 2
    why_mlp = "equal" if (n_mat == 2 and a.d_mlp == 4 * d and not a.n_experts) else (
        f"the formula assumes 2 matrices of width 4d = {4 * d}; here {n_mat} matrices of width {a.d_mlp}"
        if not a.n_experts else
        f"the formula assumes one MLP of 2 matrices of width 4d = {4 * d}; here a router and {a.experts_per_token} "
        f"of {a.n_experts} experts of {n_mat} matrices of width {a.d_expert} per token"
        + (f", and a shared expert of width {a.d_shared}" if a.d_shared else "")
    )
    why_attn = "equal" if a.n_heads * a.head_dim == d else f"the formula uses d = {d}; the scores use nh·hd = {a.n_heads * a.head_dim}"
    rows = [
        ("q, k, v, o projections", 8 * b * s * d * d * L, ours["attention projections"], why_proj),
        ("MLP", 16 * b * s * d * d * L, ours["mlp"], why_mlp),
        ("attention scores + weighted sum", 4 * b * d * s * s * L, ours["attention scores"],
         why_attn + " (both count all s×s pairs; the causal mask needs only s(s+1)/2)"),
        ("unembedding", 2 * b * s * d * a.vocab_size, ours["unembedding"], "equal (every position)"),
    ]
    out = [{"term": n, "formula": x, "ours": y, "difference": y - x, "why": w} for n, x, y, w in rows]
    out.append({"term": "total", "formula": megatron_forward_flops(a, b, s), "ours": prefill_flops(a, b, s).total,
                "difference": prefill_flops(a, b, s).total - megatron_forward_flops(a, b, s), "why": ""})
    return out


def kaplan_forward_flops(a: Arch, batch: int, seq_len: int) -> int:
    """Kaplan et al. (2020, eq. 2.2): C_forward ≈ 2N + 2·L·n_ctx·d_attn per token, N non-embedding, here for b·s
    tokens with n_ctx = s. It leaves out the unembedding, and its attention term is half the full s×s matrix.
    For a mixture of experts N is the active count (the k experts a token uses)."""
    b, s = check_run("batch", batch), check_run("seq_len", seq_len)
    return b * s * (2 * non_embedding_params(a, active=True) + 2 * a.n_layers * s * a.n_heads * a.head_dim)


def kaplan_training_flops(a: Arch, batch: int, seq_len: int) -> int:
    """Kaplan et al.'s C ≈ 6N per training token (forward 2N, backward twice that; the context term dropped);
    N active for a mixture of experts."""
    return 6 * non_embedding_params(a, active=True) * check_run("batch", batch) * check_run("seq_len", seq_len)


def kaplan_comparison(a: Arch, batch: int, seq_len: int) -> list[dict]:
    """Kaplan et al.'s estimates term by term beside ours (FlopCounterMode convention), and why each differs."""
    b, s = check_run("batch", batch), check_run("seq_len", seq_len)
    N, d_attn, L = non_embedding_params(a, active=True), a.n_heads * a.head_dim, a.n_layers
    ours = prefill_flops(a, b, s).by_group()
    causal = prefill_flops(a, b, s, causal=True).by_group()["attention scores"]
    matmul_weights = ours["attention projections"] + ours["mlp"]
    attn = 2 * L * s * d_attn * b * s
    times = "twice" if ours["attention scores"] == 2 * attn else f"{ours['attention scores'] / attn:.3g}×"
    rows = [
        ("2N per token: every non-embedding weight", 2 * N * b * s, matmul_weights,
         "equal" if 2 * N * b * s == matmul_weights else
         "N also holds norm weights and biases, which are not matmuls (2 FLOPs each per token in the formula, "
         "none in FlopCounterMode)"),
        ("attention: 2·L·n_ctx·d_attn per token", attn, ours["attention scores"],
         f"our model computes the full s×s scores, {times} the formula; counting only the pairs the mask "
         f"allows gives {causal:,} ({causal - attn:+,} from the formula)"),
        ("unembedding", 0, ours["unembedding"], "left out of C_forward (N has no embedding matrices)"),
    ]
    out = [{"term": n, "formula": x, "ours": y, "difference": y - x, "why": w} for n, x, y, w in rows]
    fwd = prefill_flops(a, b, s).total
    out.append({"term": "forward total", "formula": kaplan_forward_flops(a, b, s), "ours": fwd,
                "difference": fwd - kaplan_forward_flops(a, b, s), "why": ""})
    train = training_flops(a, b, s)
    out.append({"term": "training step: 6N per token", "formula": kaplan_training_flops(a, b, s), "ours": train,
                "difference": train - kaplan_training_flops(a, b, s),
                "why": "3 × our forward, attention and unembedding included; 6N drops both"})
    return out


def flops_by_group_vs_seq_len(a: Arch, seq_lens: list[int], batch: int = 1) -> dict[str, list[int]]:
    """Prefill FLOPs per group (attention projections, attention scores, mlp, unembedding) at each s."""
    rows = [prefill_flops(a, batch, s).by_group() for s in seq_lens]
    return {g: [r[g] for r in rows] for g in rows[0]}


def attention_crossover_seq_len(a: Arch) -> Fraction:
    """The s where the s² attention term equals the MLP: per layer 4·b·s²·nh·hd = 2·b·s·(n_mat·d·m),
    so s* = n_mat·d·m / (2·nh·hd). Llama-2-7B: 3·4096·11008 / (2·4096) = 16,512 tokens. Taken from the MLP's
    FLOPs per token (`forward_flops`), so a mixture of experts' router and k experts are what counts."""
    mlp_per_token = forward_flops(a, 1, 1).by_group()["mlp"]  # 2·n_mat·d·m·L for a dense model
    return Fraction(mlp_per_token, 4 * a.n_heads * a.head_dim * a.n_layers)


# --------------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------------


# Numbers are stored as a plain float type (DTYPE_BITS) or in one of the quantized formats of
# model/quantize/formats.py: 8- or 4-bit codes plus an fp16 scale per output row or per block of G weights,
# counted with their scales (Q8_0 = 8.5 bits per weight, Q4_0 = 4.5). Quantized weights: the block matrices
# (attention and MLP) only; the embedding, the unembedding, norms, biases and position tables stay at fp16, as
# bitsandbytes, GPTQ and AWQ checkpoints keep them. llama.cpp's own files differ: Q4_0 quantizes the token
# embedding as well and stores the output matrix at Q6_K (6.5625 bits). The KV cache formats are llama.cpp's
# --cache-type-k q8_0 / q4_0: blocks of 32 along head_dim, one fp16 scale each.
WEIGHT_FORMATS = (*DTYPE_BITS, *QUANT_FORMATS)
KV_FORMATS = (*DTYPE_BITS, "Q8_0", "Q4_0")
_KV_QUANT = {"Q8_0": QUANT_FORMATS["Q8_0"], "Q4_0": QUANT_FORMATS["Q4_0 (G=32)"]}


def dtype_bits(dtype: str) -> int:
    """Bits of a plain float type (fp32, bf16, fp16)."""
    if dtype not in DTYPE_BITS:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BITS)}; got {short(dtype)}")
    return DTYPE_BITS[dtype]


def weight_matrices(a: Arch) -> list[tuple[str, int, int, int]]:
    """(name, n_out, n_in, copies) of every kind of block matrix: what a quantized format quantizes. Attention
    L times, a dense MLP Ld times, each expert matrix Lm·E times, the shared expert's Lm times. A router
    (d × E) is not here: quantizers keep it in high precision (llama.cpp stores ffn_gate_inp at F32; GPTQ and
    AWQ skip `gate`), as they keep the embedding."""
    d, nh, nkv, hd, m, L = a.d_model, a.n_heads, a.n_kv_heads, a.head_dim, a.d_mlp, a.n_layers
    out = [("attn.W_q", nh * hd, d, L), ("attn.W_k", nkv * hd, d, L), ("attn.W_v", nkv * hd, d, L),
           ("attn.W_o", d, nh * hd, L)]
    shape = {"W_gate": lambda w: (w, d), "W_up": lambda w: (w, d), "W_down": lambda w: (d, w)}
    for prefix, width, copies in (("mlp", m, a.n_dense_layers), ("moe.experts", a.d_expert, a.n_moe_layers * a.n_experts),
                                  ("moe.shared", a.d_shared, a.n_moe_layers if a.d_shared else 0)):
        out += [(f"{prefix}.{w}", *shape[w](width), copies) for w in _expert_matrices(a) if copies]
    return out


def block_matrices(a: Arch) -> list[tuple[str, int, int]]:
    """(name, n_out, n_in) of each kind of weight matrix in a block: for a dense model, each is there L times
    (`weight_matrices` says how many copies of each there are)."""
    return [(name, n_out, n_in) for name, n_out, n_in, _ in weight_matrices(a)]


def kept_tensors(a: Arch) -> dict[str, int]:
    """What a quantized format leaves at fp16, by `count_params` term: everything but the block matrices
    (embedding, position table, biases, norms, an untied unembedding). Our model: embedding 393,216 and the
    norms 1,728 (tied head, no biases)."""
    quantized = {name for name, _, _, _ in weight_matrices(a)}
    return {t.name: t.value for t in count_params(a).terms if t.name not in quantized and t.value}


def weight_memory(a: Arch, fmt: str) -> dict[str, int]:
    """Bytes of all weights in `fmt`: codes, scales, and the tensors a quantized format keeps at fp16.

    Llama-2-7B at Q4_0 (G=32): 6,476,005,376 block weights × 4.5 bits = 3,642,753,024 B, plus the embedding,
    the unembedding and the norms at fp16 (262,410,240 × 2 B) = 4,167,573,504 B. (llama.cpp's
    llama-2-7b.Q4_0.gguf is 3.83 GB: its embedding is Q4_0 too and its output matrix Q6_K.)
    """
    total = count_params(a).total
    if fmt in DTYPE_BITS:
        codes = -(-total * DTYPE_BITS[fmt] // 8)
        return {"codes": codes, "scales": 0, "kept": 0, "total": codes}
    if fmt not in QUANT_FORMATS:
        raise ValueError(f"weight format must be one of {', '.join(WEIGHT_FORMATS)}; got {short(fmt)}")
    f = QUANT_FORMATS[fmt]
    codes = scales = quantized = 0
    for _, n_out, n_in, copies in weight_matrices(a):
        b = matrix_bytes(f, n_out, n_in)
        codes, scales, quantized = codes + copies * b["codes"], scales + copies * b["scales"], \
            quantized + copies * n_out * n_in
    kept = 2 * (total - quantized)  # fp16
    return {"codes": codes, "scales": scales, "kept": kept, "total": codes + scales + kept}


def weight_bytes(a: Arch, fmt: str) -> int:
    """All weights in `fmt` (a float type or a quantized format), bytes. Llama-2-7B at fp32: 26,953,662,464 B
    = 25.1 GiB (often quoted as "25.1 G", which is GiB; in GB, 10⁹ bytes, it is 27.0)."""
    return weight_memory(a, fmt)["total"]


def bits_per_param(a: Arch, fmt: str) -> float:
    """Bytes × 8 / parameters, everything counted: 16 at fp16; Llama-2-7B at Q4_0 (G=32) 4.95."""
    return 8 * weight_bytes(a, fmt) / count_params(a).total


def _kv_vector_bytes(a: Arch, dtype: str) -> int:
    """One K or V head vector (head_dim numbers) in `dtype`: hd·bits/8, plus a scale per block if quantized."""
    if dtype in _KV_QUANT:
        b = matrix_bytes(_KV_QUANT[dtype], 1, a.head_dim)
        return b["codes"] + b["scales"]
    if dtype not in DTYPE_BITS:
        raise ValueError(f"KV cache dtype must be one of {', '.join(KV_FORMATS)}; got {short(dtype)}")
    return a.head_dim * DTYPE_BITS[dtype] // 8


def kv_cache_bytes_per_token(a: Arch, dtype: str) -> int:
    """K and V, every layer, n_kv_heads vectors of head_dim each: 2·L·nkv·hd·bytes. Llama-2-7B fp16: 524,288 B;
    at Q8_0 (34 bytes per 32 numbers) 278,528 B."""
    return 2 * a.n_layers * a.n_kv_heads * _kv_vector_bytes(a, dtype)


def kv_cache_bytes(a: Arch, context: int, batch: int, dtype: str) -> int:
    """The cache after `context` positions for `batch` sequences; windowed layers hold at most w positions.
    Llama-2-7B, 4096 tokens, fp16, batch 1: 2,147,483,648 B = 2.0 GiB."""
    c, b = check_run("context", context, 0), check_run("batch", batch)
    Lw = a.n_window_layers
    positions = (a.n_layers - Lw) * c + Lw * min(c, a.sliding_window or c)  # Σ over layers of what each holds
    return 2 * a.n_kv_heads * _kv_vector_bytes(a, dtype) * positions * b


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
# Training: memory and compute
# --------------------------------------------------------------------------------------------------------

# Bytes per parameter while training with AdamW. Mixed precision as Rajbhandari et al. (2020, "ZeRO", §3.1)
# count it: 2Ψ of 16-bit weights, 2Ψ of 16-bit gradients and 12Ψ of fp32 optimizer state — a master copy of the
# weights and Adam's two moments — 16Ψ in all. In fp32 the weights are their own master copy: 4 + 4 + 8, also 16Ψ.
# (torch.autocast instead keeps fp32 weights and gradients and casts on the fly: 4 + 4 + 8 with no master copy,
# the same 16Ψ.) Activations are stored at the 16-bit type in mixed precision, at fp32 otherwise.
TRAIN_PRECISIONS = {
    "bf16 mixed": {"weights": 2, "gradients": 2, "master": 4, "activations": 2},
    "fp16 mixed": {"weights": 2, "gradients": 2, "master": 4, "activations": 2},
    "fp32": {"weights": 4, "gradients": 4, "master": 0, "activations": 4},
}
ADAMW_STATE_BYTES = 8  # exp_avg and exp_avg_sq, one fp32 number each per parameter

# What `torch.cuda.get_device_properties(0).total_memory` reports on each card (nvidia-smi's "Total", MiB):
# a little under the marketing GB, and the CUDA context and allocator take some of it before any tensor.
GPU_MEMORY = {
    "H100 80GB": 81_559 * 2**20,
    "A100 80GB": 81_920 * 2**20,
    "A100 40GB": 40_960 * 2**20,
    "RTX 4090 24GB": 24_564 * 2**20,
    "T4 16GB": 15_360 * 2**20,
}


def _layer_activations(a: Arch, b: int, s: int, p: int, flash: bool, n_attn: int, n_dense: int, n_moe: int,
                       sym: str) -> list[Term]:
    """What `n_attn` layers' attention, `n_dense` dense MLPs and `n_moe` MoE MLPs keep for the backward, in
    bytes, for b sequences of s tokens at p bytes a number. `sym` names the layer count in the formulas."""
    d, nh, nkv, hd, m, n = a.d_model, a.n_heads, a.n_kv_heads, a.head_dim, a.d_mlp, b * s
    act = 4 if a.mlp == "gated" else 2  # gated: gate, up, act(gate), act(gate)·up; plain: GELU's input, output
    t = [
        Term("norm inputs", "norms", n_attn * n * a.norms_per_layer * d * p, f"{sym}·b·s·{a.norms_per_layer}·d·p"),
        Term("attention input (to W_q, W_k, W_v)", "attention", n_attn * n * d * p, f"{sym}·b·s·d·p"),
        Term("q, k, v (after RoPE)", "attention", n_attn * n * (nh + 2 * nkv) * hd * p, f"{sym}·b·s·(nh + 2·nkv)·hd·p"),
    ]
    if a.qk_norm:
        t.append(Term("q, k before q_norm, k_norm", "attention", n_attn * n * (nh + nkv) * hd * p,
                      f"{sym}·b·s·(nh + nkv)·hd·p"))
    if flash:  # FlashAttention keeps no score matrix: its backward recomputes it from q, k and the row's logsumexp
        t.append(Term("softmax log-sum-exp (fp32)", "attention", n_attn * n * nh * 4, f"{sym}·b·s·nh·4"))
    else:  # every (query, key) pair scored, masked afterwards (a window too: keys_attended, a prefill sees all s)
        t.append(Term("attention pattern (softmax output)", "attention", n_attn * b * nh * s * s * p,
                      f"{sym}·b·nh·s²·p"))
    t.append(Term("attention output (to W_o)", "attention", n_attn * n * nh * hd * p, f"{sym}·b·s·nh·hd·p"))
    if n_dense:
        t.append(Term("MLP input and hidden", "mlp", n_dense * n * (d + act * m) * p, f"{sym}·b·s·(d + {act}·m)·p"))
    if n_moe:
        E, k, me, ms = a.n_experts, a.experts_per_token, a.d_expert, a.d_shared
        t += [
            Term("MoE input", "mlp", n_moe * n * d * p, f"{sym}·b·s·d·p"),
            Term("router probabilities (fp32)", "mlp", n_moe * n * E * 4, f"{sym}·b·s·E·4"),
            # each of a token's k experts gets its own copy of the token (gathered), its hidden, and a weight
            Term("k experts' inputs, hidden, weights", "mlp", n_moe * n * k * (d + act * me + 1) * p,
                 f"{sym}·b·s·k·(d + {act}·me + 1)·p"),
        ]
        if ms:
            t.append(Term("shared expert hidden and gate", "mlp", n_moe * n * (act * ms + 1) * p,
                          f"{sym}·b·s·({act}·ms + 1)·p"))
    return t


def activation_memory(a: Arch, batch: int, seq_len: int, act_bytes: int = 2, checkpointing: bool = False,
                      flash: bool = True) -> Breakdown:
    """Bytes of activations kept for the backward of one training step of `batch` sequences of `seq_len` tokens.

    Korthikanti et al. (2022, "Reducing Activation Recomputation in Large Transformer Models", §4.1) count
    s·b·h·(34 + 5·a·s/h) bytes per layer for GPT-3 in fp16: every tensor a backward needs — each matmul's
    input, each norm's input, the softmax output, the GELU's input, dropout masks. The same accounting for these
    architectures, in numbers per token per layer (× p bytes): the two norms' inputs 2d, the attention input d,
    q, k, v (nh + 2·nkv)·hd, the attention output nh·hd, the softmax output nh·s (none with FlashAttention, which
    keeps a log-sum-exp of nh fp32 numbers instead), and the MLP's input d and hidden 4m (SwiGLU: gate, up, the
    activation, their product; a GELU MLP 2m). No dropout (none of these models trains with it). GQA stores
    only the nkv K/V heads; an MoE layer keeps the router's E probabilities and, for each of the k experts a
    token is sent to, a copy of the token and the expert's hidden. The head keeps the final norm's and the
    unembedding's inputs (2d), the log-softmax of the logits in fp32 (V), and the token ids (int64).

    checkpointing=True (full recomputation, Korthikanti et al.'s 2·s·b·h·L): each layer keeps only its input,
    and the backward recomputes one layer at a time, so one layer's activations are live at the peak.

    tests/test_accounting_moe.py measures our model's saved tensors with torch.autograd.graph.saved_tensors_hooks:
    they equal this count plus the extras of our implementation, each named there (its RMSNorm written as
    separate ops, K and V expanded to nh heads, the RoPE tables and the mask).
    """
    b, s = check_run("batch", batch), check_run("seq_len", seq_len)
    p, n, d, L = act_bytes, b * s, a.d_model, a.n_layers
    if checkpointing:
        one = max((_layer_activations(a, b, s, p, flash, 1, 1 if a.n_dense_layers else 0, 0, "1"),
                   _layer_activations(a, b, s, p, flash, 1, 0, 1 if a.n_moe_layers else 0, "1")),
                  key=lambda ts: sum(x.value for x in ts))  # the larger kind of layer sets the peak
        t = [Term("layer inputs (checkpoints)", "checkpoints", L * n * d * p, "L·b·s·d·p"),
             Term("one layer, recomputed in the backward", "checkpoints", sum(x.value for x in one),
                  "the largest layer's terms, once")]
    else:
        t = _layer_activations(a, b, s, p, flash, L, a.n_dense_layers, a.n_moe_layers, "L")
    if a.final_norm:
        t.append(Term("final norm input", "head", n * d * p, "b·s·d·p"))
    t += [
        Term("unembedding input", "head", n * d * p, "b·s·d·p"),
        Term("log-softmax of the logits (fp32)", "head", n * a.vocab_size * 4, "b·s·V·4"),
        Term("token ids (int64)", "head", n * 8, "b·s·8"),
    ]
    return Breakdown(tuple(t))


def training_memory(a: Arch, batch: int, seq_len: int, precision: str = "bf16 mixed", checkpointing: bool = False,
                    flash: bool = True) -> dict[str, int]:
    """Bytes to train `a` with AdamW, by part: weights, gradients, fp32 master weights (mixed precision only),
    AdamW's two moments, and activations (`activation_memory`). Left out: the CUDA context and the allocator's
    slack (together often 1–2 GiB), temporary buffers, and the logits' gradient (b·s·V) that exists for a
    moment at the start of the backward. Llama-2-7B in bf16 mixed: 16 bytes a parameter, 107,814,649,856 bytes
    before any activation — more than an 80 GB card holds, whatever the batch."""
    if precision not in TRAIN_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}; got {short(precision)}")
    pr, N = TRAIN_PRECISIONS[precision], count_params(a).total
    return {
        "weights": N * pr["weights"],
        "gradients": N * pr["gradients"],
        "fp32 master weights": N * pr["master"],
        "AdamW moments": N * ADAMW_STATE_BYTES,
        "activations": activation_memory(a, batch, seq_len, pr["activations"], checkpointing, flash).total,
    }


def training_compute(a: Arch, seq_len: int, tokens: int) -> dict[str, int]:
    """FLOPs to train on `tokens` tokens in sequences of `seq_len`: exact (3 × our forward of each sequence,
    `training_flops`) and Kaplan et al.'s 6·N·D (N non-embedding, active for an MoE). The tokens are rounded
    up to whole sequences, so the exact count is a count of whole forward passes."""
    s, D = check_run("seq_len", seq_len), check_int("tokens", tokens, 1, 2**50)  # Llama 3: 15 T tokens ≈ 2^43.8
    n_seq = -(-D // s)
    return {"tokens": n_seq * s, "sequences": n_seq, "exact": training_flops(a, n_seq, s),
            "6ND": kaplan_training_flops(a, n_seq, s), "N": non_embedding_params(a, active=True)}


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
    # The often-quoted "memory-bound below a batch of ≈ 200" is this card: 312 / 1.555 = 201 FLOP/byte.
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
    ≈ 207 on the A100 40GB (the often-quoted ≈ 200), ≈ 158 on the A100 80GB.
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
    _kv_vector_bytes(a, dtype)  # a named error for an unknown dtype
    params = count_params(a)
    fwd, fwd_causal = prefill_flops(a, b, s), prefill_flops(a, b, s, causal=True)
    return {
        "name": a.name,
        "arch": asdict(a),
        "seq_len": s, "batch": b, "dtype": dtype,
        "total_params": params.total,
        "params": params.as_dict(),
        "active_params": active_params(a).total,  # = total_params unless a mixture of experts
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(a, dtype),
        "kv_cache_bytes": kv_cache_bytes(a, s, b, dtype),
        "weight_bytes": {k: weight_bytes(a, k) for k in WEIGHT_FORMATS},
        # what each figure holds: codes, fp16 scales, and the tensors a quantized format keeps at fp16
        "weight_memory": {k: {**weight_memory(a, k), "bits_per_param": bits_per_param(a, k)} for k in WEIGHT_FORMATS},
        "kept_at_fp16_when_quantized": kept_tensors(a),
        "forward_flops": fwd.total,
        "forward_flops_breakdown": fwd.as_dict(),
        "forward_flops_causal": fwd_causal.total,
        "decode_step_flops_cached": decode_step_flops(a, b, s, cached=True).total,
        "decode_step_flops_recompute": decode_step_flops(a, b, s, cached=False).total,
        "training_step_flops": training_flops(a, b, s),
        "megatron_forward_flops": megatron_forward_flops(a, b, s),
        "non_embedding_params": non_embedding_params(a),
        "kaplan_forward_flops": kaplan_forward_flops(a, b, s),
        "kaplan_training_flops": kaplan_training_flops(a, b, s),
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

    from model.net.kv_cache import KVCache

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
