"""Figures for the quantization page: a matrix's weights with the grid they are rounded to, what one large
weight does to a per-tensor, per-row and per-group scale, error per matrix, where the error reaches the
residual stream, memory by format, loss against size, and measured speed — and the sentences that compare
them, each built from the numbers it compares.

Arrays, dicts and labels in (from `model/quantize/`), a `go.Figure` or a string out; no streamlit, no torch.
Each format keeps one colour in every figure (`colour`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.tokens import plotly_text

FORMAT_COLOURS = {
    "fp32": "#4C6FFF",
    "fp16": "#8E9AAF",
    "int8 (per-channel)": "#29A36A",
    "Q8_0": "#17BECF",
    "Q4_0 (G=32)": "#F3A712",
    "int4 (G=64)": "#E4572E",
    "int4 (G=128)": "#B07CC6",
    "Q8_0 KV cache": "#7F7F7F",
    "torch int8": "#29A36A",
}
SCOPE_COLOURS = {"per tensor": "#E4572E", "per channel": "#4C6FFF", "per group": "#29A36A"}
_FALLBACK = ["#8C564B", "#BCBD22", "#E377C2", "#1F77B4"]
_CLEAR = dict(paper_bgcolor="rgba(0,0,0,0)")
GRID_COLOUR = "rgba(228, 87, 46, 0.55)"


def colour(name: str, i: int = 0) -> str:
    return FORMAT_COLOURS.get(name, _FALLBACK[i % len(_FALLBACK)])


def log_ticks(values) -> list[float]:
    """1-2-5 ticks covering the positive values: a log axis labelled at every minor tick is unreadable.
    [0.004, 0.09] -> [0.002, 0.005, 0.01, 0.02, 0.05, 0.1]."""
    def flat(x):
        if isinstance(x, (list, tuple, np.ndarray)):
            for y in x:
                yield from flat(y)
        elif x is not None:
            yield float(x)

    v = np.asarray([x for x in flat(values) if np.isfinite(x) and x > 0], dtype=np.float64)
    if not len(v):
        return []
    lo, hi = int(np.floor(np.log10(v.min()))), int(np.ceil(np.log10(v.max())))
    ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in (1, 2, 5)]
    below = [t for t in ticks if t <= v.min()]
    above = [t for t in ticks if t >= v.max()]
    first, last = (below[-1] if below else ticks[0]), (above[0] if above else ticks[-1])
    return [t for t in ticks if first <= t <= last]


def _log_range(values) -> Optional[list[float]]:
    """A log axis's range (in log10 units) from the first to the last of `log_ticks`, so both ends are labelled."""
    t = log_ticks(values)
    return [float(np.log10(t[0])), float(np.log10(t[-1]))] if t else None


# --------------------------------------------------------------------------------------------------------
# One matrix: the weights and the grid
# --------------------------------------------------------------------------------------------------------


def histogram_with_grid(values: np.ndarray, grid: Sequence[float], title: str, bins: int = 120,
                        marked: Optional[float] = None) -> go.Figure:
    """A histogram of `values` with a vertical line at every value the format can give back (`grid`).

    Each weight is rounded to its nearest grid line; lines outside the weights' range are codes never used.
    `marked`: one value to point at (the largest weight, which set the scale).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(grid, dtype=np.float64)
    lo, hi = float(min(v.min(), g.min())), float(max(v.max(), g.max()))
    pad = 0.03 * (hi - lo or 1.0)
    counts, edges = np.histogram(v, bins=bins, range=(lo - pad, hi + pad))
    centres = (edges[:-1] + edges[1:]) / 2
    top = float(counts.max()) * 1.08 or 1.0
    fig = go.Figure(go.Bar(x=centres, y=counts, width=float(edges[1] - edges[0]), name="weights",
                           marker_color="#4C6FFF", hovertemplate="%{x:.4f}: %{y} weights<extra></extra>"))
    gx = np.repeat(g, 3)
    gy = np.tile([0.0, top, np.nan], len(g))
    gx[2::3] = np.nan
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", name=f"grid ({len(g)} values)",
                             line=dict(color=GRID_COLOUR, width=1), hoverinfo="skip"))
    if marked is not None:
        fig.add_trace(go.Scatter(x=[marked], y=[top], mode="markers+text", name="largest |w|",
                                 marker=dict(symbol="triangle-down", size=12, color="#E4572E"),
                                 text=[f"{marked:+.3f}"], textposition="top center", cliponaxis=False,
                                 hovertemplate="largest |w|: %{x:.4f}<extra></extra>"))
    fig.update_layout(title=plotly_text(title), bargap=0, xaxis_title="weight value", yaxis_title="weights",
                      yaxis_range=[0, top * 1.12], legend=dict(orientation="h", y=-0.2), height=360,
                      margin=dict(l=10, r=10, t=50, b=10), **_CLEAR)
    return fig


def scope_error_figure(row_max: np.ndarray, tensor_max: float, errors: dict[str, np.ndarray],
                       title: str = "") -> go.Figure:
    """Top: each output row's largest |w|, with the matrix's (the per-tensor scale is set by it). Bottom: each
    row's relative RMS error ‖w − Q(w)‖/‖w‖ with one scale per tensor, per row (channel), per group."""
    rows = np.arange(len(row_max))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.38, 0.62],
                        subplot_titles=["largest |w| in each row", "relative error of each row after the round trip"])
    fig.add_trace(go.Bar(x=rows, y=row_max, name="row max |w|", marker_color="#8E9AAF",
                         hovertemplate="row %{x}: max |w| %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[rows[0], rows[-1]], y=[tensor_max, tensor_max], mode="lines",
                             name="matrix max |w| (sets the per-tensor scale)",
                             line=dict(color=SCOPE_COLOURS["per tensor"], dash="dash")), row=1, col=1)
    for i, (name, e) in enumerate(errors.items()):
        fig.add_trace(go.Scatter(x=rows, y=np.asarray(e), mode="lines", name=plotly_text(name),
                                 line=dict(color=SCOPE_COLOURS.get(name, _FALLBACK[i % 4]), width=1.6),
                                 hovertemplate="row %{x}: %{y:.2%}<extra>" + plotly_text(name) + "</extra>"),
                      row=2, col=1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="output row (channel)", row=2, col=1)
    fig.update_layout(title=plotly_text(title), height=460, legend=dict(orientation="h", y=-0.16),
                      margin=dict(l=10, r=10, t=60, b=10), bargap=0, **_CLEAR)
    return fig


# --------------------------------------------------------------------------------------------------------
# The whole model
# --------------------------------------------------------------------------------------------------------


def layer_error_figure(matrices: Sequence[str], errors: dict[str, Sequence[float]]) -> go.Figure:
    """Grouped bars: relative error ‖W − Q(W)‖/‖W‖ of every block matrix, one colour per format (log scale:
    int8 errors are ~10× smaller than int4's)."""
    fig = go.Figure()
    for i, (name, errs) in enumerate(errors.items()):
        fig.add_trace(go.Bar(x=list(matrices), y=list(errs), name=plotly_text(name), marker_color=colour(name, i),
                             hovertemplate="%{x}: %{y:.3%}<extra>" + plotly_text(name) + "</extra>"))
    fig.update_layout(barmode="group", yaxis_type="log", yaxis_title="‖W − Q(W)‖ / ‖W‖", yaxis_tickformat=".1%",
                      yaxis_tickvals=log_ticks(list(errors.values())), yaxis_range=_log_range(list(errors.values())),
                      height=380, legend=dict(orientation="h", y=-0.3), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_tickangle=-45, **_CLEAR)
    return fig


def drift_figure(stages: Sequence[str], drift: dict[str, Sequence[float]]) -> go.Figure:
    """How far the residual stream of the quantized model is from fp32's after each stage, relative to its
    size (one line per format): where the rounding error enters and whether it grows."""
    fig = go.Figure()
    for i, (name, d) in enumerate(drift.items()):
        fig.add_trace(go.Scatter(x=list(stages), y=list(d), mode="lines+markers", name=plotly_text(name),
                                 line=dict(color=colour(name, i), width=2),
                                 hovertemplate="%{x}: %{y:.3%}<extra>" + plotly_text(name) + "</extra>"))
    fig.update_layout(yaxis_type="log", yaxis_title="‖x_q − x‖ / ‖x‖", yaxis_tickformat=".1%", height=330,
                      yaxis_tickvals=log_ticks(list(drift.values())), yaxis_range=_log_range(list(drift.values())),
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=10, r=10, t=30, b=10), **_CLEAR)
    return fig


def memory_figure(names: Sequence[str], codes: Sequence[int], scales: Sequence[int], kept: Sequence[int],
                  bits_per_weight: Sequence[Optional[float]], kept_names: str = "embedding, norms") -> go.Figure:
    """One horizontal stacked bar per format: codes, scales, and the tensors kept at fp16 (bytes, in kB), named
    by `kept_names`. The label at the end: the total and the quantized matrices' bits per weight."""
    kb = lambda xs: [x / 1e3 for x in xs]  # noqa: E731
    fig = go.Figure()
    for part, ys, col in (("codes (weights)", codes, "#4C6FFF"), ("scales (fp16)", scales, "#E4572E"),
                          (f"kept at fp16: {kept_names}", kept, "#8E9AAF")):
        fig.add_trace(go.Bar(y=list(names), x=kb(ys), name=part, orientation="h", marker_color=col,
                             customdata=[f"{v:,}" for v in ys],
                             hovertemplate="%{y}: %{customdata} B<extra>" + part + "</extra>"))
    totals = [c + s + k for c, s, k in zip(codes, scales, kept)]
    labels = [f"{t / 1e6:.2f} MB" + (f" · {b:.2f} bits/weight" if b is not None else "")
              for t, b in zip(totals, bits_per_weight)]
    fig.add_trace(go.Scatter(y=list(names), x=kb(totals), mode="text", text=labels, textposition="middle right",
                             showlegend=False, hoverinfo="skip", cliponaxis=False))
    fig.update_layout(barmode="stack", xaxis_title="kB (10³ bytes)", yaxis_title="format", height=60 + 44 * len(names),
                      legend_traceorder="normal",
                      xaxis_range=[0, max(totals) / 1e3 * 1.45], yaxis_autorange="reversed",
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=10, r=10, t=20, b=10), **_CLEAR)
    return fig


def loss_vs_size_figure(names: Sequence[str], megabytes: Sequence[float], delta: Sequence[float],
                        se: Sequence[Optional[float]]) -> go.Figure:
    """Each format as a point: model size (x) against its held-out loss minus fp32's (y), with ±1 standard
    error of that paired difference. Down and left is better."""
    fig = go.Figure()
    for i, (n, x, y, e) in enumerate(zip(names, megabytes, delta, se)):
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", name=plotly_text(n), marker=dict(size=12, color=colour(n, i)),
            error_y=dict(type="data", array=[e or 0.0], visible=e is not None, color=colour(n, i)),
            hovertemplate=f"{plotly_text(n)}: %{{x:.2f}} MB, Δ %{{y:+.4f}} nats/token<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#8E9AAF", dash="dot"))
    # A legend, not labels by the points: int8 and Q8_0 (and the int4 group sizes) sit almost on each other.
    fig.update_layout(xaxis_title="model size (MB)", yaxis_title="held-out loss − fp32 (nats/token)",
                      xaxis_type="log", height=380, legend=dict(orientation="h", y=-0.25),
                      margin=dict(l=10, r=10, t=30, b=10), **_CLEAR)
    return fig


def speed_figure(cases: Sequence[str], series: dict[str, dict[str, Sequence[float]]]) -> go.Figure:
    """Median time per case (ms) as horizontal bars, min–max as whiskers; series[name] = {"median": […],
    "min": […], "max": […]}, one value per case. One panel per case with its own ms axis: a prefill of 2,048
    tokens and one decode step differ ~50×."""
    fig = make_subplots(rows=len(cases), cols=1, subplot_titles=[plotly_text(c) for c in cases],
                        vertical_spacing=0.2 if len(cases) > 1 else 0.0)
    for r in range(len(cases)):
        for i, (name, s) in enumerate(series.items()):
            med, lo, hi = s["median"][r], s["min"][r], s["max"][r]
            fig.add_trace(go.Bar(
                y=[plotly_text(name)], x=[med], orientation="h", marker_color=colour(name, i), showlegend=False,
                error_x=dict(type="data", symmetric=False, array=[hi - med], arrayminus=[med - lo], color="#8E9AAF"),
                text=[f"{med:.2f} ms"], textposition="inside", insidetextanchor="start",
                hovertemplate=f"{plotly_text(name)}: median %{{x:.2f}} ms (min {lo:.2f}, max {hi:.2f})<extra></extra>"),
                row=r + 1, col=1)
        fig.update_xaxes(rangemode="tozero", row=r + 1, col=1)
    fig.update_xaxes(title_text="ms (one thread; bar = median, whiskers = min–max)", row=len(cases), col=1)
    fig.update_layout(height=120 + 150 * len(cases), margin=dict(l=10, r=10, t=40, b=10), **_CLEAR)
    return fig


def next_token_figure(dists: dict[str, tuple[Sequence[str], Sequence[float]]]) -> go.Figure:
    """dists[model] = (top-k token labels, their probabilities), most likely first: one panel per model, side
    by side, on one probability scale. Token labels are user-visible text: escaped."""
    names = list(dists)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[plotly_text(n) for n in names],
                        horizontal_spacing=0.1)
    top = max((max(p) for _, p in dists.values() if len(p)), default=1.0)
    for i, n in enumerate(names):
        labels, probs = dists[n]
        fig.add_trace(go.Bar(x=list(probs), y=[plotly_text(l) for l in labels], orientation="h", name=plotly_text(n),
                             marker_color=colour(n, i), text=[f"{p:.1%}" for p in probs], textposition="outside",
                             cliponaxis=False, hovertemplate="%{y}: %{x:.4f}<extra>" + plotly_text(n) + "</extra>"),
                      row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace"), row=1, col=i + 1)
        fig.update_xaxes(range=[0, min(1.0, top * 1.35)], tickformat=".0%", row=1, col=i + 1)
    fig.update_layout(height=260, showlegend=False, margin=dict(l=10, r=10, t=40, b=10), **_CLEAR)
    return fig


# --------------------------------------------------------------------------------------------------------
# Sentences: every comparison from the numbers it compares
# --------------------------------------------------------------------------------------------------------


def names_text(names: Sequence[str]) -> str:
    """['a'] -> 'a'; ['a', 'b', 'c'] -> 'a, b and c'."""
    xs = list(names)
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def kept_text(kept: Sequence[str], tied: bool) -> str:
    """What a quantized copy keeps at fp16, in words: 'embedding' becomes 'embedding (tied to the unembedding)'
    when the head reuses it. kept: `counts.kept_tensors` names."""
    words = {"moe.router": "the router"}  # a mixture's router: the accounting's term name, in words
    return names_text([("embedding (tied to the unembedding)" if tied and k == "embedding" else words.get(k, k))
                       for k in kept])


def layer_error_caption(mean: dict[str, float], int8: str, int4: str) -> str:
    """Mean ‖W − Q(W)‖/‖W‖ per format, and 8 → 4 bits against the 16× that halving the step 4 times gives."""
    ratio = mean[int4] / mean[int8]
    why = ("less: Q4_0's blocks of 32 get finer scales than whole rows, and its rule uses all 16 codes "
           "(step max|x|/8, not /7)" if ratio < 16 else
           "more than the grid steps alone account for" if ratio > 16 else "exactly that")
    return ("‖W − Q(W)‖/‖W‖ of every quantized matrix. Mean over the matrices: "
            + ", ".join(f"{n} {v:.2%}" for n, v in mean.items())
            + f". Each bit halves the grid step, so 4 fewer bits at the same scale would cost ≈ 2⁴ = 16× the "
            f"error: {int8} → {int4} measures {ratio:.1f}×, {why}.")


def outlier_note(col: int, factor: float, led: float, before: dict[str, float], after: dict[str, float],
                 group: int) -> str:
    """What making input column `col` × factor does to each scope's error (before → after), and why groups
    help — said only when the numbers show it (the per-group error grows less than the per-channel one)."""
    growth = {k: after[k] / before[k] for k in before}
    text = (f" With input column {col} × {factor:g}, it holds the largest weight of {led:.0%} of the rows; the "
            "error, as trained → with the outlier: "
            + ", ".join(f"{k} {before[k]:.2%} → {after[k]:.2%} ({growth[k]:.1f}×)" for k in before) + ".")
    if growth["per group"] < growth["per channel"]:
        text += (" A column outlier sits in every row, so one scale per row cannot step around it; a group of "
                 f"{group} keeps it to one block of each row — why int4 formats use groups, and why LLM.int8() "
                 "pulls outlier columns out into fp16.")
    return text


def _verdict(case: dict) -> str:
    """'faster' / 'slower' when every int8 run beat / lost to every fp32 run (min–max of the repeats), else
    'overlap': the medians' ratio is then inside the run-to-run spread."""
    f, q = case["fp32"], case["int8"]
    return "faster" if q["max_ms"] < f["min_ms"] else "slower" if q["min_ms"] > f["max_ms"] else "overlap"


def speed_caption(speed: dict) -> str:
    """The timings: medians per case, with the engine and the load at the start."""
    parts = [f"{c}: fp32 {v['fp32']['median_ms']:.2f} ms, int8 {v['int8']['median_ms']:.2f} ms "
             f"(fp32/int8 = {v['speedup']:.2f}×)" for c, v in speed["cases"].items()]
    load = speed.get("load_average_at_start")
    return ("; ".join(parts) + f". Engine: {speed['engine']}, one thread, median of {speed['repeats']}"
            + (f"; load average {load[0]:.1f} on this machine when it started." if load else "."))


def speed_reading(speed: dict, largest: tuple[int, int]) -> str:
    """Which cases int8 wins and loses — a win or a loss only where the runs do not overlap — and the likely
    reason, said only when the pattern it explains is there. largest: the biggest quantized matrix's shape."""
    cases = speed["cases"]
    by = {c: _verdict(v) for c, v in cases.items()}
    def span(v: dict) -> str:
        return f"fp32 {v['fp32']['min_ms']:.1f}–{v['fp32']['max_ms']:.1f} ms, int8 {v['int8']['min_ms']:.1f}–" \
               f"{v['int8']['max_ms']:.1f}"

    win = [f"{c} ({cases[c]['speedup']:.2f}×)" for c, v in by.items() if v == "faster"]
    lose = [f"{c} ({cases[c]['speedup']:.2f}×)" for c, v in by.items() if v == "slower"]
    even = [f"{c} ({cases[c]['speedup']:.2f}×; {span(cases[c])})" for c, v in by.items() if v == "overlap"]
    parts = []
    if win:
        parts.append("int8 is faster for " + ", ".join(win) + ": every int8 run beat every fp32 run")
    if lose:
        parts.append("slower for " + ", ".join(lose) + ": every int8 run lost")
    if even:
        parts.append("no difference shown for " + ", ".join(even) + " — the runs overlap")
    text = f"fp32 time ÷ int8 time (medians of {speed['repeats']}): " + "; ".join(parts) + "."
    decode = [c for c in cases if "decode" in c]
    if win and decode and all(by[c] != "faster" for c in decode) and all("decode" not in c for c, v in by.items()
                                                                         if v == "faster"):
        text += (f" Our matrices are small ({largest[0]} × {largest[1]} at most): with many rows per call the "
                 "int8 multiply pays off, while a decode step multiplies one row, where quantizing the input and "
                 "calling the kernel most likely cost as much as the arithmetic saves.")
    return text + (" Only the Linear layers are int8; the unembedding and attention are not. What int8 always "
                   "buys is memory: one byte a weight instead of fp32's four, plus one scale per output row.")
