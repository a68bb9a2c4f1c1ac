"""Logit-lens figures: what the model would predict at each position if it stopped after each block.

`lens_heatmap`: stages (rows) × positions (columns), each cell labelled with that stage's top prediction and
coloured by its probability. `next_token_heatmap`: the probability each stage gives to the token that really
comes next. Arrays and labels in, `go.Figure` out; labels go through `plotly_text`. No streamlit, no torch.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from viz.tokens import plotly_text

_CLEAR = dict(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")


def lens_heatmap(
    top_prob: np.ndarray,
    top_labels: list[list[str]],
    stages: list[str],
    pos_labels: list[str],
    first_pos: int = 0,
) -> go.Figure:
    """top_prob (S, T): probability of each stage's top token; top_labels (S, T) its label.

    pos_labels: the input token at each shown position (the lens at position t predicts token t+1).
    first_pos: the absolute index of the first shown position (for the axis labels).
    """
    S, T = top_prob.shape
    cols = [f"{first_pos + i} {plotly_text(l)}" for i, l in enumerate(pos_labels)]
    fig = go.Figure(go.Heatmap(
        z=np.asarray(top_prob, dtype=np.float32), x=cols, y=list(stages), zmin=0, zmax=1, colorscale="Viridis",
        # a cell holds about five characters: longer labels are cut (the hover has the whole label)
        text=[[plotly_text(t if len(t) <= 5 else t[:4] + "…") for t in row] for row in top_labels],
        texttemplate="%{text}", customdata=[[plotly_text(t) for t in row] for row in top_labels],
        textfont=dict(size=11), colorbar=dict(title=dict(text="p(top)", side="right"), thickness=12),
        name="top prediction",
        hovertemplate="after input %{x}<br>%{y}: top guess %{customdata}<br>p = %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title="read out")
    fig.update_xaxes(title="input token (the lens predicts the next one)", tickangle=-60, side="top")
    fig.update_layout(height=90 + 46 * S + 90, margin=dict(l=10, r=10, t=10, b=10), **_CLEAR)
    return fig


def next_token_heatmap(
    p_next: np.ndarray,
    stages: list[str],
    pos_labels: list[str],
    next_labels: list[str],
    first_pos: int = 0,
) -> go.Figure:
    """p_next (S, T): probability each stage gives to the actual next token (NaN at the last position)."""
    S, T = p_next.shape
    cols = [f"{first_pos + i} {plotly_text(l)}" for i, l in enumerate(pos_labels)]
    nxt = [plotly_text(l) for l in next_labels]
    z = np.asarray(p_next, dtype=np.float32)
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=list(stages), zmin=0, zmax=1, colorscale="Viridis",
        text=[[("" if not np.isfinite(v) else f"{v:.2f}") for v in row] for row in z], texttemplate="%{text}",
        textfont=dict(size=10), customdata=[nxt for _ in range(S)], name="p(actual next)",
        colorbar=dict(title=dict(text="p(next)", side="right"), thickness=12),
        hovertemplate="after input %{x}, the actual next token is %{customdata}<br>%{y}: p = %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title="read out")
    fig.update_xaxes(title="input token", tickangle=-60)
    fig.update_layout(height=90 + 40 * S + 90, margin=dict(l=10, r=10, t=10, b=10), **_CLEAR)
    return fig


def next_token_lines(p_next: np.ndarray, stages: list[str], position: int, label: str) -> go.Figure:
    """For one position: p(actual next token) per stage, and the mean over all positions, as two lines."""
    fig = go.Figure()
    mean = np.nanmean(p_next, axis=1) if np.isfinite(p_next).any() else np.full(len(stages), np.nan)
    fig.add_trace(go.Scatter(x=list(stages), y=mean.astype(np.float32), mode="lines+markers",
                             name="mean over positions", line=dict(color="#888", dash="dot")))
    fig.add_trace(go.Scatter(x=list(stages), y=np.asarray(p_next[:, position], dtype=np.float32),
                             mode="lines+markers", name=plotly_text(f"after {position} {label}"),
                             line=dict(color="#E4572E", width=3)))
    fig.update_yaxes(title="p(actual next token)", range=[0, 1.02])
    fig.update_xaxes(title="read out")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10),  # y: clear of the "1" tick beside the plot
                      legend=dict(orientation="h", y=1.08, yanchor="bottom", x=0), **_CLEAR)
    return fig



def embedding_row_sentence(top1: np.ndarray, input_ids: np.ndarray) -> str:
    """For a tied model: how many positions' top prediction at the embedding row (top1, (T,)) is their own input
    token — counted, not asserted, since the share differs from variant to variant and prompt to prompt."""
    top1, input_ids = np.asarray(top1), np.asarray(input_ids)
    k, T = int((top1 == input_ids).sum()), len(input_ids)
    return (f" At the *embedding* row, {k} of {T} positions \"predict\" their own input token: the unembedding is "
            "the embedding matrix transposed, so a token's own row tends to score highest against itself — the "
            "blocks have to move the stream away from it.")
