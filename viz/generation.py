"""Figures of step-through generation: the sampling breakdown, the history strip, the KV cache, the new token's
attention, and the sentence on what a step costs. Arrays and labels in, a `go.Figure` or text out; no
streamlit, no torch.

Token labels are user-controlled text (a prompt can contain `<b>`), and Plotly renders a few HTML tags in
text, so every label goes through `viz.tokens.plotly_text` before it reaches a figure.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.tokens import plotly_text

RAW, TEMPERED, FINAL = "#9AA3B2", "#4C6FFF", "#E4572E"
KEPT_SCALE = [[0.0, "#EEEEEE"], [0.5, "#EEEEEE"], [0.5, "#29A36A"], [1.0, "#29A36A"]]
# low → surprising (orange), high → expected (blue): no red-against-green, readable by colour-blind viewers
PROB_SCALE = [[0.0, "#F4A261"], [0.5, "#F3EFE0"], [1.0, "#8EC1EA"]]
# One colour per attention kind, in every chart of the page that shows them (this model's is drawn heavier).
KIND_COLOURS = {"MHA": "#8C6BB1", "GQA": "#2A9D8F", "MQA": "#E9A03B"}
MEASURED = "#222222"  # the cache's measured bytes


def prob_text(p: float) -> str:
    """A probability as a page prints it, never rounded to a false zero: 4 decimals from 0.0001 up, scientific
    below. 0.12345 -> '0.1235'; 3.2e-05 -> '3.2e-05'; 0.0 -> '0'."""
    p = float(p)
    if p == 0:
        return "0"
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


SHAPE_NAMES = {"b": "batch", "n": "positions", "kv": "K/V heads", "h": "heads", "d": "d_head", "L": "layers"}


def shape_text(**dims: int) -> str:
    """A tensor shape with every dimension named, in the order given, so equal sizes cannot be confused:
    shape_text(n=48, kv=2, d=32) -> '48 positions × 2 K/V heads × 32 d_head'."""
    return " × ".join(f"{v:,} {SHAPE_NAMES.get(k, k)}" for k, v in dims.items())


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 token', '2 tokens', '1,024 tokens' (many: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def top_slice(p: np.ndarray, n: int, must: int) -> np.ndarray:
    """Indices of the n largest entries of p (descending, ties by lower id), with `must` appended if absent.
    p=[.1, .5, .2, .2], n=2, must=0 -> [1, 2, 0]."""
    order = np.lexsort((np.arange(len(p)), -np.asarray(p)))[:n]
    return order if must in order else np.append(order, must)


# --------------------------------------------------------------------------------------------------------
# The sampling panel
# --------------------------------------------------------------------------------------------------------


def distribution_figure(
    labels: list[str],
    raw: np.ndarray,
    tempered: np.ndarray,
    final: np.ndarray,
    kept: list[np.ndarray],
    filter_names: list[str],
    chosen: int,
    ranks: np.ndarray,
    greedy: bool,
) -> go.Figure:
    """Bars for the shown tokens (already sliced, most probable first): raw softmax, after temperature, and the
    renormalised distribution that was drawn from; under them one row per filter, green where it keeps the
    token. `kept`: one bool array per filter (top-k, top-p, min-p), each applied to the previous survivors
    (greedy: one, the argmax, and no tempered bars: temperature 0 is a rule, not a distribution).
    `chosen`: index of the chosen token among the shown ones. `ranks`: each shown token's rank in `raw`."""
    n = len(labels)
    x = np.arange(n)
    ticks = [f"<b>{plotly_text(l)}</b>" if i == chosen else plotly_text(l) for i, l in enumerate(labels)]
    hover = [f"{plotly_text(l)} (rank {r + 1})" for l, r in zip(labels, ranks)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.76, 0.24], vertical_spacing=0.03)
    bars = [("raw softmax (T = 1)", raw, RAW)]
    if greedy:
        bars.append(("greedy: the argmax, no draw", final, FINAL))
    else:
        bars += [("after temperature", tempered, TEMPERED),
                 ("renormalised over the kept set: drawn from", final, FINAL)]
    for name, y, colour in bars:
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=colour, customdata=hover,
                             hovertemplate="%{customdata}<br>%{y:.3~g}<extra>" + name + "</extra>"), row=1, col=1)
    z = np.array([k.astype(int) for k in kept])  # (3, n)
    fig.add_trace(go.Heatmap(
        x=x, y=filter_names, z=z, zmin=0, zmax=1, colorscale=KEPT_SCALE, xgap=2, ygap=2,
        colorbar=dict(title=dict(text="filter", side="right"), tickvals=[0.25, 0.75], ticktext=["out", "kept"],
                      thickness=10, len=0.26, y=0, yanchor="bottom"),
        text=np.where(z == 1, "kept", "out"), customdata=np.array([hover] * len(kept)),
        hovertemplate="%{customdata}: %{text} by %{y}<extra></extra>", name="kept",
    ), row=2, col=1)
    ymax = max([float(np.max(a)) for a in (raw, tempered, final) if len(a)] + [1e-9])
    if 0 <= chosen < n:
        # A faint band behind the chosen token's bars and a small unboxed label in the headroom above every bar:
        # a boxed label at the bar's top covered the neighbouring tokens' bars.
        fig.add_vrect(x0=chosen - 0.5, x1=chosen + 0.5, fillcolor=FINAL, opacity=0.10, line_width=0, layer="below",
                      row=1, col=1)
        fig.add_annotation(x=chosen, y=ymax * 1.2, yanchor="top", text="▼ chosen", showarrow=False, row=1, col=1,
                           font=dict(color=FINAL, size=11))
    # The legend sits above the plot, anchored at its bottom: when narrow it wraps upward into the top margin,
    # never onto the bars.
    fig.update_layout(barmode="group", bargap=0.18, height=470, margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), hovermode="closest")
    fig.update_yaxes(title_text="probability", range=[0, ymax * 1.22], row=1, col=1)
    fig.update_yaxes(autorange="reversed", title_text="filter", row=2, col=1)
    fig.update_xaxes(tickvals=x, ticktext=ticks, tickangle=-45, tickfont=dict(family="monospace"), row=2, col=1,
                     title_text="token (most probable first)")
    return fig


# --------------------------------------------------------------------------------------------------------
# The history strip
# --------------------------------------------------------------------------------------------------------


def history_figure(labels: list[str], probs: np.ndarray, selected: int, chars_per_row: int = 72) -> go.Figure:
    """The chosen tokens in order, laid out like text, each a box coloured by the probability it had when
    chosen (raw softmax). Box width follows the label's length; the selected step is outlined. Each box's
    point index is its step, so a click (plotly selection) names the step."""
    starts, rows, widths = [], [], []
    x0, row = 0.0, 0
    for lab in labels:
        w = max(2, len(lab)) + 1.0
        if x0 > 0 and x0 + w > chars_per_row:
            row, x0 = row + 1, 0.0
        starts.append(x0)
        rows.append(row)
        widths.append(w)
        x0 += w + 0.4
    n_rows = row + 1
    fig = go.Figure(go.Bar(
        orientation="h", y=rows, x=widths, base=starts, width=0.82,
        text=[plotly_text(l) for l in labels], textposition="inside", insidetextanchor="middle", textangle=0,
        textfont=dict(family="monospace", size=13, color="#111"),
        marker=dict(color=probs, colorscale=PROB_SCALE, cmin=0, cmax=1,
                    line=dict(width=[3 if i == selected else 0.5 for i in range(len(labels))],
                              color=["#111" if i == selected else "#BBB" for i in range(len(labels))]),
                    showscale=False),
        customdata=np.stack([np.arange(len(labels)), probs], -1) if len(labels) else None,
        hovertemplate="step %{customdata[0]}: %{text}<br>p = %{customdata[1]:.3f}<extra></extra>",
        name="generated",
    ))
    fig.update_xaxes(visible=False, range=[-0.5, chars_per_row + 0.5], fixedrange=True)
    fig.update_yaxes(visible=False, autorange="reversed", fixedrange=True)
    fig.update_layout(height=34 * n_rows + 30, margin=dict(l=0, r=0, t=4, b=4), showlegend=False,
                      uniformtext=dict(minsize=9, mode="show"), dragmode=False, clickmode="event+select")
    return fig


# --------------------------------------------------------------------------------------------------------
# The KV cache
# --------------------------------------------------------------------------------------------------------


def position_labels(positions: np.ndarray, labels: list[str]) -> list[str]:
    """Axis categories that name each position and its token, unique because the position leads: '12 ·the'."""
    return [f"{p} {plotly_text(l)}" for p, l in zip(positions, labels)]


def cache_figure(K: np.ndarray, V: np.ndarray, positions: np.ndarray, labels: list[str], n_kv_heads: int,
                 head_dim: int, new_from: int) -> go.Figure:
    """One layer's cached K and V, [position, kv_head · d_head] each: one row per position seen, the rows
    added by the current step (positions >= new_from) boxed. Columns are grouped by K/V head."""
    n = len(positions)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.16,  # room for K's colour bar
                        # two lines each: on one line the K and V titles overprinted in a narrow column
                        subplot_titles=[f"{name}: {shape_text(n=n)} ×<br>{shape_text(kv=n_kv_heads)} ×"
                                        f"<br>{shape_text(d=head_dim)}" for name in "KV"])
    cols = [f"kv head {h}, dim {d}" for h in range(n_kv_heads) for d in range(head_dim)]
    rows = position_labels(positions, labels)
    for j, (name, M) in enumerate((("K", K), ("V", V))):
        lim = float(np.abs(M).max()) if M.size else 1.0
        fig.add_trace(go.Heatmap(
            z=M.astype(np.float32), x=cols, y=rows, zmid=0, zmin=-lim, zmax=lim, colorscale="RdBu_r",
            colorbar=dict(title=dict(text=name + " value", side="right"), thickness=10,
                          x=0.42 if j == 0 else 1.0, xanchor="left"),
            name=name, hovertemplate="position %{y}<br>%{x}: " + name + " = %{z:.3f}<extra></extra>",
        ), row=1, col=j + 1)
        for h in range(1, n_kv_heads):
            fig.add_vline(x=h * head_dim - 0.5, line=dict(color="#222", width=1.5), row=1, col=j + 1)
        new = np.flatnonzero(positions >= new_from)
        if len(new):
            fig.add_shape(type="rect", x0=-0.5, x1=K.shape[1] - 0.5, y0=new[0] - 0.5, y1=n - 0.5,
                          line=dict(color="#E4572E", width=2), row=1, col=j + 1)
    fig.update_yaxes(autorange="reversed", row=1, col=1, tickfont=dict(family="monospace", size=11),
                     title_text="position")
    fig.update_xaxes(showticklabels=False, title_text="kv head · dim", row=1, col=1)
    fig.update_xaxes(showticklabels=False, title_text="(same)", row=1, col=2)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=int(np.clip(13 * n + 150, 300, 760)), margin=dict(l=10, r=10, t=75, b=10))
    return fig


def cache_bytes_figure(steps: list[int], measured: list[int], by_kind: dict[str, list[int]], ours: str) -> go.Figure:
    """Cache bytes after each step: the measured bytes of this model's cache, and the accounting's line for
    the MHA, GQA and MQA versions of the same model (only the number of K/V heads differs)."""
    fig = go.Figure()
    dash = {"MHA": "dot", "GQA": "dash", "MQA": "dashdot"}
    one = len(steps) == 1  # only the prefill: a line of one point is invisible, so draw its point
    for kind, ys in by_kind.items():
        fig.add_trace(go.Scatter(x=steps, y=ys, mode="lines+markers" if one else "lines",
                                 name=kind + (" (this model)" if kind == ours else ""),
                                 line=dict(dash=dash.get(kind, "solid"), width=3 if kind == ours else 1.5,
                                           color=KIND_COLOURS.get(kind))))
    fig.add_trace(go.Scatter(x=steps, y=measured, mode="markers", name="measured: cache.nbytes()",
                             marker=dict(color=MEASURED, size=7, symbol="x")))
    # The legend above the plot: below it, it ran into the x title on a phone (it wraps upward instead).
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                      xaxis_title="step (0 = prefill)", yaxis_title="bytes (fp32)")
    last = max(steps) if steps else 0
    # Steps are whole and start at 0: never a negative axis, and room for step 1 before it is taken.
    fig.update_xaxes(dtick=max(1, -(-len(steps) // 10)), range=[-0.5, max(last, 1) + 0.5])
    fig.update_yaxes(rangemode="tozero")
    if one:
        fig.add_annotation(x=0.98, y=0.05, xref="paper", yref="paper", xanchor="right", showarrow=False,
                           text="only the prefill so far: each Next token adds a point", font=dict(color="#666"))
    return fig


def kv_kinds_figure(by_kind: dict[str, int], ours: str) -> go.Figure:
    """The cache right now if this model were MHA, GQA or MQA: bars, ours highlighted."""
    kinds = list(by_kind)
    vals = [by_kind[k] for k in kinds]
    fig = go.Figure(go.Bar(
        y=kinds, x=vals, orientation="h", text=[f"{v / 1024:,.1f} KiB" for v in vals], textposition="auto",
        marker=dict(color=[KIND_COLOURS.get(k, "#9AA3B2") for k in kinds],
                    opacity=[1.0 if k == ours else 0.55 for k in kinds],
                    line=dict(color=MEASURED, width=[2 if k == ours else 0 for k in kinds])), name="bytes",
    ))
    # Short labels: the chart sits in a narrow column.
    fig.update_yaxes(ticktext=[f"{k} (ours)" if k == ours else k for k in kinds], tickvals=kinds, title_text="kind")
    fig.update_layout(height=170, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="bytes (fp32)")
    fig.update_yaxes(autorange="reversed")
    return fig


# --------------------------------------------------------------------------------------------------------
# The new token's attention
# --------------------------------------------------------------------------------------------------------


def attention_rows_figure(rows: list[np.ndarray], key_positions: np.ndarray, key_labels: list[str],
                          first_layer: int = 0) -> go.Figure:
    """Per layer, each head's attention row of the newest position over every cached key: [head, key].
    The colour scale runs from 0 to the largest weight shown, so a row spread over many keys stays visible.
    first_layer: the number of rows[0]'s layer, when the rows are a page of a deeper model."""
    L = len(rows)
    top = max([float(r.max()) for r in rows if r.size] + [0.05])
    fig = make_subplots(rows=L, cols=1, shared_xaxes=True, vertical_spacing=0.06 if L > 1 else 0,
                        subplot_titles=[f"layer {first_layer + l}" for l in range(L)])
    keys = position_labels(key_positions, key_labels)
    for l, r in enumerate(rows):
        heads = [f"head {h}" for h in range(r.shape[0])]
        fig.add_trace(go.Heatmap(
            z=r.astype(np.float32), x=keys, y=heads, coloraxis="coloraxis", name=f"layer {first_layer + l}",
            hovertemplate="%{y} → position %{x}: %{z:.3f}<extra></extra>",
        ), row=l + 1, col=1)
        fig.update_yaxes(autorange="reversed", title_text="query head", title_font=dict(size=11), row=l + 1, col=1)
    fig.update_xaxes(title_text="key position", row=L, col=1, tickangle=-45, tickfont=dict(family="monospace"))
    fig.update_layout(height=130 * L + 90, margin=dict(l=10, r=10, t=30, b=10),
                      coloraxis=dict(colorscale="Blues", cmin=0, cmax=top, colorbar=dict(title="weight", thickness=10)))
    return fig


# --------------------------------------------------------------------------------------------------------
# Two temperatures, the same logits
# --------------------------------------------------------------------------------------------------------

PAIR_COLOURS = ("#4C6FFF", "#D98E04")


def temperature_pair_figure(labels: list[str], dists: tuple[np.ndarray, np.ndarray], temps: tuple[float, float],
                            chosen: tuple[int, int]) -> go.Figure:
    """The same step's tokens (already sliced, most probable first) under two temperatures, side by side on one
    shared probability axis: `dists` the drawn-from distribution at each temperature over the shown tokens,
    `chosen` the index among the shown tokens that each draw picked (-1: not among them)."""
    top = max([float(np.max(d)) for d in dists if len(d)] + [1e-9])
    names = [f"T = {t:g}" + (" (greedy)" if t == 0 else "") for t in temps]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=names)
    x = [f"{i} {plotly_text(l)}" for i, l in enumerate(labels)]
    for j, (d, c, colour) in enumerate(zip(dists, chosen, PAIR_COLOURS)):
        d = np.asarray(d, dtype=np.float64)
        fig.add_trace(go.Bar(x=x, y=d, name=names[j], marker_color=colour,
                             marker_line=dict(color=FINAL, width=[3 if i == c else 0 for i in range(len(d))]),
                             hovertemplate="%{x}: p = %{y:.3~g}<extra>" + names[j] + "</extra>"), row=1, col=j + 1)
        if 0 <= c < len(d):
            fig.add_annotation(x=x[c], y=top * 1.2, yanchor="top", text="▼ drawn", showarrow=False,
                               font=dict(color=FINAL, size=11), row=1, col=j + 1)
    fig.update_yaxes(range=[0, top * 1.22], title_text="probability drawn from", row=1, col=1)
    fig.update_xaxes(tickangle=-45, tickfont=dict(family="monospace"), title_text="token, by rank")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), showlegend=False, bargap=0.15)
    return fig


def temperature_pair_sentence(temps: tuple[float, float], top_probs: tuple[float, float],
                              entropies: tuple[float, float], kept: tuple[int, int], drawn: tuple[str, str]) -> str:
    """What the two panels show, from their numbers: the most likely token's probability, the entropy and the
    kept set at each temperature, and the token each draw picked (the same random number for both)."""
    (t1, t2), (p1, p2), (h1, h2), (k1, k2), (d1, d2) = temps, top_probs, entropies, kept, drawn
    s = (f"At T = {t1:g} the most likely token gets p = {prob_text(p1)} and the distribution's entropy is "
         f"{h1:.2f} nats ({plural(k1, 'token')} kept); at T = {t2:g}, p = {prob_text(p2)} and {h2:.2f} nats "
         f"({plural(k2, 'token')} kept).")
    if t1 != t2:
        (t_hot, p_hot, h_hot), (t_cold, p_cold, h_cold) = sorted([(t1, p1, h1), (t2, p2, h2)], reverse=True)
        if p_hot < p_cold and h_hot > h_cold:
            s += (f" The higher temperature, {t_hot:g}, flattens the distribution: less on the top token, "
                  "more entropy.")
    s += (f" With the same random number, T = {t1:g} draws “{d1}” and T = {t2:g} draws “{d2}”"
          + (" — the same token." if d1 == d2 else "."))
    return s


# --------------------------------------------------------------------------------------------------------
# What a step costs
# --------------------------------------------------------------------------------------------------------


def step_cost_text(is_prefill: bool, n_positions: int, n_keys: int, flops: int, flops_without_cache: int) -> str:
    """The step's matmul FLOPs, with and without the KV cache (`StepRecord.flops_cached` / `flops_recompute`).

    n_positions: positions fed so far (the cache's length after the step); n_keys: the keys the new position
    attended to (fewer than n_positions once a sliding window evicts). The ratio is not n_positions: without a
    cache every layer runs at every position, but only the last position's logits are needed, so the
    unembedding — a large share of a small model — runs once either way."""
    if is_prefill:
        return (f"The prefill computed all {n_positions} prompt positions in one parallel pass: **{flops:,} FLOPs**. "
                "Every later step reuses their keys and values.")
    return (f"This step with the cache: **{flops:,} FLOPs** (one new position against {n_keys} cached keys). "
            f"Without it, every layer recomputes all {n_positions} positions, and the logits are needed at the "
            f"last one only: **{flops_without_cache:,}** — {flops_without_cache / flops:,.1f}× more.")
