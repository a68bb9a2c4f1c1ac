"""Reading a model's `config.json` into an `Arch` (model/accounting/counts.py), and presets of well-known models.

Hugging Face configs name the same things differently per family, and each family implies things its config
does not say. What each reader honours (the defaults are those of the family's `transformers` config class):

    llama    RMSNorm, SwiGLU, RoPE; untied unless tie_word_embeddings; head_dim if given (else d / nh);
             attention_bias → biases on q, k, v and o; mlp_bias → biases on the three MLP matrices
    mistral  as llama, no biases; sliding_window (4096 in v0.1, null later; 4096 when missing) on every layer
    qwen2    as llama with biases on q, k, v (never on o); a window only if use_sliding_window, and then only
             on layers >= max_window_layers (28 when missing)
    gemma    as llama, GeGLU, tied by default, head_dim (256 in every released Gemma; 16 × 256 ≠ 3072 for 7B)
    gemma2   as gemma, plus a post-norm after attention and after the MLP (4 norms per block), and the window
             on every other layer (even indices; sliding_window 4096 when missing, null = none)
    qwen3    as qwen2, but attention_bias (default off) puts biases on q, k, v and o; head_dim given (128 when
             missing, not d / nh: Qwen3-0.6B has 16 × 128 = 2048 ≠ 1024); q_norm and k_norm, an RMSNorm of
             head_dim weights each, in every layer
    phi3     as mistral without a default window (sliding_window null when missing); its fused qkv_proj is W_q,
             W_k and W_v stacked and gate_up_proj W_gate and W_up, so they count as the separate matrices do.
             partial_rotary_factor changes no count (RoPE has no parameters)
    mixtral  as mistral without a default window; every layer's MLP is num_local_experts (8) experts of width
             intermediate_size, num_experts_per_tok (2) of them per token, chosen by a router (d × E)
    qwen2_moe  Qwen1.5-MoE: as qwen2 (qkv_bias, default on), with num_experts (60) experts of width
             moe_intermediate_size (1408), num_experts_per_tok (4) per token, plus a shared expert of width
             shared_expert_intermediate_size (5632) behind a sigmoid gate (d → 1); layers in mlp_only_layers, or
             with (i + 1) % decoder_sparse_step ≠ 0, have a dense MLP of width intermediate_size instead; a
             window (if use_sliding_window) on even layers below max_window_layers
    qwen3_moe  as qwen3 (q_norm, k_norm; head_dim if given, else d / nh), experts as qwen2_moe with defaults
             128 experts of width 768, 8 per token, and no shared expert; a window on every layer if
             use_sliding_window
    (any)    `layer_types` (newer transformers), when present, says which layers slide and overrides the rule
    gpt2     LayerNorm with bias, learned positions (n_positions rows), biases on every matrix, a plain GELU MLP
             of width n_inner (4·n_embd when null), tied, MHA

Required fields (vocab, width, depth, heads, MLP width) must be present: a missing hidden_size is more likely a
mistake than a wish for the family's default, so it is named instead of guessed. Anything the reader cannot use
raises ValueError naming the field. What is out: other MoE families (DeepSeek, GPT-OSS), multimodal configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from model.accounting.arch import LIMITS, Arch, arch_from_model_config, check_bool, check_int, short

_MISSING = object()
LAYER_TYPES = ("full_attention", "sliding_attention")


def _int(c: dict, key: str, default=_MISSING, lo: int = 1, limit: str = "") -> int:
    v = c.get(key, _MISSING)
    if v is None or v is _MISSING:
        if default is _MISSING:
            raise ValueError(f"{key} is missing (required for model_type {c.get('model_type')!r})")
        return default
    return check_int(key, v, lo, LIMITS.get(limit or "d_model"))


def _bool(c: dict, key: str, default: bool) -> bool:
    v = c.get(key, default)
    return default if v is None else check_bool(key, v)


def _heads(c: dict, d: int, nh_key: str, nkv_key: Optional[str], hd_default: Optional[int]) -> tuple[int, int, int]:
    nh = _int(c, nh_key, limit="n_heads")
    nkv = _int(c, nkv_key, nh, limit="n_kv_heads") if nkv_key else nh
    if nkv > nh or nh % nkv:
        raise ValueError(f"{nkv_key} ({nkv}) must divide {nh_key} ({nh})")
    hd = _int(c, "head_dim", None, limit="head_dim") if "head_dim" in c else None
    if hd is None:
        hd = hd_default
    if hd is None:
        if d % nh:
            raise ValueError(f"{nh_key} ({nh}) must divide the width ({d}) when head_dim is not given")
        hd = d // nh
    return nh, nkv, hd


# What transformers' config classes assume when a config.json leaves a window field out.
HF_SLIDING_WINDOW = 4096  # MistralConfig, Qwen2Config, Gemma2Config: sliding_window
HF_QWEN2_MAX_WINDOW_LAYERS = 28  # Qwen2Config, Qwen3Config, Qwen2MoeConfig: max_window_layers
QWEN_FAMILIES = ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe")  # a window only when use_sliding_window
EVERY_LAYER = ("mistral", "mixtral", "phi3", "qwen3_moe")  # the window, if any, on every layer


def sliding_layers(c: dict, mt: str, L: int) -> tuple[Optional[int], list[bool]]:
    """The window and, for each of the L layers, whether it slides — the rule of the family's transformers
    classes (tests/test_accounting.py checks it against their `layer_types`):

        mistral  every layer; sliding_window missing = 4096, null = no window
        mixtral, phi3  every layer; sliding_window missing or null = no window
        qwen2, qwen3  only with use_sliding_window, and then layers >= max_window_layers (28 when missing)
        qwen2_moe  only with use_sliding_window, and then the even layers below max_window_layers
        qwen3_moe  only with use_sliding_window, and then every layer
        gemma2   the even layers 0, 2, 4, …; sliding_window missing = 4096, null = no window
        (any)    layer_types, when present, names each layer's kind and overrides the rule
                 (qwen2 still slides nothing without use_sliding_window: its window is then None)

    qwen2, 4 layers, use_sliding_window, sliding_window 8, max_window_layers 2 -> (8, [False, False, True, True]).
    """

    def window_or(default: Optional[int]) -> Optional[int]:
        if "sliding_window" not in c:
            return default
        return _int(c, "sliding_window", None, limit="sliding_window")  # null: no window

    if mt in ("mistral", "gemma2"):
        window = window_or(HF_SLIDING_WINDOW)
    elif mt in ("mixtral", "phi3"):
        window = window_or(None)
    elif mt in QWEN_FAMILIES:
        window = window_or(HF_SLIDING_WINDOW) if _bool(c, "use_sliding_window", False) else None
    else:
        window = None
    types = c.get("layer_types")
    if types is not None:  # newer configs list each layer's attention; it overrides the family's rule
        if not isinstance(types, list) or len(types) != L or any(t not in LAYER_TYPES for t in types):
            raise ValueError(f"layer_types must list {L} entries (num_hidden_layers), each one of {', '.join(LAYER_TYPES)}")
        slides = [t == "sliding_attention" for t in types]
        if mt not in ("mistral", "gemma2", *QWEN_FAMILIES) and any(slides):
            window = _int(c, "sliding_window", limit="sliding_window")  # no family default to fall back on
    elif mt in EVERY_LAYER:
        slides = [True] * L
    elif mt in ("qwen2", "qwen3"):
        first = _int(c, "max_window_layers", HF_QWEN2_MAX_WINDOW_LAYERS, lo=0, limit="n_layers")
        slides = [i >= first for i in range(L)]
    elif mt == "qwen2_moe":
        below = _int(c, "max_window_layers", HF_QWEN2_MAX_WINDOW_LAYERS, lo=0, limit="n_layers")
        slides = [i % 2 == 0 and i < below for i in range(L)]
    elif mt == "gemma2":
        slides = [i % 2 == 0 for i in range(L)]
    else:
        slides = [False] * L
    if window is None:
        return None, [False] * L
    return window, slides


# What transformers' MoE config classes assume when a config.json leaves a field out: (E, k, me, ms).
HF_MOE_DEFAULTS = {"mixtral": (8, 2, None, 0), "qwen2_moe": (60, 4, 1408, 5632), "qwen3_moe": (128, 8, 768, 0)}


def _experts(c: dict, mt: str, L: int, m: int) -> dict:
    """The Arch fields of a mixture of experts (empty for a dense family): E, k, me, ms and how many layers
    have experts. Qwen's rule (its decoder layers' own test): layer i has experts unless i is in
    mlp_only_layers or (i + 1) % decoder_sparse_step ≠ 0."""
    if mt not in HF_MOE_DEFAULTS:
        return {}
    E0, k0, me0, ms0 = HF_MOE_DEFAULTS[mt]
    E = _int(c, "num_local_experts" if mt == "mixtral" else "num_experts", E0, lo=0, limit="n_experts")
    if mt == "mixtral":
        me, ms, moe = m, 0, L
    else:
        me = _int(c, "moe_intermediate_size", me0, limit="d_mlp")
        ms = _int(c, "shared_expert_intermediate_size", ms0, lo=0, limit="d_mlp") if mt == "qwen2_moe" else 0
        step = _int(c, "decoder_sparse_step", 1, limit="n_layers")
        dense = c.get("mlp_only_layers") or []
        if not isinstance(dense, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in dense):
            raise ValueError(f"mlp_only_layers must be a list of layer indices, got {short(dense)}")
        moe = sum(i not in dense and (i + 1) % step == 0 for i in range(L))
    if E == 0 or moe == 0:  # transformers builds dense MLPs everywhere: count it as the dense model it is
        return {}
    k = _int(c, "num_experts_per_tok", k0, limit="n_experts")
    if k > E:
        raise ValueError(f"num_experts_per_tok ({k}) cannot exceed the number of experts ({E})")
    return dict(n_experts=E, experts_per_token=k, d_expert=me, d_shared=ms, moe_layers=None if moe == L else moe)


def _llama_like(c: dict, mt: str, name: str) -> Arch:
    d = _int(c, "hidden_size")
    L = _int(c, "num_hidden_layers", limit="n_layers")
    gemma = mt in ("gemma", "gemma2")
    nh, nkv, hd = _heads(c, d, "num_attention_heads", "num_key_value_heads",
                         256 if gemma else 128 if mt == "qwen3" else None)
    attn_bias = _bool(c, "attention_bias", False) if mt in ("llama", "gemma", "gemma2", "qwen3", "qwen3_moe") else False
    qkv_bias = mt == "qwen2" or (mt == "qwen2_moe" and _bool(c, "qkv_bias", True))
    m = _int(c, "intermediate_size", limit="d_mlp")
    window, slides = sliding_layers(c, mt, L)
    window_layers = None if all(slides) else sum(slides)  # None = every layer
    return Arch(
        name=name,
        vocab_size=_int(c, "vocab_size", limit="vocab_size"),
        d_model=d, n_layers=L, n_heads=nh, n_kv_heads=nkv, head_dim=hd,
        d_mlp=m,
        mlp="gated", norm="rmsnorm", norms_per_layer=4 if mt == "gemma2" else 2,
        qkv_bias=attn_bias or qkv_bias, o_bias=attn_bias, qk_norm=mt in ("qwen3", "qwen3_moe"),
        mlp_bias=_bool(c, "mlp_bias", False) if mt == "llama" else False,
        positions="rope",
        tie_embeddings=_bool(c, "tie_word_embeddings", gemma),
        sliding_window=window, window_layers=window_layers,
        max_seq_len=_int(c, "max_position_embeddings", 4096, limit="max_seq_len"),
        **_experts(c, mt, L, m),
    )


def _gpt2(c: dict, name: str) -> Arch:
    d = _int(c, "n_embd")
    n_pos = _int(c, "n_positions", None, limit="n_positions")
    if n_pos is None:
        n_pos = _int(c, "n_ctx", None, limit="n_positions")  # the older name of the same field
    if n_pos is None:
        raise ValueError("n_positions is missing (the learned position table's size; required for model_type 'gpt2')")
    nh, _, hd = _heads(c, d, "n_head", None, None)
    return Arch(
        name=name,
        vocab_size=_int(c, "vocab_size", limit="vocab_size"),
        d_model=d, n_layers=_int(c, "n_layer", limit="n_layers"), n_heads=nh, n_kv_heads=nh, head_dim=hd,
        d_mlp=_int(c, "n_inner", 4 * d, limit="d_mlp"),
        mlp="plain", norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True,
        positions="learned", n_positions=n_pos,
        tie_embeddings=_bool(c, "tie_word_embeddings", True),
        max_seq_len=n_pos,
    )


FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gpt2", "mixtral", "qwen2_moe", "qwen3_moe")


def arch_from_hf_config(c: dict, name: Optional[str] = None) -> Arch:
    """A Hugging Face config dict → Arch. ValueError naming the field for anything it cannot use."""
    if not isinstance(c, dict):
        raise ValueError(f"a config must be a JSON object, got {type(c).__name__}")
    mt = c.get("model_type")
    if mt is None:
        raise ValueError("model_type is missing: cannot tell which family this config describes")
    if mt not in FAMILIES:
        raise ValueError(f"model_type {short(mt)} is not supported; one of {', '.join(FAMILIES)}")
    name = name or mt
    return _gpt2(c, name) if mt == "gpt2" else _llama_like(c, mt, name)


def arch_from_dict(c: dict, name: Optional[str] = None) -> Arch:
    """Either kind of config: a Hugging Face one (it has model_type) or one of our ModelConfig dicts."""
    from model.net.config import ModelConfig

    if not isinstance(c, dict):
        raise ValueError(f"a config must be a JSON object, got {type(c).__name__}")
    if "model_type" in c:
        return arch_from_hf_config(c, name)
    if "d_model" in c:
        try:
            return arch_from_model_config(ModelConfig.from_dict(c), name or "our model")
        except TypeError as e:  # a ModelConfig field of the wrong type that validate() did not reach
            raise ValueError(f"not a valid ModelConfig: {e}") from None
    raise ValueError("model_type is missing (and there is no d_model, so it is not one of our configs either)")


def arch_from_json_text(text: str, name: Optional[str] = None) -> Arch:
    try:
        c = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, a 5000-digit number, [[[[… nested too deep
        raise ValueError(f"not valid JSON: {str(e)[:120]}") from None
    return arch_from_dict(c, name)


def arch_from_json_file(path) -> Arch:
    """A config.json, or a model folder holding one (its name names the model)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {p}: {e}") from None
    # checkpoints/gqa-rope/config.json → "gqa-rope"; llama2.json → "llama2"
    return arch_from_json_text(text, (p.parent.name if p.stem == "config" else "") or p.stem)


# --------------------------------------------------------------------------------------------------------
# Presets: the config.json fields that matter, copied from each model's Hugging Face repository
# --------------------------------------------------------------------------------------------------------

_LLAMA2_7B = dict(model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                  max_position_embeddings=4096, tie_word_embeddings=False)
_LLAMA3 = dict(model_type="llama", vocab_size=128256, max_position_embeddings=8192, tie_word_embeddings=False)
_GPT2 = dict(model_type="gpt2", vocab_size=50257, n_positions=1024, n_inner=None)

PRESETS: dict[str, dict] = {
    "GPT-2 small": dict(_GPT2, n_embd=768, n_layer=12, n_head=12),  # 124,439,808 params
    "GPT-2 medium": dict(_GPT2, n_embd=1024, n_layer=24, n_head=16),  # 354,823,168
    "GPT-2 large": dict(_GPT2, n_embd=1280, n_layer=36, n_head=20),  # 774,030,080
    "GPT-2 XL": dict(_GPT2, n_embd=1600, n_layer=48, n_head=25),  # 1,557,611,200
    "Llama-2-7B": _LLAMA2_7B,  # 6,738,415,616
    "Llama-2-13B": dict(_LLAMA2_7B, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                        num_attention_heads=40, num_key_value_heads=40),  # 13,015,864,320
    "Llama-3-8B": dict(_LLAMA3, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8),  # 8,030,261,248
    "Llama-3-70B": dict(_LLAMA3, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                        num_attention_heads=64, num_key_value_heads=8),  # 70,553,706,496
    "Llama-3.1-405B": dict(_LLAMA3, hidden_size=16384, intermediate_size=53248, num_hidden_layers=126,
                           num_attention_heads=128, num_key_value_heads=8,
                           max_position_embeddings=131072),  # 405,853,388,800
    "Mistral-7B-v0.1": dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                            num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                            sliding_window=4096, max_position_embeddings=32768,
                            tie_word_embeddings=False),  # 7,241,732,096
    "Qwen2-0.5B": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                       num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       max_position_embeddings=32768, use_sliding_window=False,
                       tie_word_embeddings=True),  # 494,032,768
    "Qwen2-7B": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                     num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                     max_position_embeddings=131072, use_sliding_window=False,
                     tie_word_embeddings=False),  # 7,615,616,512
    "Gemma-2B": dict(model_type="gemma", vocab_size=256000, hidden_size=2048, intermediate_size=16384,
                     num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
                     max_position_embeddings=8192),  # 2,506,172,416
    "Gemma-7B": dict(model_type="gemma", vocab_size=256000, hidden_size=3072, intermediate_size=24576,
                     num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=16, head_dim=256,
                     max_position_embeddings=8192),  # 8,537,680,896
    "Gemma-2-9B": dict(model_type="gemma2", vocab_size=256000, hidden_size=3584, intermediate_size=14336,
                       num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8, head_dim=256,
                       sliding_window=4096, max_position_embeddings=8192),  # 9,241,705,984
    "Phi-3-mini-4k-instruct": dict(model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                                   max_position_embeddings=4096, sliding_window=2047,
                                   tie_word_embeddings=False),  # 3,821,079,552
    "Qwen3-0.6B": dict(model_type="qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072,
                       num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                       max_position_embeddings=40960, use_sliding_window=False,
                       tie_word_embeddings=True),  # 596,049,920
    "Qwen3-8B": dict(model_type="qwen3", vocab_size=151936, hidden_size=4096, intermediate_size=12288,
                     num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                     max_position_embeddings=40960, use_sliding_window=False,
                     tie_word_embeddings=False),  # 8,190,735,360
}

# Mixtures of experts, apart from PRESETS: the inference roofline (model/inference/roofline.py) and the
# Inference page take every dense preset and read every weight once per decode step, which an MoE model
# does not do (a token reads k of E experts). The accounting page offers both.
MOE_PRESETS: dict[str, dict] = {
    "Mixtral-8x7B-v0.1": dict(model_type="mixtral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                              num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                              num_local_experts=8, num_experts_per_tok=2, sliding_window=None,
                              max_position_embeddings=32768,
                              tie_word_embeddings=False),  # 46,702,792,704 total, 12,879,925,248 active
    "Qwen1.5-MoE-A2.7B": dict(model_type="qwen2_moe", vocab_size=151936, hidden_size=2048, intermediate_size=5632,
                              num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16,
                              num_experts=60, num_experts_per_tok=4, moe_intermediate_size=1408,
                              shared_expert_intermediate_size=5632, decoder_sparse_step=1, mlp_only_layers=[],
                              max_position_embeddings=8192, use_sliding_window=False,
                              tie_word_embeddings=False),  # 14,315,784,192 total, 2,689,173,504 active
    "Qwen3-30B-A3B": dict(model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                          num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
                          num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768,
                          decoder_sparse_step=1, mlp_only_layers=[], max_position_embeddings=40960,
                          use_sliding_window=False,
                          tie_word_embeddings=False),  # 30,532,122,624 total, 3,353,032,704 active
}
ALL_PRESETS = {**PRESETS, **MOE_PRESETS}


def preset_arch(name: str) -> Arch:
    if name not in ALL_PRESETS:
        raise ValueError(f"unknown preset {short(name)}; one of {', '.join(ALL_PRESETS)}")
    return arch_from_hf_config(ALL_PRESETS[name], name)
