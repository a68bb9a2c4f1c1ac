"""The model's configuration: one dataclass, plain Python, no torch.

Kept apart from `model.py` so the calculators (`model/accounting/counts.py`) and the app can read and validate a
config without importing torch. Every field carries a comment saying what it is and why its default.

What is in: the fields of a Llama-style decoder plus the knobs this app compares (K/V heads, positional
encoding, sliding window). What is out: anything about training (see `model/training/train.py`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Optional

POS_ENCODINGS = ("rope", "sinusoidal", "learned", "alibi", "none")


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

    def __post_init__(self) -> None:
        validate(self)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

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
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate(c: ModelConfig) -> None:
    """Raise ValueError naming the field when a config cannot describe a working model."""
    for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_mlp", "max_seq_len"):
        v = getattr(c, name)
        if not _is_int(v):
            raise ValueError(f"{name} must be an integer, got {v!r}")
        if v <= 0:
            raise ValueError(f"{name} must be positive, got {v}")
    if c.d_model % c.n_heads:
        raise ValueError(f"n_heads ({c.n_heads}) must divide d_model ({c.d_model})")
    if c.n_kv_heads > c.n_heads or c.n_heads % c.n_kv_heads:
        raise ValueError(f"n_kv_heads ({c.n_kv_heads}) must divide n_heads ({c.n_heads})")
    if c.pos_encoding not in POS_ENCODINGS:
        raise ValueError(f"pos_encoding must be one of {', '.join(POS_ENCODINGS)}; got {c.pos_encoding!r}")
    if c.pos_encoding == "rope" and c.head_dim % 2:
        raise ValueError(f"head_dim ({c.head_dim} = d_model / n_heads) must be even for RoPE (pos_encoding)")
    if c.pos_encoding == "sinusoidal" and c.d_model % 2:
        raise ValueError(f"d_model ({c.d_model}) must be even for sinusoidal positions (pos_encoding)")
    if not isinstance(c.rope_theta, (int, float)) or isinstance(c.rope_theta, bool) or not c.rope_theta > 1:
        raise ValueError(f"rope_theta must be a number > 1, got {c.rope_theta!r}")
    if not isinstance(c.norm_eps, (int, float)) or isinstance(c.norm_eps, bool) or not 0 < c.norm_eps < 1:
        raise ValueError(f"norm_eps must be a number in (0, 1), got {c.norm_eps!r}")
    if not isinstance(c.tie_embeddings, bool):
        raise ValueError(f"tie_embeddings must be true or false, got {c.tie_embeddings!r}")
    if c.sliding_window is not None and (not _is_int(c.sliding_window) or c.sliding_window <= 0):
        raise ValueError(f"sliding_window must be a positive integer or None, got {c.sliding_window!r}")
