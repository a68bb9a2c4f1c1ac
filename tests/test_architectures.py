"""The architecture variants (post-norm, LayerNorm, a plain GELU MLP, a mixture of experts) against their
references: torch's layer_norm and rms_norm, a hand-written GPT-2 MLP and transformers' GPT2MLP,
transformers' MixtralSparseMoeBlock and `load_balancing_loss_func`, a hand-written post-norm forward, the full
forward for cached decoding, `sum(p.numel())` and FlopCounterMode for the accounting. And that adding them
changed nothing for the variants we had: the same configs, settings, comparisons and initial weights."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from conftest import SHIPPED_VARIANTS
from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.net.checkpoints import (ARCHITECTURE_VARIANTS, ATTENTION_VARIANTS, COMPARED_VARIANTS, POSITION_VARIANTS,
                                   VARIANTS, variant_config, variants_differing_in)
from model.net.config import ModelConfig
from model.net.hooks import recording
from model.net.kv_cache import KVCache
from model.net.trace import run_with_trace
from model.net.transformer import LayerNorm, MoE, PlainMLP, Transformer, load_balancing_loss
from model.training.export import export_hf
from model.training.train import TrainConfig, run_settings

ROOT = Path(__file__).resolve().parent.parent
NEW = ["gqa-postnorm", "gqa-layernorm", "gqa-gelu", "gqa-moe"]
SMALL = dict(vocab_size=97, d_model=48, n_layers=2, n_heads=6, n_kv_heads=2, d_mlp=64, max_seq_len=40)
# Each new kind at test size (the MoE's experts half the dense width, as in gqa-moe).
KINDS = {
    "postnorm": dict(norm_position="post"),
    "layernorm": dict(norm="layernorm"),
    "gelu": dict(mlp="plain", mlp_act="gelu_tanh", d_mlp=96),
    "moe": dict(n_experts=4, d_mlp=32),
    "moe-k1-of-3": dict(n_experts=3, experts_per_token=1, d_mlp=32),
    "postnorm-layernorm-moe": dict(norm_position="post", norm="layernorm", n_experts=4, d_mlp=32),
}


def small(**kw) -> Transformer:
    return Transformer(ModelConfig(**{**SMALL, **kw})).eval()


def ids_of(b, n, seed=0, vocab=97):
    return torch.randint(0, vocab, (b, n), generator=torch.Generator().manual_seed(seed))


def fcm(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


# --------------------------------------------------------------------------------------------------------
# Nothing changed for the variants we had
# --------------------------------------------------------------------------------------------------------

# Σ_i (i + 1) · Σ(p_i) in float64 over named_parameters() of Transformer(variant_config(name), init_seed=0),
# computed with the code as it was before the architecture fields existed (commit cf2fbd3, 7 Dec 2026):
# an added module, a reordered parameter or a changed draw moves it.
INIT_CHECKSUMS = {
    "gqa-rope": 34304.42901403298,
    "mha-rope": 34553.28227729536,
    "mqa-rope": 34912.38656808714,
    "gqa-sinusoidal": 34304.42901403298,
    "gqa-learned": 36389.49108298583,
    "gqa-alibi": 34304.42901403298,
    "gqa-none": 34304.42901403298,
    "gqa-window": 34304.42901403298,
    "draft": 5305.357489487961,
}


def init_checksum(model) -> float:
    return sum(p.double().sum().item() * (i + 1) for i, (_, p) in enumerate(model.named_parameters()))


@pytest.mark.parametrize("name", list(INIT_CHECKSUMS))
def test_the_existing_variants_start_from_the_same_weights(name):
    m = Transformer(variant_config(name), init_seed=0)
    assert init_checksum(m) == pytest.approx(INIT_CHECKSUMS[name], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", SHIPPED_VARIANTS)
def test_the_existing_configs_and_settings_read_as_before(name):
    """The committed config.json of each shipped variant is what to_dict() writes today — no new key — and so
    is the model part of a training state's settings (what a resume compares)."""
    committed = json.loads((ROOT / "checkpoints" / name / "config.json").read_text())
    assert variant_config(name).to_dict() == committed
    assert run_settings(variant_config(name), TrainConfig())["model"] == committed


def test_the_existing_comparisons_are_unchanged():
    assert ATTENTION_VARIANTS == ["mha-rope", "gqa-rope", "mqa-rope"]
    assert POSITION_VARIANTS == ["gqa-rope", "gqa-sinusoidal", "gqa-learned", "gqa-alibi", "gqa-none"]
    assert COMPARED_VARIANTS == ["gqa-rope", "mha-rope", "mqa-rope", "gqa-sinusoidal", "gqa-learned", "gqa-alibi",
                                 "gqa-none"]


def test_the_architecture_comparison_changes_one_choice_each():
    base = variant_config("gqa-rope").to_dict()

    def changed(name):
        d = variant_config(name).to_dict()
        return {k: d.get(k) for k in set(d) | set(base) if d.get(k) != base.get(k)}

    assert ARCHITECTURE_VARIANTS == ["gqa-rope", *NEW] and set(NEW) <= set(VARIANTS)
    assert changed("gqa-postnorm") == {"norm_position": "post"}
    assert changed("gqa-layernorm") == {"norm": "layernorm"}
    assert changed("gqa-gelu") == {"mlp": "plain", "mlp_act": "gelu_tanh", "d_mlp": 768}
    assert changed("gqa-moe") == {"n_experts": 4, "experts_per_token": 2, "router_aux_coef": 0.01, "d_mlp": 256}
    assert variants_differing_in("norm_position") == ["gqa-rope", "gqa-postnorm"]
    assert variants_differing_in("norm") == ["gqa-rope", "gqa-layernorm"]


# --------------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------------


def test_new_fields_default_to_our_model_and_stay_out_of_its_config():
    c = ModelConfig()
    assert (c.norm, c.norm_position, c.mlp, c.n_experts) == ("rmsnorm", "pre", "gated", 0)
    assert not {"norm", "norm_position", "mlp", "n_experts", "experts_per_token", "router_aux_coef"} & set(c.to_dict())


@pytest.mark.parametrize("name", NEW)
def test_new_variants_round_trip_through_json(name):
    c = variant_config(name)
    assert ModelConfig.from_dict(json.loads(c.to_json())) == c


@pytest.mark.parametrize("kw, field", [
    (dict(norm="batchnorm"), "norm"),
    (dict(norm_position="sandwich"), "norm_position"),
    (dict(mlp="swiglu"), "mlp"),
    (dict(n_experts=-1), "n_experts"),
    (dict(n_experts=1), "n_experts"),
    (dict(n_experts=4, experts_per_token=5), "experts_per_token"),
    (dict(n_experts=4, experts_per_token=0), "experts_per_token"),
    (dict(n_experts=4, mlp="plain"), "mlp"),
    (dict(experts_per_token=1), "experts_per_token"),
    (dict(router_aux_coef=-0.1), "router_aux_coef"),
    (dict(n_experts=4, router_aux_coef="0.01"), "router_aux_coef"),
])
def test_bad_architecture_configs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kw)


# --------------------------------------------------------------------------------------------------------
# The pieces against their references
# --------------------------------------------------------------------------------------------------------


def test_layernorm_equals_torch_layer_norm():
    g = torch.Generator().manual_seed(0)
    ln = LayerNorm(48, 1e-5)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(48, generator=g))
        ln.bias.copy_(torch.randn(48, generator=g))
    x = torch.randn(3, 7, 48, generator=g) * 5 + 2  # far from zero mean: the centring matters
    torch.testing.assert_close(ln(x), F.layer_norm(x, (48,), ln.weight, ln.bias, 1e-5), atol=1e-5, rtol=1e-5)


def test_layernorm_model_hook_is_after_weight_and_bias():
    m = small(norm="layernorm")
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 1:  # the norms' weights and biases: away from their 1 and 0
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    tr = run_with_trace(m, ids_of(1, 9)[0])
    x, ln = torch.from_numpy(tr["blocks.1.hook_resid_mid"]), m.blocks[1].ln2
    ref = F.layer_norm(x, (48,), ln.weight, ln.bias, 1e-5)
    np.testing.assert_allclose(tr["blocks.1.ln2.hook_normalized"], ref.detach().numpy(), atol=1e-5, rtol=0)


def gelu_new(x):
    """GPT-2's GELU (its "gelu_new"), written out: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def test_plain_mlp_equals_gpt2s_mlp():
    import transformers

    m = small(mlp="plain", mlp_act="gelu_tanh", d_mlp=96)
    mlp = m.blocks[0].mlp
    assert isinstance(mlp, PlainMLP) and sorted(n for n, _ in mlp.named_parameters()) == ["W_in.weight", "W_out.weight"]
    x = torch.randn(2, 5, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = mlp(x)
        by_hand = gelu_new(x @ mlp.W_in.weight.T) @ mlp.W_out.weight.T  # (2, 5, 48)
        cfg = transformers.GPT2Config(n_embd=48, activation_function="gelu_new", resid_pdrop=0.0)
        hf = transformers.models.gpt2.modeling_gpt2.GPT2MLP(96, cfg).eval()
        hf.c_fc.weight.copy_(mlp.W_in.weight.T)  # Conv1D stores (in, out)
        hf.c_proj.weight.copy_(mlp.W_out.weight.T)
        hf.c_fc.bias.zero_()
        hf.c_proj.bias.zero_()
        gpt2 = hf(x)
    torch.testing.assert_close(ours, by_hand, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours, gpt2, atol=1e-6, rtol=1e-5)


def mixtral_pair(d=16, m=8, E=4, k=2, seed=0):
    """Transformers' MixtralSparseMoeBlock with random weights, and our MoE (inside a one-layer Transformer, so
    its hooks are named) holding the same weights."""
    import transformers
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    torch.manual_seed(seed)
    config = transformers.MixtralConfig(hidden_size=d, intermediate_size=m, num_local_experts=E, num_experts_per_tok=k,
                                        hidden_act="silu", num_attention_heads=2, num_key_value_heads=1)
    hf = MixtralSparseMoeBlock(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.3)
    ours = Transformer(ModelConfig(vocab_size=11, d_model=d, n_layers=1, n_heads=2, n_kv_heads=1, d_mlp=m,
                                   max_seq_len=16, n_experts=E, experts_per_token=k)).eval()
    moe = ours.blocks[0].mlp
    assert isinstance(moe, MoE)
    with torch.no_grad():
        moe.router.weight.copy_(hf.gate.weight)
        for e, ex in enumerate(moe.experts):
            ex.W_gate.weight.copy_(hf.experts.gate_up_proj[e, :m])  # gate_up_proj = [gate; up], chunked in two
            ex.W_up.weight.copy_(hf.experts.gate_up_proj[e, m:])
            ex.W_down.weight.copy_(hf.experts.down_proj[e])
    return hf, moe


@pytest.mark.parametrize("E, k", [(4, 2), (4, 1), (3, 3)])
def test_moe_equals_mixtrals_sparse_moe_block(E, k):
    hf, moe = mixtral_pair(E=E, k=k)
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(2))  # batch 3: rows must not mix
    got = {}
    with torch.no_grad(), recording(lambda n, t: got.__setitem__(n.split(".")[-1], t)):
        ours = moe(x)
    with torch.no_grad():
        want = hf(x)
        logits, scores, indices = hf.gate(x.reshape(-1, 16))
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["hook_router_logits"].reshape(-1, E), logits, atol=1e-6, rtol=1e-6)
    assert torch.equal(got["hook_expert_indices"].reshape(-1, k), indices)
    torch.testing.assert_close(got["hook_expert_weights"].reshape(-1, k), scores, atol=1e-6, rtol=1e-6)
    assert got["hook_expert_out"].shape == (3, 5, k, 16)


def test_moe_rows_of_a_batch_are_independent_and_the_module_keeps_nothing():
    _, moe = mixtral_pair()
    x = torch.randn(4, 6, 16, generator=torch.Generator().manual_seed(3))
    before = {k: (set(v) if isinstance(v, dict) else v) for k, v in vars(moe).items()}
    with torch.no_grad():
        together = moe(x)
        alone = torch.cat([moe(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)
    assert {k: (set(v) if isinstance(v, dict) else v) for k, v in vars(moe).items()} == before  # no attribute, buffer or module added


def test_load_balancing_loss_equals_transformers():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    g = torch.Generator().manual_seed(4)
    layers = [torch.randn(2, 30, 4, generator=g) * 2 for _ in range(3)]  # 3 layers, batch 2 × 30 tokens
    ours = load_balancing_loss(layers, 2)
    theirs = load_balancing_loss_func(tuple(t.reshape(-1, 4) for t in layers), num_experts=4, top_k=2)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    # its two ends: k when every expert gets its share, E when every token sits on the same k experts
    assert load_balancing_loss([torch.zeros(8, 4)], 2).item() == pytest.approx(2.0)
    assert load_balancing_loss([torch.tensor([[30.0, 30.0, -30.0, -30.0]] * 8)], 2).item() == pytest.approx(4.0)


def test_the_balancing_loss_reaches_the_router_through_the_hook():
    m = small(n_experts=4, d_mlp=32).train()
    logits = []
    with recording(lambda n, t: logits.append(t) if n.endswith("hook_router_logits") else None):
        m(ids_of(2, 12))
    assert len(logits) == 2  # one per layer, in order
    load_balancing_loss(logits, 2).backward()
    assert all(b.mlp.router.weight.grad.abs().sum() > 0 for b in m.blocks)


def test_moe_hooks_agree_with_the_experts_and_the_mlp_output():
    m = small(n_experts=4, d_mlp=32)
    tr = run_with_trace(m, ids_of(1, 13)[0])
    moe = m.blocks[1].mlp
    idx, w = tr["blocks.1.mlp.hook_expert_indices"], tr["blocks.1.mlp.hook_expert_weights"]
    out = tr["blocks.1.mlp.hook_expert_out"]
    x = torch.from_numpy(tr["blocks.1.ln2.hook_normalized"])  # (T, d) what the MoE reads
    assert idx.shape == w.shape == (13, 2) and out.shape == (13, 2, 48)
    assert tr["blocks.1.mlp.hook_router_logits"].shape == (13, 4)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    with torch.no_grad():
        for t in range(13):
            for j in range(2):
                ref = moe.experts[int(idx[t, j])](x[t : t + 1])[0].numpy()
                np.testing.assert_allclose(out[t, j], ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose((w[..., None] * out).sum(1), tr["blocks.1.hook_mlp_out"], atol=1e-6, rtol=0)


def test_post_norm_equals_a_hand_written_forward():
    """x = RMSNorm(x + attn(x)), x = RMSNorm(x + mlp(x)) per block, then the unembedding with no final norm;
    the model's own attention and MLP modules (tested elsewhere), torch's rms_norm, written out here."""
    m = small(norm_position="post")
    assert m.ln_final is None and not any(n.startswith("ln_final") for n, _ in m.named_parameters())
    with torch.no_grad():
        for b in m.blocks:  # gains away from 1, so a norm in the wrong place shows
            b.ln1.weight.uniform_(0.5, 1.5)
            b.ln2.weight.uniform_(0.5, 1.5)
        ids = ids_of(2, 17)
        x = m.tok_embed(ids)
        pos = torch.arange(17)
        for b in m.blocks:
            x = F.rms_norm(x + b.attn(x, pos), (48,), b.ln1.weight, 1e-5)
            x = F.rms_norm(x + b.mlp(x), (48,), b.ln2.weight, 1e-5)
        ref = x @ m.tok_embed.weight.T
        torch.testing.assert_close(m(ids), ref, atol=1e-5, rtol=1e-5)
    tr = run_with_trace(m, ids[0])
    for l in range(2):  # the stream is the norms' output itself
        np.testing.assert_array_equal(tr[f"blocks.{l}.hook_resid_mid"], tr[f"blocks.{l}.ln1.hook_normalized"])
        np.testing.assert_array_equal(tr[f"blocks.{l}.hook_resid_post"], tr[f"blocks.{l}.ln2.hook_normalized"])
    assert "ln_final.hook_normalized" not in tr


@pytest.mark.parametrize("kind", list(KINDS))
def test_prefill_plus_decode_equals_full_forward(kind):
    m = small(**KINDS[kind])
    ids = ids_of(2, 25, seed=5)
    with torch.no_grad():
        full = m(ids)  # (2, 25, V)
        cache = KVCache.for_model(m.cfg)
        parts = [m(ids[:, :7], cache=cache)] + [m(ids[:, t : t + 1], cache=cache) for t in range(7, 25)]
        torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
        torch.testing.assert_close(m(ids, fused=True), full, atol=1e-5, rtol=0)  # the fused kernel too


@pytest.mark.parametrize("kind", list(KINDS))
def test_hook_names_and_shapes(kind):
    m = small(**KINDS[kind])
    c, T = m.cfg, 9
    tr = run_with_trace(m, ids_of(1, T)[0])
    assert sorted(tr.names()) == sorted(m.hook_names())
    assert ("ln_final.hook_normalized" in tr) == (c.norm_position == "pre")
    for l in range(c.n_layers):
        mlp = {n.split(".")[-1]: a.shape for n, a in tr.acts.items() if n.startswith(f"blocks.{l}.mlp.")}
        if c.n_experts:
            k = c.experts_per_token
            assert mlp == {"hook_router_logits": (T, c.n_experts), "hook_expert_indices": (T, k),
                           "hook_expert_weights": (T, k), "hook_expert_out": (T, k, c.d_model)}
        elif c.mlp == "plain":
            assert mlp == {"hook_pre": (T, c.d_mlp), "hook_post": (T, c.d_mlp)}
        else:
            assert mlp == {"hook_pre": (T, c.d_mlp), "hook_pre_linear": (T, c.d_mlp), "hook_post": (T, c.d_mlp)}


def test_plain_mlp_hooks_are_pre_and_gelu_of_it():
    m = small(mlp="plain", mlp_act="gelu_tanh", d_mlp=96)
    tr = run_with_trace(m, ids_of(1, 8)[0])
    pre = torch.from_numpy(tr["blocks.0.mlp.hook_pre"])
    np.testing.assert_allclose(tr["blocks.0.mlp.hook_post"], gelu_new(pre).numpy(), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------------------
# Accounting: the calculators count the new variants exactly
# --------------------------------------------------------------------------------------------------------

# By hand, from the default's 1,967,808: post-norm drops the final norm (−192); LayerNorm adds a bias to each
# of the 2·4 + 1 norms (+9·192 = 1,728); the GELU MLP's 2·192·768 equals SwiGLU's 3·192·512; the MoE adds, per
# layer, a 192×4 router and a second MLP's worth of experts (4·3·192·256 − 3·192·512 = 294,912): +4·295,680.
PARAMS = {"gqa-rope": 1_967_808, "gqa-postnorm": 1_967_616, "gqa-layernorm": 1_969_536, "gqa-gelu": 1_967_808,
          "gqa-moe": 3_150_528}
ACTIVE_MOE = 1_967_808 + 4 * 192 * 4  # the default plus the routers: a token uses 2 experts of 256 = one of 512

_full: dict = {}


def full(name: str) -> Transformer:
    if name not in _full:
        _full[name] = Transformer(variant_config(name)).eval()
    return _full[name]


@pytest.mark.parametrize("name", ARCHITECTURE_VARIANTS)
def test_params_equal_numel(name):
    m = full(name)
    a = arch_from_model_config(m.cfg)
    assert acc.count_params(a).total == sum(p.numel() for p in m.parameters()) == PARAMS[name]
    if name == "gqa-moe":
        assert acc.active_params(a).total == ACTIVE_MOE
        d = acc.count_params(a).as_dict()
        assert d["moe.router"] == sum(b.mlp.router.weight.numel() for b in m.blocks)
        assert d["moe.experts.W_down"] == sum(p.numel() for n, p in m.named_parameters() if n.endswith("W_down.weight"))


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("b,s", [(1, 1), (2, 37), (3, 16)])
def test_forward_flops_equal_flop_counter(name, b, s):
    m = full(name)
    with torch.no_grad():
        measured = fcm(lambda: m(ids_of(b, s, vocab=2048)))
    assert acc.prefill_flops(arch_from_model_config(m.cfg), b, s).total == measured


@pytest.mark.parametrize("name", NEW)
def test_cached_decode_flops_equal_flop_counter(name):
    m = full(name)
    a = arch_from_model_config(m.cfg)
    x = ids_of(2, 12, vocab=2048)
    cache = KVCache.for_model(m.cfg)
    with torch.no_grad():
        assert fcm(lambda: m(x[:, :9], cache=cache)) == acc.prefill_flops(a, 2, 9).total
        for t in range(9, 12):
            assert fcm(lambda: m(x[:, t : t + 1], cache=cache)) == acc.decode_step_flops(a, 2, t + 1).total


def test_moe_flops_are_the_dense_defaults_plus_the_router():
    """FlopCounterMode sees only the experts a token is routed to: 2 of width 256 cost what the default's one
    MLP of 512 costs, so the MoE's measured FLOPs are the default's measured FLOPs plus the routers' 2·b·s·d·E·L."""
    x = ids_of(2, 21, vocab=2048)
    with torch.no_grad():
        moe, dense = fcm(lambda: full("gqa-moe")(x)), fcm(lambda: full("gqa-rope")(x))
    assert moe == dense + 2 * 2 * 21 * 192 * 4 * 4


def test_moe_training_flops_are_forward_plus_backward():
    m = Transformer(variant_config("gqa-moe")).train()
    x = ids_of(2, 24, vocab=2048)
    assert fcm(lambda: m(x).float().logsumexp(-1).mean().backward()) == acc.training_flops(
        arch_from_model_config(m.cfg), 2, 24)


# --------------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, words", [("gqa-postnorm", "post-norm"), ("gqa-layernorm", "LayerNorm"),
                                         ("gqa-gelu", "two-matrix MLP"), ("gqa-moe", "mixture of experts")])
def test_the_llama_export_refuses_the_architecture_variants(tmp_path, name, words):
    m = Transformer(replace(variant_config(name), d_model=32, n_heads=4, n_layers=1, vocab_size=50))
    with pytest.raises(ValueError, match="not a Llama") as e:
        export_hf(m, tmp_path)
    assert words in str(e.value) and not (tmp_path / "model.safetensors").exists()
