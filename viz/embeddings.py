"""Embedding figures: the prompt's token vectors, their norms, the vocabulary's 2-D map, position tables;
and the sentences that describe them, written from the same numbers (a caption never states a figure by hand).

Arrays and labels in, `go.Figure` or a string out. Every token label goes through `plotly_text` (see
viz/tokens.py). No streamlit, no torch.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from viz.tokens import axis_labels, plotly_text

_CLEAR = dict(plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)")


def embedding_heatmap(E: np.ndarray, labels: list[str], title: str = "") -> go.Figure:
    """E (T, d): one row per token, one column per dimension, blue < 0 < red."""
    T, d = E.shape
    lim = float(np.abs(E).max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=E.astype(np.float32), x=list(range(d)), y=axis_labels(labels),
        colorscale="RdBu", reversescale=True, zmin=-lim, zmax=lim,
        colorbar=dict(title="value", thickness=12),
        hovertemplate="token %{y}<br>dim %{x}<br>%{z:.3f}<extra></extra>",
        name="embedding",
    ))
    fig.update_yaxes(autorange="reversed", title="token")
    fig.update_xaxes(title="dimension")
    fig.update_layout(height=min(900, 120 + 16 * T), margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=plotly_text(title) or None, **_CLEAR)
    return fig


def norms_bar(norms: np.ndarray, labels: list[str], typical: float | None = None) -> go.Figure:
    """The length ‖e‖ of each prompt token's embedding; a dotted line at the vocabulary's median if given."""
    fig = go.Figure(go.Bar(
        x=axis_labels(labels), y=np.asarray(norms, dtype=np.float32), marker_color="#4C6FFF",
        hovertemplate="%{x}<br>norm %{y:.3f}<extra></extra>", name="norm",
    ))
    if typical is not None:
        fig.add_hline(y=typical, line=dict(dash="dot", color="#888"), annotation_text="vocabulary median",
                      annotation_position="top left")
    fig.update_yaxes(title="‖embedding‖")
    fig.update_xaxes(title="token", tickangle=-60 if len(labels) > 12 else 0)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), **_CLEAR)
    return fig


def vocab_map(
    coords: np.ndarray,
    vocab_labels: list[str],
    marked: list[int],
    marked_labels: list[str],
    explained: np.ndarray,
    highlight: int | None = None,
    background: np.ndarray | None = None,
    untrained: np.ndarray | None = None,
) -> go.Figure:
    """The whole vocabulary projected on its first two principal components (grey dots), the prompt's tokens
    marked and labelled, and one token (`highlight`, a vocabulary index) ringed. background: the vocabulary
    indices drawn as grey dots (default all; a sample keeps a 50k-token vocabulary light in the browser).
    untrained: vocabulary indices drawn apart, as hollow orange diamonds named "never trained" (they are
    left out of the grey dots)."""
    fig = go.Figure()
    bg = np.arange(len(coords)) if background is None else np.asarray(background)
    if untrained is not None and len(untrained):
        bg = np.setdiff1d(bg, untrained)
    fig.add_trace(go.Scattergl(
        x=coords[bg, 0], y=coords[bg, 1], mode="markers", name="vocabulary",
        marker=dict(size=4, color="rgba(136,136,136,0.45)"),
        hovertext=axis_labels([vocab_labels[i] for i in bg]), hoverinfo="text",
    ))
    if untrained is not None and len(untrained):
        un = np.asarray(untrained)
        fig.add_trace(go.Scattergl(
            x=coords[un, 0], y=coords[un, 1], mode="markers", name=f"never trained ({len(un)})",
            marker=dict(size=6, symbol="diamond-open", color="#D98E04"),
            hovertext=[f"id {i}: {plotly_text(vocab_labels[i])} (never in the training text)" for i in un],
            hoverinfo="text",
        ))
    uniq = list(dict.fromkeys(marked))  # each prompt token once
    lab = dict(zip(marked, marked_labels))
    fig.add_trace(go.Scatter(
        x=coords[uniq, 0], y=coords[uniq, 1], mode="markers+text", name="in the prompt",
        marker=dict(size=9, color="#E4572E", line=dict(width=1, color="white")),
        text=[plotly_text(lab[i]) for i in uniq], textposition="top center", textfont=dict(size=12),
        hovertext=[f"{i} {plotly_text(lab[i])}" for i in uniq], hoverinfo="text",
    ))
    if highlight is not None:
        fig.add_trace(go.Scatter(
            x=[coords[highlight, 0]], y=[coords[highlight, 1]], mode="markers", name="chosen token",
            marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(width=2.5, color="#4C6FFF")),
            hoverinfo="skip",
        ))
    fig.update_xaxes(title=f"PC 1 ({explained[0]:.1%} of variance)", zeroline=False)
    fig.update_yaxes(title=f"PC 2 ({explained[1]:.1%} of variance)", zeroline=False)
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=40, b=10),  # the legend above the plot, not on it
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), **_CLEAR)
    return fig


def position_heatmap(P: np.ndarray, title: str = "") -> go.Figure:
    """P (N, d): the vector added at each position, one row per position."""
    N, d = P.shape
    lim = float(np.abs(P).max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=P.astype(np.float32), x=list(range(d)), y=list(range(N)),
        colorscale="RdBu", reversescale=True, zmin=-lim, zmax=lim,
        colorbar=dict(title=dict(text="value", side="right"), thickness=12),
        hovertemplate="position %{y}<br>dim %{x}<br>%{z:.3f}<extra></extra>", name="position vectors",
    ))
    fig.update_yaxes(autorange="reversed", title="position")
    fig.update_xaxes(title="dimension")
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=plotly_text(title) or None, **_CLEAR)
    return fig


def similarity_heatmap(S: np.ndarray, title: str = "") -> go.Figure:
    """S (N, N): cosine similarity of position m's vector with position n's."""
    N = S.shape[0]
    fig = go.Figure(go.Heatmap(
        z=S.astype(np.float32), x=list(range(N)), y=list(range(N)),
        colorscale="RdBu", reversescale=True, zmin=-1, zmax=1, colorbar=dict(title="cos", thickness=12),
        hovertemplate="positions %{y} and %{x}<br>cos %{z:.3f}<extra></extra>", name="cosine similarity",
    ))
    fig.update_yaxes(autorange="reversed", title="position", scaleanchor="x")
    fig.update_xaxes(title="position")
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=plotly_text(title) or None, **_CLEAR)
    return fig


# --------------------------------------------------------------------------------------------------------
# Sentences: each states only what the numbers passed in show
# --------------------------------------------------------------------------------------------------------


def scale_label(scale: float, d_model: int) -> str:
    """The embedding scale as a reader meets it: (13.856…, 192) -> '√192 ≈ 13.86'; (2.5, 192) -> '2.5'."""
    if math.isclose(scale, math.sqrt(d_model), rel_tol=1e-9):
        return f"√{d_model} ≈ {scale:.2f}"
    return f"{scale:g}"


def embed_scale_sentence(scale: float, d_model: int, token_median: float,
                         position_median: float | None = None) -> str:
    """What multiplying the token rows by `scale` before block 0 does to their length ('' when scale is 1).
    token_median: the median length of the rows as stored; position_median: that of the position vectors added
    next, if any — the comparison the scale exists for (Vaswani et al. 2017, §3.4)."""
    if scale == 1:
        return ""
    s = (f"Before block 0 this variant multiplies every token row by {scale_label(scale, d_model)} (as in Vaswani "
         f"et al. 2017, §3.4): a median length of {token_median:.2f} becomes {token_median * scale:.1f}")
    if position_median is not None:
        s += f", beside position vectors of median length {position_median:.2f}"
    return s + "."


def norms_caption(prompt_norms: np.ndarray, vocab_median: float, vocab_size: int, scale: float = 1.0,
                  d_model: int = 0, position_median: float | None = None) -> str:
    """The caption of `norms_bar`: the bars are the table's rows as stored, compared with the same rows of the
    whole vocabulary (like with like), then what the model's embedding scale makes of them, if it has one."""
    med = float(np.median(prompt_norms))
    s = (f"Each bar is the length of the token's row as stored in the table: median {med:.2f} for this prompt, "
         f"{vocab_median:.2f} over all {vocab_size:,} rows (dotted line).")
    extra = embed_scale_sentence(scale, d_model, med, position_median)
    return s + (" " + extra if extra else "")


def position_table_sentence(P: np.ndarray) -> str:
    """Row lengths of a position table P (N, d): one length for all (the sinusoidal formula gives √(d/2)), or the
    range, the median and the three longest rows (a learned table's first positions stand out)."""
    P = np.asarray(P, dtype=np.float64)
    norms = np.linalg.norm(P, axis=1)  # (N,)
    lo, hi, med = float(norms.min()), float(norms.max()), float(np.median(norms))
    if hi - lo <= 1e-4 * max(hi, 1e-12):
        return f"Every row has the same length, {med:.2f}."
    top = np.argsort(-norms, kind="stable")[:3]
    s = (f"Row lengths run from {lo:.2f} to {hi:.2f}, median {med:.2f}; the longest are "
         + ", ".join(f"position {int(i)} ({norms[i]:.2f})" for i in top) + ".")
    peak = np.abs(P).max(axis=1)  # (N,) each row's largest entry
    if peak.max() > 3 * np.median(peak):  # position_heatmap's colour limit is the largest entry of all
        s += (f" The colours run to ±{peak.max():.2f}, over 3× a typical row's largest entry "
              f"({np.median(peak):.2f}), so most rows look faint.")
    return s


def position_similarity_sentence(distances, mean: np.ndarray, p5: np.ndarray, p95: np.ndarray,
                                 tol: float = 0.05) -> str:
    """What a position table's cosine similarity does with distance (`model.analysis.geometry.cosine_by_distance`;
    distances ascending, the first one 1). Says 'falls as positions move apart' only when it does, 'flat' only
    when it stays within `tol` of its distance-1 value, and how far single pairs stray from the mean."""
    d = [int(x) for x, m in zip(distances, mean) if np.isfinite(m)]
    m = np.asarray([x for x in mean if np.isfinite(x)], dtype=np.float64)
    if not len(m):
        return ""
    s = ("Mean cosine similarity of two positions' vectors, over every pair that far apart: "
         + ", ".join(f"{v:.2f} at distance {k}" for k, v in zip(d, m)) + ".")
    if len(m) < 2:
        return s
    near = np.abs(m - m[0]) <= tol
    flat_to = len(m) if near.all() else int(np.argmin(near))  # entries 0 … flat_to-1 stay near distance 1
    if flat_to == len(m):
        s += f" It barely depends on distance: every mean is within {tol} of the one at distance {d[0]}."
    elif flat_to >= 3 and m[-1] < m[0] - tol:
        s += (f" Up to distance {d[flat_to - 1]} it stays within {tol} of its value at distance 1: neighbouring "
              f"positions are no more alike than positions {d[flat_to - 1]} apart, so by this measure the table does "
              f"not single out the token just before. Only farther apart does it fall, to {m[-1]:.2f} at distance "
              f"{d[-1]}.")
    elif m[-1] < m[0] - tol:
        steady = bool(np.all(np.diff(m) <= tol))
        s += (" It is highest for neighbours and falls as positions move apart: nearby positions get similar "
              "vectors." if steady and m[0] == m.max() else
              f" Overall it falls with distance, from {m[0]:.2f} to {m[-1]:.2f}, though not steadily.")
    else:
        s += f" It does not fall with distance ({m[0]:.2f} at distance {d[0]}, {m[-1]:.2f} at {d[-1]})."
    spread = float(p95[0] - p5[0]) if np.isfinite(p95[0]) else 0.0
    if spread > 2 * tol:
        s += (f" Single pairs stray far from these means: at distance {d[0]}, 5 % are below {p5[0]:.2f} and 5 % "
              f"above {p95[0]:.2f}.")
    return s


def untrained_sentence(n_untrained: int, vocab_size: int, examples: list[str], shown: bool,
                       median_untrained: float, median_trained: float) -> str:
    """What the map does with the tokens that never occur in the training text, from their count, a few of their
    labels and the median row length of each group."""
    if n_untrained == 0:
        return "Every token of the vocabulary occurs in the training text."
    ex = ", ".join(examples)
    s = (f"{n_untrained:,} of the {vocab_size:,} tokens never occur in the training text (e.g. {ex}): the model never read "
         "one and never had to predict one, so their rows carry nothing learned about how those tokens are used. "
         f"Their median row length is {median_untrained:.2f}, against {median_trained:.2f} for the trained rows.")
    if shown:
        return s + (" They are drawn as orange diamonds, and the PCA is computed over all rows, theirs included.")
    return s + (" They are left out of the map and of its PCA (the toggle above shows them); the neighbour list "
                "still searches every row.")
