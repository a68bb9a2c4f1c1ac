"""Accounting against its references: sum(p.numel()) and FlopCounterMode on our live model, the KV cache's
own nbytes(), tiny Hugging Face models built by transformers, published parameter counts, and the published
figures. Plus: malformed configs give named ValueErrors, big values stay exact, the CLI and the page run."""

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from model.accounting import cli, counts as acc
from model.accounting.arch import Arch, arch_from_model_config, attention_variants
from model.net.checkpoints import VARIANTS
from model.net.config import ModelConfig
from model.accounting.hf_configs import (PRESETS, arch_from_dict, arch_from_hf_config, arch_from_json_text, preset_arch,
                                         sliding_layers)
from model.net.kv_cache import KVCache
from model.net.transformer import Transformer, attention_mask

ROOT = Path(__file__).resolve().parent.parent

# Every variant (the shipped ones and the architecture variants), plus an untied head and a sliding window (with
# learned positions, so the position table and the window are both exercised).
CONFIGS = {name: ModelConfig(**kw) for name, kw in VARIANTS.items()}
CONFIGS["gqa-rope-untied"] = ModelConfig(tie_embeddings=False)
CONFIGS["gqa-learned-window"] = ModelConfig(pos_encoding="learned", sliding_window=16)

_models: dict = {}


def live(name: str) -> Transformer:
    if name not in _models:
        _models[name] = Transformer(CONFIGS[name]).eval()  # seeded init inside Transformer
    return _models[name]


def fcm(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def ids(b, s, vocab=2048, seed=0):
    return torch.randint(0, vocab, (b, s), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------------
# Our model: parameters, forward / decode / training FLOPs, KV cache bytes
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_params_equal_numel(name):
    m = live(name)
    breakdown = acc.count_params(arch_from_model_config(m.cfg))
    assert breakdown.total == sum(p.numel() for p in m.parameters())
    # and term by term, against the named parameters
    named = dict(m.named_parameters())
    d = breakdown.as_dict()
    assert d["embedding"] == named["tok_embed.weight"].numel()
    assert d["attn.W_k"] == sum(p.numel() for k, p in named.items() if k.endswith("W_k.weight"))
    # a dense gated MLP's W_gate, or the experts' (a plain MLP has none)
    assert d.get("mlp.W_gate", 0) + d.get("moe.experts.W_gate", 0) == sum(
        p.numel() for k, p in named.items() if k.endswith("W_gate.weight"))
    assert d.get("position table", 0) == (named["pos_embed.weight"].numel() if "pos_embed.weight" in named else 0)
    assert d["unembedding"] == (named["unembed.weight"].numel() if "unembed.weight" in named else 0)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("b,s", [(1, 1), (1, 37), (2, 64), (3, 16)])
def test_forward_flops_equal_flop_counter(name, b, s):
    m = live(name)
    with torch.no_grad():
        measured = fcm(lambda: m(ids(b, s)))
    assert acc.prefill_flops(arch_from_model_config(m.cfg), b, s).total == measured


def test_forward_flops_at_full_context_and_measure_model():
    m = live("gqa-rope")
    ours = acc.prefill_flops(arch_from_model_config(m.cfg), 1, 256).total
    got = acc.measure_model(m, 1, 256)
    assert got["params"] == sum(p.numel() for p in m.parameters()) and got["forward_flops"] == ours
    a = arch_from_model_config(m.cfg)
    assert got["decode_step_flops"] == acc.decode_step_flops(a, 1, 256).total
    assert got["kv_cache_bytes"] == acc.kv_cache_bytes(a, 256, 1, "fp32")


@pytest.mark.parametrize("name", ["gqa-rope", "mha-rope", "mqa-rope", "gqa-learned-window"])
def test_cached_decode_and_chunked_prefill_flops_equal_flop_counter(name):
    m = live(name)
    a = arch_from_model_config(m.cfg)
    x = ids(2, 21)
    cache = KVCache.for_model(m.cfg)
    with torch.no_grad():
        assert fcm(lambda: m(x[:, :9], cache=cache)) == acc.prefill_flops(a, 2, 9).total
        # a chunk of 5 more tokens after 9 cached ones (with a window of 16 the cache still holds all 9)
        assert fcm(lambda: m(x[:, 9:14], cache=cache)) == acc.forward_flops(a, 2, 5, past=9).total
        for t in range(14, 21):  # one decode step at a time, past the window of 16
            measured = fcm(lambda: m(x[:, t : t + 1], cache=cache))
            assert measured == acc.decode_step_flops(a, 2, t + 1).total, t
        # a chunk after the window has evicted: Tk = min(w + s, s + w - 1)
        y = ids(2, 6, seed=1)
        assert fcm(lambda: m(y, cache=cache)) == acc.forward_flops(a, 2, 6, past=21).total


@pytest.mark.parametrize("name", ["gqa-rope", "gqa-rope-untied", "gqa-learned-window"])
def test_decode_without_cache_recomputes_every_layer_but_one_head(name):
    # FlopCounterMode on the full forward, less the unembedding of all positions but the last (measured the
    # same way): what the next token needs without a cache.
    m = live(name)
    a = arch_from_model_config(m.cfg)
    with torch.no_grad():
        full = fcm(lambda: m(ids(2, 50)))
        head = fcm(lambda: torch.nn.functional.linear(torch.zeros(2, 49, m.cfg.d_model), m.W_U))
    assert acc.decode_step_flops(a, 2, 50, cached=False).total == full - head
    assert acc.forward_flops(a, 2, 50, logits_to_keep=1).total == full - head
    assert acc.forward_flops(a, 2, 50, logits_to_keep=50).total == full == acc.prefill_flops(a, 2, 50).total


def test_the_no_cache_ratio_is_not_the_context():
    # 33 positions of our model: a full forward unembedding every position is exactly 33× a cached step (the
    # count the Generation page once showed); the real no-cache step computes one position's logits.
    a = arch_from_model_config(CONFIGS["gqa-rope"])
    cached, nocache = acc.decode_step_flops(a, 1, 33), acc.decode_step_flops(a, 1, 33, cached=False)
    assert acc.prefill_flops(a, 1, 33).total == 33 * cached.total
    assert nocache.as_dict()["unembedding"] == 2 * a.d_model * a.vocab_size
    assert round(nocache.total / cached.total, 1) == 26.8


@pytest.mark.parametrize("name", ["gqa-rope", "gqa-learned-window", "gqa-rope-untied"])
def test_training_flops_are_forward_plus_backward(name):
    m = Transformer(CONFIGS[name]).train()  # a fresh model: the shared ones stay in eval mode, no grads kept
    x = ids(2, 24)

    def step():
        m(x).float().logsumexp(-1).mean().backward()

    assert fcm(step) == acc.training_flops(arch_from_model_config(m.cfg), 2, 24)


@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("past,new", [(0, 12), (0, 1), (7, 1), (7, 9), (30, 4)])
def test_causal_pairs_equal_the_models_mask(window, past, new):
    a = Arch(sliding_window=window)
    mask = attention_mask(torch.arange(past, past + new), torch.arange(0, past + new), window)  # (new, past+new)
    assert acc.causal_pairs(a, new, past, windowed=window is not None) == int(mask.sum())
    causal = acc.forward_flops(a, 2, new, past, causal=True).as_dict()
    assert causal["attn.scores q·kᵀ"] == 2 * 2 * a.n_heads * a.head_dim * a.n_layers * int(mask.sum())


def test_causal_count_is_about_half_for_a_long_prefill():
    a = preset_arch("Llama-2-7B")
    full = acc.prefill_flops(a, 1, 4096).as_dict()["attn.scores q·kᵀ"]
    causal = acc.prefill_flops(a, 1, 4096, causal=True).as_dict()["attn.scores q·kᵀ"]
    assert causal * 2 * 4096 == full * 4097  # s(s+1)/2 of s² pairs


@pytest.mark.parametrize("name", ["gqa-rope", "mha-rope", "mqa-rope", "gqa-learned-window"])
@pytest.mark.parametrize("c", [1, 10, 33])
def test_kv_cache_bytes_equal_the_live_cache(name, c):
    m = live(name)
    cache = KVCache.for_model(m.cfg)
    with torch.no_grad():
        m(ids(3, c), cache=cache)
    a = arch_from_model_config(m.cfg)
    assert acc.kv_cache_bytes(a, c, 3, "fp32") == cache.nbytes()
    if m.cfg.sliding_window is None:
        assert acc.kv_cache_bytes_per_token(a, "fp32") * c * 3 == cache.nbytes()


# --------------------------------------------------------------------------------------------------------
# Hugging Face configs: tiny models built by transformers are the reference for each family
# --------------------------------------------------------------------------------------------------------

_BASE = dict(vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
             num_key_value_heads=2, max_position_embeddings=64)
HF_CASES = {
    "llama-biases": ("LlamaConfig", dict(_BASE, attention_bias=True, mlp_bias=True)),
    "llama-tied-head_dim": ("LlamaConfig", dict(_BASE, head_dim=16, tie_word_embeddings=True)),
    "mistral-window": ("MistralConfig", dict(_BASE, sliding_window=8)),
    "qwen2": ("Qwen2Config", dict(_BASE)),
    "gemma": ("GemmaConfig", dict(_BASE, head_dim=12)),
    "gemma2": ("Gemma2Config", dict(_BASE, head_dim=12, sliding_window=8)),
    "gpt2": ("GPT2Config", dict(vocab_size=101, n_embd=48, n_layer=3, n_head=6, n_positions=64)),
    "gpt2-n_inner": ("GPT2Config", dict(vocab_size=101, n_embd=48, n_layer=3, n_head=6, n_positions=64, n_inner=100)),
}


@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_families_equal_transformers_numel(case):
    import transformers  # a test dependency (requirements-dev.txt): missing is a failure, not a skip

    cls, kw = HF_CASES[case]
    config = getattr(transformers, cls)(**kw)
    model = transformers.AutoModelForCausalLM.from_config(config)
    arch = arch_from_hf_config(config.to_dict())  # exactly what a saved config.json holds
    assert acc.count_params(arch).total == sum(p.numel() for p in model.parameters())


_W = dict(_BASE, num_hidden_layers=5)  # odd, so "every other layer" and "the last k" differ
WINDOW_CASES = {
    "mistral": ("MistralConfig", dict(_W, sliding_window=8)),
    "mistral, window left out": ("MistralConfig", dict(_W)),  # transformers' default: 4096
    "mistral, window null": ("MistralConfig", dict(_W, sliding_window=None)),
    "qwen2, off": ("Qwen2Config", dict(_W, sliding_window=8)),
    "qwen2, max_window_layers 2": ("Qwen2Config", dict(_W, use_sliding_window=True, sliding_window=8,
                                                        max_window_layers=2)),
    "qwen2, max_window_layers 0": ("Qwen2Config", dict(_W, use_sliding_window=True, sliding_window=8,
                                                        max_window_layers=0)),
    "qwen2, max_window_layers left out": ("Qwen2Config", dict(_W, num_hidden_layers=30, use_sliding_window=True,
                                                               sliding_window=8)),  # transformers' default: 28
    "qwen2, window left out": ("Qwen2Config", dict(_W, use_sliding_window=True, max_window_layers=3)),
    "qwen2, layer_types": ("Qwen2Config", dict(_W, use_sliding_window=True, sliding_window=8, layer_types=[
        "sliding_attention", "full_attention", "full_attention", "sliding_attention", "sliding_attention"])),
    "qwen2, layer_types but off": ("Qwen2Config", dict(_W, sliding_window=8,
                                                        layer_types=["sliding_attention"] * 5)),
    "gemma2": ("Gemma2Config", dict(_W, head_dim=12, sliding_window=8)),
    "gemma2, window left out": ("Gemma2Config", dict(_W, head_dim=12)),
    "gemma2, window null": ("Gemma2Config", dict(_W, head_dim=12, sliding_window=None)),
    "gemma2, layer_types": ("Gemma2Config", dict(_W, head_dim=12, sliding_window=8, layer_types=[
        "full_attention", "full_attention", "sliding_attention", "sliding_attention", "full_attention"])),
}


def transformers_windows(model) -> list:
    """Each layer's window as a transformers model built from the config runs it (None = full attention):
    Qwen2 and Gemma2 attention modules hold their own; Mistral's passes config.sliding_window to every layer."""
    layers = model.model.layers
    if all(hasattr(layer.self_attn, "sliding_window") for layer in layers):
        return [layer.self_attn.sliding_window for layer in layers]
    return [model.config.sliding_window] * len(layers)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(WINDOW_CASES))
def test_hf_window_layers_equal_transformers(case):
    """Which layers slide, layer by layer, as transformers' own classes decide it from the same fields — given
    as written (so our defaults for left-out fields are theirs) and as transformers saves them (to_dict())."""
    import transformers

    cls, kw = WINDOW_CASES[case]
    config = getattr(transformers, cls)(**kw)
    want = transformers_windows(transformers.AutoModelForCausalLM.from_config(config))
    mt = config.model_type
    for fields in (dict(kw, model_type=mt), config.to_dict()):
        window, slides = sliding_layers(fields, mt, config.num_hidden_layers)
        assert [window if s else None for s in slides] == want, fields
        arch = arch_from_hf_config(fields)
        assert arch.n_window_layers == sum(w is not None for w in want)
        assert {w for w in want if w is not None} <= {arch.sliding_window}  # the counts use that window


def test_family_conventions():
    gpt2 = preset_arch("GPT-2 small")
    assert (gpt2.d_mlp, gpt2.mlp, gpt2.norm, gpt2.positions, gpt2.n_positions) == (3072, "plain", "layernorm", "learned", 1024)
    assert gpt2.tie_embeddings and gpt2.qkv_bias and gpt2.o_bias and gpt2.mlp_bias
    qwen = preset_arch("Qwen2-7B")
    assert qwen.qkv_bias and not qwen.o_bias and not qwen.tie_embeddings and qwen.n_window_layers == 0
    assert acc.count_params(qwen).as_dict()["attn.b_qkv"] == 28 * (28 + 2 * 4) * 128
    assert preset_arch("Gemma-7B").head_dim == 256 and preset_arch("Gemma-7B").tie_embeddings
    assert not preset_arch("Llama-2-7B").tie_embeddings
    mistral = preset_arch("Mistral-7B-v0.1")
    assert mistral.sliding_window == 4096 and mistral.n_window_layers == 32
    g2 = preset_arch("Gemma-2-9B")
    assert g2.norms_per_layer == 4 and g2.n_window_layers == 21
    # a window caps the cache: Mistral at 32k holds 4096 positions
    assert acc.kv_cache_bytes(mistral, 32768, 1, "bf16") == acc.kv_cache_bytes(mistral, 4096, 1, "bf16")
    # Gemma-2: half the layers keep growing
    assert acc.kv_cache_bytes(g2, 8192, 1, "bf16") == acc.kv_cache_bytes_per_token(g2, "bf16") // 42 * (21 * 8192 + 21 * 4096)
    # a ModelConfig dict is recognised as ours
    assert arch_from_dict(ModelConfig(n_kv_heads=1).to_dict()).n_kv_heads == 1


# --------------------------------------------------------------------------------------------------------
# Published counts and figures
# --------------------------------------------------------------------------------------------------------

# Totals as published (Hugging Face safetensors metadata, keras-hub presets); the Qwen2 counts are shared
# with the identically shaped Qwen2.5 models.
PUBLISHED = {
    "GPT-2 small": 124_439_808,
    "GPT-2 medium": 354_823_168,
    "GPT-2 large": 774_030_080,
    "GPT-2 XL": 1_557_611_200,
    "Llama-2-7B": 6_738_415_616,
    "Llama-2-13B": 13_015_864_320,
    "Llama-3-8B": 8_030_261_248,
    "Llama-3-70B": 70_553_706_496,
    "Llama-3.1-405B": 405_853_388_800,
    "Mistral-7B-v0.1": 7_241_732_096,
    "Qwen2-0.5B": 494_032_768,
    "Qwen2-7B": 7_615_616_512,
    "Gemma-2B": 2_506_172_416,
    "Gemma-7B": 8_537_680_896,
    "Gemma-2-9B": 9_241_705_984,
    "Phi-3-mini-4k-instruct": 3_821_079_552,
    # Qwen3's cards give 0.6B / 8.2B (tests/test_accounting_moe.py checks those and the non-embedding figures);
    # these exact totals are transformers' own models of the configs, built on the meta device there too
    "Qwen3-0.6B": 596_049_920,
    "Qwen3-8B": 8_190_735_360,
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(name):
    assert acc.count_params(preset_arch(name)).total == PUBLISHED[name]


def test_presets_are_all_checked():
    assert set(PRESETS) == set(PUBLISHED)


def test_gemma_non_embedding_counts_match_the_paper():
    # Gemma report, Table 2: non-embedding parameters 1,981,884,416 (2B) and 7,751,248,896 (7B)
    for name, expect in (("Gemma-2B", 1_981_884_416), ("Gemma-7B", 7_751_248_896)):
        p = acc.count_params(preset_arch(name))
        assert p.total - p.as_dict()["embedding"] == expect


def test_gpt2_parameter_formula_misses_positions_and_final_norm():
    a = preset_arch("GPT-2 small")
    assert acc.gpt2_param_formula(a) + 1024 * 768 + 2 * 768 == acc.count_params(a).total


def test_published_memory_figures():
    a = preset_arch("Llama-2-7B")
    assert acc.weight_bytes(a, "fp32") == 26_953_662_464
    assert round(acc.gib(acc.weight_bytes(a, "fp32")), 1) == 25.1
    assert acc.kv_cache_bytes_per_token(a, "fp16") == 524_288
    assert acc.kv_cache_bytes(a, 4096, 1, "fp16") == 2 * 2**30  # exactly 2.0 GiB
    # Q4_0 with its scales: 32 layers × (4·4096² + 3·4096·11008) = 6,476,005,376 weights at 4.5 bits, the
    # embedding, unembedding and norms (262,410,240) at fp16 — not the flat 4 bits of 6,738,415,616 // 2
    assert acc.weight_bytes(a, "Q4_0 (G=32)") == 6_476_005_376 * 9 // 16 + 262_410_240 * 2 == 4_167_573_504
    assert acc.weight_bytes(a, "Q8_0") == 6_476_005_376 * 17 // 16 + 262_410_240 * 2
    assert acc.weight_memory(a, "int8 (per-channel)")["scales"] == 32 * 2 * (3 * 4096 + 4096 + 2 * 11008 + 4096)
    # llama.cpp's own file keeps the same blocks but puts the token embedding at Q4_0 and the output at Q6_K
    # (210 bytes per 256 weights): 3.83 GB, the published size of llama-2-7b.Q4_0.gguf
    gguf = 6_476_005_376 * 9 // 16 + 131_072_000 * 9 // 16 + 131_072_000 * 210 // 256 + 266_240 * 4
    assert round(gguf / 1e9, 2) == 3.83
    odd = Arch(vocab_size=11, d_model=3, n_layers=1, n_heads=1, n_kv_heads=1, head_dim=3, d_mlp=5)
    assert acc.count_params(odd).total == 123 and acc.weight_bytes(odd, "fp16") == 246
    # a 3-wide row at Q4_0: 2 bytes of codes (half a byte rounds up) + one 2-byte scale per row
    assert acc.weight_memory(odd, "Q4_0 (G=32)")["codes"] == 2 * (3 + 3 + 3 + 3 + 5 + 5) + 3 * 3
    # GQA: Llama-3-8B has 8 K/V heads for 32 query heads, a quarter of an MHA cache
    assert acc.kv_cache_bytes_per_token(preset_arch("Llama-3-8B"), "bf16") == 2 * 32 * 8 * 128 * 2


def test_kaplan_estimates_against_the_exact_counts():
    # GPT-2 small has Kaplan et al.'s standard shape (d_attn = d, d_ff = 4d): their N is 12·L·d², and the
    # exact non-embedding count adds only the norms and biases the formula leaves out.
    g = preset_arch("GPT-2 small")
    assert acc.kaplan_params(g) == acc.twelve_d2_params(g) == 12 * 12 * 768**2 == 84_934_656
    assert acc.non_embedding_params(g) - acc.kaplan_params(g) == 12 * 13 * 768 + 2 * 768
    a = preset_arch("Llama-2-7B")
    assert acc.non_embedding_params(a) == 6_738_415_616 - 2 * 32000 * 4096 == 6_476_271_616
    assert acc.kaplan_params(a) == 2 * 4096 * 32 * (2 * 4096 + 11008)  # a gated MLP has 3 matrices, not 2
    # The forward: for a model with no norms' or biases' worth of difference left, the rows add up exactly.
    rows = {r["term"]: r for r in acc.kaplan_comparison(a, 2, 4096)}
    assert rows["forward total"]["formula"] == acc.kaplan_forward_flops(a, 2, 4096)
    assert sum(r["formula"] for k, r in rows.items() if k not in ("forward total", "training step: 6N per token")) \
        == rows["forward total"]["formula"]
    att = rows["attention: 2·L·n_ctx·d_attn per token"]
    assert att["ours"] == 2 * att["formula"] and "twice" in att["why"]
    causal = acc.prefill_flops(a, 2, 4096, causal=True).by_group()["attention scores"]
    assert causal - att["formula"] == 2 * 2 * 32 * 4096 * 4096  # 2·b·L·d_attn·s
    assert f"{causal - att['formula']:+,}" in att["why"]
    assert rows["training step: 6N per token"]["formula"] == 6 * 6_476_271_616 * 2 * 4096
    # a windowed model: the ratio is computed, not assumed
    w = replace(preset_arch("Mistral-7B-v0.1"))
    assert "twice" in {r["term"]: r for r in acc.kaplan_comparison(w, 1, 512)}["attention: 2·L·n_ctx·d_attn per token"]["why"]


def test_kept_tensors_are_what_quantized_formats_leave_at_fp16():
    ours = arch_from_model_config(CONFIGS["gqa-rope"])
    assert acc.kept_tensors(ours) == {"embedding": 393_216, "block norms": 1_536, "final norm": 192}
    assert acc.weight_memory(ours, "Q4_0 (G=32)")["kept"] == 2 * sum(acc.kept_tensors(ours).values())
    learned = arch_from_model_config(CONFIGS["gqa-learned"])
    assert "position table" in acc.kept_tensors(learned)
    untied = arch_from_model_config(CONFIGS["gqa-rope-untied"])
    assert acc.kept_tensors(untied)["unembedding"] == 2048 * 192
    qwen = preset_arch("Qwen2-7B")
    assert "attn.b_qkv" in acc.kept_tensors(qwen)


def test_docstring_figures_are_the_functions_own():
    # Figures quoted in docstrings are checked here, so a change of formula cannot leave them stale.
    a = preset_arch("Llama-2-7B")
    doc = acc.decode_compute_bound_batch.__doc__
    b40 = acc.decode_compute_bound_batch(a, acc.HARDWARE["A100 40GB"], 1)
    b80 = acc.decode_compute_bound_batch(a, acc.HARDWARE["A100 80GB"], 1)
    assert (b40, b80) == (207, 158)
    assert f"≈ {b40} on the A100 40GB" in doc and f"≈ {b80} on the A100 80GB" in doc
    assert f"{acc.weight_bytes(a, 'Q4_0 (G=32)'):,} B." in acc.weight_memory.__doc__
    assert f"at Q4_0 (G=32) {acc.bits_per_param(a, 'Q4_0 (G=32)'):.2f}" in acc.bits_per_param.__doc__
    assert f"{acc.kv_cache_bytes_per_token(a, 'Q8_0'):,} B" in acc.kv_cache_bytes_per_token.__doc__
    assert f"{acc.twelve_d2_params(a):,}" in acc.twelve_d2_params.__doc__
    assert f"{acc.non_embedding_params(a):,}" in acc.non_embedding_params.__doc__
    assert f"{acc.decode_step_flops(a, 1, 4096, cached=False).as_dict()['unembedding']:,}" in \
        acc.decode_step_flops.__doc__
    ours = arch_from_model_config(CONFIGS["gqa-rope"])
    k = acc.kept_tensors(ours)
    assert f"embedding {k['embedding']:,}" in acc.kept_tensors.__doc__
    assert f"norms {k['block norms'] + k['final norm']:,}" in acc.kept_tensors.__doc__


def test_megatron_flop_formula_equals_ours_for_the_model_it_assumes():
    gpt_like = Arch(vocab_size=1000, d_model=64, n_layers=3, n_heads=4, n_kv_heads=4, head_dim=16, d_mlp=256, mlp="plain")
    assert acc.megatron_forward_flops(gpt_like, 2, 100) == acc.prefill_flops(gpt_like, 2, 100).total
    rows = {r["term"]: r for r in acc.megatron_comparison(preset_arch("Llama-2-7B"), 1, 4096)}
    assert rows["q, k, v, o projections"]["difference"] == 0  # Llama-2-7B is MHA with nh·hd = d
    assert rows["MLP"]["difference"] == 2 * 4096 * 32 * (3 * 4096 * 11008 - 8 * 4096**2)
    assert rows["total"]["difference"] == rows["MLP"]["difference"]
    llama3 = {r["term"]: r for r in acc.megatron_comparison(preset_arch("Llama-3-8B"), 1, 1024)}
    assert llama3["q, k, v, o projections"]["difference"] < 0  # GQA: smaller K and V than the formula assumes


def test_attention_overtakes_the_mlp_at_the_crossover():
    a = preset_arch("Llama-2-7B")
    s_star = acc.attention_crossover_seq_len(a)
    assert s_star == 16512
    g = acc.flops_by_group_vs_seq_len(a, [16511, 16512, 16513])
    assert g["attention scores"][0] < g["mlp"][0] and g["attention scores"][1] == g["mlp"][1]
    assert g["attention scores"][2] > g["mlp"][2]


def test_decode_turns_compute_bound_near_batch_200():
    a = preset_arch("Llama-2-7B")
    b40 = acc.decode_compute_bound_batch(a, acc.HARDWARE["A100 40GB"], context=1)
    b80 = acc.decode_compute_bound_batch(a, acc.HARDWARE["A100 80GB"], context=1)
    assert 190 <= b40 <= 215 and 145 <= b80 <= 165  # the often-quoted "memory-bound below a batch of ≈ 200"
    i = acc.decode_intensity(a, b40, 1)
    assert i.flops_per_byte >= acc.HARDWARE["A100 40GB"].ridge > acc.decode_intensity(a, b40 - 1, 1).flops_per_byte
    # at 4096 tokens each sequence's cache is read every step: memory-bound at any batch
    assert acc.decode_compute_bound_batch(a, acc.HARDWARE["A100 80GB"], context=4096) is None
    assert acc.prefill_intensity(a, 1, 4096).flops_per_byte > 1000 > acc.decode_intensity(a, 1, 4096).flops_per_byte


# --------------------------------------------------------------------------------------------------------
# Big values: Python ints end to end
# --------------------------------------------------------------------------------------------------------


def test_405b_at_a_million_tokens_and_batch_1024_is_exact():
    a = preset_arch("Llama-3.1-405B")
    b, s = 1024, 1_000_000
    V, d, L, nh, nkv, hd, m = 128256, 16384, 126, 128, 8, 128, 53248
    expect = 2 * b * s * L * (d * nh * hd * 2 + 2 * d * nkv * hd + 3 * d * m) + 2 * 2 * b * nh * hd * L * s * s + 2 * b * s * d * V
    got = acc.prefill_flops(a, b, s).total
    assert type(got) is int and got == expect and got > 2**63  # int64 would have overflowed
    # odd sizes: the exact count has more significant bits than a float64 holds
    odd = replace(a, vocab_size=V + 1)
    got = acc.prefill_flops(odd, b - 1, s - 1, causal=True).total
    pairs = (s - 1) * s // 2
    assert got == (2 * (b - 1) * (s - 1) * (L * (d * nh * hd * 2 + 2 * d * nkv * hd + 3 * d * m) + d * (V + 1))
                   + 2 * 2 * (b - 1) * nh * hd * L * pairs)
    assert int(float(got)) != got
    assert acc.prefill_flops(a, b, s, causal=True).total == expect - 2 * 2 * b * nh * hd * L * (s * s - s * (s + 1) // 2)
    assert acc.kv_cache_bytes_per_token(a, "bf16") == 516_096
    assert acc.kv_cache_bytes(a, s, b, "bf16") == 516_096 * s * b
    assert acc.training_flops(a, b, s) == 3 * expect
    assert json.loads(json.dumps(acc.report(a, s, b)))["forward_flops"] == expect


# --------------------------------------------------------------------------------------------------------
# Malformed configs: always a ValueError that names the field
# --------------------------------------------------------------------------------------------------------

LLAMA = PRESETS["Llama-2-7B"]
GPT2 = PRESETS["GPT-2 small"]
BAD = [
    (dict(LLAMA, hidden_size=None), "hidden_size"),
    ({k: v for k, v in LLAMA.items() if k != "hidden_size"}, "hidden_size"),
    ({k: v for k, v in LLAMA.items() if k != "vocab_size"}, "vocab_size"),
    (dict(LLAMA, num_hidden_layers=0), "num_hidden_layers"),
    (dict(LLAMA, intermediate_size=-5), "intermediate_size"),
    (dict(LLAMA, num_attention_heads=4096.0), "num_attention_heads"),
    (dict(LLAMA, num_attention_heads="32"), "num_attention_heads"),
    (dict(LLAMA, num_attention_heads=True), "num_attention_heads"),
    (dict(LLAMA, vocab_size=10**30), "vocab_size"),
    (dict(LLAMA, hidden_size=40960000000), "hidden_size"),
    (dict(LLAMA, num_attention_heads=31), "num_attention_heads"),
    (dict(LLAMA, num_key_value_heads=5), "num_key_value_heads"),
    (dict(LLAMA, num_key_value_heads=64), "num_key_value_heads"),
    (dict(LLAMA, head_dim=0), "head_dim"),
    (dict(LLAMA, tie_word_embeddings="yes"), "tie_word_embeddings"),
    (dict(LLAMA, attention_bias=1), "attention_bias"),
    (dict(LLAMA, model_type="deepseek_v3"), "model_type"),  # an MoE family we do not read
    (dict(LLAMA, model_type=["llama"]), "model_type"),
    ({k: v for k, v in LLAMA.items() if k != "model_type"}, "model_type"),
    (dict(PRESETS["Mistral-7B-v0.1"], sliding_window=-1), "sliding_window"),
    (dict(PRESETS["Gemma-2-9B"], layer_types=["full_attention"]), "layer_types"),
    (dict(PRESETS["Qwen2-7B"], use_sliding_window=True, sliding_window=0), "sliding_window"),
    (dict(GPT2, n_head=7), "n_head"),
    (dict(GPT2, n_inner=0), "n_inner"),
    ({k: v for k, v in GPT2.items() if k != "n_positions"}, "n_positions"),
    (dict({k: v for k, v in GPT2.items() if k != "n_positions"}, n_ctx=-3), "n_ctx"),
    (dict(ModelConfig().to_dict(), n_heads=5), "n_heads"),
    (dict(ModelConfig().to_dict(), vocab_size="big"), "vocab_size"),
    (dict(ModelConfig().to_dict(), colour="blue"), "colour"),
    ([1, 2, 3], "JSON object"),
    ("llama", "JSON object"),
    ({}, "model_type"),
]


@pytest.mark.parametrize("cfg,field", BAD)
def test_malformed_configs_name_the_field(cfg, field):
    with pytest.raises(ValueError, match=field):
        arch_from_dict(cfg)


@pytest.mark.parametrize("text,field", [("{not json", "JSON"), ("[" * 100_000, "JSON"), ('"x"', "JSON object"),
                                        ('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}", "JSON")])
def test_unparseable_text_is_a_value_error(text, field):
    with pytest.raises(ValueError, match=field):
        arch_from_json_text(text)


REQUIRED = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "n_embd",
            "n_layer", "n_head"}


def test_every_field_of_every_preset_fails_only_with_value_error():
    """Swap each field of each preset for each kind of bad value: a ValueError, or an Arch whose counts are
    exact ints — nothing else. A required size refuses every one of them, naming itself."""
    outcomes = {"refused": 0, "accepted": 0}
    for preset in PRESETS.values():
        for key in preset:
            for bad in (None, -1, 0, 2.5, "x", [], {}, True, 10**40):
                try:
                    a = arch_from_dict(dict(preset, **{key: bad}))
                except ValueError as e:
                    outcomes["refused"] += 1
                    if key in REQUIRED:
                        assert key in str(e), (key, bad, str(e))
                    continue
                assert key not in REQUIRED, (key, bad)
                assert isinstance(a, Arch) and type(acc.count_params(a).total) is int
                outcomes["accepted"] += 1  # e.g. null for a field with a default (head_dim, n_inner, …)
    assert outcomes["refused"] > outcomes["accepted"] > 0, outcomes


@pytest.mark.parametrize("call", [
    lambda a: acc.prefill_flops(a, 0, 10), lambda a: acc.prefill_flops(a, 1, 2.0),
    lambda a: acc.decode_step_flops(a, 1, 0), lambda a: acc.kv_cache_bytes(a, 10, 1, "fp64"),
    lambda a: acc.weight_bytes(a, "int3"), lambda a: acc.report(a, -1),
])
def test_bad_run_arguments_are_value_errors(call):
    with pytest.raises(ValueError):
        call(Arch())


# --------------------------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------------------------


def test_cli_json_on_an_hf_config(tmp_path):
    f = tmp_path / "config.json"
    f.write_text(json.dumps(LLAMA))
    out = subprocess.run([sys.executable, "-m", "model.accounting", str(f), "--seq-len", "4096", "--dtype", "fp16",
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["total_params"] == 6_738_415_616
    assert r["kv_cache_bytes_per_token"] == 524_288
    assert r["forward_flops"] == acc.prefill_flops(preset_arch("Llama-2-7B"), 1, 4096).total
    assert sum(r["params"].values()) == r["total_params"]
    assert sum(r["forward_flops_breakdown"].values()) == r["forward_flops"]
    assert all(isinstance(r[k], int) for k in ("total_params", "kv_cache_bytes_per_token", "forward_flops"))


def test_cli_on_our_config_and_as_a_table(tmp_path, capsys):
    f = tmp_path / "config.json"
    f.write_text(ModelConfig().to_json())
    assert cli.main([str(f), "--seq-len", "64", "--batch", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    m = live("gqa-rope")
    assert r["total_params"] == sum(p.numel() for p in m.parameters())
    with torch.no_grad():
        assert r["forward_flops"] == fcm(lambda: m(ids(2, 64)))
    # Quantized weights with what they hold: codes, scales, the fp16 tensors left over, and bits per parameter
    a = arch_from_model_config(ModelConfig())
    assert set(r["weight_memory"]) == set(acc.WEIGHT_FORMATS)
    q4 = r["weight_memory"]["Q4_0 (G=32)"]
    assert q4["codes"] + q4["scales"] + q4["kept"] == q4["total"] == r["weight_bytes"]["Q4_0 (G=32)"]
    assert q4["scales"] > 0 and q4["bits_per_param"] == acc.bits_per_param(a, "Q4_0 (G=32)") > 4.5
    assert r["kept_at_fp16_when_quantized"] == acc.kept_tensors(a)
    assert cli.main([str(f)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and f"({acc.bits_per_param(a, 'int8 (per-channel)'):.3f} bits/parameter)" in out
    assert "kept at fp16: embedding, block norms, final norm" in out and "zero points" in out
    assert "Kaplan et al. 2020" in out and "Narayanan et al. 2021" in out and "seeds" not in out


@pytest.mark.parametrize("content,field", [
    (json.dumps(dict(LLAMA, num_key_value_heads=3)), "num_key_value_heads"),
    ("{broken", "JSON"),
    (None, "cannot read"),
])
def test_cli_bad_config_exits_2_naming_the_field(tmp_path, capsys, content, field):
    f = tmp_path / "config.json"
    if content is not None:
        f.write_text(content)
    assert cli.main([str(f), "--json"]) == 2
    captured = capsys.readouterr()
    assert field in captured.err and "Traceback" not in captured.err and captured.out == ""


# --------------------------------------------------------------------------------------------------------
# Figures and the page
# --------------------------------------------------------------------------------------------------------


def test_figures_carry_the_numbers():
    from viz.accounting import flops_vs_seq_len, kv_cache_vs_context, param_bars

    a = preset_arch("Llama-2-7B")
    g = acc.count_params(a).by_group()
    fig = param_bars(["Llama-2-7B"], list(g), [[v] for v in g.values()])
    assert sum(t.y[0] for t in fig.data) == acc.count_params(a).total
    seq = [256, 4096, 65536]
    series = acc.flops_by_group_vs_seq_len(a, seq)
    fig = flops_vs_seq_len(seq, series, float(acc.attention_crossover_seq_len(a)))
    att = next(t for t in fig.data if t.name == "attention scores")
    assert att.y[2] / att.y[1] == pytest.approx(256)  # 16× the tokens, 256× the attention FLOPs
    # The crossover's label: a shape on a log axis takes the data value, an annotation its log10 — placed
    # at the value itself it would sit at 10^16512, off the chart.
    (line,), (label,) = fig.layout.shapes, fig.layout.annotations
    assert line.x0 == line.x1 == 16512
    assert label.x == pytest.approx(math.log10(16512)) and label.xref == "x" and "16,512" in label.text
    assert math.log10(seq[0]) <= label.x <= math.log10(seq[-1])
    assert not flops_vs_seq_len([16, 32], acc.flops_by_group_vs_seq_len(a, [16, 32]), 16512.0).layout.annotations
    kv = acc.kv_cache_vs_context(attention_variants(a), [4096], 1, "fp16")
    fig = kv_cache_vs_context([4096], kv)
    assert [t.name for t in fig.data] == ["MHA", "GQA", "MQA"] and fig.data[0].y[0] == 2.0


def test_captions_are_built_from_their_numbers():
    from viz.accounting import crossover_caption, ridge_caption, weights_caption

    hw = {k: (h.peak_flops, h.mem_bandwidth) for k, h in acc.HARDWARE.items()}
    text = ridge_caption(hw)
    assert "312 TFLOP/s ÷ 1.555 TB/s = 201 FLOP/byte" in text and "lowers it to 153" in text
    faster = dict(hw, **{"A100 80GB": (312e12, 3.12e12)})
    assert "lowers it to 100" in ridge_caption(faster)
    ours = arch_from_model_config(CONFIGS["gqa-rope"])
    kept = acc.kept_tensors(ours)
    text = weights_caption(kept, acc.count_params(ours).total, {"Q4_0 (G=32)": 4.5})
    assert "embedding, block norms and final norm (394,944 parameters, 20.1% of them)" in text
    assert "Q4_0 (G=32) 4.500 bits per quantized weight" in text and "zero point" in text
    text = weights_caption({"embedding": 10, "position table": 30}, 100, {"Q8_0": 8.5})
    assert "embedding and position table (40 parameters, 40.0% of them)" in text and "Q8_0 8.500" in text
    assert "s* = 768 tokens" in crossover_caption(768.0, True) and "3·2·b·s·d·m" in crossover_caption(768.0, True)
    assert "2·2·b·s·d·m" in crossover_caption(5.0, False)


def open_accounting_page():
    """The accounting page inside the app (a page run on its own would run the shell and route to the home page)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).switch_page("pages/accounting.py").run()


def test_page_runs_and_checks_the_live_model():
    at = open_accounting_page()
    assert not at.exception, [e.value for e in at.exception]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = specs[0]
    cfg = CONFIGS["gqa-rope"]
    assert sum(t["y"][0] for t in bars["data"]) == acc.count_params(arch_from_model_config(cfg)).total
    # the live check: parameters, forward FLOPs, decode-step FLOPs and cache bytes all equal the references
    assert [m.delta for m in at.metric].count("equal") == 4
    assert not at.error
    # Formulas are named by their sources and drawn as math; no in-house names for them
    words = " ".join(str(e.value) for kind in ("markdown", "caption") for e in at.get(kind))
    assert "seeds" not in words
    for source in ("Radford et al. 2019", "Kaplan et al. (2020", "Narayanan et al."):
        assert source in words
    latex = [e.value for e in at.latex]
    assert any("12d^2 + 13d" in x for x in latex) and any("12\\,L\\,d^2" in x for x in latex)
    assert any("C_\\text{forward}" in x for x in latex) and any("24\\,b s d^2" in x for x in latex)
    # The weight table counts each quantized format's scales and the tensors it keeps at fp16
    a = arch_from_model_config(cfg)
    table = next(d.value for d in at.dataframe if "bits / quantized weight" in d.value.columns)
    q4 = table[table["weights"] == "Q4_0 (G=32)"].iloc[0]
    m = acc.weight_memory(a, "Q4_0 (G=32)")
    assert q4["bytes"] == f"{m['total']:,}" and q4["of which scales"] == f"{m['scales']:,}"
    assert q4["kept at fp16"] == f"{m['kept']:,}" and q4["bits / quantized weight"] == "4.500"
    assert "embedding, block norms and final norm" in words


def test_page_pasted_config_bad_and_good():
    at = open_accounting_page()
    at.radio(key="acc_source").set_value("Paste a config.json").run()
    at.text_area(key="acc_paste").set_value(json.dumps(dict(GPT2, n_head=7))).run()
    assert not at.exception
    assert at.error and "n_head" in at.error[0].value.replace("\\", "")  # the message is Markdown-escaped (n\_head)
    at.text_area(key="acc_paste").set_value(json.dumps(GPT2)).run()
    assert not at.exception and not at.error
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(t["y"][0] for t in bars["data"]) == 124_439_808
