"""Quantization formats as data, what each costs in bits, and the round trip weights → codes + scales → weights.

A format stores each weight as a small signed integer code q and, for every block of weights, one fp16 scale
d, so that the weight is read back as q·d. Which weights share a scale (the *scope*) is what separates them:

    scope "tensor"  one scale for the whole matrix (torch's default per-tensor qint8)
    scope "row"     one per output row, i.e. per output channel (LLM.int8()'s vector-wise scales, torch's
                    per-channel qint8) — a row is one output feature's weights over all inputs
    scope "group"   one per G consecutive weights of a row, along the input dimension (llama.cpp's blocks,
                    GPTQ/AWQ's group size)

and the rule that turns a block's values into a scale:

    "absmax"  d = max|x| / qmax with qmax = 2^(b-1) - 1 (127, 7); q = roundf(x / d) in [-qmax, qmax].
              llama.cpp's Q8_0 (quantize_row_q8_0_ref); a symmetric grid, the 2^b-th code left unused.
    "q4_0"    m = the block's value of largest magnitude, with its sign; d = m / -8; q = min(7, ⌊x/d + ½⌋) in
              [-8, 7]. llama.cpp's Q4_0 (quantize_row_q4_0_ref): the extreme lands exactly on code -8, so all
              16 codes are used and the step is max|x|/8, not /7 — at the price of clipping a value of the
              opposite sign and the same size to 7 steps (x = -m comes back as 7/8 of itself).

Worked example, one row [1, -2, 0.5, 4] at int8 per row: d = 4/127 = 0.0314961 (stored as fp16 0.0314941),
codes x·(1/d) = [31.75, -63.5, 15.875, 127] → roundf → [32, -64, 16, 127] (a tie rounds away from zero), read
back as codes × 0.0314941 = [1.0078, -2.0156, 0.5039, 3.9998]. The same row as one Q4_0 block: m = 4,
d = -0.5, codes [-2, 4, -1, -8], read back exactly (every value is a multiple of ½).

Codes are computed with the fp32 scale and read back with the fp16 one, as llama.cpp does. Bits per weight
count what a file or memory holds: codes (two 4-bit codes per byte) + one fp16 scale per block, so Q8_0 is
(32·8 + 16)/32 = 8.5 and Q4_0 (32·4 + 16)/32 = 4.5. Where G does not divide a row (192 = 128 + 64 at G=128) the
last block is shorter and still has its own scale; llama.cpp and GPTQ refuse such a row instead.

What is out: zero points (asymmetric formats: Q4_1, AWQ), k-quants' scales-of-scales, error-compensating
solvers (GPTQ), outlier decomposition (LLM.int8() keeps outlier columns in fp16), and real int4 packing: codes
are held one per int8 here and counted as packed. `Format`, `FORMATS` and the byte counts are plain Python
(the accounting calculator reads them without torch); `quantize` / `dequantize` import torch when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SCOPES = ("tensor", "row", "group")
RULES = ("absmax", "q4_0")


@dataclass(frozen=True)
class Format:
    name: str  # how pages and JSON call it: "int8 (per-channel)", "Q8_0", "Q4_0 (G=32)"
    bits: int  # bits per code: 8 or 4
    scope: str = "row"  # which weights share a scale: one of SCOPES
    group: int = 0  # weights per scale along a row when scope == "group"
    rule: str = "absmax"  # one of RULES
    scale_bits: int = 16  # every format here keeps its scales in fp16
    mirrors: str = ""  # the real format it follows, and how it differs

    def __post_init__(self) -> None:
        if self.bits not in (2, 3, 4, 5, 6, 8):
            raise ValueError(f"bits must be one of 2, 3, 4, 5, 6, 8; got {self.bits!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {self.scope!r}")
        if self.scope == "group" and (not isinstance(self.group, int) or self.group < 1):
            raise ValueError(f"a group format needs a group size >= 1, got {self.group!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}; got {self.rule!r}")

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.rule == "q4_0" else -self.qmax

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def blocks_per_row(self, n_in: int) -> int:
        """Scales per output row of a matrix with n_in inputs (per-tensor: a share of one, counted as 0 here;
        `matrix_bytes` adds the single scale)."""
        if self.scope == "row":
            return 1
        if self.scope == "group":
            return -(-n_in // self.group)
        return 0


def int4(group: int) -> Format:
    """Q4_0's rule and layout with G weights per scale; llama.cpp's own Q4_0 is G = 32."""
    name = f"Q4_0 (G={group})" if group == 32 else f"int4 (G={group})"
    note = ("llama.cpp Q4_0: blocks of 32 4-bit codes with an fp16 scale, 18 bytes per 32 weights = 4.5 bits"
            if group == 32 else
            f"Q4_0's rule in blocks of {group} (GPTQ/AWQ's usual group sizes, though they add a zero point)")
    return Format(name, 4, "group", group, "q4_0", mirrors=note)


INT8 = Format("int8 (per-channel)", 8, "row", mirrors=(
    "LLM.int8()'s vector-wise scales and torch's per-channel qint8: one scale per output row (bitsandbytes "
    "keeps it in fp32, and LLM.int8() also keeps outlier input columns in fp16 — not done here)"))
Q8_0 = Format("Q8_0", 8, "group", 32, mirrors="llama.cpp Q8_0: blocks of 32 int8 codes with an fp16 scale, "
                                              "34 bytes per 32 weights = 8.5 bits")
GROUP_SIZES = (32, 64, 128)
FORMATS: dict[str, Format] = {f.name: f for f in (INT8, Q8_0, *(int4(g) for g in GROUP_SIZES))}
DEFAULT_INT4 = FORMATS["Q4_0 (G=32)"]

# The KV cache at int8: llama.cpp's `--cache-type-k q8_0`, blocks of 32 along head_dim (our head_dim is 32, so
# one fp16 scale per (token, K/V head) vector).
KV_Q8_0 = Format("Q8_0 (KV cache)", 8, "group", 32, mirrors="llama.cpp's q8_0 KV cache")


def format_for(bits: int, group: Optional[int] = None) -> Format:
    """The CLI's choice: 8 bits = per-channel int8, or Q8_0-style blocks when a group is given; 4 bits = Q4_0's
    rule in groups (32 by default)."""
    if bits == 8:
        return INT8 if group is None else (Q8_0 if group == 32 else
                                           Format(f"int8 (G={group})", 8, "group", group, mirrors="Q8_0's rule"))
    if bits == 4:
        return int4(32 if group is None else group)
    raise ValueError(f"bits must be 8 or 4, got {bits!r}")


# --------------------------------------------------------------------------------------------------------
# What it costs (plain Python)
# --------------------------------------------------------------------------------------------------------


def matrix_bytes(fmt: Format, n_out: int, n_in: int) -> dict[str, int]:
    """Bytes of one (n_out, n_in) matrix: its codes (each row packed to whole bytes) and its fp16 scales.

    Q4_0 on 192 × 192: codes 192 · ⌈192·4/8⌉ = 18,432 B, scales 192 · 6 blocks · 2 B = 2,304 B → 20,736 B.
    """
    codes = n_out * -(-n_in * fmt.bits // 8)
    n_scales = 1 if fmt.scope == "tensor" else n_out * fmt.blocks_per_row(n_in)
    return {"codes": codes, "scales": n_scales * fmt.scale_bits // 8}


def bits_per_weight(fmt: Format, n_out: int, n_in: int) -> float:
    """Everything stored, per weight: Q8_0 on a 32-multiple row = 8.5; int8 per-channel with 192 inputs =
    8 + 16/192 = 8.083; G=128 on 192 inputs = 4 + 2·16/192 = 4.167 (two blocks, the second of 64)."""
    b = matrix_bytes(fmt, n_out, n_in)
    return 8 * (b["codes"] + b["scales"]) / (n_out * n_in)


# --------------------------------------------------------------------------------------------------------
# The round trip (torch, imported when called)
# --------------------------------------------------------------------------------------------------------


@dataclass
class QTensor:
    """One quantized matrix: int8 codes (n_out, n_in) — 4-bit codes too, one per byte, counted as packed —
    and fp16 scales (n_out, blocks per row), or (1, 1) for one scale per tensor."""

    codes: object  # torch.int8 (n_out, n_in)
    scales: object  # torch.float16 (n_out, n_blocks) or (1, 1)
    fmt: Format

    def nbytes(self) -> dict[str, int]:
        return matrix_bytes(self.fmt, *self.codes.shape)

    def block_of(self, n_in: int):
        """Column index → its block's index along a row: [0, 0, …, 1, 1, …] (all 0 per row or per tensor)."""
        import torch

        width = self.fmt.group if self.fmt.scope == "group" else n_in
        return torch.arange(n_in) // width  # (n_in,)

    def dequantize(self):
        """codes × their block's fp16 scale, as fp32: (n_out, n_in)."""
        n_out, n_in = self.codes.shape
        s = self.scales.float()  # (n_out or 1, n_blocks)
        return self.codes.float() * s[:, self.block_of(n_in)]  # (n_out, n_in)


def _blocks(w, fmt: Format):
    """w (n_out, n_in) → (n_out, n_blocks, width), zero-padded where the last block is shorter, and n_in."""
    import torch.nn.functional as F

    n_out, n_in = w.shape
    if fmt.scope == "tensor":
        return w.reshape(1, 1, -1), n_in
    width = fmt.group if fmt.scope == "group" else n_in
    n_blocks = -(-n_in // width)
    padded = F.pad(w, (0, n_blocks * width - n_in))  # zeros change neither max|x| nor the signed extreme
    return padded.view(n_out, n_blocks, width), n_in


def quantize(w, fmt: Format) -> QTensor:
    """A float matrix (n_out, n_in) → codes and fp16 scales, by `fmt`'s scope and rule (module docstring)."""
    import torch

    if w.ndim != 2:
        raise ValueError(f"quantize takes a matrix (n_out, n_in), got shape {tuple(w.shape)}")
    w32 = w.detach().float()
    x, n_in = _blocks(w32, fmt)  # (rows, blocks, width)
    amax = x.abs().amax(-1, keepdim=True)  # (rows, blocks, 1)
    if fmt.rule == "absmax":
        d = amax / fmt.qmax  # (rows, blocks, 1) fp32, as llama.cpp computes it
        inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
        v = x * inv  # fp32, exactly llama.cpp's x*id
        r = torch.round(v)  # half to even …
        tie = (v - v.trunc()).abs() == 0.5
        q = torch.where(tie, v.trunc() + v.sign(), r)  # … but C's roundf takes ties away from zero
    else:  # "q4_0": the signed extreme maps to -2^(b-1)
        idx = x.abs().argmax(-1, keepdim=True)  # first index of the largest magnitude, as llama.cpp's strict <
        m = x.gather(-1, idx)  # (rows, blocks, 1) signed
        d = m / fmt.qmin  # m / -8
        inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
        half = 2 ** (fmt.bits - 1) + 0.5  # 8.5
        q = torch.floor(x * inv + half) - 2 ** (fmt.bits - 1)  # (int8_t)(x*id + 8.5f) - 8; the sum is > 0
    q = q.clamp(fmt.qmin, fmt.qmax)
    if fmt.scope == "tensor":
        codes = q.view(w32.shape)
        scales = d.view(1, 1)
    else:
        codes = q.flatten(1)[:, :n_in]  # drop the padding
        scales = d.squeeze(-1)  # (n_out, n_blocks)
    return QTensor(codes.to(torch.int8).contiguous(), scales.to(torch.float16).contiguous(), fmt)


def dequantize(qt: QTensor):
    return qt.dequantize()


def round_trip(w, fmt: Format):
    """What the model computes with: quantize, then read back (fp32, the shape of w)."""
    return quantize(w, fmt).dequantize()


def grid(qt: QTensor, row: int = 0, block: int = 0) -> list[float]:
    """The values a weight of (row, block) can come back as: every code × that block's scale, ascending.
    Per tensor, the one grid of the matrix (row and block ignored)."""
    s = float(qt.scales[0, 0] if qt.fmt.scope == "tensor" else qt.scales[row, block])
    return sorted(q * s for q in range(qt.fmt.qmin, qt.fmt.qmax + 1))
