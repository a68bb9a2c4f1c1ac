"""Charts and sentences for the accounting page: where the parameters are, where the FLOPs go as s grows, what
the KV cache costs for MHA vs GQA vs MQA, and the captions that state numbers. Plain lists and numbers in
(counts from `model/accounting/counts.py`), a `go.Figure` or a string out.

No streamlit, no torch. Counts arrive as exact ints; the charts plot them as floats (which is all a pixel
needs) and keep the exact value in the hover text.
"""

from __future__ import annotations

import math
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
    fig.update_layout(barmode="stack", title=title, legend_title_text="component", xaxis_title="model",
                      yaxis_title="share of parameters (%)" if percent else "parameters",
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def flops_vs_seq_len(seq_lens: Sequence[int], series: dict[str, Sequence[int]], crossover: Optional[float] = None,
                     title: str = "Forward FLOPs by component vs sequence length") -> go.Figure:
    """Log-log lines, one per component. Linear terms have slope 1; attention scores (s²) slope 2, so they
    cross. `crossover`: the s where attention overtakes the MLP, marked with a dashed line when it is on the
    chart."""
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_trace(go.Scatter(
            x=list(seq_lens), y=[float(v) for v in ys], name=name, mode="lines+markers",
            line=dict(color=_colour(name, i), width=2, dash="dot" if name == "unembedding" else None),
            customdata=[f"{v:,}" for v in ys],
            hovertemplate=f"{name}<br>s = %{{x:,}}: %{{customdata}} FLOPs<extra></extra>",
        ))
    if crossover is not None and min(seq_lens) <= crossover <= max(seq_lens):
        # On a log axis a shape takes the data value but an annotation takes its log10 (plotly.js keeps
        # annotations in the axis's linear range), so add_vline's own annotation_text would sit at 10^s*.
        fig.add_vline(x=crossover, line_dash="dash", line_color="#888")
        fig.add_annotation(x=math.log10(crossover), xref="x", y=1, yref="paper", yanchor="bottom",
                           xanchor="right", showarrow=False, font=dict(color="#666"),
                           text=f"attention = MLP at s ≈ {crossover:,.0f}")
    fig.update_layout(title=title, xaxis_title="sequence length s (tokens, prefill)", yaxis_title="FLOPs",
                      legend_title_text="component", margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def kv_cache_vs_context(contexts: Sequence[int], series: dict[str, Sequence[int]],
                        title: str = "KV cache vs context", chosen: Optional[int] = None) -> go.Figure:
    """One line per attention variant (MHA, GQA, MQA of one model), in GiB (2³⁰ bytes), exact bytes in the
    hover. Linear in context until a sliding window caps it — drawn on linear axes, so it looks linear (a log x
    with a linear y made it look exponential). `chosen`: the context chosen on the page, marked."""
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_trace(go.Scatter(
            x=list(contexts), y=[v / 2**30 for v in ys], name=name, mode="lines+markers",
            line=dict(width=2, color=["#E4572E", "#4C6FFF", "#29A36A"][i % 3], dash=["solid", "dash", "dot"][i % 3]),
            customdata=[f"{v:,}" for v in ys],
            hovertemplate=f"{name}<br>context %{{x:,}}: %{{y:.3g}} GiB (%{{customdata}} bytes)<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title="context (tokens)", yaxis_title="KV cache (GiB)",
                      legend_title_text="attention", margin=dict(l=10, r=10, t=50, b=10))
    fig.update_xaxes(rangemode="tozero", separatethousands=True)
    fig.update_yaxes(rangemode="tozero")
    if chosen:
        fig.add_vline(x=chosen, line=dict(dash="dot", color="#888"), annotation_text=f"your context: {chosen:,}",
                      annotation_position="top left" if chosen > max(contexts, default=0) / 2 else "top right")
    return fig


# --------------------------------------------------------------------------------------------------------
# Sentences that state numbers: built from the numbers they state
# --------------------------------------------------------------------------------------------------------


def _names(xs: Sequence[str]) -> str:
    xs = list(xs)
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def weights_caption(kept: dict[str, int], total_params: int, per_quantized_weight: dict[str, float]) -> str:
    """What the weight-memory table counts. kept: the tensors a quantized format leaves at fp16 and their
    parameter counts (`counts.kept_tensors`); per_quantized_weight: each quantized format's bits per weight of
    the matrices it quantizes (codes and scales)."""
    n_kept = sum(kept.values())
    bpw = "; ".join(f"{k} {v:.3f}" for k, v in per_quantized_weight.items())
    return (
        "Bits per parameter count everything stored. A quantized format holds an 8- or 4-bit code per weight "
        "(4-bit codes two to a byte) plus one fp16 scale per output row (int8, per channel) or per block of G "
        f"weights (Q8_0, Q4_0 and int4) — here {bpw} bits per quantized weight — and quantizes only the attention "
        f"and MLP matrices. The {_names(list(kept))} ({n_kept:,} parameters, {n_kept / total_params:.1%} of "
        "them) stay at fp16, as bitsandbytes, GPTQ and AWQ checkpoints keep them"
        + (", which puts the whole model's bits per parameter above its matrices' own. " if n_kept else ". ")
        + "No format here has a zero point: all are symmetric (weight = code × scale); asymmetric ones "
        "(llama.cpp's Q4_1, GPTQ and AWQ with zero points) store one more number per block, not counted here. "
        "llama.cpp's own files quantize the token embedding too and store the output matrix at Q6_K. The "
        "Quantization page measures what these formats cost our model in loss."
    )


def ridge_caption(hardware: dict[str, tuple[float, float]], quoted: str = "A100 40GB", faster: str = "A100 80GB") -> str:
    """Where "memory-bound below a batch of ≈ 200" comes from. hardware: name -> (peak FLOP/s, bytes/s)."""
    (p, bw), (p2, bw2) = hardware[quoted], hardware[faster]
    return (
        "Bytes moved = every weight read once per step + the KV cache read (decode) or written (prefill); "
        "activations are left out. A decode step does ~2 FLOPs per weight per sequence, so at bf16 its intensity "
        f"is ≈ the batch size: the often-quoted \"memory-bound below a batch of ≈ 200\" is the {quoted}'s ridge "
        f"({p / 1e12:g} TFLOP/s ÷ {bw / 1e12:g} TB/s = {p / bw:.0f} FLOP/byte); the {faster}'s "
        + ("faster memory lowers it to" if bw2 > bw and p2 == p else "numbers put it at")
        + f" {p2 / bw2:.0f}."
    )


def crossover_caption(crossover: float, gated: bool) -> str:
    """When the s² attention term overtakes the MLP (`counts.attention_crossover_seq_len`)."""
    return (f"Per layer, attention scores cost 4·b·s²·nh·hd and the MLP {3 if gated else 2}·2·b·s·d·m: "
            f"attention overtakes the MLP at s* = {crossover:,.0f} tokens.")


# --------------------------------------------------------------------------------------------------------
# Mixture of experts and training memory
# --------------------------------------------------------------------------------------------------------


def active_params_bars(groups: Sequence[str], total: Sequence[int], active: Sequence[int],
                       title: str = "Total and active parameters") -> go.Figure:
    """Two stacked bars: every parameter the model stores, and the ones one token's forward uses (a mixture of
    experts routes each token to k of its E experts). total[i], active[i]: parameters of group i."""
    fig = go.Figure()
    sums = [sum(total) or 1, sum(active) or 1]
    for i, (g, t, a) in enumerate(zip(groups, total, active)):
        fig.add_trace(go.Bar(
            name=g, x=["total (stored)", "active (per token)"], y=[float(t), float(a)], marker_color=_colour(g, i),
            customdata=[[f"{v:,}", f"{100 * v / s:.1f}"] for v, s in zip((t, a), sums)],
            hovertemplate=f"{g}: %{{customdata[0]}} parameters (%{{customdata[1]}} %)<extra>%{{x}}</extra>",
        ))
    fig.update_layout(barmode="stack", title=title, xaxis_title="which parameters", yaxis_title="parameters",
                      legend_title_text="component", margin=dict(l=10, r=10, t=50, b=10))
    return fig


TRAINING_COLOURS = {
    "weights": "#4C6FFF", "gradients": "#E4572E", "fp32 master weights": "#B07CC6", "AdamW moments": "#8E9AAF",
    "activations": "#29A36A",
}


def training_memory_bars(labels: Sequence[str], parts: Sequence[dict[str, int]], gpu_name: str,
                         gpu_bytes: int, title: str = "Training memory by part") -> go.Figure:
    """One stacked bar per setting (labels[j], parts[j]: bytes by part, `counts.training_memory`), in GiB with
    the exact bytes in the hover, and the GPU's memory as a dashed line across the bars."""
    fig = go.Figure()
    names = list(parts[0])
    for i, name in enumerate(names):
        ys = [p[name] for p in parts]
        fig.add_trace(go.Bar(
            name=name, x=list(labels), y=[v / 2**30 for v in ys],
            marker_color=TRAINING_COLOURS.get(name, _FALLBACK[i % len(_FALLBACK)]),
            customdata=[f"{v:,}" for v in ys],
            hovertemplate=f"{name}: %{{y:.3g}} GiB (%{{customdata}} bytes)<extra>%{{x}}</extra>",
        ))
    fig.add_hline(y=gpu_bytes / 2**30, line=dict(dash="dash", color="#444"),
                  annotation_text=f"{gpu_name}: {gpu_bytes / 2**30:,.1f} GiB", annotation_position="top left")
    top = max([sum(p.values()) for p in parts] + [gpu_bytes]) / 2**30
    fig.update_layout(barmode="stack", title=title, xaxis_title="setting", yaxis_title="memory (GiB, 2³⁰ bytes)",
                      legend_title_text="part", margin=dict(l=10, r=10, t=50, b=10))
    fig.update_yaxes(range=[0, top * 1.12])  # room above the taller of the bars and the line, for its label
    return fig


def training_fit_caption(parts: dict[str, int], gpu_name: str, gpu_bytes: int,
                         checkpointed_total: Optional[int] = None) -> str:
    """Whether training fits on one card, from the numbers. parts: bytes by part (`counts.training_memory`);
    checkpointed_total: the total with activation checkpointing, to say when it would make the difference."""
    total, act = sum(parts.values()), parts.get("activations", 0)
    states = total - act
    gib = lambda n: f"{n / 2**30:,.1f} GiB"  # noqa: E731
    head = (f"Training needs **{gib(total)}**: {gib(states)} of weights, gradients and optimizer states "
            f"({states / max(total, 1):.0%}) and {gib(act)} of activations. ")
    if total <= gpu_bytes:
        return head + f"It **fits on one {gpu_name}** ({gib(gpu_bytes)}), with {gib(gpu_bytes - total)} to spare."
    out = head + (f"It **does not fit on one {gpu_name}** ({gib(gpu_bytes)}): it needs "
                  f"{total / gpu_bytes:.1f}× the card's memory. ")
    if states > gpu_bytes:
        return out + ("The weights, gradients and optimizer states alone are larger than the card, so no batch "
                      f"size fits: sharding them over at least {-(-states // gpu_bytes)} cards (ZeRO, FSDP) would.")
    if checkpointed_total is not None and checkpointed_total <= gpu_bytes:
        return out + f"With activation checkpointing it would fit ({gib(checkpointed_total)})."
    return out + "A smaller batch or shorter sequences shrink the activations."
