"""Charts for the accounting page: where the parameters are, where the FLOPs go as s grows, what the KV cache
costs for MHA vs GQA vs MQA. Plain lists in (counts from `model/accounting/counts.py`), a `go.Figure` out.

No streamlit, no torch. Counts arrive as exact ints; the charts plot them as floats (which is all a pixel
needs) and keep the exact value in the hover text.
"""

from __future__ import annotations

from typing import Optional, Sequence

import plotly.graph_objects as go

GROUP_COLOURS = {  # the same hues as viz/pipeline.py where the groups match
    "embedding": "#4C6FFF",
    "attention": "#E4572E",
    "attention projections": "#E4572E",
    "attention scores": "#F3A712",
    "mlp": "#29A36A",
    "norms": "#B07CC6",
    "head": "#8E9AAF",
    "unembedding": "#8E9AAF",
}
_FALLBACK = ["#17BECF", "#7F7F7F", "#BCBD22", "#8C564B"]


def _colour(name: str, i: int) -> str:
    return GROUP_COLOURS.get(name, _FALLBACK[i % len(_FALLBACK)])


def param_bars(models: Sequence[str], groups: Sequence[str], counts: Sequence[Sequence[int]],
               percent: bool = False, title: str = "Parameters by component") -> go.Figure:
    """One stacked bar per model. counts[i][j] = parameters of group i in model j.

    percent=True stacks shares of each model's total, so a 2M and a 70B model can stand side by side.
    """
    totals = [sum(c[j] for c in counts) or 1 for j in range(len(models))]
    fig = go.Figure()
    for i, (g, row) in enumerate(zip(groups, counts)):
        y = [100 * v / t for v, t in zip(row, totals)] if percent else [float(v) for v in row]
        fig.add_trace(go.Bar(
            name=g, x=list(models), y=y, marker_color=_colour(g, i),
            customdata=[[f"{v:,}", f"{100 * v / t:.1f}"] for v, t in zip(row, totals)],
            hovertemplate=f"{g}: %{{customdata[0]}} parameters (%{{customdata[1]}} %)<extra>%{{x}}</extra>",
        ))
    fig.update_layout(barmode="stack", title=title, legend_title_text="component",
                      yaxis_title="share of parameters (%)" if percent else "parameters",
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def flops_vs_seq_len(seq_lens: Sequence[int], series: dict[str, Sequence[int]], crossover: Optional[float] = None,
                     title: str = "Forward FLOPs by component vs sequence length") -> go.Figure:
    """Log-log lines, one per component. Linear terms have slope 1; attention scores (s²) slope 2, so they
    cross. `crossover`: the s where attention overtakes the MLP, marked with a dashed line."""
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_trace(go.Scatter(
            x=list(seq_lens), y=[float(v) for v in ys], name=name, mode="lines+markers",
            line=dict(color=_colour(name, i), width=2, dash="dot" if name == "unembedding" else None),
            customdata=[f"{v:,}" for v in ys],
            hovertemplate=f"{name}<br>s = %{{x:,}}: %{{customdata}} FLOPs<extra></extra>",
        ))
    if crossover is not None:
        fig.add_vline(x=crossover, line_dash="dash", line_color="#888",
                      annotation_text=f"attention = MLP at s ≈ {crossover:,.0f}", annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="sequence length s (tokens, prefill)", yaxis_title="FLOPs",
                      legend_title_text="component", margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def kv_cache_vs_context(contexts: Sequence[int], series: dict[str, Sequence[int]],
                        title: str = "KV cache vs context") -> go.Figure:
    """One line per attention variant (MHA, GQA, MQA of one model), in GiB (2³⁰ bytes), exact bytes in the
    hover. Linear in context until a sliding window caps it."""
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_trace(go.Scatter(
            x=list(contexts), y=[v / 2**30 for v in ys], name=name, mode="lines+markers",
            line=dict(width=2, color=["#E4572E", "#4C6FFF", "#29A36A"][i % 3]),
            customdata=[f"{v:,}" for v in ys],
            hovertemplate=f"{name}<br>context %{{x:,}}: %{{y:.3g}} GiB (%{{customdata}} bytes)<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title="context (tokens)", yaxis_title="KV cache (GiB)",
                      legend_title_text="attention", margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(type="log")
    return fig
