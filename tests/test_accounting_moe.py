"""Mixture-of-experts, Phi-3 and Qwen3 accounting, and training memory, against their references: transformers'
own models of each family built on the meta device (`sum(p.numel())`, free at any size), tiny real ones for
FlopCounterMode and the KV cache, each expert's parameters read off the built model, the published totals,
and our model's saved activations measured with torch.autograd.graph.saved_tensors_hooks."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from model.accounting import counts as acc
from model.accounting.arch import Arch, arch_from_model_config
from model.accounting.hf_configs import ALL_PRESETS, MOE_PRESETS, PRESETS, arch_from_dict, preset_arch
from model.net.config import ModelConfig
from model.net.transformer import Transformer

ROOT = Path(__file__).resolve().parent.parent


def built(fields: dict, meta: bool = True):
    """transformers' own model for a config dict (model_type included): on the meta device unless asked."""
    import transformers  # a test dependency (requirements-dev.txt): missing is a failure, not a skip

    kw = {k: v for k, v in fields.items() if k != "model_type"}
    config = transformers.AutoConfig.for_model(fields["model_type"], **kw)
    if meta:
        with torch.device("meta"):
            return transformers.AutoModelForCausalLM.from_config(config)
    # eager attention: the full score matrix, as our non-causal count; eager experts: one matmul per expert
    return transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager",
                                                         experts_implementation="eager").eval()


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied head is one Parameter: counted once


# --------------------------------------------------------------------------------------------------------
# Parameters: every new family, small configs with each option both ways, and the presets at full size
# --------------------------------------------------------------------------------------------------------

_BASE = dict(vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
             num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
_MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24)
CASES = {
    "phi3": dict(_BASE, model_type="phi3"),
    "phi3-tied-mha": dict(_BASE, model_type="phi3", num_key_value_heads=6, tie_word_embeddings=True),
    "qwen3": dict(_BASE, model_type="qwen3", head_dim=12),
    "qwen3-head_dim-left-out": dict(_BASE, model_type="qwen3"),  # transformers' default is 128, not d / nh = 8
    "qwen3-biases-tied": dict(_BASE, model_type="qwen3", head_dim=12, attention_bias=True, tie_word_embeddings=True),
    "mixtral": dict(_BASE, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2),
    "mixtral-tied-top1": dict(_BASE, model_type="mixtral", num_local_experts=3, num_experts_per_tok=1,
                              tie_word_embeddings=True),
    "qwen2_moe": dict(_BASE, **_MOE, model_type="qwen2_moe", shared_expert_intermediate_size=40),
    "qwen2_moe-dense-layers": dict(_BASE, **_MOE, model_type="qwen2_moe", shared_expert_intermediate_size=40,
                                   num_hidden_layers=5, mlp_only_layers=[0], decoder_sparse_step=2),
    "qwen2_moe-no-qkv-bias-tied": dict(_BASE, **_MOE, model_type="qwen2_moe", shared_expert_intermediate_size=40,
                                       qkv_bias=False, tie_word_embeddings=True),
    "qwen2_moe-no-experts": dict(_BASE, model_type="qwen2_moe", num_experts=0),
    "qwen3_moe": dict(_BASE, **_MOE, model_type="qwen3_moe", head_dim=12),
    "qwen3_moe-tied-biases-dense-layer": dict(_BASE, **_MOE, model_type="qwen3_moe", tie_word_embeddings=True,
                                              attention_bias=True, mlp_only_layers=[2]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_new_families_equal_transformers_numel(case):
    fields = CASES[case]
    assert acc.count_params(arch_from_dict(fields)).total == numel(built(fields))


@pytest.mark.parametrize("name", ["Phi-3-mini-4k-instruct", "Qwen3-0.6B", "Qwen3-8B", *MOE_PRESETS])
def test_presets_equal_transformers_numel_on_the_meta_device(name):
    assert acc.count_params(preset_arch(name)).total == numel(built(ALL_PRESETS[name]))


def per_expert(model) -> int:
    """One routed expert's parameters, read off the built model: the first MoE layer's stacked expert tensors
    (gate_up_proj: E × 2me × d, down_proj: E × d × me) divided by E."""
    experts = next(m for name, m in model.named_modules() if name.endswith("mlp.experts"))
    return sum(p.numel() for p in experts.parameters()) // experts.num_experts


def moe_layer_count(model) -> int:
    return sum(name.endswith("mlp.experts") for name, _ in model.named_modules())


@pytest.mark.parametrize("case", [c for c in CASES if "moe" in c or "mixtral" in c])
def test_active_params_are_the_total_less_the_experts_a_token_skips(case):
    fields = CASES[case]
    a, model = arch_from_dict(fields), built(fields)
    if not a.n_experts:  # num_experts = 0: dense everywhere, and so is our count
        assert moe_layer_count(model) == 0 and acc.active_params(a) == acc.count_params(a)
        return
    E, k = a.n_experts, a.experts_per_token
    assert acc.active_params(a).total == numel(model) - moe_layer_count(model) * (E - k) * per_expert(model)


# Published totals (announcements and model cards), to the one decimal they were published with. Within 0.06 B,
# not rounded: Qwen writes 3.3B for Qwen3-30B-A3B's 3,353,032,704 active (cut, not rounded).
PUBLISHED = {  # name: (total, active), billions
    "Mixtral-8x7B-v0.1": (46.7, 12.9),  # Mistral AI's announcement: "46.7B total parameters but only uses 12.9B"
    "Qwen1.5-MoE-A2.7B": (14.3, 2.7),  # Qwen's model card: 14.3B total, 2.7B activated
    "Qwen3-30B-A3B": (30.5, 3.3),  # Qwen3 model card: 30.5B total, 3.3B activated
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_moe_totals_and_active(name):
    a = preset_arch(name)
    total, active = PUBLISHED[name]
    assert abs(acc.count_params(a).total / 1e9 - total) < 0.06
    assert abs(acc.active_params(a).total / 1e9 - active) < 0.06


def test_mixtral_by_hand_and_the_docstring():
    a = preset_arch("Mixtral-8x7B-v0.1")
    per = 3 * 4096 * 14336  # one expert: w1, w2, w3
    attn = 2 * 4096 * 4096 + 2 * 4096 * 1024
    total = 2 * 32000 * 4096 + 32 * (attn + 8 * per + 4096 * 8 + 2 * 4096) + 4096
    assert acc.count_params(a).total == total == 46_702_792_704
    assert acc.active_params(a).total == total - 32 * 6 * per == 12_879_925_248
    assert f"{total:,} − 32·(8 − 2)·3·4096·14336 = {acc.active_params(a).total:,}" in acc.active_params.__doc__
    # the KV cache does not care about experts: 32 layers × 8 K/V heads × 128 × 2 (K and V) × 2 bytes
    assert acc.kv_cache_bytes_per_token(a, "bf16") == 2 * 32 * 8 * 128 * 2 == 131_072


def test_qwen3_fields():
    a = preset_arch("Qwen3-0.6B")
    assert (a.head_dim, a.n_heads * a.head_dim, a.d_model) == (128, 2048, 1024)  # head_dim given, not d / nh
    assert a.qk_norm and acc.count_params(a).as_dict()["attn.q_norm, k_norm"] == 28 * 2 * 128
    # Qwen3's card: 0.6B total and 0.44B non-embedding; Qwen3-8B 8.2B and 6.95B
    assert round(acc.count_params(a).total / 1e9, 1) == 0.6 and round(acc.non_embedding_params(a) / 1e9, 2) == 0.44
    b = preset_arch("Qwen3-8B")
    assert round(acc.count_params(b).total / 1e9, 1) == 8.2 and round(acc.non_embedding_params(b) / 1e9, 2) == 6.95
    phi = preset_arch("Phi-3-mini-4k-instruct")  # fused qkv_proj and gate_up_proj: the same counts as separate ones
    assert acc.count_params(phi).total == 2 * 32064 * 3072 + 32 * (4 * 3072**2 + 3 * 3072 * 8192 + 2 * 3072) + 3072
    assert round(acc.count_params(phi).total / 1e9, 2) == 3.82 and phi.sliding_window == 2047


def test_dense_presets_stay_apart_from_moe_presets():
    # the Inference page's roofline takes every entry of PRESETS and reads every weight once per decode step
    assert not any(preset_arch(n).n_experts for n in PRESETS) and all(preset_arch(n).n_experts for n in MOE_PRESETS)
    assert set(ALL_PRESETS) == set(PRESETS) | set(MOE_PRESETS)


# --------------------------------------------------------------------------------------------------------
# FLOPs and the KV cache
# --------------------------------------------------------------------------------------------------------


def dense_equivalent(a: Arch) -> Arch:
    """The same model with each MoE layer's MLP replaced by one dense MLP as wide as a token's k experts and the
    shared expert together (a gated MLP's FLOPs are linear in its width). Only for a model whose every layer
    has experts."""
    assert a.n_moe_layers == a.n_layers
    return replace(a, n_experts=0, experts_per_token=0, d_expert=0, d_shared=0, moe_layers=None,
                   d_mlp=a.experts_per_token * a.d_expert + a.d_shared)


@pytest.mark.parametrize("name", list(MOE_PRESETS))
@pytest.mark.parametrize("b,s,past", [(1, 1, 0), (2, 100, 0), (3, 1, 4095)])
def test_moe_flops_are_the_dense_equivalent_plus_the_router(name, b, s, past):
    a = preset_arch(name)
    d, L = a.d_model, a.n_layers
    router = 2 * b * s * d * a.n_experts * L  # the d × E logits of every token in every layer
    shared_gate = 2 * b * s * d * L if a.d_shared else 0  # the shared expert's d → 1 gate
    want = acc.forward_flops(dense_equivalent(a), b, s, past).total + router + shared_gate
    assert acc.forward_flops(a, b, s, past).total == want
    assert acc.forward_flops(a, b, s, past).by_group()["mlp"] > 0


def test_moe_flops_with_dense_layers():
    a = arch_from_dict(CASES["qwen2_moe-dense-layers"])  # layers 1 and 3 have experts; 0, 2 and 4 are dense
    assert (a.n_moe_layers, a.n_dense_layers) == (2, 3)
    per_token = acc.forward_flops(a, 1, 1).by_group()["mlp"]
    d, m, k, me, ms, E = 48, 80, 2, 24, 40, 4
    assert per_token == 3 * 2 * 3 * d * m + 2 * (2 * 3 * d * (k * me + ms) + 2 * d * E + 2 * d)


@pytest.mark.parametrize("case", ["phi3", "phi3-tied-mha", "qwen3", "qwen3-biases-tied", "mixtral", "qwen2_moe",
                                  "qwen2_moe-dense-layers"])
def test_flops_and_kv_cache_equal_transformers_on_a_tiny_model(case):
    """FlopCounterMode on a real forward, and the bytes of the DynamicCache it fills. Mixtral's and Qwen2-MoE's
    experts run one matmul per expert by default on CPU, so FlopCounterMode sees them. (Qwen3-MoE's default is
    grouped_mm, which FlopCounterMode does not count at all: the test above checks MoE FLOPs without it.)"""
    fields = CASES[case]
    model, a = built(fields, meta=False), arch_from_dict(fields)
    ids = torch.randint(0, 101, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = model(ids, use_cache=True)
    assert fc.get_total_flops() == acc.prefill_flops(a, 2, 7).total
    cache_bytes = sum(layer.keys.nbytes + layer.values.nbytes for layer in out.past_key_values.layers)
    assert cache_bytes == acc.kv_cache_bytes(a, 7, 2, "fp32")


def test_crossover_and_kaplan_use_the_active_parameters():
    a = preset_arch("Mixtral-8x7B-v0.1")
    # per layer: attention 4·s²·nh·hd against the router and two experts, 2·(3·2·d·me + d·E) per token
    assert acc.attention_crossover_seq_len(a) == acc.Fraction(2 * (3 * 2 * 4096 * 14336 + 4096 * 8), 4 * 32 * 128)
    assert acc.attention_crossover_seq_len(preset_arch("Llama-2-7B")) == 16512  # the dense formula, unchanged
    n_active = acc.active_params(a).total - 2 * 32000 * 4096
    assert acc.non_embedding_params(a, active=True) == n_active
    assert acc.kaplan_training_flops(a, 1, 4096) == 6 * n_active * 4096
    rows = {r["term"]: r for r in acc.megatron_comparison(a, 1, 4096)}
    assert "2 of 8 experts" in rows["MLP"]["why"]


_W = dict(_BASE, num_hidden_layers=5)  # odd, so "every other layer" and "the last k" differ
WINDOW_CASES = {
    "mixtral": dict(_W, model_type="mixtral", sliding_window=8),
    "mixtral, window left out": dict(_W, model_type="mixtral"),  # MixtralConfig's default: none
    "phi3": dict(_W, model_type="phi3", sliding_window=8),
    "qwen3, max_window_layers 2": dict(_W, model_type="qwen3", use_sliding_window=True, sliding_window=8,
                                       max_window_layers=2),
    "qwen3, off": dict(_W, model_type="qwen3", sliding_window=8),
    "qwen3_moe": dict(_W, **_MOE, model_type="qwen3_moe", use_sliding_window=True, sliding_window=8),
    "qwen2_moe, max_window_layers 4": dict(_W, **_MOE, model_type="qwen2_moe", use_sliding_window=True,
                                           sliding_window=8, max_window_layers=4),
    "qwen2_moe, off": dict(_W, **_MOE, model_type="qwen2_moe", sliding_window=8),
}


@pytest.mark.parametrize("case", list(WINDOW_CASES))
def test_window_layers_equal_transformers(case):
    """Each layer's window as transformers builds it: the attention module's own sliding_window where the
    family sets one per layer (Qwen), else config.sliding_window, which Mixtral and Phi-3 pass to every layer."""
    fields = WINDOW_CASES[case]
    model = built(fields)
    attn = [layer.self_attn for layer in model.model.layers]
    if fields["model_type"] in ("mixtral", "phi3"):
        want = [model.config.sliding_window] * len(attn)
    else:
        want = [getattr(m, "sliding_window", None) for m in attn]
    for source in (fields, dict(model.config.to_dict(), model_type=fields["model_type"])):
        a = arch_from_dict(source)
        assert a.n_window_layers == sum(w is not None for w in want), source
        assert {w for w in want if w is not None} <= {a.sliding_window}


# --------------------------------------------------------------------------------------------------------
# Quantized weights of an MoE: every expert is quantized, the router is kept
# --------------------------------------------------------------------------------------------------------


def test_moe_weight_memory_quantizes_every_expert_and_keeps_the_router():
    a = preset_arch("Mixtral-8x7B-v0.1")
    kept = acc.kept_tensors(a)
    assert kept["moe.router"] == 32 * 4096 * 8 and "moe.experts.W_up" not in kept
    copies = {name: c for name, _, _, c in acc.weight_matrices(a)}
    assert copies["moe.experts.W_gate"] == 32 * 8 and copies["attn.W_q"] == 32 and "mlp.W_gate" not in copies
    quantized = sum(o * i * c for _, o, i, c in acc.weight_matrices(a))
    assert quantized + sum(kept.values()) == acc.count_params(a).total
    q4 = acc.weight_memory(a, "Q4_0 (G=32)")
    assert q4["codes"] + q4["scales"] == quantized * 9 // 16 and q4["kept"] == 2 * sum(kept.values())


# --------------------------------------------------------------------------------------------------------
# Training memory: the activation formula against what autograd saves
# --------------------------------------------------------------------------------------------------------


def saved_activation_bytes(model: Transformer, ids: torch.Tensor, fused: bool = False) -> int:
    """Bytes of every tensor autograd saves for the backward of one training step (forward and cross-entropy
    loss), each storage once (a view and its base are one tensor in memory), parameters left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(ids, fused=fused)  # (B, T, V)
        F.cross_entropy(logits.flatten(0, 1), ids.flatten())
    return sum(seen.values())


def our_extras(cfg: ModelConfig, b: int, s: int, fused: bool) -> dict[str, int]:
    """What our model saves beyond the formula, per layer, each for a named reason of its implementation (fp32)."""
    d, nh, nkv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    return {
        # RMSNorm written as separate ops (model/net/transformer.py): x·rsqrt(mean x²) before the weight, and the
        # rsqrt itself, besides the norm's input and output
        "RMSNorm internals": 2 * b * s * (d + 1) * 4,
        # GQA by repeat_interleave: K and V are saved expanded to all nh heads, not at nkv
        "K, V expanded to nh heads": 2 * b * s * (nh - nkv) * hd * 4,
        # apply_rope computes cos and sin of the angles for q and again for k: (s, hd/2) each
        "RoPE cos and sin, twice": 4 * s * hd // 2 * 4,
        # the causal mask: bool for the explicit path; scaled_dot_product_attention turns it into a float mask
        "causal mask": s * s * (4 if fused else 1),
    }


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("kw", [{}, {"n_kv_heads": 6}, {"n_kv_heads": 1, "d_mlp": 320}])
def test_activation_memory_equals_what_autograd_saves(fused, kw):
    """One layer's saved bytes (a 2-layer model less a 1-layer one) equal the formula's layer plus our named
    extras; the 1-layer model's remainder equals the formula's head plus the final norm's internals and the
    loss's one fp32 scalar. Exact, no tolerance. fused=True is the FlashAttention-style kernel (CPU's
    scaled_dot_product_attention keeps q, k, v, the output and a log-sum-exp, no s × s pattern)."""
    b, s = 2, 64
    ids = torch.randint(0, 2048, (b, s), generator=torch.Generator().manual_seed(0))
    saved = {}
    for L in (1, 2):
        cfg = ModelConfig(n_layers=L, **kw)
        saved[L] = saved_activation_bytes(Transformer(cfg).train(), ids, fused)
    one = {L: acc.activation_memory(arch_from_model_config(ModelConfig(n_layers=L, **kw)), b, s, 4, flash=fused)
           for L in (1, 2)}
    layer = one[2].total - one[1].total
    assert saved[2] - saved[1] == layer + sum(our_extras(cfg, b, s, fused).values())
    head = one[1].total - layer
    assert saved[1] - (saved[2] - saved[1]) == head + b * s * (cfg.d_model + 1) * 4 + 4


def test_activation_checkpointing_keeps_each_layers_input():
    """Each block wrapped in torch.utils.checkpoint (reentrant: the block runs without grad, its inputs saved
    through the hooks): a layer then keeps b·s·d numbers, the formula's "layer inputs" term."""
    from torch.utils.checkpoint import checkpoint

    b, s = 2, 64
    ids = torch.randint(0, 2048, (b, s), generator=torch.Generator().manual_seed(0))
    saved = {}
    for L in (1, 2):
        model = Transformer(ModelConfig(n_layers=L)).train()
        for block in model.blocks:
            f = block.forward
            block.forward = lambda x, positions, cache=None, fused=False, f=f: checkpoint(
                f, x, positions, cache, fused, use_reentrant=True)
        saved[L] = saved_activation_bytes(model, ids)
    terms = {L: acc.activation_memory(arch_from_model_config(ModelConfig(n_layers=L)), b, s, 4, checkpointing=True)
             .as_dict() for L in (1, 2)}
    per_layer = terms[2]["layer inputs (checkpoints)"] - terms[1]["layer inputs (checkpoints)"]
    assert saved[2] - saved[1] == per_layer == b * s * 192 * 4
    # the recomputed layer is live only inside the backward, one at a time: the same bytes as a layer without
    # checkpointing, whatever L
    no_ckpt = acc.activation_memory(arch_from_model_config(ModelConfig(n_layers=1)), b, s, 4)
    head = sum(v for k, v in no_ckpt.as_dict().items() if k in terms[1])
    assert terms[1]["one layer, recomputed in the backward"] == no_ckpt.total - head
    assert terms[2]["one layer, recomputed in the backward"] == terms[1]["one layer, recomputed in the backward"]


def test_training_memory_parts():
    a = preset_arch("Llama-2-7B")
    N = 6_738_415_616
    mixed = acc.training_memory(a, 1, 4096, "bf16 mixed")
    assert (mixed["weights"], mixed["gradients"], mixed["fp32 master weights"], mixed["AdamW moments"]) == \
        (2 * N, 2 * N, 4 * N, 8 * N)  # ZeRO's 2 + 2 + 12 bytes a parameter
    assert sum(v for k, v in mixed.items() if k != "activations") == 16 * N == 107_814_649_856
    assert f"{16 * N:,} bytes" in acc.training_memory.__doc__
    fp32 = acc.training_memory(a, 1, 4096, "fp32")
    assert fp32["fp32 master weights"] == 0 and fp32["weights"] == fp32["gradients"] == 4 * N
    assert fp32["activations"] > mixed["activations"]  # 4-byte activations (the fp32 log-softmax is the same)
    # checkpointing trades activation memory for a second forward; the long sequence's s² pattern is the other
    full = acc.activation_memory(a, 1, 4096, 2, flash=False).total
    flash = acc.activation_memory(a, 1, 4096, 2).total
    ckpt = acc.activation_memory(a, 1, 4096, 2, checkpointing=True).total
    assert full - flash == 32 * 32 * 4096 * (4096 * 2 - 4) and flash > ckpt
    # Korthikanti et al.'s own count for a GPT-3-like layer (MHA, a 4d GELU MLP, fp16) is 34·s·b·h + 5·a·s²·b
    # bytes; without dropout it loses the two residual dropout masks (s·b·h bytes each) and the attention
    # dropout's mask and output (3·a·s²·b): 32·s·b·h + 2·a·s²·b
    gpt = Arch(vocab_size=1000, d_model=64, n_layers=1, n_heads=4, n_kv_heads=4, head_dim=16, d_mlp=256, mlp="plain",
               norm="layernorm")
    layer = sum(t.value for t in acc.activation_memory(gpt, 3, 50, 2, flash=False).terms if t.group != "head")
    s, b, h, heads = 50, 3, 64, 4
    assert layer == (34 - 2) * s * b * h + (5 - 3) * heads * s * s * b
    with pytest.raises(ValueError, match="precision"):
        acc.training_memory(a, 1, 16, "int8")


def test_training_compute_exact_and_6nd():
    a = preset_arch("Llama-2-7B")
    c = acc.training_compute(a, 4096, 10_000)  # 10,000 tokens are 3 whole sequences of 4096
    assert (c["sequences"], c["tokens"]) == (3, 12_288)
    assert c["exact"] == 3 * acc.prefill_flops(a, 3, 4096).total == acc.training_flops(a, 3, 4096)
    assert c["6ND"] == 6 * 6_476_271_616 * 12_288
    moe = acc.training_compute(preset_arch("Mixtral-8x7B-v0.1"), 4096, 4096)
    assert moe["N"] == acc.non_embedding_params(preset_arch("Mixtral-8x7B-v0.1"), active=True)


def test_the_gpus_and_what_fits():
    assert acc.GPU_MEMORY["A100 40GB"] == 40 * 2**30 and acc.GPU_MEMORY["T4 16GB"] == 15 * 2**30
    a = arch_from_model_config(ModelConfig())
    assert sum(acc.training_memory(a, 8, 256).values()) < acc.GPU_MEMORY["T4 16GB"]
    llama = sum(acc.training_memory(preset_arch("Llama-2-7B"), 1, 4096, checkpointing=True).values())
    assert llama > acc.GPU_MEMORY["H100 80GB"]


# --------------------------------------------------------------------------------------------------------
# Configs that are refused, with the field named
# --------------------------------------------------------------------------------------------------------

MIXTRAL = MOE_PRESETS["Mixtral-8x7B-v0.1"]
QWEN_MOE = MOE_PRESETS["Qwen1.5-MoE-A2.7B"]
BAD = [
    (dict(MIXTRAL, num_local_experts=-1), "num_local_experts"),
    (dict(MIXTRAL, num_experts_per_tok=9), "num_experts_per_tok"),
    (dict(MIXTRAL, num_experts_per_tok=0), "num_experts_per_tok"),
    (dict(QWEN_MOE, moe_intermediate_size=0), "moe_intermediate_size"),
    (dict(QWEN_MOE, mlp_only_layers="all"), "mlp_only_layers"),
    (dict(QWEN_MOE, decoder_sparse_step=0), "decoder_sparse_step"),
    (dict(QWEN_MOE, shared_expert_intermediate_size=-3), "shared_expert_intermediate_size"),
    (dict(PRESETS["Qwen3-8B"], head_dim=0), "head_dim"),
    (dict(PRESETS["Phi-3-mini-4k-instruct"], sliding_window=-5), "sliding_window"),
    (dict(MIXTRAL, model_type="deepseek_v3"), "model_type"),
]


@pytest.mark.parametrize("cfg,field", BAD)
def test_malformed_moe_configs_name_the_field(cfg, field):
    with pytest.raises(ValueError, match=field):
        arch_from_dict(cfg)


def test_every_field_of_every_moe_preset_fails_only_with_value_error():
    for preset in MOE_PRESETS.values():
        for key in preset:
            for bad in (None, -1, 0, 2.5, "x", [], {}, True, 10**40):
                try:
                    a = arch_from_dict(dict(preset, **{key: bad}))
                except ValueError:
                    continue
                assert isinstance(a, Arch) and type(acc.active_params(a).total) is int
                assert type(sum(acc.training_memory(a, 1, 8).values())) is int


def test_arch_refuses_half_an_moe():
    with pytest.raises(ValueError, match="n_experts"):
        Arch(experts_per_token=2)
    with pytest.raises(ValueError, match="experts_per_token"):
        Arch(n_experts=4, experts_per_token=5, d_expert=8)
    with pytest.raises(ValueError, match="mlp_bias"):
        Arch(n_experts=4, experts_per_token=2, d_expert=8, mlp_bias=True)


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------


def open_accounting_page(query: dict[str, str] = {}):  # noqa: B006  (read only)
    """A fresh session opening the accounting page with these query parameters (what pasting a link does)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.switch_page("pages/accounting.py").run()


def test_page_pasted_mixtral_shows_total_and_active():
    at = open_accounting_page()
    at.radio(key="acc_source").set_value("Paste a config.json").run()
    at.text_area(key="acc_paste").set_value(json.dumps(MIXTRAL)).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "46,702,792,704"
    assert metrics["Active per token"] == "12,879,925,248"
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    active = next(c for c in charts if c["layout"]["title"]["text"].startswith("Total and active"))
    assert [sum(t["y"][i] for t in active["data"]) for i in range(2)] == [46_702_792_704, 12_879_925_248]
    assert active["layout"]["xaxis"]["title"]["text"] and active["layout"]["yaxis"]["title"]["text"]
    bars = charts[1]  # the components chart, as for a dense model
    assert sum(t["y"][0] for t in bars["data"]) == 46_702_792_704
    words = " ".join(str(e.value) for e in at.caption)
    assert "E = 8 experts" in words and "k = 2 per token" in words


def test_page_training_tab_from_a_link():
    at = open_accounting_page({"acc_tab": "Training", "acc_source": "Preset", "acc_preset": "Llama-2-7B",
                               "acc_gpu": "H100 80GB"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["acc_tab"] == "Training"
    a = preset_arch("Llama-2-7B")
    parts = acc.training_memory(a, 1, 4096, "bf16 mixed", checkpointing=True, flash=True)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fig = next(c for c in charts if c["layout"]["title"]["text"].startswith("Training memory"))
    assert sum(t["y"][0] for t in fig["data"]) == pytest.approx(sum(parts.values()) / 2**30)
    assert fig["layout"]["shapes"][0]["y0"] == pytest.approx(acc.GPU_MEMORY["H100 80GB"] / 2**30)
    assert fig["layout"]["xaxis"]["title"]["text"] and fig["layout"]["yaxis"]["title"]["text"]
    words = " ".join(str(e.value) for kind in ("markdown", "caption") for e in at.get(kind))
    assert "does not fit on one H100 80GB" in words and "Korthikanti et al." in words
    assert "no batch size fits" in words  # 16 bytes × 6.7 B parameters = 100 GiB before any activation
    # our model fits a T4 easily; the URL carries the widgets
    at.radio(key="acc_source").set_value("Our model").run()
    at.selectbox(key="acc_gpu").set_value("T4 16GB").run()
    words = " ".join(str(e.value) for kind in ("markdown", "caption") for e in at.get(kind))
    assert "fits on one T4 16GB" in words
    at.number_input(key="acc_train_batch").set_value(4).run()
    at.toggle(key="acc_ckpt").set_value(False).run()
    assert not at.exception
    assert at.query_params["acc_train_batch"] == "4" and at.query_params["acc_gpu"] == "T4 16GB"
    ours = arch_from_model_config(ModelConfig())
    table = next(d.value for d in at.dataframe if "kept for the backward" in d.value.columns)
    act = acc.activation_memory(ours, 4, 256, 2, checkpointing=False, flash=True)
    assert list(table["bytes"]) == [f"{t.value:,}" for t in act.terms]


def test_readme_quotes_the_calculator():
    readme = (ROOT / "README.md").read_text()
    a = preset_arch("Mixtral-8x7B-v0.1")
    assert f"Mixtral-8x7B {acc.count_params(a).total:,} total, {acc.active_params(a).total:,} active" in readme
    states = sum(v for k, v in acc.training_memory(preset_arch("Llama-2-7B"), 1, 16).items() if k != "activations")
    assert f"Llama-2-7B in bf16 needs {states / 2**30:.1f} GiB before any activation" in readme
