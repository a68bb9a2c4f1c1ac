"""Building-block figures: RMSNorm on one vector as four aligned strips (x, x / rms, g, output), the LayerNorm
formula beside it, the residual stream's norm stage by stage, the gated MLP's gate / activation / up / product
over its neurons, and which neurons fire for which tokens; and the sentences that describe them, written from
the same numbers (a caption never states a figure by hand).

Arrays and labels in, `go.Figure` or a string out. Every token label goes through `plotly_text` (see
viz/tokens.py); the sentences hold numbers only, so a page adds any token text itself, escaped. Colours: values
below 0 blue, above 0 red (RdBu, as the embeddings page), sequences in Viridis. No streamlit, no torch.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.tokens import plotly_text

_CLEAR = dict(plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)")
NEG, POS = "#2166ac", "#b2182b"  # RdBu's ends: blue below 0, red above (readable with red-green colour blindness)
MEDIAN, CHOSEN, EACH = "#000000", "#E69F00", "rgba(120,120,120,0.35)"  # Okabe–Ito orange for the chosen position
_LEGEND_ABOVE = dict(orientation="h", y=1.02, yanchor="bottom", x=0)  # outside the plot area, never over data


def _sign_colours(v: np.ndarray) -> list[str]:
    return [POS if x >= 0 else NEG for x in np.asarray(v)]


def _strips(rows: list[tuple[str, str, np.ndarray]], x: np.ndarray, x_title: str, hover_x: str,
            customdata: np.ndarray | None = None, row_height: int = 150) -> go.Figure:
    """Aligned bar strips sharing one x axis: rows = (trace name, y-axis title, values)."""
    n = len(rows)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.045)
    for r, (name, y_title, v) in enumerate(rows, start=1):
        fig.add_trace(go.Bar(
            x=x, y=np.asarray(v, dtype=np.float64), name=name, marker_color=_sign_colours(v), marker_line_width=0,
            customdata=customdata, showlegend=False,
            hovertemplate=f"{hover_x}<br>{plotly_text(name)} = %{{y:.4f}}<extra></extra>",
        ), row=r, col=1)
        fig.update_yaxes(title_text=y_title, title_font=dict(size=12), zeroline=True, zerolinecolor="#999",
                         row=r, col=1)
    fig.update_xaxes(title_text=x_title, row=n, col=1)
    fig.update_layout(height=row_height * n + 90, margin=dict(l=10, r=10, t=10, b=10), bargap=0.1, **_CLEAR)
    return fig


# --------------------------------------------------------------------------------------------------------
# RMSNorm and the LayerNorm formula
# --------------------------------------------------------------------------------------------------------


def rmsnorm_figure(x: np.ndarray, x_hat: np.ndarray, g: np.ndarray, out: np.ndarray) -> go.Figure:
    """Four strips over the d_model dimensions: the input x, x / rms, the learned weight g, the output x / rms · g."""
    d = len(x)
    return _strips([("x", "1. input x", x), ("x / rms", "2. x / rms", x_hat), ("g", "3. weight g", g),
                    ("x / rms · g", "4. output", out)],
                   np.arange(d), f"dimension (0 … {d - 1} of d_model = {d})", "dimension %{x}")


def layernorm_figure(x_hat: np.ndarray, ln_out: np.ndarray) -> go.Figure:
    """RMSNorm's x / rms (bars) against the LayerNorm formula's (x − mean) / std (dots) on the same vector, and
    their difference below, over the d_model dimensions."""
    d = len(x_hat)
    dims = np.arange(d)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35])
    fig.add_trace(go.Bar(x=dims, y=np.asarray(x_hat, dtype=np.float64), name="RMSNorm: x / rms",
                         marker_color="#999999", marker_line_width=0,
                         hovertemplate="dimension %{x}<br>x / rms = %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=dims, y=np.asarray(ln_out, dtype=np.float64), mode="markers",
                             name="LayerNorm formula: (x − mean) / std", marker=dict(color=CHOSEN, size=5),
                             hovertemplate="dimension %{x}<br>(x − mean) / std = %{y:.4f}<extra></extra>"),
                  row=1, col=1)
    diff = np.asarray(ln_out, dtype=np.float64) - np.asarray(x_hat, dtype=np.float64)
    fig.add_trace(go.Bar(x=dims, y=diff, name="difference", marker_color=_sign_colours(diff), marker_line_width=0,
                         showlegend=False, hovertemplate="dimension %{x}<br>difference %{y:.4f}<extra></extra>"),
                  row=2, col=1)
    fig.update_yaxes(title_text="normalized value", title_font=dict(size=12), row=1, col=1)
    fig.update_yaxes(title_text="LayerNorm − RMSNorm", title_font=dict(size=12), row=2, col=1)
    fig.update_xaxes(title_text=f"dimension (0 … {d - 1})", row=2, col=1)
    fig.update_layout(height=430, margin=dict(l=10, r=10, t=40, b=10), legend=_LEGEND_ABOVE, bargap=0.1, **_CLEAR)
    return fig


def rmsnorm_sentence(steps: dict) -> str:
    """The caption of `rmsnorm_figure`, from `model.analysis.blocks.rmsnorm_steps`'s numbers."""
    d = len(steps["x"])
    g = steps["g"]
    return (f"This vector has length ‖x‖ = {steps['x_norm']:.4g} over d = {d} dimensions, so mean(x²) = "
            f"{steps['ms']:.4g} and rms = √(mean(x²) + ε) = **{steps['rms']:.4g}** (ε = {steps['eps']:g}). "
            f"Dividing by it gives x / rms, of length {steps['x_hat_norm']:.4g} — √d = {math.sqrt(d):.4g}: every "
            f"vector leaves this step with about the same length, whatever length it came in with. The learned "
            f"weight g (from {g.min():.3g} to {g.max():.3g}, mean {g.mean():.3g}) then stretches or shrinks each "
            f"dimension on its own: the output's length is **{steps['out_norm']:.4g}**.")


def layernorm_sentence(steps: dict, ln: dict) -> str:
    """How far the LayerNorm formula's result is from RMSNorm's x / rms on this vector, and why."""
    diff = float(np.abs(ln["out"] - steps["x_hat"]).max())
    top = float(np.abs(steps["x_hat"]).max())
    verdict = ("almost nothing here" if diff <= 0.05 * top else "a visible amount here")
    return (f"This vector's mean is {ln['mean']:.3g} and its standard deviation {ln['std']:.4g}, against an rms of "
            f"{steps['rms']:.4g}. The largest difference between the two results is {diff:.3g} (the values "
            f"reach {top:.3g}): subtracting the mean changes {verdict}. When the mean is close to 0 the standard "
            "deviation and the rms are nearly the same number, which is why Llama-style models drop the mean "
            "(and LayerNorm's bias) and keep only the rescaling.")


# --------------------------------------------------------------------------------------------------------
# The residual stream's norm
# --------------------------------------------------------------------------------------------------------


def residual_norm_lines(norms: np.ndarray, median: np.ndarray, stages: list[str], chosen: int | None = None,
                        chosen_label: str = "") -> go.Figure:
    """norms (S, T): ‖resid‖ per stage and position. Every position as a thin grey line, the median over
    positions in black, and one chosen position in orange; log y, so the first stages stay visible."""
    norms = np.asarray(norms, dtype=np.float64)
    S, T = norms.shape
    xs, ys = [], []
    for t in range(T):  # one trace, the positions separated by None: hundreds of lines draw as one
        xs += list(stages) + [None]
        ys += list(norms[:, t]) + [None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="each position", line=dict(color=EACH, width=1),
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=list(stages), y=np.asarray(median, dtype=np.float64), mode="lines+markers",
                             name="median over positions", line=dict(color=MEDIAN, width=3),
                             hovertemplate="%{x}<br>median ‖resid‖ = %{y:.3f}<extra></extra>"))
    if chosen is not None:
        fig.add_trace(go.Scatter(x=list(stages), y=norms[:, chosen], mode="lines+markers",
                                 name=plotly_text(f"position {chosen} {chosen_label}"),
                                 line=dict(color=CHOSEN, width=2, dash="dash"),
                                 hovertemplate="%{x}<br>‖resid‖ = %{y:.3f}<extra></extra>"))
    fig.update_yaxes(type="log", title_text="‖resid‖ (log scale)")
    # Short: a phone gives the axis 300 px; the ticks ("0: +attention", "0: +MLP") name the block and the half.
    fig.update_xaxes(title_text="where the stream is read", tickangle=-30)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend=_LEGEND_ABOVE, **_CLEAR)
    return fig


def residual_norm_heatmap(norms: np.ndarray, stages: list[str], pos_labels: list[str]) -> go.Figure:
    """norms (S, T) as a heatmap: stages down, positions across, Viridis with a titled colour bar."""
    norms = np.asarray(norms, dtype=np.float32)
    S, T = norms.shape
    cols = [f"{t} {plotly_text(l)}" for t, l in enumerate(pos_labels)]
    fig = go.Figure(go.Heatmap(
        z=norms, x=cols, y=list(stages), colorscale="Viridis", zmin=0, name="‖resid‖",
        colorbar=dict(title=dict(text="‖resid‖", side="right"), thickness=12),
        hovertemplate="position %{x}<br>%{y}: ‖resid‖ = %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="stage")
    fig.update_xaxes(title_text="position (input token)", tickangle=-60)
    fig.update_layout(height=60 + 30 * S + 120, margin=dict(l=10, r=10, t=10, b=10), **_CLEAR)
    return fig


def growth_sentence(median: np.ndarray, stages: list[str], n_positions: int) -> str:
    """The caption of the residual-norm figures: how much the median grows, and its largest single step."""
    median = np.asarray(median, dtype=np.float64)
    ratio = median[-1] / median[0] if median[0] > 0 else float("inf")
    steps = median[1:] / np.where(median[:-1] > 0, median[:-1], np.nan)
    s = (f"The median length over the {n_positions} position(s) goes from {median[0]:.3g} at the embedding to "
         f"{median[-1]:.3g} after the last block: **{ratio:.1f}×** larger.")
    if len(steps) and np.isfinite(steps).any():
        k = int(np.nanargmax(steps))
        s += f" The largest single step is the one into “{stages[k + 1]}”: ×{steps[k]:.2f} on the median."
    return s


# --------------------------------------------------------------------------------------------------------
# The gated MLP
# --------------------------------------------------------------------------------------------------------


def swiglu_figure(gate: np.ndarray, act_gate: np.ndarray, up: np.ndarray, product: np.ndarray, act_name: str,
                  order: np.ndarray | None = None) -> go.Figure:
    """Four strips over the d_mlp neurons at one position: gate = W_gate x, act(gate), up = W_up x and the
    product act(gate) · up. `order` (a permutation of the neurons, e.g. by |product|) sorts every strip alike;
    the hover names each bar's neuron."""
    n = len(gate)
    order = np.arange(n) if order is None else np.asarray(order)
    rows = [("gate = W_gate x", "gate", gate), (f"{act_name}(gate)", f"{act_name}(gate)", act_gate),
            ("up = W_up x", "up", up), (f"{act_name}(gate) · up", "product", product)]
    rows = [(name, title, np.asarray(v)[order]) for name, title, v in rows]
    sorted_ = not np.array_equal(order, np.arange(n))
    return _strips(rows, np.arange(n), "neuron, sorted by |product| (largest first)" if sorted_ else
                   f"neuron (0 … {n - 1} of d_mlp = {n})", "neuron %{customdata}", customdata=order, row_height=140)


def neuron_heatmap(values: np.ndarray, pos_labels: list[str], neurons: np.ndarray, act_name: str,
                   first_pos: int = 0) -> go.Figure:
    """values (T, N): act(gate) · up at each shown position for the N neurons `neurons`. Positions down (token
    labels, escaped), neurons across; RdBu centred on 0 with a titled colour bar."""
    values = np.asarray(values, dtype=np.float32)
    T, N = values.shape
    lim = float(np.abs(values).max()) if values.size else 1.0
    rows = [f"{first_pos + i} {plotly_text(l)}" for i, l in enumerate(pos_labels)]
    fig = go.Figure(go.Heatmap(
        z=values, x=[f"n{int(i)}" for i in neurons], y=rows, colorscale="RdBu", reversescale=True,
        zmin=-(lim or 1.0), zmax=lim or 1.0, name="product",
        colorbar=dict(title=dict(text=f"{act_name}(gate)·up", side="right"), thickness=12),
        hovertemplate="%{y}<br>neuron %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="position (input token)", tickfont=dict(family="monospace"))
    fig.update_xaxes(title_text="neuron (largest peak first)", tickangle=-60, side="top")
    fig.update_layout(height=int(np.clip(16 * T + 170, 300, 1000)), margin=dict(l=10, r=10, t=10, b=10), **_CLEAR)
    return fig


def activation_minimum(act_fn) -> tuple[float, float]:
    """(z, act(z)) at the nonlinearity's minimum, found on a fine grid: SiLU's is about (−1.278, −0.278)."""
    z = np.linspace(-6, 2, 80_001)
    a = act_fn(z)
    i = int(np.argmin(a))
    return float(z[i]), float(a[i])


def swiglu_sentence(gate: np.ndarray, product: np.ndarray, act_name: str, act_min: tuple[float, float]) -> str:
    """The caption of `swiglu_figure` at one position, from its numbers."""
    gate, product = np.asarray(gate, dtype=np.float64), np.asarray(product, dtype=np.float64)
    n = len(gate)
    mag = np.abs(product)
    order = np.argsort(-mag, kind="stable")
    total = float(mag.sum())
    half = int(np.searchsorted(np.cumsum(mag[order]), total / 2) + 1) if total > 0 else 0
    s = (f"{int((gate > 0).sum())} of the {n} gate values are positive. {act_name} lets those through almost "
         f"unchanged and squashes the negative ones towards 0 (its lowest value is {act_min[1]:.3f}, at "
         f"z ≈ {act_min[0]:.2f}). The product's largest |value| is {mag[order[0]]:.3g}, at neuron {int(order[0])}; ")
    s += (f"half of the product's total |value| comes from just {half} neuron(s) ({half / n:.0%}): the MLP's "
          "output at this position is mostly the W_down columns of those few neurons." if total > 0 else
          "every product is 0 here.")
    return s
