"""Figures for comparing variants: training curves, held-out loss against baselines, parameters held and used
per token, loss by token position with the training length marked, attended distance per layer, the K/V sharing
of MHA / GQA / MQA, each positional encoding's signal, attention patterns side by side, and every variant's
next-token guess.

Arrays, dicts of arrays and labels in, a `go.Figure` out; no streamlit, no torch. Token labels are user text:
they go through `plotly_text` (escapes `<`, `>`, `&`) before they reach any text, tick or hover.
Each variant keeps one colour in every figure (`colour`).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.attention import MASK_GREY
from viz.tokens import axis_labels, plotly_text

VARIANT_COLOURS = {
    "gqa-rope": "#4C6FFF",
    "mha-rope": "#E4572E",
    "mqa-rope": "#009E73",  # Okabe–Ito bluish green: tells apart from mha-rope's vermilion with red–green deficiency
    "gqa-sinusoidal": "#F3A712",
    "gqa-learned": "#B07CC6",
    "gqa-alibi": "#17BECF",
    "gqa-none": "#7F7F7F",
    # the architecture comparison (drawn beside gqa-rope only)
    "gqa-postnorm": "#8C564B",
    "gqa-layernorm": "#BCBD22",
    "gqa-gelu": "#CC79A7",
    "gqa-moe": "#1B7837",
}
_FALLBACK = ["#8C564B", "#BCBD22", "#E377C2", "#1F77B4"]
_CLEAR = dict(paper_bgcolor="rgba(0,0,0,0)")


def colour(name: str, i: int = 0) -> str:
    return VARIANT_COLOURS.get(name, _FALLBACK[i % len(_FALLBACK)])


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far): [1, 3, 5], 2 -> [1, 2, 4]."""
    v = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(v, 0, 0.0))
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(0, i - window)
    return (c[i] - c[lo]) / (i - lo)


# --------------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------------


def training_curves(curves: dict[str, dict], window: int = 50) -> go.Figure:
    """curves[name] = {"train_loss": per-step list, "val": [{"step", "loss"}, …]}. The training loss is
    smoothed over `window` steps (a line); the held-out evaluations are markers in the same colour."""
    fig = go.Figure()
    for i, (name, c) in enumerate(curves.items()):
        col = colour(name, i)
        y = smooth(c.get("train_loss", []), window)
        fig.add_trace(go.Scatter(x=np.arange(1, len(y) + 1), y=y, mode="lines", name=f"{name} train",
                                 legendgroup=name, line=dict(color=col, width=1.8),
                                 hovertemplate=f"{name}<br>step %{{x}}: train %{{y:.3f}} (smoothed)<extra></extra>"))
        val = c.get("val", [])
        if val:
            fig.add_trace(go.Scatter(x=[v["step"] for v in val], y=[v["loss"] for v in val], mode="markers",
                                     name=f"{name} held-out", legendgroup=name,
                                     marker=dict(color=col, size=8, symbol="diamond", line=dict(width=1, color="#222")),
                                     hovertemplate=f"{name}<br>step %{{x}}: held-out %{{y:.3f}}<extra></extra>"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="training step",
                      yaxis_title="loss (nats/token)", legend=dict(font=dict(size=11)), hovermode="closest", **_CLEAR)
    fig.update_yaxes(range=_loss_range(curves))
    return fig


def _loss_range(curves: dict[str, dict]) -> Optional[list[float]]:
    """Start the y axis where the curves have settled a little: the first steps (≈ log V) would flatten the rest."""
    ys = [v for c in curves.values() for v in smooth(c.get("train_loss", []), 50)[100:]]
    ys += [v["loss"] for c in curves.values() for v in c.get("val", [])]
    if not ys:
        return None
    lo, hi = float(np.min(ys)), float(np.max(ys))
    return [lo - 0.1, min(hi, lo + 3.0) + 0.1]


def loss_bars(names: Sequence[str], bits_per_char: Sequence[float], baselines: dict[str, float],
              seeds: Optional[Mapping[str, Sequence[float]]] = None) -> go.Figure:
    """Held-out bits per character of each variant's shipped run as bars, the count-based baselines as dashed
    lines above. seeds[name] = that variant's value for every training seed (the shipped one included): where
    there are two or more, each seed is a dot and their mean ± sample sd a whisker, so the bar's gap to its
    neighbour can be read against the seed-to-seed spread."""
    fig = go.Figure(go.Bar(
        x=list(names), y=list(bits_per_char), marker_color=[colour(n, i) for i, n in enumerate(names)],
        text=[f"{b:.3f}" for b in bits_per_char], textposition="outside", name="shipped run",
        hovertemplate="%{x}: %{y:.4f} bits/char (shipped run)<extra></extra>",
    ))
    many = {n: np.asarray(seeds[n], dtype=np.float64) for n in names if seeds and len(seeds.get(n, ())) >= 2}
    if many:
        fig.add_trace(go.Scatter(
            x=[n for n, v in many.items() for _ in v], y=[float(x) for v in many.values() for x in v], mode="markers",
            name="each training seed", marker=dict(color="#222", size=7, opacity=0.7),
            hovertemplate="%{x}: %{y:.4f} bits/char (one seed)<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=list(many), y=[float(v.mean()) for v in many.values()], mode="markers", name="seed mean ± sd",
            marker=dict(symbol="diamond-wide", color="#222", size=11),
            error_y=dict(type="data", array=[float(v.std(ddof=1)) for v in many.values()], color="#222", thickness=2,
                         width=10),
            customdata=[[len(v), float(v.std(ddof=1))] for v in many.values()],
            hovertemplate="%{x}: mean %{y:.4f} ± %{customdata[1]:.4f} sd over %{customdata[0]} seeds<extra></extra>"))
    for j, (name, b) in enumerate(baselines.items()):
        fig.add_hline(y=b, line=dict(dash="dash", color="#555" if j else "#999"),
                      annotation_text=f"{plotly_text(name)} baseline {b:.2f}", annotation_position="top left")
    top = max(list(bits_per_char) + list(baselines.values()) + [0.0])
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=20, b=10), yaxis_title="bits per character",
                      xaxis_title="variant",
                      yaxis_range=[0, top * 1.12], showlegend=bool(many), **_CLEAR)
    return fig


def params_bars(names: Sequence[str], total: Sequence[int], active: Sequence[int]) -> go.Figure:
    """Each variant's parameters (all of them, the weights it holds) beside those one token's forward uses — equal
    except for a mixture of experts, where a token runs only k of the E experts' MLPs."""
    fig = go.Figure()
    for label, values, pattern in (("all parameters", total, ""), ("used per token", active, "/")):
        fig.add_trace(go.Bar(x=list(names), y=list(values), name=label, text=[f"{x:,}" for x in values],
                             textposition="outside", cliponaxis=False,
                             marker=dict(color=[colour(n, i) for i, n in enumerate(names)], pattern_shape=pattern,
                                         line=dict(width=1, color="#333")),
                             hovertemplate="%{x}: %{y:,} parameters (" + label + ")<extra></extra>"))
    fig.update_layout(barmode="group", height=330, margin=dict(l=10, r=10, t=20, b=10), yaxis_title="parameters",
                      xaxis_title="variant", yaxis_range=[0, max(list(total) + [1]) * 1.15],
                      legend=dict(orientation="h", y=1.08), **_CLEAR)
    return fig


def loss_by_position_figure(series: dict[str, dict], context: int, x_max: int) -> go.Figure:
    """series[name] = {"x": bucket centres, "y": bucket means, "end": last position evaluated, "note": str|None}.

    A dotted vertical line marks the training context: everything right of it is a position no model saw in
    training. A variant that stops early (a learned table) gets an ✕ where it ends, with its note.
    """
    fig = go.Figure()
    for i, (name, s) in enumerate(series.items()):
        col = colour(name, i)
        fig.add_trace(go.Scatter(x=s["x"], y=s["y"], mode="lines+markers", name=name, line=dict(color=col, width=2),
                                 marker=dict(size=4),
                                 hovertemplate=f"{name}<br>positions around %{{x:.0f}}: %{{y:.3f}} nats<extra></extra>"))
        if s.get("note") and len(s["x"]):
            fig.add_trace(go.Scatter(x=[s["end"]], y=[s["y"][-1]], mode="markers+text", name=f"{name}: ends",
                                     marker=dict(symbol="x", size=13, color=col, line=dict(width=2)),
                                     text=[plotly_text(s["note"].split(" (")[0])], textposition="top right",
                                     textfont=dict(color=col), showlegend=False,
                                     hovertemplate=plotly_text(s["note"]) + "<extra></extra>"))
    fig.add_vline(x=context, line=dict(dash="dot", color="#444", width=2))
    fig.add_annotation(x=context, yref="paper", y=1.0, text=f"training context = {context}", showarrow=False,
                       xanchor="left", yanchor="bottom", xshift=4)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="token position",
                      yaxis_title="loss (nats/token), bucket mean", hovermode="closest", **_CLEAR)
    fig.update_xaxes(range=[0, x_max + 8])
    return fig


# --------------------------------------------------------------------------------------------------------
# Attention statistics and sharing
# --------------------------------------------------------------------------------------------------------


def attended_distance_figure(stats: dict[str, np.ndarray], uniform: Optional[float] = None,
                             what: str = "mean attended distance (tokens)") -> go.Figure:
    """stats[name] = [layer, head] array. A line per variant through each layer's mean over heads, every head
    a faint dot around it; `uniform` is the same statistic for attention spread evenly over the context."""
    fig = go.Figure()
    for i, (name, a) in enumerate(stats.items()):
        a = np.asarray(a, dtype=np.float64)
        L, H = a.shape
        col = colour(name, i)
        fig.add_trace(go.Scatter(x=np.arange(L), y=a.mean(axis=1), mode="lines+markers", name=name,
                                 legendgroup=name, line=dict(color=col, width=2.5), marker=dict(size=9),
                                 hovertemplate=f"{name}<br>layer %{{x}}: mean over heads %{{y:.2f}}<extra></extra>"))
        xs = (np.arange(L)[:, None] + (i - len(stats) / 2) * 0.04 + np.zeros((1, H))).ravel()
        fig.add_trace(go.Scatter(x=xs, y=a.ravel(), mode="markers", name=f"{name} heads", legendgroup=name,
                                 showlegend=False, marker=dict(color=col, size=6, opacity=0.45),
                                 customdata=[[l, h] for l in range(L) for h in range(H)],
                                 hovertemplate=f"{name}<br>layer %{{customdata[0]}} head %{{customdata[1]}}: "
                                               "%{y:.2f}<extra></extra>"))
    if uniform is not None:
        fig.add_hline(y=uniform, line=dict(dash="dash", color="#888"),
                      annotation_text=f"attention spread evenly: {uniform:.1f}", annotation_position="top right")
    L = max((np.asarray(a).shape[0] for a in stats.values()), default=1)
    fig.update_xaxes(title_text="layer", tickvals=list(range(L)))
    fig.update_yaxes(title_text=what, rangemode="tozero")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=20, b=10), hovermode="closest", **_CLEAR)
    return fig


def kv_sharing_compare(heads: dict[str, tuple[int, int]]) -> go.Figure:
    """heads[name] = (n_heads, n_kv_heads). One panel per variant: query heads on top, K/V heads below, a line
    from query head h to the K/V head it reads, h // (n_heads / n_kv_heads) (Llama's repeat_kv order)."""
    names = list(heads)
    fig = make_subplots(rows=1, cols=len(names), horizontal_spacing=0.05,
                        subplot_titles=[f"{n}:<br>{h} query / {k} K/V head{'s' if k > 1 else ''}"  # a third width
                                        for n, (h, k) in heads.items()])
    for c, name in enumerate(names):
        H, K = heads[name]
        g = H // K
        col = colour(name, c)
        kv_x = [(j * g + (g - 1) / 2) for j in range(K)]  # each K/V head sits under its group
        for h in range(H):
            fig.add_trace(go.Scatter(x=[h, kv_x[h // g]], y=[1, 0], mode="lines", line=dict(color=col, width=2),
                                     hoverinfo="skip", showlegend=False, name=f"{name} q{h}-kv{h // g}"),
                          row=1, col=c + 1)
        fig.add_trace(go.Scatter(x=list(range(H)), y=[1] * H, mode="markers+text", text=[f"q{h}" for h in range(H)],
                                 textposition="top center", showlegend=False, name=f"{name} query heads",
                                 marker=dict(size=16, color="#FFFFFF", line=dict(width=2, color=col)),
                                 hovertext=[f"query head {h} reads K/V head {h // g}" for h in range(H)],
                                 hoverinfo="text"), row=1, col=c + 1)
        fig.add_trace(go.Scatter(x=kv_x, y=[0] * K, mode="markers+text", text=[f"kv{j}" for j in range(K)],
                                 textposition="bottom center", showlegend=False, name=f"{name} K/V heads",
                                 marker=dict(size=20, symbol="square", color=col, line=dict(width=1, color="#333")),
                                 hovertext=[f"K/V head {j}: read by query heads {j * g}–{j * g + g - 1}"
                                            for j in range(K)],
                                 hoverinfo="text"), row=1, col=c + 1)
        fig.update_xaxes(visible=False, range=[-0.8, H - 0.2], fixedrange=True, row=1, col=c + 1)
        fig.update_yaxes(visible=False, range=[-0.7, 1.7], fixedrange=True, row=1, col=c + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=55, b=10), plot_bgcolor="rgba(0,0,0,0)", **_CLEAR)
    return fig


# --------------------------------------------------------------------------------------------------------
# Position signals
# --------------------------------------------------------------------------------------------------------


def position_signals_figure(rope_angles: np.ndarray, sinusoidal: np.ndarray, learned: Optional[np.ndarray],
                            alibi_slopes: np.ndarray, n_bias: int = 64) -> go.Figure:
    """What each encoding feeds the model, for positions 0 … T−1:
    RoPE: cos(m·θᵢ) per position and frequency pair (it rotates q and k by these angles, nothing is added);
    sinusoidal: its fixed table, added to the input; learned: the trained table (None when not available);
    ALiBi: the bias −slope·(q − k) of its steepest and its shallowest head, added to the scores;
    none: nothing at all — only the causal mask.
    Tables are coloured up to the 99th percentile of |value| (the learned table has a few outlying rows); the
    hover shows exact values.
    """
    slopes = np.asarray(alibi_slopes, dtype=np.float64)
    steep, shallow = int(np.argmax(slopes)), int(np.argmin(slopes))
    far = n_bias - 1
    titles = ["RoPE: cos(m·θᵢ) rotates q and k", "sinusoidal: a fixed table added to x",
              "learned: a trained table added to x" if learned is not None else "learned: (no checkpoint)",
              f"ALiBi, steepest head {steep}: −{slopes[steep]:.3g}·(q−k),<br>"
              f"−{slopes[steep] * far:.3g} at distance {far}",
              f"ALiBi, gentlest head {shallow}: −{slopes[shallow]:.3g}·(q−k),<br>"
              f"−{slopes[shallow] * far:.3g} at distance {far}",
              "none: nothing is added;<br>only the causal mask remains"]
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.05, vertical_spacing=0.2)

    def table(z, row, col, name, xlab):
        lim = float(np.nanpercentile(np.abs(z), 99)) or 1.0  # a few outlying rows would wash out the rest
        fig.add_trace(go.Heatmap(z=z, zmin=-lim, zmax=lim, zmid=0, colorscale="RdBu_r", showscale=False, name=name,
                                 hovertemplate="position %{y}, " + xlab + " %{x}: %{z:.3f}<extra>" + name + "</extra>"),
                      row=row, col=col)
        fig.update_xaxes(title_text=xlab, row=row, col=col)
        fig.update_yaxes(title_text="position m" if col == 1 else None, autorange="reversed", row=row, col=col)

    table(np.cos(rope_angles), 1, 1, "RoPE", "pair i")
    table(sinusoidal, 1, 2, "sinusoidal", "dimension")
    if learned is not None:
        table(learned, 1, 3, "learned", "dimension")
    m = np.arange(n_bias)
    dist = m[:, None] - m[None, :]  # (n, n) how far back each key is
    for c, h in ((1, steep), (2, shallow)):  # each on its own scale (the gentle one would vanish on the steep one's)
        fig.add_trace(go.Heatmap(z=np.where(dist >= 0, -slopes[h] * dist, np.nan), zmin=-slopes[h] * far, zmax=0,
                                 colorscale="Reds_r", showscale=False, name=f"ALiBi head {h}",
                                 hovertemplate="query %{y}, key %{x}: bias %{z:.4f}<extra></extra>"), row=2, col=c)
    fig.add_trace(go.Heatmap(z=np.where(dist >= 0, 0.0, np.nan), zmin=-1, zmax=1, colorscale="RdBu_r",
                             showscale=False, name="none", hovertemplate="query %{y}, key %{x}: nothing added"
                             "<extra></extra>"), row=2, col=3)
    for c in (1, 2, 3):
        fig.update_xaxes(title_text="key", row=2, col=c)
        fig.update_yaxes(title_text="query" if c == 1 else None, autorange="reversed", row=2, col=c)
    fig.update_annotations(font_size=12, yshift=8)  # two-line titles clear the plot
    fig.update_layout(height=720, margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor=MASK_GREY, **_CLEAR)
    return fig


# --------------------------------------------------------------------------------------------------------
# The prompt, live
# --------------------------------------------------------------------------------------------------------


def _hover_pairs(labels: Sequence[str]) -> np.ndarray:
    names = axis_labels(list(labels))  # "index label", escaped
    return np.array([[f"{q} → {k}" for k in names] for q in names], dtype=object)  # (T, T)


def attention_side_by_side(patterns: dict[str, np.ndarray], labels: Sequence[str], layer: int) -> go.Figure:
    """patterns[name] = [head, query, key] of one layer for the same prompt. A row per variant, a column per
    head; masked cells (above the diagonal) are grey. Hover names the query and key tokens."""
    names = list(patterns)
    H = max(p.shape[0] for p in patterns.values())
    T = len(labels)
    hover = _hover_pairs(labels)
    fig = make_subplots(rows=len(names), cols=H, horizontal_spacing=0.01,
                        vertical_spacing=0.05 if len(names) > 1 else 0,
                        row_titles=[plotly_text(n) for n in names],
                        # "H0": "head 0" did not fit a sixth of a phone's width
                        subplot_titles=[f"H{h}" if r == 0 else "" for r in range(len(names)) for h in range(H)])
    causal = np.tril(np.ones((T, T), dtype=bool))
    for r, name in enumerate(names):
        p = patterns[name]
        for h in range(p.shape[0]):
            z = np.where(causal, p[h], np.nan)
            fig.add_trace(go.Heatmap(z=z, zmin=0, zmax=1, colorscale="Viridis", customdata=hover,
                                     showscale=(r == 0 and h == 0),
                                     colorbar=dict(title=dict(text="attention", side="right"), thickness=10,
                                                   len=0.5),
                                     name=f"{name} L{layer} H{h}",
                                     hovertemplate="%{customdata}<br>%{z:.3f}<extra>" + f"{name} head {h}</extra>"),
                          row=r + 1, col=h + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", autorange="reversed")
    fig.update_annotations(font_size=12)
    # The variant names (make_subplots' row titles: rotated, at the right, where the colour bar also is) read
    # horizontally in the left margin instead, in the theme's text colour.
    fig.update_annotations(selector=dict(textangle=90), textangle=0, x=-0.01, xanchor="right", font_size=12)
    fig.update_layout(height=140 * len(names) + 50, margin=dict(l=120, r=10, t=30, b=10), plot_bgcolor=MASK_GREY,
                      **_CLEAR)
    return fig


def next_token_bars(dists: dict[str, tuple[Sequence[str], Sequence[float]]], cols: int = 4) -> go.Figure:
    """dists[name] = (top-k token labels, their probabilities), most likely first: one small bar chart each."""
    names = list(dists)
    rows = -(-len(names) // cols)
    top = max((max(p) for _, p in dists.values() if len(p)), default=1.0)  # one shared scale, so panels compare
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[plotly_text(n) for n in names],
                        horizontal_spacing=0.09, vertical_spacing=0.14)
    for i, name in enumerate(names):
        labels, probs = dists[name]
        ticks = [plotly_text(l) for l in labels]
        fig.add_trace(go.Bar(x=list(probs), y=ticks, orientation="h", marker_color=colour(name, i), name=name,
                             text=[f"{p:.0%}" for p in probs], textposition="outside", cliponaxis=False,
                             hovertemplate="%{y}: %{x:.3f}<extra>" + plotly_text(name) + "</extra>"),
                      row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace", size=11), row=i // cols + 1,
                         col=i % cols + 1)
        fig.update_xaxes(range=[0, min(1.0, top * 1.3)], tickformat=".0%", row=i // cols + 1, col=i % cols + 1)
    # Axis titles on the last row and the first column only: the panels share both scales, and a title under
    # an upper row would run into the panel titles of the row below.
    for i in range((rows - 1) * cols, len(names)):
        fig.update_xaxes(title_text="probability", title_font=dict(size=11), row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(title_text="next token", title_font=dict(size=11), col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=260 * rows + 30, margin=dict(l=10, r=10, t=40, b=10), showlegend=False, **_CLEAR)
    return fig


def last_token_attention(rows: dict[str, np.ndarray], labels: Sequence[str], n_layers: int) -> go.Figure:
    """rows[name] = [layer·head, key]: what the last prompt token — the one whose next token is predicted —
    attends to, in every layer and head (layers stacked top to bottom), over the *last* n keys of the prompt
    (n = the rows' width). `labels` is the whole prompt's, so each key is named by its real position: a row cut
    to the last 48 of 200 keys starts at key 152, not 0. One panel per variant, at most four a row."""
    names = list(rows)
    # At most four panels a row: seven side by side were 45 px each on a phone and their titles ran into each
    # other; names broken after their first "-" ("gqa-<br>sinusoidal") for the same reason.
    ncol = min(4, max(1, len(names)))
    nrow = -(-len(names) // ncol)
    fig = make_subplots(rows=nrow, cols=ncol, horizontal_spacing=0.02, vertical_spacing=0.3 / nrow,
                        subplot_titles=[plotly_text(n).replace("-", "-<br>", 1) for n in names])
    n_keys = max((np.asarray(r).shape[1] for r in rows.values()), default=0)
    first = len(labels) - n_keys
    keys = axis_labels(list(labels))[first:]  # "position token", positions first … T − 1
    for c, name in enumerate(names):
        a = np.asarray(rows[name])
        H = a.shape[0] // n_layers
        ylab = [f"L{i // H} H{i % H}" for i in range(a.shape[0])]
        r, col = c // ncol + 1, c % ncol + 1
        fig.add_trace(go.Heatmap(z=a, x=keys, y=ylab, zmin=0, zmax=1, colorscale="Viridis",
                                 showscale=c == len(names) - 1,
                                 colorbar=dict(title=dict(text="attention", side="right"), thickness=10), name=name,
                                 hovertemplate="%{y} → key %{x}<br>%{z:.3f}<extra>" + plotly_text(name) + "</extra>"),
                      row=r, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, tickfont=dict(size=9), row=r, col=col)
        if col == 1:
            fig.update_yaxes(title_text="layer, head", row=r, col=col)
    # The keys are named (position and token, vertical; Plotly thins them when a panel is narrow).
    fig.update_xaxes(tickangle=-90, tickfont=dict(family="monospace", size=9))
    # One x title, under the first panel of the last row: repeated under each, they ran into each other.
    fig.update_xaxes(title_text=f"keys {first}–{len(labels) - 1}", title_font=dict(size=10), row=nrow, col=1)
    fig.update_annotations(font_size=10)
    fig.update_layout(height=60 + 420 * nrow, margin=dict(l=10, r=10, t=50, b=10), **_CLEAR)
    return fig
