"""Figures of fast inference: FlashAttention's tiles over a real attention pattern and one tile's running m, l, O;
memory traffic of naive vs tiled attention; the sliding window's rolling buffer and receptive field; paged vs
contiguous KV memory; per-matmul arithmetic intensity against ridge points; decode speed against the roofline;
and the sentence on what the sliding window costs, built from the numbers it compares.

Arrays, numbers and labels in, a `go.Figure` or a string out; no streamlit, no torch. Token labels are user
text and go through `plotly_text`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.attention import MASK_GREY
from viz.tokens import PALETTE, plotly_text

CURRENT, DONE, SKIPPED = "#E4572E", "#4C6FFF", "#9AA3B2"
TILE_DONE, TILE_SKIPPED = "#FFFFFF", "#F3A712"  # on Viridis and on the mask grey
NAIVE, TILED = "#E4572E", "#0072B2"  # never red against green: colour-blind readers
USED, PAGED, CONTIG = "#4C6FFF", "#56B4E9", "#E4572E"
PREFILL, DECODE = "#4C6FFF", "#E4572E"
MACHINE_COLOURS = ["#29A36A", "#17BECF", "#1F77B4", "#B07CC6", "#F3A712", "#7F7F7F"]
_CLEAR = dict(paper_bgcolor="rgba(0,0,0,0)")
_MARGIN = dict(l=10, r=10, t=50, b=10)


# --------------------------------------------------------------------------------------------------------
# Tiled attention
# --------------------------------------------------------------------------------------------------------


def tiles_figure(pattern: np.ndarray, tiles: Sequence[dict], current: int, labels: Sequence[str]) -> go.Figure:
    """The head's attention pattern (T×T, NaN where masked) with the tile grid on top.

    tiles: in execution order, each {"q": (r0, r1), "k": (c0, c1), "computed": bool}. Over the pattern: the tiles
    skipped before `current` filled amber, the tiles still to come veiled, `current` outlined in red. Overlays are
    heatmaps at cell resolution and the grid is one line per block edge, so 16,000 tiles draw as fast as 16.
    """
    T = pattern.shape[0]
    z = np.array(pattern, dtype=np.float32)
    masked = ~np.isfinite(z)
    skipped = np.full((T, T), np.nan, dtype=np.float32)  # 1 where a tile before `current` was skipped
    later = np.full((T, T), np.nan, dtype=np.float32)  # 1 where a tile after `current` will run
    for n, t in enumerate(tiles):
        (r0, r1), (c0, c1) = t["q"], t["k"]
        if n < current and not t["computed"]:
            skipped[r0:r1, c0:c1] = 1
        elif n > current:
            later[r0:r1, c0:c1] = 1
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=np.where(masked, 1.0, np.nan).astype(np.float32), colorscale=[[0, MASK_GREY], [1, MASK_GREY]],
                             showscale=False, hoverinfo="skip", name="masked"))
    text = [[f"query {plotly_text(labels[q])} ({q}) → key {plotly_text(labels[k])} ({k})" for k in range(T)] for q in range(T)]
    fig.add_trace(go.Heatmap(z=np.where(masked, np.nan, z), zmin=0, zmax=1, colorscale="Viridis", name="attention",
                             customdata=text, colorbar=dict(title=dict(text="attention", side="right"), thickness=12, len=0.7),
                             hovertemplate="%{customdata}<br>%{z:.3f}<extra></extra>"))
    fig.add_trace(go.Heatmap(z=skipped, colorscale=[[0, TILE_SKIPPED], [1, TILE_SKIPPED]], opacity=0.6, showscale=False,
                             hoverinfo="skip", name="skipped"))
    fig.add_trace(go.Heatmap(z=later, colorscale=[[0, "#FFFFFF"], [1, "#FFFFFF"]], opacity=0.35, showscale=False,
                             hoverinfo="skip", name="still to come"))
    edges_q = sorted({t["q"][0] for t in tiles} - {0})
    edges_k = sorted({t["k"][0] for t in tiles} - {0})
    line = dict(color=TILE_DONE, width=1)
    shapes = ([dict(type="line", x0=-0.5, x1=T - 0.5, y0=e - 0.5, y1=e - 0.5, line=line) for e in edges_q]
              + [dict(type="line", x0=e - 0.5, x1=e - 0.5, y0=-0.5, y1=T - 0.5, line=line) for e in edges_k])
    if 0 <= current < len(tiles):
        (r0, r1), (c0, c1) = tiles[current]["q"], tiles[current]["k"]
        shapes.append(dict(type="rect", x0=c0 - 0.5, x1=c1 - 0.5, y0=r0 - 0.5, y1=r1 - 0.5, name="this tile",
                           line=dict(color=CURRENT, width=4)))
    fig.update_layout(shapes=shapes, height=520, margin=_MARGIN, plot_bgcolor="rgba(0,0,0,0)", **_CLEAR,
                      xaxis_title="key position", yaxis_title="query position")  # short: the column is 260 px at 900
    fig.update_xaxes(range=[-0.5, T - 0.5], showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(range=[T - 0.5, -0.5], showgrid=False, zeroline=False, scaleanchor="x", constrain="domain")
    return fig


def tile_state_figure(scores: Optional[np.ndarray], rows: Sequence[int], cols: Sequence[int], m_before, m_after,
                      l_before, l_after, O_before, O_after) -> go.Figure:
    """One tile: its scores S (−inf masked), then per query row the running max m and sum l before and after it,
    and the running output O (rows × head dims) before and after. A skipped tile has no arrays (all None)."""
    fig = make_subplots(rows=1, cols=5, column_widths=[0.24, 0.14, 0.14, 0.24, 0.24], horizontal_spacing=0.05,
                        # one letter over m and l: those columns are 40 px wide on a phone
                        subplot_titles=["scores S", "m", "l", "O before", "O after"])
    ylab = [str(r) for r in rows]
    if scores is None:
        fig.add_annotation(text="skipped: no scores, no update", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font=dict(size=16))
    else:
        S = np.array(scores, dtype=np.float64)
        fig.add_trace(go.Heatmap(z=np.where(np.isfinite(S), S, np.nan), x=[str(c) for c in cols], y=ylab,
                                 colorscale="RdBu_r", zmid=0, showscale=False, name="S",
                                 hovertemplate="query %{y}, key %{x}<br>S = %{z:.3f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.where(np.isfinite(S), np.nan, 1.0), x=[str(c) for c in cols], y=ylab,
                                 colorscale=[[0, MASK_GREY], [1, MASK_GREY]], showscale=False, hoverinfo="skip",
                                 name="masked"), row=1, col=1)
        for col, before, after, what in ((2, m_before, m_after, "m"), (3, l_before, l_after, "l")):
            b = np.where(np.isfinite(before), before, np.nan)
            fig.add_trace(go.Scatter(x=b, y=ylab, mode="markers", name="before this tile", legendgroup="before",
                                     showlegend=col == 2, marker=dict(color=SKIPPED, size=9, symbol="circle-open"),
                                     hovertemplate=f"query %{{y}}: {what} before %{{x:.4f}}<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=after, y=ylab, mode="markers", name="after this tile", legendgroup="after",
                                     showlegend=col == 2, marker=dict(color=CURRENT, size=7),
                                     hovertemplate=f"query %{{y}}: {what} after %{{x:.4f}}<extra></extra>"), row=1, col=col)
        lim = float(max(np.abs(O_before).max(), np.abs(O_after).max(), 1e-9))
        for col, O, what in ((4, O_before, "before"), (5, O_after, "after")):
            fig.add_trace(go.Heatmap(z=O, y=ylab, colorscale="RdBu_r", zmin=-lim, zmax=lim, showscale=col == 5,
                                     colorbar=dict(title=dict(text="O value", side="right"), thickness=10, len=0.8),
                                     name=f"O {what}",
                                     hovertemplate=f"query %{{y}}, dim %{{x}}<br>O {what} %{{z:.4f}}<extra></extra>"),
                          row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_yaxes(title_text="query row", row=1, col=1)
    for col, what in ((1, "key"), (2, "m"), (3, "l"), (4, "head dim"), (5, "head dim")):
        fig.update_xaxes(title=dict(text=what, font=dict(size=11)), row=1, col=col)
    fig.update_yaxes(showticklabels=False, col=2)
    fig.update_yaxes(showticklabels=False, col=3)
    fig.update_yaxes(showticklabels=False, col=4)
    fig.update_yaxes(showticklabels=False, col=5)
    # The legend at the foot of the whole chart (container coordinates), below the tick labels, never on them.
    # b leaves the legend its own strip under the axis titles.
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=60, b=40), **_CLEAR,
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0.3))
    fig.update_annotations(font_size=12)
    return fig


def traffic_figure(seq_lens: Sequence[int], series: dict[str, dict[str, Sequence[int]]]) -> go.Figure:
    """Bytes moved to and from slow memory by a whole prefill's attention, naive vs tiled, per model (log-log).
    series[model] = {"naive": [...], "tiled": [...]} aligned with seq_lens."""
    fig = go.Figure()
    for i, (model, s) in enumerate(series.items()):
        dash = None if i == 0 else "dash"
        for algo, col in (("naive", NAIVE), ("tiled", TILED)):
            ys = [float(v) for v in s[algo]]
            fig.add_trace(go.Scatter(
                x=list(seq_lens), y=ys, mode="lines+markers", name=f"{plotly_text(model)}: {algo}",
                line=dict(color=col, dash=dash, width=2), marker=dict(size=5),
                customdata=[f"{int(v):,}" for v in s[algo]],
                hovertemplate=f"{plotly_text(model)}, {algo}<br>N = %{{x:,}}: %{{customdata}} bytes<extra></extra>"))
    fig.update_layout(height=420, margin=_MARGIN, **_CLEAR, xaxis_title="sequence length N (prefill tokens)",
                      yaxis_title="bytes to/from slow memory (all layers and heads)", legend_title_text="model: algorithm")
    _log_ticks(fig, "x", list(seq_lens)[::2])
    fig.update_yaxes(type="log", dtick=1, exponentformat="power")
    return fig


def _short(n: float) -> str:
    """1024 -> '1k', 131072 -> '128k', 64 -> '64'."""
    return f"{n / 1024:g}k" if n >= 1024 and n % 1024 == 0 else f"{n:g}"


def _log_ticks(fig: go.Figure, axis: str, values: Sequence[float], **where) -> None:
    """A log axis labelled at `values` only (plotly's default puts 2 and 5 between decades, unreadable)."""
    upd = fig.update_xaxes if axis == "x" else fig.update_yaxes
    upd(type="log", tickvals=list(values), ticktext=[_short(v) for v in values], **where)


# --------------------------------------------------------------------------------------------------------
# The sliding window's rolling buffer
# --------------------------------------------------------------------------------------------------------


def rolling_buffer_figure(slots: np.ndarray, labels: Sequence[str], written: int, newest: int, evicted: int,
                          n_cols: int = 16) -> go.Figure:
    """The buffer's slots as a grid (slot s at row s // n_cols, column s % n_cols), each with the position it
    holds and that position's token; colour = age (newest − position). `written` is outlined in red; the position
    it evicted (−1: none) is named in the title."""
    cap = len(slots)
    n_rows = -(-cap // n_cols)
    age = np.full((n_rows, n_cols), np.nan)
    text = np.full((n_rows, n_cols), "", dtype=object)
    hover = np.full((n_rows, n_cols), "", dtype=object)
    for s, p in enumerate(slots):
        r, c = divmod(s, n_cols)
        if p >= 0:
            age[r, c] = newest - p
            text[r, c] = f"{p}<br>{plotly_text(labels[p])[:6]}"
            hover[r, c] = f"slot {s}: position {p}, token {plotly_text(labels[p])}, {newest - p} steps old"
        else:
            text[r, c] = "empty"
            hover[r, c] = f"slot {s}: empty"
    fig = go.Figure(go.Heatmap(z=age, text=text, texttemplate="%{text}", customdata=hover, colorscale="Blues_r",
                               zmin=0, zmax=max(cap - 1, 1), xgap=2, ygap=2, colorbar=dict(title="age", thickness=10),
                               hovertemplate="%{customdata}<extra></extra>", textfont=dict(size=10)))
    r, c = divmod(written, n_cols)
    fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color=CURRENT, width=4))
    title = f"position {newest} written to slot {written}" + (f", evicting position {evicted}" if evicted >= 0 else "")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=90 + 56 * n_rows, margin=_MARGIN, **_CLEAR,
                      plot_bgcolor="rgba(0,0,0,0)")
    fig.update_xaxes(showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(showgrid=False, zeroline=False, autorange="reversed", tickvals=list(range(n_rows)),
                     ticktext=[f"slots {r * n_cols}–{min(cap, (r + 1) * n_cols) - 1}" for r in range(n_rows)])
    return fig


def slot_timeline_figure(positions: Sequence[int], slots: Sequence[int], evicted: Sequence[int], current: int,
                         capacity: int) -> go.Figure:
    """Which slot each position landed in (a sawtooth: slot = position mod capacity); positions whose write
    evicted an older one are marked, the current step's in red."""
    pos, sl, ev = np.asarray(positions), np.asarray(slots), np.asarray(evicted)
    fig = go.Figure()
    fresh = ev < 0
    fig.add_trace(go.Scatter(x=pos[fresh], y=sl[fresh], mode="markers", name="into an empty slot",
                             marker=dict(color=DONE, size=5),
                             hovertemplate="position %{x} → slot %{y}<extra></extra>"))
    fig.add_trace(go.Scatter(x=pos[~fresh], y=sl[~fresh], mode="markers", name="evicting position − capacity",
                             marker=dict(color="#F3A712", size=5, symbol="x"), customdata=ev[~fresh],
                             hovertemplate="position %{x} → slot %{y}, evicting %{customdata}<extra></extra>"))
    i = int(np.searchsorted(pos, current)) if len(pos) else 0
    if len(pos) and i < len(pos) and pos[i] == current:
        fig.add_trace(go.Scatter(x=[pos[i]], y=[sl[i]], mode="markers", name="this step",
                                 marker=dict(color=CURRENT, size=13, symbol="circle-open", line=dict(width=3)),
                                 hovertemplate="this step: position %{x} → slot %{y}<extra></extra>"))
    fig.update_layout(height=300, margin=_MARGIN, **_CLEAR, xaxis_title="position", yaxis_title="slot",
                      legend=dict(orientation="h", y=1.12, x=0))
    fig.update_yaxes(range=[-1, capacity])
    return fig


def receptive_field_figure(query: int, earliest: Sequence[int], window: Optional[int]) -> go.Figure:
    """For each layer l, the positions that can reach `query` through l layers: a bar from earliest[l − 1] to
    query, and the window one layer alone allows, for scale."""
    L = len(earliest)
    fig = go.Figure()
    ys = [f"after layer {l + 1}" for l in range(L)]
    fig.add_trace(go.Bar(y=ys, x=[query - e + 1 for e in earliest], base=list(earliest), orientation="h",
                         marker_color=DONE, name="can reach the query",
                         customdata=np.array([[e, query - e + 1] for e in earliest]),
                         hovertemplate="%{y}: positions %{customdata[0]}–" + str(query)
                                       + " (%{customdata[1]} of them)<extra></extra>"))
    if window:
        fig.add_vrect(x0=max(0, query - window + 1) - 0.5, x1=query + 0.5, fillcolor=CURRENT, opacity=0.12, line_width=0)
    title = "positions that can reach the query" + (f"; shaded: one layer's window of {window}" if window else "")
    fig.update_layout(height=100 + 40 * L, margin=dict(l=10, r=10, t=40, b=10), **_CLEAR, showlegend=False,
                      xaxis_title=f"position (query at {query})", title=dict(text=title, font=dict(size=13)))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[-1, query + 2])
    return fig


# --------------------------------------------------------------------------------------------------------
# Paged KV memory
# --------------------------------------------------------------------------------------------------------


def _req_colour(r: int) -> str:
    return PALETTE[r % len(PALETTE)]


def memory_layout_figure(lengths: Sequence[int], tables: Sequence[Sequence[int]], block_size: int,
                         max_len: int) -> go.Figure:
    """Two memory strips, each at its own scale of positions (the titles give the totals). Top: contiguous, one
    max_len slab per live request, its used part solid, the rest hatched. Bottom: paged, the physical blocks in
    id order, each coloured by the request owning it and labelled request·logical block, its used positions
    solid; free blocks outlined."""
    live = [r for r, n in enumerate(lengths) if n > 0]
    n_blocks = max([b for t in tables for b in t], default=-1) + 1
    reserved_paged = block_size * sum(len(t) for t in tables)
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.32, subplot_titles=[
        f"contiguous: {len(live)} slabs × {max_len} = {len(live) * max_len:,} positions reserved",
        f"paged: {sum(len(t) for t in tables)} blocks × {block_size} = {reserved_paged:,} positions reserved"
        + (f" ({n_blocks - sum(len(t) for t in tables)} free)" if n_blocks > sum(len(t) for t in tables) else "")])

    def bar(row: int, x0: float, width: float, colour: str, hover: str, text: str = "", empty: bool = False,
            free: bool = False) -> None:
        marker = (dict(color="rgba(0,0,0,0)", line=dict(color=MASK_GREY, width=1)) if free else
                  dict(color=colour, opacity=0.3, pattern_shape="/") if empty else
                  dict(color=colour, line=dict(color="#333", width=0.5)))
        fig.add_trace(go.Bar(y=[""], x=[width], base=[x0], orientation="h", marker=marker, showlegend=False,
                             name=hover.split(":")[0], text=[text] if text else None, textposition="inside",
                             insidetextanchor="middle", hovertemplate=hover + "<extra></extra>"), row=row, col=1)

    for k, r in enumerate(live):
        n, off = lengths[r], k * max_len
        bar(1, off, n, _req_colour(r), f"request {r}: {n} of {max_len} positions used", text=str(r))
        bar(1, off + n, max_len - n, _req_colour(r), f"request {r}: {max_len - n} positions reserved, empty", empty=True)
    owner = {b: (r, logical) for r, t in enumerate(tables) for logical, b in enumerate(t)}
    for b in range(n_blocks):
        x0 = b * block_size
        if b not in owner:
            bar(2, x0, block_size, "", f"block {b}: free", free=True)
            continue
        r, logical = owner[b]
        used = min(block_size, max(0, lengths[r] - logical * block_size))
        bar(2, x0, used, _req_colour(r), f"physical block {b} = request {r}'s block {logical}: {used} of {block_size} "
                                         "positions used", text=f"{r}·{logical}")
        if used < block_size:
            bar(2, x0 + used, block_size - used, _req_colour(r), f"block {b}: {block_size - used} positions empty",
                empty=True)
    fig.update_layout(barmode="overlay", height=260, margin=dict(l=10, r=10, t=30, b=10), **_CLEAR,
                      uniformtext=dict(minsize=8, mode="hide"))
    fig.update_xaxes(title_text="positions", row=2, col=1)
    fig.update_xaxes(range=[0, max(1, len(live) * max_len)], row=1, col=1)
    fig.update_xaxes(range=[0, max(1, n_blocks * block_size)], row=2, col=1)
    fig.update_annotations(font_size=12)
    return fig


def memory_over_time_figure(series: dict[str, dict]) -> go.Figure:
    """Per model (a subplot each): bytes used, reserved by paging, reserved contiguously, at every step.
    series[model] = {"steps", "used", "paged", "contiguous"} (bytes)."""
    names = list(series)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[plotly_text(n) for n in names], horizontal_spacing=0.08)
    for c, n in enumerate(names, start=1):
        s = series[n]
        for key, col, label in (("contiguous", CONTIG, "reserved, contiguous"), ("paged", PAGED, "reserved, paged"),
                                ("used", USED, "used")):
            fig.add_trace(go.Scatter(x=s["steps"], y=[v / 2**20 if v > 0 else None for v in s[key]], mode="lines",
                                     name=label,
                                     line=dict(color=col, width=2, dash="dot" if key == "used" else None),
                                     legendgroup=key, showlegend=c == 1,
                                     hovertemplate=f"step %{{x}}: %{{y:.4g}} MiB {label}<extra></extra>"), row=1, col=c)
        fig.update_yaxes(title_text="KV cache (MiB, log)" if c == 1 else None, type="log", dtick=1, row=1, col=c)
        fig.update_xaxes(title_text="decode step", row=1, col=c)
    fig.update_layout(height=340, margin=_MARGIN, **_CLEAR, legend=dict(orientation="h", y=-0.2))
    return fig


def fit_figure(fits: dict[str, dict[str, int]], memory_text: dict[str, str]) -> go.Figure:
    """Requests in flight at once, per model (groups) and scheme (bars): fits[model] = {"contiguous", "paged",
    "exact"}; memory_text[model] says what memory that is, for the axis."""
    fig = go.Figure()
    models = list(fits)
    x = [f"{plotly_text(m)}<br>{plotly_text(memory_text[m])}" for m in models]
    for key, col, label in (("contiguous", CONTIG, "contiguous (max length each)"), ("paged", PAGED, "paged blocks"),
                            ("exact", USED, "exact lengths (no rounding)")):
        ys = [fits[m][key] for m in models]
        fig.add_trace(go.Bar(x=x, y=ys, name=label, marker_color=col, text=[f"{v:,}" for v in ys],
                             textposition="outside", hovertemplate=f"{label}: %{{y:,}} requests<extra></extra>"))
    fig.update_layout(barmode="group", height=360, margin=_MARGIN, **_CLEAR, yaxis_title="requests in flight (log)",
                      legend=dict(orientation="h", y=1.12))
    fig.update_yaxes(type="log", dtick=1)
    return fig


# --------------------------------------------------------------------------------------------------------
# Prefill vs decode
# --------------------------------------------------------------------------------------------------------


def intensity_figure(names: Sequence[str], prefill: Sequence[float], decode: Sequence[float],
                     ridges: dict[str, float], prefill_label: str, decode_label: str) -> go.Figure:
    """FLOPs per byte of each matmul at prefill and at decode (log scale), with each machine's ridge point as a
    vertical line: a bar left of a machine's line is memory-bound on it."""
    fig = go.Figure()
    for vals, col, label in ((prefill, PREFILL, prefill_label), (decode, DECODE, decode_label)):
        fig.add_trace(go.Bar(y=list(names), x=[float(v) for v in vals], orientation="h", name=plotly_text(label),
                             marker_color=col, hovertemplate="%{y}: %{x:.3g} FLOPs/byte<extra>" + plotly_text(label)
                                                             + "</extra>"))
    for i, (m, r) in enumerate(ridges.items()):
        fig.add_vline(x=r, line=dict(color=MACHINE_COLOURS[i % len(MACHINE_COLOURS)], dash="dash", width=2))
        fig.add_trace(go.Scatter(x=[r], y=[names[0]], mode="markers", name=f"ridge: {plotly_text(m)} ({r:.3g})",
                                 marker=dict(color=MACHINE_COLOURS[i % len(MACHINE_COLOURS)], symbol="line-ns-open",
                                             size=14, line=dict(width=2)),
                                 hovertemplate=f"{plotly_text(m)}: ridge {r:.3g} FLOPs/byte<extra></extra>"))
    fig.update_layout(barmode="group", height=460, margin=_MARGIN, **_CLEAR, xaxis_title="FLOPs per byte (log)",
                      legend=dict(font=dict(size=11)))
    fig.update_xaxes(type="log", dtick=1)
    fig.update_yaxes(autorange="reversed")
    return fig


def decode_batch_figure(batches: Sequence[int], intensity: dict[str, Sequence[float]], ridges: dict[str, float],
                        crossings: dict[str, dict[str, Optional[int]]]) -> go.Figure:
    """Whole decode step's FLOPs/byte vs batch for each model (lines), each machine's ridge (dashed): where a
    line crosses a ridge, decode turns compute-bound on that machine (`crossings[model][machine]`, marked)."""
    fig = go.Figure()
    for i, (model, ys) in enumerate(intensity.items()):
        fig.add_trace(go.Scatter(x=list(batches), y=[float(v) for v in ys], mode="lines", name=plotly_text(model),
                                 line=dict(color=[PREFILL, DECODE][i % 2], width=3),
                                 hovertemplate=f"{plotly_text(model)}<br>batch %{{x}}: %{{y:.3g}} FLOPs/byte<extra></extra>"))
    for i, (m, r) in enumerate(ridges.items()):
        col = MACHINE_COLOURS[i % len(MACHINE_COLOURS)]
        fig.add_hline(y=r, line=dict(color=col, dash="dash", width=1.5))
        fig.add_trace(go.Scatter(x=[batches[0]], y=[r], mode="markers+text", text=[plotly_text(m)],
                                 textposition="top right", textfont=dict(color=col, size=11), marker=dict(color=col, size=4),
                                 showlegend=False, hovertemplate=f"{plotly_text(m)}: ridge {r:.3g}<extra></extra>"))
        for model, c in crossings.items():
            b = c.get(m)
            if b is not None and batches[0] <= b <= batches[-1]:
                fig.add_trace(go.Scatter(x=[b], y=[r], mode="markers", marker=dict(color=col, size=11, symbol="diamond",
                                                                                    line=dict(color="#333", width=1)),
                                         showlegend=False,
                                         hovertemplate=f"{plotly_text(model)} on {plotly_text(m)}: compute-bound "
                                                       f"from batch {b}<extra></extra>"))
    fig.update_layout(height=440, margin=_MARGIN, **_CLEAR, xaxis_title="decode batch B",
                      yaxis_title="FLOPs per byte, whole decode step")
    _log_ticks(fig, "x", batches)
    fig.update_yaxes(type="log", dtick=1)
    return fig


def decode_speed_figure(batches: Sequence[int], measured: Sequence[float], predicted: Sequence[float],
                        machine: str) -> go.Figure:
    """Measured decode tokens/s vs batch beside the roofline's bound on the same machine (log-log)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(batches), y=[float(v) for v in predicted], mode="lines+markers",
                             name=f"roofline bound ({plotly_text(machine)})", line=dict(color=MASK_GREY, dash="dash", width=2),
                             hovertemplate="batch %{x}: at most %{y:,.0f} tokens/s<extra></extra>"))
    fig.add_trace(go.Scatter(x=list(batches), y=[float(v) for v in measured], mode="lines+markers", name="measured",
                             line=dict(color=DECODE, width=3),
                             hovertemplate="batch %{x}: %{y:,.0f} tokens/s measured<extra></extra>"))
    fig.update_layout(height=400, margin=_MARGIN, **_CLEAR, xaxis_title="decode batch B (sequences)",
                      yaxis_title="tokens per second (log)", legend=dict(orientation="h", y=1.1))
    _log_ticks(fig, "x", batches)
    fig.update_yaxes(type="log", dtick=1)
    return fig


# --------------------------------------------------------------------------------------------------------
# What the window costs, in words
# --------------------------------------------------------------------------------------------------------


def window_cost_text(window: str, full: str, gap: float, gap_se: float, rise: dict[str, float], w: int,
                     context: int, n_positions: int) -> str:
    """The window variant against full attention on the held-out text. gap, gap_se: the paired mean of the
    window's minus the full model's loss over the same windows, and its standard error; rise: per variant, the
    mean loss past the training context minus inside it (empty when not evaluated past it). A cost is stated
    only when it is at least two standard errors from zero, and the reason for a flat curve past the context
    only when the window's rises less than the full model's."""
    paired = f"{gap:+.4f} ± {gap_se:.4f} nats/token, paired over the same held-out windows"
    if abs(gap) >= 2 * gap_se:
        text = f"Inside the context the window {'costs' if gap > 0 else 'gains'} {paired}"
    else:
        text = f"Inside the context the window's cost, {paired}, is within two standard errors of none"
    if window in rise and full in rise:
        text += (f"; past the training context of {context} the mean loss changes by "
                 + ", ".join(f"{rise[n]:+.3f} ({n})" for n in (full, window)) + f" against positions 1–{context}")
        if rise[window] < rise[full]:
            text += (f": every query of the window variant sees at most {w} keys in every layer, at position "
                     f"{n_positions:,} as at position {w:,}, so nothing is new to it past the training length")
    return text + "."
