"""The forward path as a diagram: one box per stage, its live tensor shape (every axis named) inside it, a
plain-language definition on hover, and the page that explains it attached for a click.

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
    help: str = ""  # a plain-language definition, shown on hover (a first-year student's first contact)
    page: str = ""  # the page file a click on the box opens ("" = none)


def dims(*named: tuple[int, str]) -> str:
    """A shape with each axis named: dims((48, "positions"), (6, "heads"), (32, "d_head")) ->
    '48 positions × 6 heads × 32 d_head'. Bare '[48, 6, 32]' leaves a student guessing which 32 is which."""
    return " × ".join(f"{n:,} {name}" for n, name in named)


ROW_PX = 54  # one stage: its name, its shape below it (two lines where one would not fit), the arrow
HIT_XS = (-0.66, -0.33, 0.0, 0.33, 0.66)  # invisible markers across each box: hover or click anywhere on it


def wrap(text: str, width: int = 58) -> str:
    """Plotly hover labels do not wrap by themselves: break at spaces with <br>."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join(lines + [line] if line else lines)


def pipeline_figure(stages: list[Stage], n_layers: int, title: str = "") -> go.Figure:
    """Vertical flow, top to bottom: one box per stage with its name and, below it inside the box, its shape
    with every axis named. Nothing to the right of the boxes, so a narrow column (1280 px with the sidebar open)
    clips nothing. Hovering a box shows the stage's definition; each box carries its page in `customdata` for
    a click (the page reads the selection)."""
    fig = go.Figure()
    n = len(stages)
    ys = [n - 1 - i for i in range(n)]  # first stage on top
    # Shapes and arrows are collected and set once: each add_shape / add_annotation re-validates every one
    # added before it, so a loop of them costs O(n²) (88 ms -> 16 ms of CPU for this figure).
    shapes = [dict(type="rect", x0=-0.85, x1=0.85, y0=y - 0.42, y1=y + 0.42, layer="below", opacity=0.18,
                   line=dict(color=GROUP_COLOURS.get(s.group, "#888888"), width=2),
                   fillcolor=GROUP_COLOURS.get(s.group, "#888888")) for s, y in zip(stages, ys)]
    arrows = [dict(x=0, y=b + 0.42, ax=0, ay=a - 0.42, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                   arrowhead=2, arrowsize=1, arrowwidth=1.2, arrowcolor="#888", text="")
              for a, b in zip(ys[:-1], ys[1:])]
    fig.add_trace(go.Scatter(
        x=[0] * n, y=[y + 0.2 for y in ys], mode="text", text=[f"<b>{s.name}</b>" for s in stages],
        textfont=dict(size=14), hoverinfo="skip", showlegend=False, name="stage",
    ))
    fig.add_trace(go.Scatter(
        x=[0] * n, y=[y - 0.17 for y in ys], mode="text", text=[s.shape for s in stages],
        textfont=dict(size=12), hoverinfo="skip", showlegend=False, name="shape",
    ))
    hover = [f"<b>{s.name}</b><br>{wrap(s.help)}" + ("<br><i>Click to open its page.</i>" if s.page else "")
             for s in stages]
    fig.add_trace(go.Scatter(
        x=[x for _ in stages for x in HIT_XS], y=[y for y in ys for _ in HIT_XS], mode="markers",
        marker=dict(size=38, symbol="square", color="rgba(0,0,0,0)"),
        customdata=[s.page for s in stages for _ in HIT_XS], hovertext=[h for h in hover for _ in HIT_XS],
        hovertemplate="%{hovertext}<extra></extra>", showlegend=False, name="stage-hit",
    ))
    block = [y for s, y in zip(stages, ys) if s.in_block]
    if block:
        top, bottom = max(block) + 0.5, min(block) - 0.5
        shapes.append(dict(type="rect", x0=-0.92, x1=0.92, y0=bottom, y1=top, line=dict(color="#888", dash="dot")))
        arrows.append(dict(x=-0.97, y=(top + bottom) / 2, text=f"× {n_layers} blocks", showarrow=False,
                           textangle=-90, font=dict(size=14)))
    fig.update_layout(shapes=shapes, annotations=arrows)
    fig.update_xaxes(visible=False, range=[-1.02, 0.95], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-0.6, n - 0.4], fixedrange=True)
    fig.update_layout(height=ROW_PX * n + 30, margin=dict(l=4, r=4, t=40 if title else 4, b=4),
                      title=title or None, plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
                      hoverlabel=dict(align="left"), clickmode="event+select", dragmode=False)
    return fig
