"""The model's configuration: one dataclass, plain Python, no torch.

Kept apart from `model.py` so the calculators (`model/accounting/counts.py`) and the app can read and validate a
config without importing torch. Every field carries a comment saying what it is and why its default.

What is in: the fields of a Llama-style decoder plus the knobs this app compares (K/V heads, positional
encoding, sliding window), and the few that the Llama / Mistral / Qwen2 / Gemma checkpoints a user brings need
(`model/net/hf_import.py`). What is out: anything about training (see `model/training/train.py`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

POS_ENCODINGS = ("rope", "sinusoidal", "learned", "alibi", "none")
MLP_ACTS = ("silu", "gelu_tanh")  # the gate's nonlinearity: SwiGLU (Llama, ours) or GeGLU (Gemma)
# RoPE scalings (model/net/positions.py `scale_inv_freq`) and the keys each one takes, as transformers names them.
ROPE_SCALINGS = {
    "linear": ("factor",),  # position interpolation: every frequency / factor
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 2048  # our byte-level BPE (256 bytes + merges + <|endoftext|>); see model/text/tokenizer.py
    d_model: int = 192  # residual width; trains to 1.88 bits/char in 4,000 steps (about 31 min on one core)
    n_layers: int = 4  # 4 blocks: enough for induction heads to form, small enough to draw every head
    n_heads: int = 6  # query heads; head_dim = d_model / n_heads = 32
    n_kv_heads: int = 2  # K/V heads: = n_heads is MHA, 1 is MQA, a divisor in between is GQA
    d_mlp: int = 512  # SwiGLU hidden size; Llama's 8/3 * d_model, rounded to a multiple of 64
    max_seq_len: int = 256  # training context; learned position tables stop here, RoPE/ALiBi may go past
    pos_encoding: str = "rope"  # one of POS_ENCODINGS; where position enters the model
    rope_theta: float = 10000.0  # RoPE base: theta_i = rope_theta ** (-2i / head_dim), as in Llama
    norm_eps: float = 1e-5  # RMSNorm epsilon, Llama's value
    tie_embeddings: bool = True  # unembedding = token embedding^T (saves vocab_size * d_model parameters)
    sliding_window: Optional[int] = None  # None = full causal attention; w = each query sees its last w keys
    # What imported Hugging Face models need (model/net/hf_import.py). The defaults are our own model, and
    # to_dict() leaves these out while at their default, so our config.json files read exactly as before.
    sliding_layers: Optional[tuple] = None  # the layers the window applies to; None = all (Mistral; Qwen2 may pick)
    head_dim_override: Optional[int] = None  # None = d_model / n_heads; Gemma-2B: 256 with d_model 2048, 8 heads
    qkv_bias: bool = False  # biases on W_q, W_k and W_v (Qwen2); never on W_o
    mlp_act: str = "silu"  # one of MLP_ACTS: silu = SwiGLU (ours, Llama), gelu_tanh = GeGLU (Gemma)
    embed_scale: Optional[float] = None  # None = √d_model for sinusoidal positions, else 1; Gemma: √d_model
    # None, or {"rope_type": "linear" | "llama3", + that type's keys in ROPE_SCALINGS}. Not hashed (a dict).
    rope_scaling: Optional[dict] = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.sliding_layers, list):  # JSON gives a list back; a tuple keeps the config hashable
            object.__setattr__(self, "sliding_layers", tuple(self.sliding_layers))
        validate(self)

    @property
    def head_dim(self) -> int:
        return self.head_dim_override if self.head_dim_override is not None else self.d_model // self.n_heads

    @property
    def token_scale(self) -> float:
        """What the token embedding is multiplied by before positions are added: embed_scale when set (Gemma's
        √d_model), else √d_model for sinusoidal positions (Vaswani et al. §3.4), else 1. On the config, not the
        module, so the home diagram can show the step without loading torch; `Transformer.embed_scale` reads it."""
        if self.embed_scale is not None:
            return float(self.embed_scale)
        return math.sqrt(self.d_model) if self.pos_encoding == "sinusoidal" else 1.0

    def layer_window(self, layer: int) -> Optional[int]:
        """The sliding window of one layer: None (full causal attention) unless the window applies to it."""
        if self.sliding_layers is not None and layer not in self.sliding_layers:
            return None
        return self.sliding_window

    @property
    def group_size(self) -> int:
        """Query heads that share one K/V head (1 = MHA, n_heads = MQA)."""
        return self.n_heads // self.n_kv_heads

    @property
    def attention_kind(self) -> str:
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        if self.n_kv_heads == 1:
            return "MQA"
        return "GQA"

    def to_dict(self) -> dict:
        """The fields as plain JSON types; the import-only fields only when set (see the class body)."""
        d = asdict(self)
        for f in fields(self):
            if f.name in IMPORT_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)


IMPORT_FIELDS = ("sliding_layers", "head_dim_override", "qkv_bias", "mlp_act", "embed_scale", "rope_scaling")


# --------------------------------------------------------------------------------------------------------
# Field checks, shared with `model.accounting.arch` (one wording for every config the app reads)
# --------------------------------------------------------------------------------------------------------


def short(v, n: int = 40) -> str:
    """repr(v), cut to n characters: error messages echo what they were given without echoing a novel."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 1] + "…"


def check_int(name: str, v, lo: int = 1, hi: Optional[int] = None) -> int:
    """v as an int in [lo, hi], or ValueError naming `name`. Bools and floats (even 4096.0) are refused:
    check_int("n_heads", 6) -> 6;  check_int("n_heads", 0) -> "n_heads must be positive, got 0"."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name} must be an integer, got {short(v)}")
    if v < lo:
        raise ValueError(f"{name} must be {'positive' if lo == 1 else f'>= {lo}'}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} = {v} is implausibly large (limit {hi})")
    return v


def check_choice(name: str, v, choices) -> str:
    """v if it is one of `choices`, else ValueError naming `name` and listing them."""
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {short(v)}")
    return v


def check_bool(name: str, v) -> bool:
    """v if it is True or False (not 1, not "true"), else ValueError naming `name`."""
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be true or false, got {short(v)}")
    return v


def validate(c: ModelConfig) -> None:
    """Raise ValueError naming the field when a config cannot describe a working model."""
    for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_mlp", "max_seq_len"):
        check_int(name, getattr(c, name))
    if c.head_dim_override is not None:
        check_int("head_dim_override", c.head_dim_override)
    elif c.d_model % c.n_heads:
        raise ValueError(f"n_heads ({c.n_heads}) must divide d_model ({c.d_model})")
    if c.n_kv_heads > c.n_heads or c.n_heads % c.n_kv_heads:
        raise ValueError(f"n_kv_heads ({c.n_kv_heads}) must divide n_heads ({c.n_heads})")
    check_choice("pos_encoding", c.pos_encoding, POS_ENCODINGS)
    if c.pos_encoding == "rope" and c.head_dim % 2:
        how = "head_dim_override" if c.head_dim_override is not None else "d_model / n_heads"
        raise ValueError(f"head_dim ({c.head_dim} = {how}) must be even for RoPE (pos_encoding)")
    if c.pos_encoding == "sinusoidal" and c.d_model % 2:
        raise ValueError(f"d_model ({c.d_model}) must be even for sinusoidal positions (pos_encoding)")
    if not isinstance(c.rope_theta, (int, float)) or isinstance(c.rope_theta, bool) or not c.rope_theta > 1:
        raise ValueError(f"rope_theta must be a number > 1, got {short(c.rope_theta)}")
    if not isinstance(c.norm_eps, (int, float)) or isinstance(c.norm_eps, bool) or not 0 < c.norm_eps < 1:
        raise ValueError(f"norm_eps must be a number in (0, 1), got {short(c.norm_eps)}")
    check_bool("tie_embeddings", c.tie_embeddings)
    if c.sliding_window is not None:
        check_int("sliding_window", c.sliding_window)
    if c.sliding_layers is not None:
        if c.sliding_window is None:
            raise ValueError("sliding_layers needs a sliding_window to apply")
        if not isinstance(c.sliding_layers, tuple):
            raise ValueError(f"sliding_layers must be a list of layer indices, got {short(c.sliding_layers)}")
        for i in c.sliding_layers:
            check_int("sliding_layers entry", i, 0, c.n_layers - 1)
    check_bool("qkv_bias", c.qkv_bias)
    check_choice("mlp_act", c.mlp_act, MLP_ACTS)
    if c.embed_scale is not None and (
        not isinstance(c.embed_scale, (int, float)) or isinstance(c.embed_scale, bool) or not c.embed_scale > 0
    ):
        raise ValueError(f"embed_scale must be a positive number or null, got {short(c.embed_scale)}")
    if c.rope_scaling is not None:
        validate_rope_scaling(c.rope_scaling, c.pos_encoding)


def validate_rope_scaling(s, pos_encoding: str = "rope") -> None:
    """{"rope_type": "linear", "factor": 4.0} passes; a missing or unknown key is named."""
    if pos_encoding != "rope":
        raise ValueError(f"rope_scaling needs RoPE positions, not {short(pos_encoding)} (pos_encoding)")
    if not isinstance(s, dict):
        raise ValueError(f"rope_scaling must be an object or null, got {short(s)}")
    kind = check_choice("rope_scaling.rope_type", s.get("rope_type"), tuple(ROPE_SCALINGS))
    keys = ROPE_SCALINGS[kind]
    extra = sorted(set(s) - set(keys) - {"rope_type"})
    if extra:
        raise ValueError(f"rope_scaling of type {kind!r} takes {', '.join(keys)}; not {', '.join(extra)}")
    for k in keys:
        v = s.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"rope_scaling.{k} must be a positive number, got {short(v)}")
    if kind == "llama3" and not s["high_freq_factor"] > s["low_freq_factor"]:
        raise ValueError("rope_scaling.high_freq_factor must be greater than low_freq_factor")
