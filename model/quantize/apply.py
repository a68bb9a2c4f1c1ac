"""A quantized copy of a model: which matrices are quantized, which are kept, and what each costs.

    q, report = quantized_copy(model, FORMATS["Q4_0 (G=32)"])   # a new Transformer; `model` is not touched
    run_with_trace(q, ids)                                       # every hook point, at int4

The copy is the same `Transformer` class with each quantized matrix replaced by its round trip (codes × fp16
scales, held in fp32), so the traced model, the KV cache, generation and every page run it unchanged. That is
"fake quantization": the arithmetic is fp32 on the values an int8/int4 file holds; the memory figures count
the codes and scales the file would hold, and real int8 kernels are timed separately (`measure.py`).

Quantized: every matrix of every block, read off the model's own modules (`matrix_names`): attention's W_q,
W_k, W_v, W_o and the MLP's — W_gate, W_up, W_down of SwiGLU (80 % of the default's parameters), W_in and W_out
of the GELU variant, each expert's three of a mixture of experts. Kept at fp16 (the shipped precision): the
token embedding, which is tied to the unembedding, the norms' weights and biases, any position table, and a
mixture's router (d × E), which quantizers keep in high precision (llama.cpp stores ffn_gate_inp at F32; GPTQ
and AWQ skip `gate`) — the accounting's `weight_matrices` counts the same. That is what bitsandbytes
(LLM.int8() / NF4), GPTQ and AWQ checkpoints do; llama.cpp differs in two ways, noted where bytes are counted
(`model/accounting/counts.py`): it quantizes the token embedding too and stores the output matrix at Q6_K.

The int8 KV cache (`Q8KVCache`) rounds each new K and V vector through Q8_0 blocks of 32 along head_dim as it
is written, the way llama.cpp's `--cache-type-k q8_0` stores them; attention then reads the rounded values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from model.net.kv_cache import KVCache
from model.quantize.formats import KV_Q8_0, Format, matrix_bytes, quantize, round_trip

# The default's (SwiGLU) block matrices; `layer_matrices` reads any model's off its modules.
MATRICES = ("attn.W_q", "attn.W_k", "attn.W_v", "attn.W_o", "mlp.W_gate", "mlp.W_up", "mlp.W_down")
KEPT_LINEARS = ("router",)  # block Linears left at fp16: a mixture's router (see the module docstring)
KEPT_BITS = 16  # embeddings and norms stay at fp16, the precision the checkpoints ship in


def matrix_names(model) -> list[str]:
    """Every quantized matrix of the model, 'blocks.0.attn.W_q', … in forward order: the path of each
    nn.Linear inside the blocks (the parameter without '.weight'), routers left out. The default model:
    `MATRICES` for each of its 4 blocks; the GELU variant's MLP gives mlp.W_in, mlp.W_out; the MoE's
    mlp.experts.0.W_gate … mlp.experts.3.W_down."""
    import torch.nn as nn

    return [n for n, m in model.named_modules()
            if n.startswith("blocks.") and isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] not in KEPT_LINEARS]


def layer_matrices(model) -> list[str]:
    """The quantized matrices of one block, named within it ("attn.W_q", …, "mlp.W_down"): block 0's
    `matrix_names` without the "blocks.0." (every block has the same)."""
    return [n[len("blocks.0."):] for n in matrix_names(model) if n.startswith("blocks.0.")]


def _module(model, name: str):
    return model.get_submodule(name)


@dataclass(frozen=True)
class MatrixReport:
    name: str  # "blocks.0.attn.W_q"
    shape: tuple[int, int]  # (n_out, n_in)
    codes_bytes: int
    scale_bytes: int
    rel_error: float  # ‖W − Q(W)‖_F / ‖W‖_F
    max_error: float  # max |W − Q(W)|
    weight_norm: float  # ‖W‖_F, so errors can be pooled over a layer


@dataclass(frozen=True)
class Report:
    fmt: Format
    matrices: tuple[MatrixReport, ...]
    kept_params: int  # parameters left at fp16 (embedding, norms, position table)
    fp32_bytes: int  # the whole model as the app runs it
    fp16_bytes: int  # the whole model as shipped

    @property
    def quantized_params(self) -> int:
        return sum(m.shape[0] * m.shape[1] for m in self.matrices)

    @property
    def bytes(self) -> dict[str, int]:
        """codes + scales of the quantized matrices, kept tensors at fp16, and their total."""
        codes = sum(m.codes_bytes for m in self.matrices)
        scales = sum(m.scale_bytes for m in self.matrices)
        kept = self.kept_params * KEPT_BITS // 8
        return {"codes": codes, "scales": scales, "kept_fp16": kept, "total": codes + scales + kept}

    @property
    def bits_per_weight(self) -> float:
        """Over the quantized matrices only (codes + scales)."""
        b = self.bytes
        return 8 * (b["codes"] + b["scales"]) / self.quantized_params

    @property
    def bits_per_param(self) -> float:
        """Over the whole model, kept tensors included."""
        return 8 * self.bytes["total"] / (self.quantized_params + self.kept_params)


def quantized_copy(model, fmt: Format) -> tuple[object, Report]:
    """A deep copy of `model` whose block matrices are `fmt`'s round trip, and what that cost per matrix."""
    q = copy.deepcopy(model).eval().requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    reports = []
    with torch.no_grad():
        for name in matrix_names(q):
            lin = _module(q, name)
            w = lin.weight  # (n_out, n_in)
            qt = quantize(w, fmt)
            back = qt.dequantize()  # (n_out, n_in) fp32
            err = back - w
            nb = qt.nbytes()
            reports.append(MatrixReport(name, tuple(w.shape), nb["codes"], nb["scales"],
                                        float(err.norm() / w.norm()), float(err.abs().max()),
                                        float(w.norm())))
            lin.weight.copy_(back)
    quantized = sum(r.shape[0] * r.shape[1] for r in reports)
    return q, Report(fmt, tuple(reports), n_params - quantized, 4 * n_params, 2 * n_params)


def weight_errors(model, formats: list[Format]) -> dict[str, list[float]]:
    """Relative error ‖W − Q(W)‖_F / ‖W‖_F of every block matrix, per format (no copy of the model is made)."""
    out = {}
    with torch.no_grad():
        for fmt in formats:
            errs = []
            for name in matrix_names(model):
                w = _module(model, name).weight
                errs.append(float((round_trip(w, fmt) - w).norm() / w.norm()))
            out[fmt.name] = errs
    return out


def memory_bytes(cfg, fmt: Format) -> dict[str, int]:
    """`Report.bytes` from the config alone (no weights): what `quantized_copy` would count."""
    from model.accounting.arch import arch_from_model_config
    from model.accounting.counts import count_params

    shapes = matrix_shapes(cfg)
    parts = [matrix_bytes(fmt, o, i) for o, i in shapes]
    kept = count_params(arch_from_model_config(cfg)).total - sum(o * i for o, i in shapes)
    codes, scales = sum(p["codes"] for p in parts), sum(p["scales"] for p in parts)
    return {"codes": codes, "scales": scales, "kept_fp16": kept * 2, "total": codes + scales + kept * 2}


def matrix_shapes(cfg) -> list[tuple[int, int]]:
    """(n_out, n_in) of every block matrix, in `matrix_names` order, from the config alone: attention's four, then
    a gated MLP's (gate, up, down), a plain one's (in, out), or each expert's gated three."""
    d, hd, m = cfg.d_model, cfg.head_dim, cfg.d_mlp
    gated = [(m, d), (m, d), (d, m)]
    mlp = gated * cfg.n_experts if cfg.n_experts else gated if cfg.mlp == "gated" else [(m, d), (d, m)]
    one = [(cfg.n_heads * hd, d), (cfg.n_kv_heads * hd, d), (cfg.n_kv_heads * hd, d), (d, cfg.n_heads * hd)] + mlp
    return one * cfg.n_layers


# --------------------------------------------------------------------------------------------------------
# The KV cache at int8
# --------------------------------------------------------------------------------------------------------


def kv_round_trip(t: torch.Tensor, fmt: Format = KV_Q8_0) -> torch.Tensor:
    """K or V (B, nkv, T, hd) through `fmt`, blocks running along head_dim (one (token, head) vector per row)."""
    shape = t.shape
    return round_trip(t.reshape(-1, shape[-1]), fmt).view(shape).to(t.dtype)


class Q8KVCache(KVCache):
    """A KV cache whose entries are stored as Q8_0: every new K and V vector is rounded as it is written.

    It holds the rounded values in fp32, so attention is untouched; `nbytes` counts what int8 codes and fp16
    block scales would take (2·L·nkv·(hd + 2·⌈hd/32⌉) bytes per token: 544 for our GQA model, vs 2,048 at fp32).
    """

    fmt = KV_Q8_0

    def update(self, layer, k_new, v_new, positions):
        return super().update(layer, kv_round_trip(k_new, self.fmt), kv_round_trip(v_new, self.fmt), positions)

    def nbytes(self) -> int:
        total = 0
        for t in self.k + self.v:
            if t is not None:
                b = matrix_bytes(self.fmt, t.numel() // t.shape[-1], t.shape[-1])
                total += b["codes"] + b["scales"]
        return total

    def clone(self) -> "Q8KVCache":
        c = Q8KVCache(self.n_layers, self.window, self.sliding_layers)
        c.k = [t.clone() if t is not None else None for t in self.k]
        c.v = [t.clone() if t is not None else None for t in self.v]
        c.length, c.start = self.length, self.start
        return c
