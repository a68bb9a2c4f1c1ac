"""'Classroom-ready: examples that teach instead of confuse' — each change checked against the data: the default
prompt (its length, its guess, the logit lens at the default position), the trailing-newline lesson, the
never-trained tokens left out of the embedding map, the Generation page's labels, colours and two temperatures,
RoPE's fixed vector and distance chart, and the keys a GQA group shares."""

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT
from model.analysis.boundary import BoundaryCase, boundary_pair, boundary_sentence, top_next, trailing_variants
from model.analysis.geometry import pca
from model.analysis.lens import lens_stages, lens_summary
from model.analysis.rope import mean_abs_by_distance, scores_at, scores_by_distance
from model.decoding.sampling import softmax
from model.net.checkpoints import load_variant, variant_config
from model.net.trace import forward_logits, run_with_trace
from model.text.batches import never_trained, token_counts
from model.text.tokenizer import encode, token_label
from viz.attention import shared_keys_figure
from viz.boundary import boundary_figure
from viz.embeddings import untrained_sentence, vocab_map
from viz.generation import (KIND_COLOURS, cache_bytes_figure, cache_figure, distribution_figure, kv_kinds_figure,
                            plural, prob_text, shape_text, temperature_pair_figure, temperature_pair_sentence)
from viz.rope import abs_score_figure, abs_score_sentence, fixed_vector_figure
from app_support import arr, chart, open_page as open_app_page

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def model():
    return load_variant("gqa-rope")


def open_page(page: str, prompt: str = DEFAULT_PROMPT, query: dict | None = None) -> AppTest:
    return open_app_page(page, prompt, "gqa-rope", query, timeout=90)


def captions(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption") for e in at.get(kind))


def unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


# --------------------------------------------------------------------------------------------------------
# The default prompt
# --------------------------------------------------------------------------------------------------------


def test_default_prompt_shapes_cannot_be_confused():
    cfg = variant_config("gqa-rope")
    T = len(encode(DEFAULT_PROMPT))
    sizes = {cfg.head_dim, cfg.n_heads, cfg.n_kv_heads, cfg.n_layers, cfg.d_model, cfg.d_mlp, cfg.vocab_size, cfg.max_seq_len}
    assert T not in sizes, (T, sizes)
    assert DEFAULT_PROMPT.endswith("\n")  # a whole last token: not "." waiting to become ".\n"


def test_default_prompt_guess_is_a_line_start_and_the_lens_rises(model):
    ids = encode(DEFAULT_PROMPT)
    tr = run_with_trace(model, ids)
    p = softmax(tr.logits[-1].astype(np.float64))
    top = token_label(int(np.argmax(p)))
    assert not top.startswith("␣") and top.strip(), top  # a new line's first word, not a space
    stages = lens_stages(model.cfg.n_layers)
    resids = np.stack([tr[n] for n, _ in stages])
    _, _, p_next = lens_summary(resids, model.ln_final.weight.detach().numpy(), model.cfg.norm_eps,
                                model.W_U.detach().numpy(), np.asarray(ids), 5)
    line = p_next[:, len(ids) - 2]  # the logit lens page's default position
    assert line[-1] > 0.3 and line[-1] > 20 * line[1], line  # the guess forms through the stack
    assert np.all(np.diff(line[1:]) > 0), line  # and rises block by block


# --------------------------------------------------------------------------------------------------------
# The trailing-newline lesson
# --------------------------------------------------------------------------------------------------------


def test_trailing_variants():
    assert trailing_variants("a.\n\n") == ("a.", "a.\n")
    assert trailing_variants("a.") == ("a.", "a.\n")


def test_top_next_orders_by_probability():
    ids, p = top_next(np.array([0.0, 2.0, 1.0, 2.0]), 3)
    assert list(ids) == [1, 3, 2] and p[0] == pytest.approx(p[1]) and p.sum() < 1


def test_boundary_pair_matches_the_model(model):
    f = lambda ids: forward_logits(model, ids)  # noqa: E731
    a, b = boundary_pair(f, encode, token_label, DEFAULT_PROMPT)
    assert b.text == DEFAULT_PROMPT and a.text == DEFAULT_PROMPT.rstrip("\n")
    for case in (a, b):
        p = softmax(forward_logits(model, list(case.ids))[-1].astype(np.float64))
        assert int(case.top_ids[0]) == int(np.argmax(p)) and case.top_probs[0] == pytest.approx(p.max(), rel=1e-5)
    s = boundary_sentence(a, b, token_label)
    assert len(a.ids) == len(b.ids) and "merges with the last one" in s  # ",\n" is one token
    assert f"p = {a.top_probs[0]:.3f}" in s and f"p = {b.top_probs[0]:.3f}" in s
    assert token_label(int(a.top_ids[0])) in s and token_label(int(b.top_ids[0])) in s


def test_boundary_sentence_follows_the_data():
    lab = lambda i: {1: "A", 2: "B"}[i]  # noqa: E731
    a = BoundaryCase("x", (5,), "x", np.array([1]), np.array([0.25]))
    b_own = BoundaryCase("x\n", (5, 6), "↵", np.array([1]), np.array([0.5]))
    s = boundary_sentence(a, b_own, lab)
    assert "a token of its own" in s and "1 → 2 tokens" in s and "the same token" in s and "0.250" in s
    b_merged = BoundaryCase("x\n", (7,), "x↵", np.array([2]), np.array([0.125]))
    s = boundary_sentence(a, b_merged, lab)
    assert "merges" in s and "a different token" in s and "0.125" in s


def test_boundary_figure_carries_both_runs():
    fig = boundary_figure(("left", "right"), (["a", "b"], ["c"]), (np.array([0.5, 0.2]), np.array([0.9])))
    assert [list(t.x) for t in fig.data] == [[0.5, 0.2], [0.9]]
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range  # one scale for both panels


def test_logit_lens_page_shows_the_lesson_live(model):
    for prompt in (DEFAULT_PROMPT, "To be, or not to be"):
        at = open_page("pages/logit_lens.py", prompt)
        a, b = boundary_pair(lambda ids: forward_logits(model, ids), encode, token_label, prompt)
        spec = chart(at, "lens_boundary")
        assert np.allclose(arr(spec["data"][0]["x"]), a.top_probs, atol=1e-6)
        assert np.allclose(arr(spec["data"][1]["x"]), b.top_probs, atol=1e-6)
        assert unescape(boundary_sentence(a, b, token_label)) in unescape(captions(at))


# --------------------------------------------------------------------------------------------------------
# Never-trained tokens and the embedding map
# --------------------------------------------------------------------------------------------------------


def test_never_trained_is_counted_from_the_corpus():
    assert list(token_counts(np.array([0, 2, 2]), 4)) == [1, 0, 2, 0]
    mask = never_trained(2048)
    assert mask[2047] and not mask[encode(" the")[0]]  # <|endoftext|> never occurs in the text; " the" does
    assert 0 < mask.sum() < 400


def test_pca_fit_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)) * [1, 1, 1, 0.1]
    X[:5] += [0, 0, 0, 100]  # an outlying clump along the otherwise quiet axis
    keep = np.ones(50, dtype=bool)
    keep[:5] = False
    c_all, e_all = pca(X, 2)
    c_fit, e_fit = pca(X, 2, fit=keep)
    assert e_all[0] > 0.9  # the clump takes the first component
    assert e_fit[0] < 0.6 and c_fit.shape == (50, 2)  # without it, the spread of the rest
    np.testing.assert_allclose(pca(X, 2, fit=np.ones(50, bool))[0], c_all)


def test_vocab_map_draws_untrained_apart():
    coords = np.arange(20, dtype=float).reshape(10, 2)
    fig = vocab_map(coords, [str(i) for i in range(10)], [1], ["1"], np.array([0.5, 0.2]), untrained=np.array([7, 8]))
    names = [t.name for t in fig.data]
    assert "never trained (2)" in names
    assert len(fig.data[0].x) == 8 and list(fig.data[names.index("never trained (2)")].x) == [14, 16]
    s = untrained_sentence(2, 10, ["a", "b"], False, 0.5, 1.25)
    assert "2 of the 10" in s and "0.50" in s and "1.25" in s and "left out" in s
    assert "orange diamonds" in untrained_sentence(3, 10, ["a"], True, 0.5, 1.25)


def test_embeddings_page_leaves_untrained_out_by_default():
    at = open_page("pages/embeddings.py")
    n = int(never_trained(2048).sum())
    spec = chart(at, "emb_map")
    assert len(arr(spec["data"][0]["x"])) == 2048 - n  # the grey dots: the trained tokens only
    assert not any(str(t.get("name", "")).startswith("never trained") for t in spec["data"])
    text = unescape(captions(at))
    assert f"{n:,} of the 2,048 tokens never occur" in text and f"the {2048 - n:,} vectors vary most" in text
    at.toggle(key="emb_untrained").set_value(True).run()
    assert not at.exception
    spec = chart(at, "emb_map")
    assert any(t.get("name") == f"never trained ({n})" for t in spec["data"])
    assert "the 2,048 vectors vary most" in unescape(captions(at))


# --------------------------------------------------------------------------------------------------------
# Generation: labels, colours, the step-0 chart, two temperatures
# --------------------------------------------------------------------------------------------------------


def test_prob_text_never_says_a_false_zero():
    assert prob_text(0.12345) == "0.1235" and prob_text(3.2e-5) == "3.2e-05" and prob_text(0) == "0"
    assert float(prob_text(4.4e-7)) > 0


def test_plural_and_shape_text():
    assert plural(1, "token") == "1 token" and plural(2, "token") == "2 tokens" and plural(1024, "step") == "1,024 steps"
    assert shape_text(n=48, kv=2, d=32) == "48 positions × 2 K/V heads × 32 d_head"


def test_chosen_label_sits_above_every_bar():
    raw = np.array([0.5, 0.3, 0.2])
    kept = [np.ones(3, bool)] * 3
    fig = distribution_figure(["a", "b", "c"], raw, raw, raw, kept, ["k", "p", "m"], 1, np.arange(3), False)
    ann = [a for a in fig.layout.annotations if "chosen" in a.text]
    assert len(ann) == 1 and not ann[0].showarrow and ann[0].bgcolor is None
    assert ann[0].y > 0.5 and fig.layout.yaxis.range[1] >= ann[0].y  # above the tallest bar, inside the axis


def test_cache_titles_name_every_size():
    K = np.zeros((3, 4))
    fig = cache_figure(K, K, np.arange(3), ["a", "b", "c"], 2, 2, 2)
    assert [a.text.replace("<br>", " ").replace("  ", " ") for a in fig.layout.annotations[:2]] == ["K: 3 positions × 2 K/V heads × 2 d_head",
                                                           "V: 3 positions × 2 K/V heads × 2 d_head"]


def test_one_colour_per_attention_kind_in_both_charts():
    by_kind = {"MHA": [10], "GQA": [5], "MQA": [2]}
    lines = cache_bytes_figure([0], [5], by_kind, "GQA")
    bars = kv_kinds_figure({k: v[0] for k, v in by_kind.items()}, "GQA")
    line_colours = {t.name.split(" ")[0]: t.line.color for t in lines.data if t.name.split(" ")[0] in by_kind}
    assert line_colours == KIND_COLOURS
    assert dict(zip(bars.data[0].y, bars.data[0].marker.color)) == KIND_COLOURS


def test_step_zero_chart_has_no_negative_steps():
    fig = cache_bytes_figure([0], [5], {"MHA": [10], "GQA": [5], "MQA": [2]}, "GQA")
    assert fig.layout.xaxis.range[0] == -0.5 and fig.layout.xaxis.range[1] >= 1
    assert all(t.mode in ("lines+markers", "markers") for t in fig.data)  # a one-point line is drawn
    more = cache_bytes_figure([0, 1, 2], [5, 6, 7], {"GQA": [5, 6, 7]}, "GQA")
    assert more.layout.xaxis.range == (-0.5, 2.5) and not more.layout.annotations


def test_temperature_pair_sentence_follows_the_numbers():
    s = temperature_pair_sentence((0.5, 1.5), (0.8, 0.3), (0.7, 2.1), (1, 12), ("a", "b"))
    assert "p = 0.8000" in s and "p = 0.3000" in s and "1 token kept" in s and "12 tokens kept" in s
    assert "flattens" in s and "“a”" in s and "“b”" in s
    same = temperature_pair_sentence((0.5, 1.5), (0.8, 0.8), (0.7, 0.7), (3, 3), ("a", "a"))
    assert "flattens" not in same and "the same token" in same
    fig = temperature_pair_figure(["a", "b"], (np.array([0.8, 0.2]), np.array([0.6, 0.4])), (0.5, 1.5), (0, 1))
    assert [list(t.y) for t in fig.data] == [[0.8, 0.2], [0.6, 0.4]]
    assert [a.text for a in fig.layout.annotations if "drawn" in a.text] == ["▼ drawn", "▼ drawn"]


def test_generation_page_two_temperatures_and_labels():
    at = open_page("pages/generation.py", query={"temperature": "0.5", "temperature2": "1.5"})
    spec = chart(at, "gen_temps")
    text = unescape(captions(at))
    assert "T = 0.5" in text and "T = 1.5" in text
    # the same logits, two temperatures: the cooler one puts more on its top token
    a1, a2 = arr(spec["data"][0]["y"]), arr(spec["data"][1]["y"])
    assert a1[0] > a2[0] and a1.sum() > a2.sum()
    assert f"p = {prob_text(a1.max())}" in text
    at.select_slider(key="temperature2").set_value(0.5).run()
    spec = chart(at, "gen_temps")
    np.testing.assert_allclose(arr(spec["data"][0]["y"]), arr(spec["data"][1]["y"]))
    assert "1 token chosen" in " ".join(str(m.value) for m in at.markdown)
    assert "tokens chosen" not in " ".join(str(m.value) for m in at.markdown)
    assert "1 K/V heads" not in text and "K/V heads × " in text and "positions × 32 d_head" in text


# --------------------------------------------------------------------------------------------------------
# RoPE: a fixed vector, and |score| by distance
# --------------------------------------------------------------------------------------------------------


def test_fixed_vector_is_the_unit_vector_turned():
    ang = np.array([0.0, np.pi / 2, np.pi])
    fig = fixed_vector_figure(np.arange(3), ang, 0)
    np.testing.assert_allclose(fig.data[0].x, [1, 0, -1], atol=1e-12)
    np.testing.assert_allclose(fig.data[0].y, [0, 1, 0], atol=1e-12)


def test_scores_by_distance_match_scores_at():
    rng = np.random.default_rng(1)
    Q, K, d = rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), np.array([0, 3, 40])
    S = scores_by_distance(Q, K, d, 10000.0)
    ref = np.array([scores_at(q, k, d, np.zeros_like(d), 10000.0) for q in Q for k in K])
    np.testing.assert_allclose(S, ref, atol=1e-12)
    m, se = mean_abs_by_distance(S)
    np.testing.assert_allclose(m, np.abs(ref).mean(0))
    assert se.shape == (3,) and np.all(se > 0)


def test_abs_score_sentence_says_only_what_the_data_show():
    d = np.arange(100)
    falling = abs_score_sentence(d, np.linspace(2, 1, 100), np.full(100, 0.01), 9)
    assert "smaller far away" in falling and "9 (query, key) pairs" in falling
    flat = abs_score_sentence(d, np.ones(100), np.full(100, 0.1), 9)
    assert "no clear decay" in flat
    rising = abs_score_sentence(d, np.linspace(1, 2, 100), np.full(100, 0.01), 9)
    assert "larger far away" in rising
    fig = abs_score_figure(d, np.ones(100), np.full(100, 0.1), 48)
    assert len(fig.data) == 2 and "yaxis2" not in fig.layout  # one axis


def test_rope_page_draws_the_fixed_vector_and_the_measured_decay(model):
    at = open_page("pages/rope.py")
    fixed = chart(at, "rope_fixed")
    r = np.hypot(arr(fixed["data"][0]["x"]), arr(fixed["data"][0]["y"]))
    np.testing.assert_allclose(r, 1, atol=1e-6)
    tr = run_with_trace(model, encode(DEFAULT_PROMPT))
    layer = int(at.selectbox(key="rope_layer").value)
    head = int(at.selectbox(key="rope_head").value)
    kv = head // (model.cfg.n_heads // model.cfg.n_kv_heads)
    S = scores_by_distance(tr[f"blocks.{layer}.attn.hook_q"][:, head], tr[f"blocks.{layer}.attn.hook_k"][:, kv],
                           np.arange(512), model.cfg.rope_theta)
    m, se = mean_abs_by_distance(S)
    spec = chart(at, "rope_distance")
    np.testing.assert_allclose(arr(spec["data"][1]["y"]), m, rtol=1e-4, atol=1e-6)
    assert abs_score_sentence(np.arange(512), m, se, S.shape[0])[:60] in captions(at)
    assert "Sⱼ" not in captions(at)  # no raw formula in the caption any more


# --------------------------------------------------------------------------------------------------------
# Attention: the keys a GQA group shares
# --------------------------------------------------------------------------------------------------------


def test_shared_keys_figure_panels():
    K, Q = np.ones((3, 4)), [np.zeros((3, 4)), np.full((3, 4), 2.0)]
    fig = shared_keys_figure(K, Q, [0, 1], 0, ["a", "b", "c"], True)
    # the shape is the same for every panel: stated once, in the figure's title (panel titles stay short)
    assert len(fig.data) == 3 and "3 positions × 4 d_head" in fig.layout.title.text
    assert "after RoPE" in fig.layout.title.text and fig.layout.annotations[0].text.startswith("keys")
    np.testing.assert_allclose(np.asarray(fig.data[2].z), 2.0)


def test_attention_page_draws_the_group_keys(model):
    at = open_page("pages/attention.py", query={"att_layer": "1", "att_head": "4"})
    spec = chart(at, "att_shared_keys")
    tr = run_with_trace(model, encode(DEFAULT_PROMPT))
    kv = 4 // (model.cfg.n_heads // model.cfg.n_kv_heads)
    np.testing.assert_allclose(arr(spec["data"][0]["z"]), tr["blocks.1.attn.hook_rot_k"][:, kv], atol=1e-5)
    members = [h for h in range(model.cfg.n_heads) if h // (model.cfg.n_heads // model.cfg.n_kv_heads) == kv]
    assert len(spec["data"]) == 1 + len(members)
    for j, h in enumerate(members):
        np.testing.assert_allclose(arr(spec["data"][1 + j]["z"]), tr["blocks.1.attn.hook_rot_q"][:, h], atol=1e-5)
    assert f"query heads {', '.join(map(str, members))} all read these same" in captions(at)
