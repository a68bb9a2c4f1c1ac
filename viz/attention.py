"""Attention figures: every layer × head at once (the "model view"), one head zoomed with its raw scores,
every role's scores side by side, and which query heads share each K/V head.

Arrays and labels in, `go.Figure` out. Cells a query may not read (the causal mask) are NaN in the figure and
are drawn grey by a separate "mask" trace, so the mask is visible rather than a sea of zeros. Token labels go
through `plotly_text`. No streamlit, no torch.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.tokens import PALETTE, axis_labels, plotly_text

MASK_GREY = "#B4B4B4"  # masked cells: stands apart from Viridis' dark end and from both page themes
_CLEAR = dict(paper_bgcolor="rgba(0,0,0,0)")


def _mask_trace(masked: np.ndarray, x=None, y=None) -> go.Heatmap:
    """Grey cells where the query may not read the key (NaN elsewhere, so the real heatmap shows)."""
    return go.Heatmap(z=np.where(masked, 1.0, np.nan).astype(np.float32), x=x, y=y, name="mask",
                      colorscale=[[0, MASK_GREY], [1, MASK_GREY]], showscale=False, hoverinfo="skip")


def _masked(a: np.ndarray, masked: np.ndarray | None) -> np.ndarray:
    a = np.array(a, dtype=np.float32)
    a[~np.isfinite(a)] = np.nan
    if masked is not None:
        a[..., masked] = np.nan
    return a


def attention_grid(
    patterns: list[np.ndarray],
    masked: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    role: str = "",
    sort: bool = False,
    kv_of_head: list[int] | None = None,
    first_layer: int = 0,
    first_head: int = 0,
) -> go.Figure:
    """patterns: one [head, q, k] array per layer. One small heatmap per (layer, head), layers as rows.
    first_layer, first_head: the numbers of the first row's layer and the first column's head, when the arrays
    are one page of a larger model (titles and hover name the real layer and head).

    masked: [q, k] True where the query may not read the key. scores: [layer, head] role scores; each
    panel's title then shows its score and its frame is drawn with opacity = score, so strong heads stand
    out. sort: order each layer's heads by that score, highest first (titles keep the real head number).
    kv_of_head: the K/V head each query head reads (GQA/MQA), shown in the title.
    """
    L, H = len(patterns), patterns[0].shape[0]
    order = [list(range(H)) for _ in range(L)]
    if sort and scores is not None:
        order = [list(np.argsort(-np.nan_to_num(scores[l], nan=-1.0), kind="stable")) for l in range(L)]

    def title(l: int, h: int) -> str:
        # One short line per fact: on one line the titles ran into each other below ~1100 px.
        t = f"L{first_layer + l} H{first_head + h}"
        if kv_of_head is not None:
            t += f"<br>(kv{kv_of_head[h]})"
        if scores is not None and np.isfinite(scores[l, h]):
            t += f"<br>· {scores[l, h]:.2f}"
        return t

    fig = make_subplots(
        rows=L, cols=H, subplot_titles=[title(l, h) for l in range(L) for h in order[l]],
        horizontal_spacing=0.014, vertical_spacing=0.36 / L if L > 1 else 0.0,
    )
    frames = []
    for l in range(L):
        for c, h in enumerate(order[l]):
            if masked is not None:
                fig.add_trace(_mask_trace(masked), row=l + 1, col=c + 1)
            fig.add_trace(go.Heatmap(
                z=_masked(patterns[l][h], masked), zmin=0, zmax=1, colorscale="Viridis",
                showscale=(l == 0 and c == 0), colorbar=dict(title=dict(text="attention", side="right"), thickness=12, len=0.6),
                hovertemplate="query %{y} → key %{x}<br>%{z:.3f}<extra>" + f"L{first_layer + l} H{first_head + h}"
                              + "</extra>",
                name=f"L{first_layer + l} H{first_head + h}",
            ), row=l + 1, col=c + 1)
            if scores is not None and np.isfinite(scores[l, h]):
                n = l * H + c + 1
                ax = "" if n == 1 else str(n)
                frames.append(dict(type="rect", xref=f"x{ax} domain", yref=f"y{ax} domain", x0=-0.015, x1=1.015,
                                   y0=-0.015, y1=1.015, line=dict(color="#E4572E", width=3),
                                   opacity=float(np.clip(scores[l, h], 0, 1))))
    # Set once: add_shape in the loop re-validated every earlier frame (O(n²) in the L×H panels).
    fig.update_layout(shapes=frames)
    T = patterns[0].shape[-1]
    # Exact ranges: no padding band of plot background (which is the mask's grey) around the cells.
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, range=[-0.5, T - 0.5])
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, range=[T - 0.5, -0.5])
    fig.update_annotations(font_size=10)
    fig.update_layout(
        height=170 * L + 100, margin=dict(l=10, r=10, t=90, b=10), plot_bgcolor="rgba(0,0,0,0)", **_CLEAR,
        # at the very top of the margin, above the first row's three-line panel titles
        title=dict(text=plotly_text(f"colour frame and title = {role} score") if role and scores is not None else None,
                   font=dict(size=12), y=1, yref="container", yanchor="top", pad=dict(t=6)),
    )
    return fig


def head_zoom(pattern: np.ndarray, scores: np.ndarray, labels: list[str], title: str = "") -> go.Figure:
    """One head: the pre-softmax scores (left) and the pattern softmax makes of them (right), tokens on both
    axes (query down, key across). Masked scores are -inf; they show as grey."""
    cats = axis_labels(labels)
    T = len(cats)
    s = _masked(scores, None)
    p = np.array(pattern, dtype=np.float32)
    p[np.isnan(s)] = np.nan
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.18,
                        subplot_titles=("scores q·k/√d_head<br>(before softmax)",
                                        "pattern =<br>softmax(scores)"))
    mask = np.isnan(s)
    fig.add_trace(_mask_trace(mask, cats, cats), row=1, col=1)
    fig.add_trace(_mask_trace(mask, cats, cats), row=1, col=2)
    finite = s[np.isfinite(s)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    fig.add_trace(go.Heatmap(
        z=s, x=cats, y=cats, colorscale="RdBu", reversescale=True, zmid=0, zmin=-lim, zmax=lim,
        colorbar=dict(title=dict(text="score", side="right"), thickness=12, x=0.42, xanchor="left"), name="scores",
        hovertemplate="query %{y}<br>key %{x}<br>score %{z:.3f}<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Heatmap(
        z=p, x=cats, y=cats, colorscale="Viridis", zmin=0, zmax=1,
        colorbar=dict(title=dict(text="attention", side="right"), thickness=12, x=1.0), name="pattern",
        hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
    ), row=1, col=2)
    fig.update_yaxes(range=[T - 0.5, -0.5], showgrid=False, title="query", row=1, col=1)
    fig.update_yaxes(range=[T - 0.5, -0.5], showgrid=False, showticklabels=False, row=1, col=2)
    fig.update_xaxes(range=[-0.5, T - 0.5], showgrid=False, title="key", tickangle=-60)
    side = max(360, min(820, 13 * T + 160))
    fig.update_annotations(font_size=13)
    fig.update_layout(height=side, margin=dict(l=10, r=10, t=95 if title else 65, b=10),
                      plot_bgcolor="rgba(0,0,0,0)", title=plotly_text(title) or None, **_CLEAR)
    return fig


def role_heatmaps(scores: dict[str, np.ndarray], kv_of_head: list[int] | None = None) -> go.Figure:
    """Every role's [layer, head] scores, one panel per role (in the dict's order, two a row), values written in
    the cells and one shared 0–1 colour scale so panels compare. NaN cells (nothing to measure) show '–'."""
    roles = list(scores)
    L, H = np.asarray(scores[roles[0]]).shape
    cols = min(2, len(roles))
    rows = -(-len(roles) // cols)
    # Between rows, 90 px: narrow panels tilt the "H3 (kv1)" ticks, and they must clear the next row's titles.
    height = rows * (50 + 40 * L) + 40 + 90 * (rows - 1)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[plotly_text(r) for r in roles],
                        horizontal_spacing=0.08, vertical_spacing=90 / (height - 40) if rows > 1 else 0.0)
    x = [f"H{h}" + (f" (kv{kv_of_head[h]})" if kv_of_head is not None else "") for h in range(H)]
    y = [f"L{l}" for l in range(L)]
    for i, role in enumerate(roles):
        z = np.array(scores[role], dtype=np.float32)
        fig.add_trace(go.Heatmap(
            z=z, x=x, y=y, coloraxis="coloraxis", name=role,
            text=[[("–" if not np.isfinite(v) else f"{v:.2f}") for v in row] for row in z], texttemplate="%{text}",
            hovertemplate="%{y} %{x}<br>" + plotly_text(role) + " %{z:.3f}<extra></extra>",
        ), row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(autorange="reversed")
    # One title per row and per column of panels: the others share them (same heads, same layers).
    fig.update_xaxes(title=dict(text="head", font=dict(size=12)), row=rows)
    fig.update_yaxes(title=dict(text="layer", font=dict(size=12)), col=1)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title=dict(text="score", side="right"), thickness=12)),
                      **_CLEAR)
    return fig


def kv_sharing_figure(groups: list[list[int]]) -> go.Figure:
    """Query heads on top, K/V heads below, a line from each query head to the K/V head it reads."""
    H = sum(len(g) for g in groups)
    fig = go.Figure()
    for j, g in enumerate(groups):
        colour = PALETTE[j % len(PALETTE)]
        kv_x = float(np.mean(g))
        for h in g:
            fig.add_trace(go.Scatter(x=[h, kv_x], y=[1, 0], mode="lines", line=dict(color=colour, width=3),
                                     hoverinfo="skip", showlegend=False, name=f"q{h}-kv{j}"))
        fig.add_trace(go.Scatter(
            x=g, y=[1] * len(g), mode="markers+text", text=[f"q{h}" for h in g], textposition="top center",
            marker=dict(size=22, color=colour, line=dict(width=1, color="#444")), showlegend=False,
            name=f"query heads of kv{j}", hovertext=[f"query head {h} reads K/V head {j}" for h in g],
            hoverinfo="text",
        ))
        fig.add_trace(go.Scatter(
            x=[kv_x], y=[0], mode="markers+text", text=[f"kv{j}"], textposition="bottom center",
            marker=dict(size=28, symbol="square", color=colour, line=dict(width=1, color="#444")),
            showlegend=False, name=f"kv{j}", hovertext=[f"K/V head {j}: shared by {len(g)} query head(s)"],
            hoverinfo="text",
        ))
    fig.update_xaxes(visible=False, range=[-0.7, H - 0.3], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-0.6, 1.6], fixedrange=True)
    fig.update_layout(height=200, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="rgba(0,0,0,0)", **_CLEAR)
    return fig


def shared_keys_figure(K: np.ndarray, Qs: list[np.ndarray], heads: list[int], kv_head: int, labels: list[str],
                       rotated: bool) -> go.Figure:
    """One layer's K/V head and the query heads that read it, side by side: the keys K (T, d_head) of every
    prompt position, then each query head's queries (T, d_head), rows aligned by position. Every score of the
    group is a row of one of the query panels dotted with a row of the key panel (÷ √d_head). One colour scale
    per panel kind (keys, queries), centred at 0. rotated: the vectors are after RoPE."""
    T, d = K.shape
    # Short two-line panel titles: with 4–7 panels a column is ~100 px wide, and the long ones overprinted.
    # The shape and "after RoPE" hold for every panel, so they are said once, in the figure's title.
    titles = [f"keys<br>kv {kv_head}"] + [f"queries<br>head {h}" for h in heads]
    whole = ("after RoPE · " if rotated else "") + f"each panel {T} positions × {d} d_head"
    n = 1 + len(Qs)
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, horizontal_spacing=0.03, subplot_titles=titles)
    cats = [f"{i} {plotly_text(l)}" for i, l in enumerate(labels)]
    k_lim = float(np.abs(K).max()) or 1.0
    q_lim = max([float(np.abs(Q).max()) for Q in Qs] + [1e-9])
    for j, (M, lim, name) in enumerate([(K, k_lim, f"K/V head {kv_head}")]
                                       + [(Q, q_lim, f"query head {h}") for Q, h in zip(Qs, heads)]):
        fig.add_trace(go.Heatmap(
            z=np.asarray(M, dtype=np.float32), x=list(range(d)), y=cats, zmid=0, zmin=-lim, zmax=lim,
            colorscale="RdBu_r", showscale=j < 2, name=name,
            colorbar=dict(title=dict(text="key" if j == 0 else "query", side="right"), thickness=10, len=0.45,
                          y=0.75 if j == 0 else 0.22),
            hovertemplate="position %{y}<br>dim %{x}: %{z:.3f}<extra>" + name + "</extra>",
        ), row=1, col=j + 1)
        fig.update_xaxes(title_text="dim", row=1, col=j + 1)  # "d_head" is in the figure's title
    fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace", size=10), title_text="position",
                     row=1, col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=int(np.clip(14 * T + 160, 320, 920)), margin=dict(l=10, r=10, t=90, b=10),
                      title=dict(text=plotly_text(whole), font=dict(size=13), y=0.99, yanchor="top"), **_CLEAR)
    return fig
