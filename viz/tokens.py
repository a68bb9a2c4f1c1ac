"""Tokens as coloured boxes, and the safe way to put any token or user text into a Plotly figure.

Plotly renders a subset of HTML in every text it draws (titles, tick labels, hover text, bar text:
`<b>`, `<br>`, `<a href>`…) and decodes entities like `&lt;`. A token or a prompt is user data, so every
such string goes through `plotly_text` first: `<img src=x>` then shows as those characters, never as markup.
It is the one Plotly escaper: every figure module in viz/ uses it.

`token_boxes` lays tokens out left to right like text, wrapping at a line width (and after a newline), one
box per token, its width the length of its label. One Bar trace holds every box, so a test can read the
boxes back from the figure's data. `merge_steps_figure` draws a BPE merge replay: one row of boxes per step.
No streamlit, no torch.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

# Light fills that keep black text readable on a light or a dark page.
PAD = 0.7  # extra width per box, in characters, so a one-character token still has room around its text
PALETTE = ("#AEC7E8", "#FFBB78", "#98DF8A", "#FF9896", "#C5B0D5", "#C49C94", "#F7B6D2", "#DBDB8D", "#9EDAE5")


def plotly_text(s: str) -> str:
    """Escape a string so Plotly shows it as plain text: `<img src=x>` -> `&lt;img src=x&gt;`.

    Plotly decodes these entities back to the characters when it draws, so the viewer reads the original.
    """
    return html.escape(str(s), quote=False)


def axis_labels(labels: list[str]) -> list[str]:
    """Unique, escaped category labels "index label" for a heatmap axis (tokens repeat; categories must not)."""
    return [f"{i} {plotly_text(l)}" for i, l in enumerate(labels)]


def _layout_rows(labels: list[str], line_chars: int, breaks: list[bool]) -> tuple[list[int], list[float], list[float]]:
    """Row, start and width (in characters) of each box, flowing like text."""
    rows, starts, widths = [], [], []
    row, x = 0, 0.0
    for label, brk in zip(labels, breaks):
        w = len(label) + PAD
        if x > 0 and x + w > line_chars:
            row, x = row + 1, 0.0
        rows.append(row)
        starts.append(x)
        widths.append(w)
        x += w
        if brk:
            row, x = row + 1, 0.0
    return rows, starts, widths


def token_boxes(
    labels: list[str],
    hover: list[str] | None = None,
    breaks: list[bool] | None = None,
    line_chars: int = 30,
    colours: list[str] | None = None,
    row_names: list[str] | None = None,
    title: str = "",
) -> go.Figure:
    """One box per token (label = the token's visible text), wrapping at `line_chars` characters.

    hover: one plain-text line set per token (escaped here; "\\n" becomes a line break). breaks: start a new
    row after this token (e.g. it ends in a newline). colours: a fill per token (default: cycle PALETTE so
    neighbours differ). row_names: a y-axis label per row (used by the merge replay: "step 3").
    """
    n = len(labels)
    breaks = breaks if breaks is not None else [False] * n
    rows, starts, widths = _layout_rows(labels, line_chars, breaks)
    colours = colours if colours is not None else [PALETTE[i % len(PALETTE)] for i in range(n)]
    hover = hover if hover is not None else list(labels)
    n_rows = (max(rows) + 1) if rows else 1
    fig = go.Figure(go.Bar(
        orientation="h",
        y=rows,
        base=starts,
        x=[w - 0.15 for w in widths],  # a small gap between neighbours
        text=[plotly_text(l) for l in labels],
        textposition="inside",
        insidetextanchor="middle",
        textangle=0,  # never rotate a label that does not fit; shrink it (down to uniformtext.minsize)
        textfont=dict(color="#111111", family="monospace", size=15),
        marker=dict(color=colours, line=dict(width=0)),
        hovertext=[plotly_text(h).replace("\n", "<br>") for h in hover],
        hoverinfo="text",
        width=0.82,
        name="tokens",
        showlegend=False,
    ))
    fig.update_xaxes(visible=False, range=[-0.3, line_chars + 0.3], fixedrange=True)
    fig.update_yaxes(
        autorange=False, range=[n_rows - 0.5, -0.5], fixedrange=True,
        showgrid=False, zeroline=False,
        tickmode="array" if row_names else None,
        tickvals=list(range(len(row_names))) if row_names else None,
        ticktext=[plotly_text(r) for r in row_names] if row_names else None,
        visible=bool(row_names),
    )
    fig.update_layout(
        height=38 * n_rows + (60 if title else 24),
        margin=dict(l=10, r=10, t=40 if title else 8, b=8),
        title=plotly_text(title) or None,
        bargap=0.1,
        plot_bgcolor="rgba(0,0,0,0)",
        paper_bgcolor="rgba(0,0,0,0)",
        uniformtext=dict(minsize=11, mode="show"),
    )
    return fig


def merge_steps_figure(steps: list[list[str]], merged_at: list[int | None], line_chars: int = 60) -> go.Figure:
    """A BPE merge replay: row k shows the pieces after k merges (row 0: single bytes).

    steps: the piece labels at each step. merged_at: per step, the index of the piece the last merge
    produced (None for step 0); it is drawn in a stronger colour so the eye follows the merge.
    """
    labels, colours, hover, breaks, names = [], [], [], [], []
    for k, (pieces, hit) in enumerate(zip(steps, merged_at)):
        for i, p in enumerate(pieces):
            labels.append(p)
            colours.append("#FFBB78" if i == hit else "#D9DEE8")
            hover.append(f"step {k}, piece {i}: {p}")
            breaks.append(i == len(pieces) - 1)
        names.append("bytes" if k == 0 else f"merge {k}")
    fig = token_boxes(labels, hover=hover, breaks=breaks, line_chars=line_chars, colours=colours, row_names=names)
    fig.update_layout(margin=dict(l=70, r=10, t=8, b=8))
    # automargin widens the left margin to fit the title beside the "merge 12" labels
    fig.update_yaxes(tickfont=dict(size=12), title=dict(text="step", font=dict(size=12)), automargin=True)
    return fig
