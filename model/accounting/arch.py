"""The architecture an accounting is made from: `Arch`, one dataclass that describes our model and the
Llama / Mistral / Qwen2 / Qwen3 / Phi-3 / Gemma / GPT-2 families and the mixture-of-experts ones (Mixtral, Qwen MoE),
with its validation (the field checks are
`model.net.config`'s, shared with our own ModelConfig).

`hf_configs.py` reads Hugging Face configs into it; `counts.py` counts parameters, FLOPs and memory from it.
Plain Python (no torch, no NumPy), so the page and the CLI read configs without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from model.net.config import POS_ENCODINGS, check_bool, check_choice, check_int, short  # noqa: F401  (re-exported)

# --------------------------------------------------------------------------------------------------------
# The architecture
# --------------------------------------------------------------------------------------------------------

MLP_KINDS = ("gated", "plain")  # gated: SwiGLU / GeGLU, 3 matrices (gate, up, down); plain: GELU, 2 (up, down)
NORM_KINDS = ("rmsnorm", "layernorm")  # rmsnorm: weight only (Llama); layernorm: weight + bias (GPT-2)
POSITIONS = POS_ENCODINGS  # the same list our model takes; only "learned" has parameters
# Plain float types. Quantized formats (int8 / int4 codes with their scales) are model/quantize/formats.py's,
# counted in counts.py: a flat "int4 = 4 bits" would leave out the scales (Q4_0 is 4.5 bits per weight).
DTYPE_BITS = {"fp32": 32, "bf16": 16, "fp16": 16}

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
    "n_experts": 2**16,  # the largest public MoEs route among a few hundred
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
    qk_norm: bool = False  # an RMSNorm of hd weights over each head's q and over its k, per layer (Qwen3)
    # Mixture of experts: in an MoE layer a router (d → E) picks k of E expert MLPs per token, and the MLP's
    # output is their weighted sum (plus an always-on shared expert in Qwen1.5/2-MoE). E = 0: dense everywhere.
    n_experts: int = 0  # E: routed experts per MoE layer (Mixtral-8x7B: 8)
    experts_per_token: int = 0  # k: experts each token is routed to (Mixtral: 2)
    d_expert: int = 0  # me: each routed expert's MLP width (Mixtral: intermediate_size; Qwen: moe_intermediate_size)
    d_shared: int = 0  # ms: the shared expert's width, with a sigmoid gate d → 1 (Qwen1.5-MoE); 0 = none
    moe_layers: Optional[int] = None  # how many layers have experts (None = all when E > 0); the others: dense m

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

    @property
    def n_moe_layers(self) -> int:
        """Lm: layers whose MLP is a mixture of experts (0 for a dense model)."""
        if not self.n_experts:
            return 0
        return self.n_layers if self.moe_layers is None else self.moe_layers

    @property
    def n_dense_layers(self) -> int:
        """Ld = L − Lm: layers with one dense MLP of width m."""
        return self.n_layers - self.n_moe_layers


def validate(a: Arch) -> None:
    """Raise ValueError naming the field when `a` cannot describe a working model."""
    for f in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_mlp", "max_seq_len"):
        check_int(f, getattr(a, f), 1, LIMITS[f])
    if a.n_kv_heads > a.n_heads or a.n_heads % a.n_kv_heads:
        raise ValueError(f"n_kv_heads ({a.n_kv_heads}) must divide n_heads ({a.n_heads})")
    for f, kinds in (("mlp", MLP_KINDS), ("norm", NORM_KINDS), ("positions", POSITIONS)):
        check_choice(f, getattr(a, f), kinds)
    check_int("norms_per_layer", a.norms_per_layer, 0, 16)
    for f in ("final_norm", "qkv_bias", "o_bias", "mlp_bias", "tie_embeddings"):
        check_bool(f, getattr(a, f))
    check_int("n_positions", a.n_positions, 1 if a.positions == "learned" else 0, LIMITS["n_positions"])
    if a.sliding_window is not None:
        check_int("sliding_window", a.sliding_window, 1, LIMITS["sliding_window"])
    if a.window_layers is not None:
        check_int("window_layers", a.window_layers, 0, a.n_layers)
    check_bool("qk_norm", a.qk_norm)
    check_int("n_experts", a.n_experts, 0, LIMITS["n_experts"])
    if a.n_experts:
        check_int("experts_per_token", a.experts_per_token, 1, a.n_experts)
        check_int("d_expert", a.d_expert, 1, LIMITS["d_mlp"])
        check_int("d_shared", a.d_shared, 0, LIMITS["d_mlp"])
        if a.moe_layers is not None:
            check_int("moe_layers", a.moe_layers, 0, a.n_layers)
        if a.mlp_bias:  # no MoE family here has them, so there is nothing to check such a count against
            raise ValueError("mlp_bias with experts: no mixture-of-experts family here has MLP biases")
    elif a.experts_per_token or a.d_expert or a.d_shared or a.moe_layers is not None:
        raise ValueError("experts_per_token, d_expert, d_shared and moe_layers need n_experts > 0")


def arch_from_model_config(cfg, name: str = "our model") -> Arch:
    """Our `model.net.config.ModelConfig` → Arch. Our model: SwiGLU, RMSNorm, no biases (see model/net/transformer.py);
    the architecture variants: LayerNorm (weight + bias), a plain two-matrix MLP, post-norm (two norms per block
    and no final one), or a mixture of experts (every layer; each expert a gated MLP of width d_mlp, no shared one)."""
    E = cfg.n_experts
    return Arch(
        name=name, vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, d_mlp=cfg.d_mlp, mlp=cfg.mlp, norm=cfg.norm,
        final_norm=cfg.norm_position == "pre",
        positions=cfg.pos_encoding, n_positions=cfg.max_seq_len if cfg.pos_encoding == "learned" else 0,
        tie_embeddings=cfg.tie_embeddings, sliding_window=cfg.sliding_window, max_seq_len=cfg.max_seq_len,
        qkv_bias=cfg.qkv_bias,  # an imported Qwen2 (model/net/hf_import.py)
        window_layers=None if cfg.sliding_layers is None else len(cfg.sliding_layers),
        n_experts=E, experts_per_token=cfg.experts_per_token if E else 0, d_expert=cfg.d_mlp if E else 0,
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
