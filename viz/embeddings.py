"""Embedding figures: the prompt's token vectors, their norms, the vocabulary's 2-D map, position tables.

Arrays and labels in, `go.Figure` out. Every token label goes through `plotly_text` (see viz/tokens.py).
No streamlit, no torch.
"""

from __future__ import annotations

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
    fig.update_xaxes(tickangle=-60 if len(labels) > 12 else 0)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), **_CLEAR)
    return fig


def vocab_map(
    coords: np.ndarray,
    vocab_labels: list[str],
    marked: list[int],
    marked_labels: list[str],
    explained: np.ndarray,
    highlight: int | None = None,
) -> go.Figure:
    """The whole vocabulary projected on its first two principal components (grey dots), the prompt's tokens
    marked and labelled, and one token (`highlight`, a vocabulary index) ringed."""
    fig = go.Figure()
    fig.add_trace(go.Scattergl(
        x=coords[:, 0], y=coords[:, 1], mode="markers", name="vocabulary",
        marker=dict(size=4, color="rgba(136,136,136,0.45)"),
        hovertext=axis_labels(vocab_labels), hoverinfo="text",
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
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.02, x=0), **_CLEAR)
    return fig


def position_heatmap(P: np.ndarray, title: str = "") -> go.Figure:
    """P (N, d): the vector added at each position, one row per position."""
    N, d = P.shape
    lim = float(np.abs(P).max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=P.astype(np.float32), x=list(range(d)), y=list(range(N)),
        colorscale="RdBu", reversescale=True, zmin=-lim, zmax=lim, colorbar=dict(thickness=12),
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
