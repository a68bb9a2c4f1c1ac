"""RoPE past its training context: the ntk and yarn scalings against transformers' own frequencies, attention
factor and logits; YaRN's factor carried by the angle table without changing any other model; the evaluation
(`model.evaluation.rope_scaling`) against a naive per-position recomputation; the committed JSON; the figures
and sentences (`viz/rope_scaling.py`); the page section under AppTest.

transformers is a test dependency (requirements-dev.txt): without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from app_support import arr, chart, open_page
from model.analysis import rope as rope_probe
from model.evaluation import rope_scaling as ev
from model.net.config import ModelConfig
from model.net.kv_cache import KVCache
from model.net.positions import apply_rope, rope_angles, rope_attention_factor, rope_inv_freq
from model.net.transformer import Transformer
from viz.rope_scaling import (angle_ratio_figure, angle_ratios, far_end_sentence, inside_context_sentence,
                              loss_by_position_figure, past_context_sentence, scaling_sentences)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def hf_config(hd: int, theta: float, params: dict, max_pos: int) -> transformers.LlamaConfig:
    return transformers.LlamaConfig(hidden_size=hd * 4, num_attention_heads=4, head_dim=hd,
                                    max_position_embeddings=max_pos, rope_parameters=dict(params, rope_theta=theta))


# --------------------------------------------------------------------------------------------------------
# Frequencies and attention factor: transformers' ROPE_INIT_FUNCTIONS
# --------------------------------------------------------------------------------------------------------

YARN_CASES = [  # (head_dim, theta, scaling): ours at 4×, a Llama-sized head at 8×, other betas, a 2× stretch
    (32, 10000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}),
    (128, 500000.0, {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8192}),
    (64, 10000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048,
                   "beta_fast": 16.0, "beta_slow": 2.0}),
    (32, 10000.0, {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64}),
]


@pytest.mark.parametrize("hd, theta, scaling", YARN_CASES + [(32, 10000.0, {"rope_type": "linear", "factor": 4.0})])
def test_linear_and_yarn_equal_transformers(hd, theta, scaling):
    max_pos = int(scaling.get("original_max_position_embeddings", 256) * scaling["factor"])
    want, want_factor = ROPE_INIT_FUNCTIONS[scaling["rope_type"]](hf_config(hd, theta, scaling, max_pos), "cpu")
    ModelConfig(d_model=hd * 4, n_heads=4, n_kv_heads=4, rope_theta=theta, rope_scaling=scaling)  # validates
    torch.testing.assert_close(rope_inv_freq(hd, theta, scaling), want, atol=0, rtol=1e-6)
    assert rope_attention_factor(scaling) == pytest.approx(want_factor, abs=1e-12)
    np.testing.assert_allclose(rope_probe.inv_freq(hd, theta, scaling), want.double().numpy(), rtol=1e-6)  # float64


@pytest.mark.parametrize("hd, theta, factor", [(32, 10000.0, 4.0), (128, 500000.0, 8.0), (64, 10000.0, 2.5)])
def test_static_ntk_is_transformers_dynamic_with_factor_1_at_s_times_the_context(hd, theta, factor):
    # "dynamic": base · (f·L/L₀ − (f − 1))^(d/(d−2)); with f = 1 at L = s·L₀ that is base · s^(d/(d−2)).
    L0 = 256
    c = hf_config(hd, theta, {"rope_type": "dynamic", "factor": 1.0}, L0)
    want, want_factor = ROPE_INIT_FUNCTIONS["dynamic"](c, "cpu", seq_len=int(factor * L0))
    got = rope_inv_freq(hd, theta, {"rope_type": "ntk", "factor": factor})
    torch.testing.assert_close(got, want, atol=0, rtol=2e-6)
    assert rope_attention_factor({"rope_type": "ntk", "factor": factor}) == want_factor == 1.0
    plain = rope_inv_freq(hd, theta)
    assert got[0] == plain[0] and float(plain[-1] / got[-1]) == pytest.approx(factor, rel=1e-5)  # kept … ÷ s


def test_yarn_on_our_model_keeps_pair_0_and_interpolates_from_pair_7():
    plain = rope_inv_freq(32, 10000.0).double()
    got = rope_inv_freq(32, 10000.0, ev.scalings(256)["yarn"]).double()
    kept = ((got - plain / 4) / (plain - plain / 4)).numpy()  # 1 = as trained, 0 = ÷ 4
    np.testing.assert_allclose(kept[:8], [1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 0], atol=1e-5)
    np.testing.assert_allclose(kept[8:], 0, atol=1e-5)
    assert rope_attention_factor(ev.scalings(256)["yarn"]) == pytest.approx(0.1 * math.log(4) + 1)


def test_new_scalings_are_validated():
    ModelConfig(rope_scaling={"rope_type": "ntk", "factor": 4.0})
    ModelConfig(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256})
    with pytest.raises(ValueError, match="original_max_position_embeddings must be a positive number"):
        ModelConfig(rope_scaling={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match="beta_fast must be greater than beta_slow"):
        ModelConfig(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256,
                                  "beta_fast": 1.0, "beta_slow": 2.0})
    with pytest.raises(ValueError, match="takes factor; not low_freq_factor"):
        ModelConfig(rope_scaling={"rope_type": "ntk", "factor": 4.0, "low_freq_factor": 1.0})
    with pytest.raises(ValueError, match="rope_type must be one of linear, llama3, ntk, yarn"):
        ModelConfig(rope_scaling={"rope_type": "dynamic", "factor": 4.0})


# --------------------------------------------------------------------------------------------------------
# The attention factor: 1 for all but YaRN, passed to apply_rope
# --------------------------------------------------------------------------------------------------------


def test_unscaled_linear_and_ntk_rotations_are_unchanged():
    x = torch.randn(2, 10, 3, 8, generator=torch.Generator().manual_seed(0))
    for scaling in (None, {"rope_type": "linear", "factor": 4.0}, {"rope_type": "ntk", "factor": 4.0}):
        angles = rope_angles(torch.arange(10), 8, 10000.0, scaling)
        assert rope_attention_factor(scaling) == 1.0
        cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]
        want = torch.stack((x[..., 0::2] * cos - x[..., 1::2] * sin, x[..., 0::2] * sin + x[..., 1::2] * cos), -1)
        assert torch.equal(apply_rope(x, angles, rope_attention_factor(scaling)), want.flatten(-2))  # bit for bit


def test_yarn_rotation_is_longer_by_its_factor():
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8}
    x = torch.randn(1, 12, 2, 8, generator=torch.Generator().manual_seed(0))
    angles = rope_angles(torch.arange(12), 8, 10000.0, yarn)
    f = rope_attention_factor(yarn)
    assert f == pytest.approx(0.1 * math.log(4.0) + 1)
    torch.testing.assert_close(apply_rope(x, angles, f), f * apply_rope(x, angles))
    torch.testing.assert_close(apply_rope(x, angles, f).norm(dim=-1), f * x.norm(dim=-1))


def tiny(scaling=None, seed=0, **kw) -> Transformer:
    cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=16,
                      rope_scaling=scaling, **kw)
    return Transformer(cfg, init_seed=seed).eval()


def test_yarn_model_cached_decode_equals_one_forward():
    m = tiny({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16})
    ids = torch.randint(0, 64, (1, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = m(ids)
        cache = KVCache.for_model(m.cfg)
        steps = [m(ids[:, :30], cache=cache)] + [m(ids[:, t:t + 1], cache=cache) for t in range(30, 40)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(m(ids, fused=True), full, atol=1e-5, rtol=0)  # the fused kernel sees it too


# --------------------------------------------------------------------------------------------------------
# Our scaled model = transformers' LlamaForCausalLM with the same scaling, on the exported weights
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ours, theirs", [
    ({"rope_type": "linear", "factor": 4.0}, {"rope_type": "linear", "factor": 4.0}),
    ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}),
    ({"rope_type": "ntk", "factor": 4.0}, {"rope_type": "dynamic", "factor": 1.0}),  # equal at length 4·16
])
def test_scaled_logits_equal_llama(tmp_path, ours, theirs):
    from model.training.export import export_hf

    m = tiny(seed=3)
    with torch.no_grad():  # sharper attention than the 0.02 init gives, so positions visibly matter
        for b in m.blocks:
            b.attn.W_q.weight.mul_(8)
            b.attn.W_k.weight.mul_(8)
    export_hf(m, tmp_path)  # the unscaled weights; the scaling goes into the config, as for any model
    c = json.loads((tmp_path / "config.json").read_text())
    c["rope_parameters"] = dict(theirs, rope_theta=c.pop("rope_theta"))
    if theirs["rope_type"] == "yarn":
        c["max_position_embeddings"] = 64  # = factor × original: transformers warns otherwise
    (tmp_path / "config.json").write_text(json.dumps(c))
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    scaled = ev.scaled_model(m, ours)
    assert m.cfg.rope_scaling is None  # the source model is left alone
    ids = torch.randint(0, 64, (1, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = hf(ids).logits, scaled(ids)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert (got - m(ids)).abs().max() > 1e-3  # the scaling changed something


# --------------------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------------------


def test_evaluation_equals_a_naive_recomputation_per_position():
    m = tiny(seed=4)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    windows = np.random.default_rng(0).integers(0, 64, (3, 65))  # 3 windows, 64 positions = 4 × 16
    res = ev.evaluate_scalings(m, windows, factor=4.0, band=16, batch=2)
    assert list(res["methods"]) == list(ev.METHODS) and res["windows"] == 3 and res["positions"] == 64
    assert m.cfg.rope_scaling is None and all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    for name, scaling in ev.scalings(16).items():
        sm = ev.scaled_model(m, scaling)
        naive = np.zeros((3, 64))
        with torch.no_grad():
            for w in range(3):
                for p in range(64):
                    ids = torch.as_tensor(windows[w, : p + 1])[None]
                    naive[w, p] = F.cross_entropy(sm(ids)[0, -1], torch.tensor(int(windows[w, p + 1]))).item()
        r = res["methods"][name]
        np.testing.assert_allclose(r["mean"], naive.mean(0), atol=1e-4)
        bands = naive.reshape(3, 4, 16).mean(2)
        np.testing.assert_allclose(r["band_mean"], bands.mean(0), atol=1e-4)
        np.testing.assert_allclose(r["band_se"], bands.std(0, ddof=1) / math.sqrt(3), atol=1e-4)
        np.testing.assert_allclose(r["window"]["inside"], naive[:, :16].mean(1), atol=1e-4)
        np.testing.assert_allclose(r["window"]["last"], naive[:, 48:].mean(1), atol=1e-4)
        np.testing.assert_allclose(r["rise_mean"], (bands - naive[:, :16].mean(1, keepdims=True)).mean(0), atol=1e-4)
        assert r["inv_freq"] == pytest.approx(rope_inv_freq(8, 10000.0, scaling).tolist(), rel=1e-5)
    d = res["paired"]["yarn-none"]["inside"]
    assert d["mean"] == pytest.approx(res["methods"]["yarn"]["regions"]["inside"]["mean"]
                                      - res["methods"]["none"]["regions"]["inside"]["mean"], abs=2e-4)


def check_structure(res: dict) -> None:
    assert list(res["methods"]) == list(ev.METHODS)
    T, B = res["positions"], len(res["bands"]["start"])
    assert T == res["length"] == int(res["factor"] * res["context"])
    C = res["context"]
    assert res["regions"] == {"inside": [0, C], "past": [C, T], "last": [T - C, T]}
    for name, m in res["methods"].items():
        assert m["rope_scaling"] == ev.scalings(res["context"], res["factor"])[name]
        assert len(m["mean"]) == T and len(m["band_mean"]) == len(m["band_se"]) == len(m["rise_mean"]) == B
        assert all(len(v) == res["windows"] for v in m["window"].values())
        assert m["inv_freq"] == pytest.approx(
            rope_inv_freq(res["head_dim"], res["rope_theta"], m["rope_scaling"]).tolist(), rel=1e-5)
        assert m["attention_factor"] == pytest.approx(rope_attention_factor(m["rope_scaling"]), abs=1e-6)
    assert set(res["paired"]) == {"linear-none", "ntk-none", "ntk-linear", "yarn-none", "yarn-linear", "yarn-ntk"}


def test_committed_result_is_complete_and_small():
    assert ev.RESULTS_PATH.stat().st_size < 150_000  # 8 models × 1,024 per-position means (+ the fine-tuned four)
    res = json.loads(ev.RESULTS_PATH.read_text())
    check_structure(res)
    assert res["variant"] == "gqa-rope" and res["windows"] == res["windows_available"] > 100
    assert res["settings"]["n_windows"] is None and res["threads"] == 1


def test_cli_writes_the_same_structure(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert ev.main(["--windows", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    check_structure(res)
    assert res["windows"] == 2 and "2 windows of 1024 positions" in capsys.readouterr().out
    committed = json.loads(ev.RESULTS_PATH.read_text())
    assert set(res) == set(committed)


# --------------------------------------------------------------------------------------------------------
# Figures and sentences
# --------------------------------------------------------------------------------------------------------


def synthetic(rises: dict[str, float], noise: float, n: int = 40, seed: int = 0) -> dict:
    """A `summarize` result of made-up losses: 3 in context, + `rises[name]` past it; each window shifted by a
    draw shared by every method (sd 0.5) and by one of its own (sd `noise`: 0 makes every paired s.e. 0)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 0.5, (n, 1))
    losses = {}
    for name, rise in rises.items():
        L = 3.0 + shared + rng.normal(0, noise, (n, 1)) + np.zeros((n, 64))
        L[:, 16:] += rise
        losses[name] = L
    res = ev.summarize(losses, context=16, band=8)
    for name in rises:
        res["methods"][name]["label"] = name.upper()
    return res


def test_loss_figure_draws_each_band_with_two_standard_errors():
    mean = {"none": np.array([3.0, 2.8, 4.0]), "yarn": np.array([3.1, 2.9, 3.0])}
    se = {"none": np.array([0.1, 0.1, 0.2]), "yarn": np.array([0.1, 0.05, 0.1])}
    fig = loss_by_position_figure(np.array([0, 4, 8]), np.array([4, 8, 12]), mean, se, 8, {"yarn": "YaRN"})
    assert [t.name for t in fig.data] == ["none ± 2 s.e.", "none", "YaRN ± 2 s.e.", "YaRN"]
    np.testing.assert_allclose(fig.data[3].x, [1.5, 5.5, 9.5])
    np.testing.assert_allclose(fig.data[3].y, mean["yarn"])
    np.testing.assert_allclose(fig.data[2].y, [3.3, 3.0, 3.2, 2.8, 2.8, 2.9])  # upper, then lower reversed
    assert fig.layout.shapes[0].x0 == 7.5 and "trained context (8)" in fig.layout.annotations[0].text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and fig.layout.legend.y < 0


def test_angle_figure_shows_which_pairs_each_method_compresses():
    trained = rope_inv_freq(32, 10000.0).double().numpy()
    freqs = {n: rope_inv_freq(32, 10000.0, s).double().numpy() for n, s in ev.scalings(256).items()}
    z = angle_ratios(freqs, trained, 256, 1024)
    np.testing.assert_allclose(z[0], 1023 / 255)  # none: every pair 4× further than ever
    np.testing.assert_allclose(z[1], 1023 / 1020, rtol=1e-6)  # linear: every pair back inside
    assert z[2][0] == pytest.approx(1023 / 255) and z[2][-1] == pytest.approx(1023 / 1020, rel=1e-5)  # ntk
    assert z[3][0] == pytest.approx(1023 / 255) and np.allclose(z[3][7:], 1023 / 1020)  # yarn
    fig = angle_ratio_figure(freqs, trained, 256, 1024, {"yarn": "YaRN"})
    np.testing.assert_allclose(np.asarray(fig.data[0].z), z)
    assert list(fig.data[0].y) == ["none", "linear", "ntk", "YaRN"]
    assert fig.layout.shapes[0].x0 == 6.5  # pairs 0–6 turn fully within 256 positions, 7–15 never
    assert fig.data[0].colorbar.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_sentences_claim_only_what_separates():
    clear = synthetic({"none": 1.0, "linear": 0.2, "ntk": 0.0}, noise=0.0)
    text = " ".join(scaling_sentences(clear))
    assert "40 held-out windows of 64 positions" in text
    assert past_context_sentence("none", "NONE", clear).startswith("**NONE**: past 16 its loss rises")
    assert "stays within" in past_context_sentence("ntk", "NTK", clear)
    assert "NTK is lower than LINEAR by 0.200" in far_end_sentence(clear, {"ntk": "NTK", "linear": "LINEAR"})
    assert "no difference from no scaling" in inside_context_sentence("ntk", "NTK", clear)
    noisy = synthetic({"none": 0.3, "linear": 0.25}, noise=3.0)
    assert "do not separate" in far_end_sentence(noisy, {}) and "is lower than" not in far_end_sentence(noisy, {})
    costly = synthetic({"none": 0.0, "yarn": 0.0}, noise=0.0)
    costly["paired"]["yarn-none"]["inside"] = {"mean": 0.05, "se": 0.01}
    assert "costs 0.050 nats/token inside the trained context (0–15)" in inside_context_sentence("yarn", "YaRN", costly)


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------


def test_page_section_draws_the_committed_result():
    res = json.loads(ev.RESULTS_PATH.read_text())
    at = open_page("pages/rope.py")
    loss = chart(at, "rope_scaling_loss")
    lines = [t for t in loss["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in lines] == [m["label"] for m in res["methods"].values()]
    np.testing.assert_allclose(arr(lines[-1]["y"]), res["methods"]["yarn"]["band_mean"])
    angles = chart(at, "rope_scaling_angles")
    assert arr(angles["data"][0]["z"]).shape == (4, res["head_dim"] // 2)
    shown = " ".join(str(e.value) for kind in ("markdown", "caption") for e in at.get(kind))
    assert all(s in shown for s in scaling_sentences(res)[1:])


def test_page_section_without_the_file_or_on_another_variant(monkeypatch, tmp_path):
    committed = ev.RESULTS_PATH
    monkeypatch.setattr(ev, "RESULTS_PATH", tmp_path / "missing.json")  # the page reads it at run time
    at = open_page("pages/rope.py")
    assert any("No measurement of RoPE past its training context" in str(i.value) for i in at.info)
    monkeypatch.setattr(ev, "RESULTS_PATH", committed)
    at.session_state["variant"] = "mqa-rope"
    at.run()
    assert not at.exception
    assert any("Measured on **gqa-rope** only" in str(i.value) for i in at.info)
