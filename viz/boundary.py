"""The token-boundary lesson's figure: the model's top next-token guesses after the same text without and with
its trailing newline, side by side on one probability axis. Arrays and labels in, a `go.Figure` out; labels go
through `plotly_text`. No streamlit, no torch."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.tokens import plotly_text

COLOURS = ("#9AA3B2", "#4C6FFF")  # without, with the newline


def boundary_figure(titles: tuple[str, str], labels: tuple[list[str], list[str]],
                    probs: tuple[np.ndarray, np.ndarray]) -> go.Figure:
    """Two panels of horizontal bars, most likely at the top; one shared x range (0 to the largest p) so the
    two panels' bars compare directly."""
    top = max([float(np.max(p)) for p in probs if len(p)] + [0.01])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.16,
                        subplot_titles=[plotly_text(t).replace(" (", "<br>(", 1) for t in titles])  # fit a half width
    for j, (labs, p, colour) in enumerate(zip(labels, probs, COLOURS)):
        y = [f"{i + 1}. {plotly_text(l)}" for i, l in enumerate(labs)]
        p = np.asarray(p, dtype=np.float64)
        fig.add_trace(go.Bar(x=p, y=y, orientation="h", marker_color=colour, name=plotly_text(titles[j]),
                             text=[f"{v:.3f}" for v in p], textposition="outside", cliponaxis=False,
                             hovertemplate="%{y}: p = %{x:.4f}<extra></extra>"), row=1, col=j + 1)
        fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace"), row=1, col=j + 1,
                         title_text="top guesses, by rank" if j == 0 else None)
        fig.update_xaxes(range=[0, top * 1.25], title_text="p(next token)", row=1, col=j + 1)
    fig.update_annotations(font_size=13)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=60, b=10), showlegend=False)
    return fig
