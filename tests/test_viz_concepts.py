"""viz/tokens, viz/embeddings, viz/attention, viz/lens: assertions on the figures' data, not on pixels."""

import numpy as np
import plotly.graph_objects as go
import pytest

from viz.attention import attention_grid, head_zoom, kv_sharing_figure, role_heatmaps
from viz.embeddings import embedding_heatmap, norms_bar, position_heatmap, similarity_heatmap, vocab_map
from viz.lens import lens_heatmap, next_token_heatmap, next_token_lines
from viz.tokens import axis_labels, merge_steps_figure, plotly_text, token_boxes

HOSTILE = "<img src=x onerror=alert(1)>"


def all_strings(fig: go.Figure) -> list[str]:
    """Every string in the figure's JSON (data and layout)."""
    out = []

    def walk(x):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(fig.to_plotly_json())
    return out


def assert_no_markup(fig: go.Figure) -> None:
    joined = "\n".join(all_strings(fig))
    assert "<img" not in joined and "&lt;img src=x onerror=alert(1)&gt;" in joined


def causal_patterns(L: int, H: int, T: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(L):
        s = rng.normal(size=(H, T, T))
        s[:, np.triu(np.ones((T, T), bool), 1)] = -np.inf
        e = np.exp(s - s.max(-1, keepdims=True))
        out.append(e / e.sum(-1, keepdims=True))
    return out


# ---- tokens -----------------------------------------------------------------------------------------------


def test_plotly_text_escapes_markup_only():
    assert plotly_text(HOSTILE) == "&lt;img src=x onerror=alert(1)&gt;"
    assert plotly_text("a & b") == "a &amp; b"
    assert plotly_text("·the↵") == "·the↵"
    assert axis_labels(["<b>", "<b>"]) == ["0 &lt;b&gt;", "1 &lt;b&gt;"]  # unique even when tokens repeat


def test_token_boxes_one_box_per_token_and_wrapping():
    labels = ["Hello", ",", "·world", "↵", "next", "·line"]
    fig = token_boxes(labels, breaks=[False, False, False, True, False, False], line_chars=40)
    (bar,) = fig.data
    assert len(bar.x) == len(labels) and list(bar.text) == labels
    assert list(bar.y) == [0, 0, 0, 0, 1, 1]  # a new row after the newline token
    assert bar.base[0] == 0 and bar.base[1] == pytest.approx(5.7)  # boxes follow each other, width = label length
    fig = token_boxes(["abcdefgh"] * 5, line_chars=20)  # width 8.7 each:  # 2 boxes per row
    assert list(fig.data[0].y) == [0, 0, 1, 1, 2]


def test_token_boxes_escape_labels_and_hover():
    fig = token_boxes([HOSTILE, "ok"], hover=[f"id 5\n{HOSTILE}", "id 6"])
    assert_no_markup(fig)
    assert "<br>" in fig.data[0].hovertext[0]  # our own line break survives


def test_merge_steps_figure_rows_are_steps():
    steps = [["c", "a", "t"], ["ca", "t"], ["cat"]]
    fig = merge_steps_figure(steps, [None, 0, 0])
    bar = fig.data[0]
    assert list(bar.text) == ["c", "a", "t", "ca", "t", "cat"]
    assert list(bar.y) == [0, 0, 0, 1, 1, 2]
    assert list(fig.layout.yaxis.ticktext) == ["bytes", "merge 1", "merge 2"]


# ---- embeddings ------------------------------------------------------------------------------------------


def test_embedding_figures():
    E = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    labels = ["a", HOSTILE, "a", "b"]
    fig = embedding_heatmap(E, labels)
    assert np.asarray(fig.data[0].z).shape == (4, 8) and len(set(fig.data[0].y)) == 4
    assert_no_markup(fig)
    fig = norms_bar(np.linalg.norm(E, axis=1), labels, typical=1.0)
    np.testing.assert_allclose(fig.data[0].y, np.linalg.norm(E, axis=1), rtol=1e-6)
    assert_no_markup(fig)


def test_vocab_map_marks_each_prompt_token_once():
    coords = np.random.default_rng(0).normal(size=(10, 2))
    fig = vocab_map(coords, [f"t{i}" for i in range(9)] + [HOSTILE], [3, 9, 3], ["t3", HOSTILE, "t3"],
                    np.array([0.3, 0.2]), highlight=9)
    vocab, marked, ring = fig.data
    assert len(vocab.x) == 10
    assert list(marked.x) == [coords[3, 0], coords[9, 0]]
    assert ring.x[0] == coords[9, 0]
    assert "30.0%" in fig.layout.xaxis.title.text
    assert_no_markup(fig)


def test_position_figures():
    P = np.random.default_rng(0).normal(size=(6, 4))
    assert np.asarray(position_heatmap(P).data[0].z).shape == (6, 4)
    S = np.corrcoef(P)
    assert np.asarray(similarity_heatmap(S).data[0].z).shape == (6, 6)


# ---- attention -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", [False, True])
def test_attention_grid_has_every_head_and_rows_sum_to_one(sort):
    L, H, T = 4, 6, 7
    pats = causal_patterns(L, H, T)
    masked = np.triu(np.ones((T, T), bool), 1)
    scores = np.random.default_rng(1).uniform(size=(L, H))
    fig = attention_grid(pats, masked, scores, "self", sort=sort, kv_of_head=[0, 0, 0, 1, 1, 1])
    heat = [t for t in fig.data if t.type == "heatmap" and t.name != "mask"]
    assert len(heat) == L * H
    masks = [t for t in fig.data if t.name == "mask"]
    assert len(masks) == L * H and all((~np.isnan(np.asarray(m.z, dtype=float)) == masked).all() for m in masks)
    for t in heat:
        z = np.asarray(t.z, dtype=float)
        assert z.shape == (T, T)
        assert np.isnan(z[masked]).all()  # the mask shows as grey, not as zeros
        np.testing.assert_allclose(np.nansum(z, axis=1), 1.0, rtol=1e-5)
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == L * H
    if sort:  # each row's titles in descending score order
        for l in range(L):
            row = [float(t.split("·")[1]) for t in titles[l * H:(l + 1) * H]]
            assert row == sorted(row, reverse=True)
    assert all("(kv" in t for t in titles)
    assert sum(1 for s in fig.layout.shapes if s.type == "rect") == L * H  # one frame per head


def test_head_zoom_pattern_and_scores_with_mask():
    T = 5
    pats = causal_patterns(1, 1, T)[0][0]
    scores = np.log(pats + 1e-30)
    scores[np.triu(np.ones((T, T), bool), 1)] = -np.inf
    labels = ["a", HOSTILE, "a", "b", "c"]
    fig = head_zoom(pats, scores, labels, "layer 0, head 0")
    m1, m2, s, p = fig.data
    assert (m1.name, m2.name, s.name, p.name) == ("mask", "mask", "scores", "pattern")
    assert (~np.isnan(np.asarray(m1.z, dtype=float)) == np.triu(np.ones((T, T), bool), 1)).all()
    zs, zp = np.asarray(s.z, dtype=float), np.asarray(p.z, dtype=float)
    assert np.isnan(zs[0, 1:]).all() and np.isnan(zp[0, 1:]).all()
    np.testing.assert_allclose(np.nansum(zp, axis=1), 1.0, rtol=1e-5)
    assert len(set(p.x)) == T  # repeated tokens keep separate columns
    assert_no_markup(fig)


def test_role_heatmap_and_kv_sharing():
    scores = np.array([[0.1, np.nan], [0.5, 0.9]])
    fig = role_heatmaps({"induction": scores, "self": 1 - scores}, kv_of_head=[0, 0])
    assert fig.data[0].text[0][1] == "–" and fig.data[0].text[1][1] == "0.90"
    assert fig.data[1].name == "self" and fig.data[1].text[0][0] == "0.90"  # every role drawn, not just one
    fig = kv_sharing_figure([[0, 1, 2], [3, 4, 5]])
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 6
    assert {tuple(t.x)[1] for t in lines} == {1.0, 4.0}  # each line ends on its group's K/V head
    mqa = kv_sharing_figure([[0, 1, 2, 3, 4, 5]])
    assert [t.text[0] for t in mqa.data if t.name == "kv0"] == ["kv0"]


# ---- lens ------------------------------------------------------------------------------------------------


def test_lens_figures():
    S, T = 3, 4
    top_p = np.random.default_rng(0).uniform(size=(S, T))
    top_labels = [["a", HOSTILE, "b", "c"]] * S
    stages = ["embedding", "after block 0", "after block 1"]
    fig = lens_heatmap(top_p, top_labels, stages, ["x", "y", "z", HOSTILE], first_pos=10)
    h = fig.data[0]
    assert np.asarray(h.z).shape == (S, T) and list(h.y) == stages
    assert h.x[0] == "10 x"
    assert_no_markup(fig)
    p_next = np.where(np.arange(T)[None] == T - 1, np.nan, top_p)
    fig = next_token_heatmap(p_next, stages, ["x", "y", "z", "w"], ["y", "z", "w", "(end)"])
    assert fig.data[0].text[0][T - 1] == ""
    fig = next_token_lines(p_next, stages, 1, HOSTILE)
    assert list(fig.data[1].y) == pytest.approx(list(p_next[:, 1]))
    assert_no_markup(fig)
