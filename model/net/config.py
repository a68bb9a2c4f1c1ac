"""The model's configuration: one dataclass, plain Python, no torch.

Kept apart from `model.py` so the calculators (`model/accounting/counts.py`) and the app can read and validate a
config without importing torch. Every field carries a comment saying what it is and why its default.

What is in: the fields of a Llama-style decoder plus the knobs this app compares (K/V heads, positional
encoding, sliding window; norm kind and placement, MLP kind, mixture of experts), and the few that the Llama /
Mistral / Qwen2 / Gemma checkpoints a user brings need (`model/net/hf_import.py`). What is out: anything about
training (see `model/training/train.py`) — except the MoE's auxiliary-loss coefficient, which belongs to the
router it balances.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

POS_ENCODINGS = ("rope", "sinusoidal", "learned", "alibi", "none")
MLP_ACTS = ("silu", "gelu_tanh")  # the MLP's nonlinearity: in a gated MLP SwiGLU (Llama, ours) or GeGLU (Gemma)
MLP_KINDS = ("gated", "plain")  # 3 matrices, W_down(act(W_gate x) * W_up x); or 2, W_out act(W_in x) (GPT-2)
NORM_KINDS = ("rmsnorm", "layernorm")  # x / rms(x) * w (Llama, ours); (x - mean) / std * w + b (GPT-2)
NORM_POSITIONS = ("pre", "post")  # x + f(norm(x)) (GPT-2 onwards, ours); norm(x + f(x)) (Vaswani et al. 2017)
# RoPE scalings (model/net/positions.py `scale_inv_freq`) and the keys each one takes, as transformers names them:
# key -> its default, None where the key is required.
ROPE_SCALINGS = {
    "linear": {"factor": None},  # position interpolation: every frequency / factor
    "llama3": {"factor": None, "low_freq_factor": None, "high_freq_factor": None,
               "original_max_position_embeddings": None},
    "ntk": {"factor": None},  # static NTK-aware: base · factor^(d/(d−2)); not transformers' length-dependent "dynamic"
    "yarn": {"factor": None, "original_max_position_embeddings": None,  # + the attention factor 0.1·ln(factor) + 1
             "beta_fast": 32.0, "beta_slow": 1.0},
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
    norm_eps: float = 1e-5  # the norm's epsilon (RMSNorm, or LayerNorm), Llama's value (and GPT-2's LayerNorm's)
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
    # The architecture comparisons (model/net/checkpoints.py ARCHITECTURE_VARIANTS). The defaults are our model,
    # and to_dict() leaves these out while at their default too, so every config.json and every saved training
    # state's settings read exactly as before (a resume compares those settings).
    norm: str = "rmsnorm"  # one of NORM_KINDS; LayerNorm has a bias as well as a weight (GPT-2)
    norm_position: str = "pre"  # one of NORM_POSITIONS; "post" has no final norm (see Transformer.__init__)
    # One of MLP_KINDS: the MLP's *shape*. `mlp_act` above stays its *nonlinearity*: gated + silu = SwiGLU (ours),
    # gated + gelu_tanh = GeGLU (Gemma), plain + gelu_tanh = GPT-2's MLP ("gelu_new"). Two fields, not one
    # list of names, because the two choices are independent (and mlp_act predates this one: imports set it).
    mlp: str = "gated"
    # Mixture of experts: each block's MLP becomes n_experts gated MLPs of width d_mlp, and a linear router
    # (d_model → n_experts, no bias) sends each token to experts_per_token of them, weighted by the softmax of
    # their router logits (Mixtral's routing). 0 = a dense MLP, as in every other variant.
    n_experts: int = 0
    experts_per_token: int = 2  # k: Mixtral's 2; with 4 experts of d_mlp 256 a token uses 294,912 weights per MLP
    # Weight of the load-balancing loss added to the training loss (model/net/transformer.py
    # `load_balancing_loss`): Switch Transformer's α = 1e-2 (Fedus et al. 2021, §2.2: large enough to balance,
    # small enough not to swamp the cross-entropy). transformers' MixtralConfig defaults to 0.001 (Mistral did
    # not publish Mixtral's); ours is a 2 M-parameter model whose router must not collapse in 4,000 steps.
    router_aux_coef: float = 0.01

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
        """The fields as plain JSON types; the import-only and architecture-comparison fields only when they
        differ from the default (see the class body) — except that a mixture of experts writes all its fields,
        so its config.json says how many experts a token uses even while that is the default."""
        d = asdict(self)
        for f in fields(self):
            if f.name in OPTIONAL_FIELDS and d[f.name] == f.default and not (f.name in MOE_FIELDS and self.n_experts):
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
ARCH_FIELDS = ("norm", "norm_position", "mlp", "n_experts", "experts_per_token", "router_aux_coef")
MOE_FIELDS = ("n_experts", "experts_per_token", "router_aux_coef")
OPTIONAL_FIELDS = IMPORT_FIELDS + ARCH_FIELDS  # left out of to_dict() while at their default


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


_DEFAULT_K, _DEFAULT_AUX = ModelConfig.experts_per_token, ModelConfig.router_aux_coef


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
    check_choice("norm", c.norm, NORM_KINDS)
    check_choice("norm_position", c.norm_position, NORM_POSITIONS)
    check_choice("mlp", c.mlp, MLP_KINDS)
    check_int("n_experts", c.n_experts, 0)
    if not isinstance(c.router_aux_coef, (int, float)) or isinstance(c.router_aux_coef, bool) \
            or not 0 <= c.router_aux_coef < 1:
        raise ValueError(f"router_aux_coef must be a number in [0, 1), got {short(c.router_aux_coef)}")
    if c.n_experts:
        if c.n_experts < 2:
            raise ValueError("n_experts must be 0 (a dense MLP) or at least 2: one expert is a dense MLP")
        check_int("experts_per_token", c.experts_per_token, 1, c.n_experts)
        if c.mlp != "gated":
            raise ValueError("the experts are gated MLPs (SwiGLU / GeGLU): mlp must be 'gated' with n_experts")
    elif (c.experts_per_token, c.router_aux_coef) != (_DEFAULT_K, _DEFAULT_AUX):
        raise ValueError("experts_per_token and router_aux_coef need n_experts > 0")


def validate_rope_scaling(s, pos_encoding: str = "rope") -> None:
    """{"rope_type": "linear", "factor": 4.0} passes; a missing or unknown key is named. YaRN's beta_fast and
    beta_slow may be left out (32 and 1)."""
    if pos_encoding != "rope":
        raise ValueError(f"rope_scaling needs RoPE positions, not {short(pos_encoding)} (pos_encoding)")
    if not isinstance(s, dict):
        raise ValueError(f"rope_scaling must be an object or null, got {short(s)}")
    kind = check_choice("rope_scaling.rope_type", s.get("rope_type"), tuple(ROPE_SCALINGS))
    keys = ROPE_SCALINGS[kind]
    extra = sorted(set(s) - set(keys) - {"rope_type"})
    if extra:
        raise ValueError(f"rope_scaling of type {kind!r} takes {', '.join(keys)}; not {', '.join(extra)}")
    for k, default in keys.items():
        if default is not None and k not in s:
            continue  # optional (YaRN's betas): the default applies
        v = s.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"rope_scaling.{k} must be a positive number, got {short(v)}")
    if kind == "llama3" and not s["high_freq_factor"] > s["low_freq_factor"]:
        raise ValueError("rope_scaling.high_freq_factor must be greater than low_freq_factor")
    if kind == "yarn" and not s.get("beta_fast", keys["beta_fast"]) > s.get("beta_slow", keys["beta_slow"]):
        raise ValueError("rope_scaling.beta_fast must be greater than beta_slow")
