"""The forward path as a diagram: one box per stage, its live tensor shape beside it.

Input is a list of `Stage`s (plain strings); the repeated transformer block is drawn inside one bracket
marked "× L". No streamlit, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

GROUP_COLOURS = {
    "io": "#8E9AAF",  # text, tokens, logits, sampling
    "embed": "#4C6FFF",
    "attn": "#E4572E",
    "mlp": "#29A36A",
    "norm": "#B07CC6",
}


@dataclass(frozen=True)
class Stage:
    name: str  # "RMSNorm"
    shape: str  # "[12, 192]"
    group: str  # a key of GROUP_COLOURS
    in_block: bool = False  # inside the repeated transformer block


def pipeline_figure(stages: list[Stage], n_layers: int, title: str = "") -> go.Figure:
    """Vertical flow, top to bottom. Box centres at x=0; shapes as text at x=0.62."""
    fig = go.Figure()
    n = len(stages)
    ys = [n - 1 - i for i in range(n)]  # first stage on top
    # Shapes and arrows are collected and set once: each add_shape / add_annotation re-validates every one
    # added before it, so a loop of them costs O(n²) (88 ms -> 16 ms of CPU for this figure).
    shapes = [dict(type="rect", x0=-0.45, x1=0.45, y0=y - 0.36, y1=y + 0.36, layer="below", opacity=0.18,
                   line=dict(color=GROUP_COLOURS.get(s.group, "#888888"), width=2),
                   fillcolor=GROUP_COLOURS.get(s.group, "#888888")) for s, y in zip(stages, ys)]
    arrows = [dict(x=0, y=b + 0.36, ax=0, ay=a - 0.36, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                   arrowhead=2, arrowsize=1, arrowwidth=1.2, arrowcolor="#888", text="")
              for a, b in zip(ys[:-1], ys[1:])]
    fig.add_trace(go.Scatter(
        x=[0] * n, y=ys, mode="text", text=[f"<b>{s.name}</b>" for s in stages],
        textfont=dict(size=14), hoverinfo="skip", showlegend=False, name="stage",
    ))
    fig.add_trace(go.Scatter(
        x=[0.62] * n, y=ys, mode="text", text=[s.shape for s in stages], textposition="middle right",
        textfont=dict(size=13, family="monospace"), hoverinfo="skip", showlegend=False, name="shape",
    ))
    block = [y for s, y in zip(stages, ys) if s.in_block]
    if block:
        top, bottom = max(block) + 0.5, min(block) - 0.5
        shapes.append(dict(type="rect", x0=-0.6, x1=0.55, y0=bottom, y1=top, line=dict(color="#888", dash="dot")))
        arrows.append(dict(x=-0.66, y=(top + bottom) / 2, text=f"× {n_layers} blocks", showarrow=False,
                           textangle=-90, font=dict(size=14)))
    fig.update_layout(shapes=shapes, annotations=arrows)
    fig.update_xaxes(visible=False, range=[-0.8, 1.9], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-0.7, n - 0.3], fixedrange=True)
    fig.update_layout(height=34 * n + 60, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=title or None, plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)")
    return fig
