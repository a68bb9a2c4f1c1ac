"""The generation and RoPE figures (asserted on the figure tree, not pixels) and the RoPE probe, checked against
the model's own rotation and its own attention scores."""

import math

import numpy as np
import pytest
import torch

from model.net.config import ModelConfig
from model.net.transformer import Transformer
from model.net.positions import apply_rope, rope_angles, rope_inv_freq, sinusoidal_table
from model.analysis.geometry import cosine_matrix as position_similarity
from model.analysis.heads import kv_head_of
from model.analysis.rope import angle_table, inv_freq, rotate, scores_at, wavelengths
from model.decoding.sampling import SamplerConfig, sample
from model.net.trace import run_with_trace
from viz.generation import (attention_rows_figure, cache_bytes_figure, cache_figure, distribution_figure,
                            history_figure, kv_kinds_figure, top_slice)
from viz.rope import (alibi_figure, angle_table_figure, pair_arrows_figure, position_table_figure,
                      shift_figure, similarity_figure, wavelength_figure)
from viz.tokens import plotly_text

HOSTILE = "<b>&amp;</b>"


def test_plotly_text_and_top_slice_worked_examples():
    assert plotly_text("<b>&") == "&lt;b&gt;&amp;"
    assert top_slice(np.array([0.1, 0.5, 0.2, 0.2]), 2, 0).tolist() == [1, 2, 0]
    assert top_slice(np.array([0.1, 0.5, 0.2, 0.2]), 2, 2).tolist() == [1, 2]


def _dist_fig(cfg, n=8):
    logits = np.random.default_rng(0).normal(size=50) * 3
    res = sample(logits, cfg, np.random.default_rng(1))
    shown = top_slice(res.tempered, n, res.token)
    ranks = np.array([int((res.raw > res.raw[i]).sum()) for i in shown])
    labels = [HOSTILE if i == shown[0] else f"t{i}" for i in shown]
    fig = distribution_figure(labels, res.raw[shown], res.tempered[shown], res.final[shown],
                              [res.kept_top_k[shown], res.kept_top_p[shown], res.kept_min_p[shown]],
                              ["top-k", "top-p", "min-p"], int(np.flatnonzero(shown == res.token)[0]), ranks,
                              res.greedy)
    return fig, res, shown


@pytest.mark.parametrize("cfg", [SamplerConfig(1.0, top_k=3), SamplerConfig(0.7, top_p=0.8, min_p=0.1),
                                 SamplerConfig(0.0)])
def test_distribution_bars_sum_to_at_most_one_and_respect_the_kept_set(cfg):
    fig, res, shown = _dist_fig(cfg)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == (2 if cfg.greedy else 3)
    for b in bars:
        assert 0 <= sum(b.y) <= 1 + 1e-9
    kept = np.array(next(t for t in fig.data if t.type == "heatmap").z)  # (3 filters, shown)
    final = np.array(bars[-1].y)
    assert np.all(final[kept[2] == 0] == 0)  # nothing outside the kept set is drawn from
    if cfg.top_k:
        assert kept[0].sum() <= cfg.top_k
    ticks = fig.layout.xaxis2.ticktext
    assert ticks[0] in (plotly_text(HOSTILE), f"<b>{plotly_text(HOSTILE)}</b>")  # the hostile label is escaped
    assert any(t.startswith("<b>") for t in ticks)  # the chosen token, bold
    assert fig.layout.annotations[-1].text == "▼ chosen"  # unboxed, above every bar (see test_classroom_examples)


def test_history_strip_one_box_per_token_selected_outlined():
    labels = ["·the", HOSTILE, "\\n", "x" * 90]
    fig = history_figure(labels, np.array([0.9, 0.1, 0.5, 0.01]), selected=1)
    bar = fig.data[0]
    assert len(bar.x) == 4 and list(bar.text)[1] == plotly_text(HOSTILE)
    assert bar.marker.line.width[1] == 3 and bar.marker.line.width[0] < 3
    assert max(bar.y) >= 1  # the long label wrapped to its own row


def test_cache_figure_has_one_row_per_position():
    K, V = np.random.randn(7, 4 * 8), np.random.randn(7, 4 * 8)
    fig = cache_figure(K, V, np.arange(7), [HOSTILE] + ["a"] * 6, 4, 8, new_from=6)
    hm = [t for t in fig.data if t.type == "heatmap"]
    assert [len(t.z) for t in hm] == [7, 7] and [y.split()[0] for y in hm[0].y] == [str(p) for p in range(7)]
    assert hm[0].y[0] == "0 " + plotly_text(HOSTILE)
    assert cache_figure(K[:0], V[:0], np.arange(0), [], 4, 8, 0).data  # an empty cache draws, not raises


def test_bytes_and_attention_figures():
    fig = cache_bytes_figure([0, 1, 2], [100, 110, 120], {"MHA": [300, 330, 360], "GQA": [100, 110, 120],
                                                           "MQA": [50, 55, 60]}, "GQA")
    assert [t.name for t in fig.data][-1].startswith("measured") and list(fig.data[-1].y) == [100, 110, 120]
    assert list(kv_kinds_figure({"MHA": 3, "GQA": 1, "MQA": 0}, "GQA").data[0].x) == [3, 1, 0]
    rows = [np.full((6, 5), 0.2), np.full((6, 5), 0.2)]
    fig = attention_rows_figure(rows, np.arange(5), ["a"] * 5)
    assert len(fig.data) == 2 and np.array(fig.data[0].z).shape == (6, 5)


# --------------------------------------------------------------------------------------------------------
# RoPE probe: against the model's own code
# --------------------------------------------------------------------------------------------------------


def test_probe_matches_the_models_rotation():
    np.testing.assert_allclose(inv_freq(32, 1e4), rope_inv_freq(32, 1e4).numpy(), rtol=1e-6)
    np.testing.assert_allclose(angle_table(40, 32, 1e4), rope_angles(torch.arange(40), 32, 1e4).numpy(), atol=1e-4)
    assert inv_freq(4, 1e4).tolist() == [1.0, 0.01] and wavelengths(4, 1e4)[0] == pytest.approx(2 * math.pi)
    x = np.random.default_rng(0).normal(size=(10, 32))
    ref = apply_rope(torch.tensor(x, dtype=torch.float32)[None, :, None], rope_angles(torch.arange(10), 32, 1e4))
    np.testing.assert_allclose(rotate(x, np.arange(10), 1e4), ref[0, :, 0].numpy(), atol=1e-5)
    assert kv_head_of(4, 6, 2) == 1 and kv_head_of(5, 6, 1) == 0 and kv_head_of(3, 6, 6) == 3


def test_scores_match_the_models_own_scores_and_depend_on_m_minus_n_only():
    cfg = ModelConfig(vocab_size=97, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=16)
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    tr = run_with_trace(model, list(range(3, 15)))
    q, k, s = tr["blocks.0.attn.hook_q"], tr["blocks.0.attn.hook_k"], tr["blocks.0.attn.hook_attn_scores"]
    for head, m, n in [(0, 5, 2), (3, 11, 0), (2, 7, 7)]:
        kvh = kv_head_of(head, 4, 2)
        assert scores_at(q[m, head], k[n, kvh], m, n, cfg.rope_theta)[0] == pytest.approx(s[head, m, n], abs=1e-5)
        moved = scores_at(q[m, head], k[n, kvh], m + np.arange(0, 600, 50), n + np.arange(0, 600, 50), cfg.rope_theta)
        assert np.ptp(moved) < 1e-9


def test_sinusoidal_similarity_depends_on_distance_only():
    sim = position_similarity(sinusoidal_table(torch.arange(20), 16).numpy())
    assert np.allclose(np.diag(sim), 1) and np.allclose(np.diag(sim, 3), np.diag(sim, 3)[0], atol=1e-5)


def test_rope_figures():
    idx = np.arange(4)
    fig = pair_arrows_figure(np.ones((4, 2)), np.ones((4, 2)), idx, ["a", HOSTILE, "c", "d"], idx * 1.0, "q")
    assert len(fig.layout.annotations) >= 8 and plotly_text(HOSTILE) in list(fig.data[0].text)
    ang = angle_table(10, 8, 1e4)
    fig = angle_table_figure(ang, wavelengths(8, 1e4), 5)
    assert np.array(fig.data[0].z).max() < 2 * math.pi and np.array(fig.data[0].z).shape == (10, 4)
    fig = wavelength_figure(wavelengths(32, 1e4), 256)
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[-1]  # fast vs slow
    fig = shift_figure(np.arange(3), np.ones(3), np.arange(3.0), 5, 2)
    assert list(fig.data[0].y) == [1, 1, 1]
    assert len(alibi_figure(np.array([0.25, 0.0625, 0.0156]), 6).data) == 3
    table = np.arange(20.0).reshape(5, 4) - 10
    fig = position_table_figure(table, "t", 3)
    np.testing.assert_array_equal(np.array(fig.data[0].z), table)  # row m = position m, as given
    assert fig.data[0].zmin == -10 and fig.data[0].zmax == 10  # symmetric about 0
    assert [s.y0 for s in fig.layout.shapes] == [2.5]  # the end of the 3-token prompt
    assert similarity_figure(np.eye(3), "s").data[0].type == "heatmap"
