"""Building-block figures: RMSNorm on one vector as four aligned strips (x, x / rms, g, output) or LayerNorm as
six (x, x − mean, (x − mean) / std, γ, β, output), the other formula beside it, the residual stream's norm stage
by stage, the MLP over its neurons — a gated MLP's gate / activation / up / product, a plain one's pre-activation
and activation — and which neurons fire for which tokens; a mixture of experts' router choices and expert
load; per-block gradient norms and residual RMS over training. And the sentences that describe them, written
from the same numbers (a caption never states a figure by hand).

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


def layernorm_steps_figure(steps: dict) -> go.Figure:
    """Six strips over the d_model dimensions (`model.analysis.blocks.layernorm_steps`): the input x, the centred
    x − mean, (x − mean) / std, the learned weight γ, the learned bias β, the output (x − mean) / std · γ + β."""
    d = len(steps["x"])
    fig = _strips([("x", "1. input x", steps["x"]), ("x − mean", "2. x − mean", steps["centred"]),
                   ("(x − mean) / std", "3. ÷ std", steps["x_hat"]), ("γ", "4. weight γ", steps["w"]),
                   ("β", "5. bias β", steps["b"]), ("(x − mean) / std · γ + β", "6. output", steps["out"])],
                  np.arange(d), f"dimension (0 … {d - 1} of d_model = {d})", "dimension %{x}", row_height=120)
    fig.add_hline(y=steps["mean"], row=1, col=1, line=dict(color=CHOSEN, dash="dash", width=2),
                  annotation_text=f"mean {steps['mean']:.3g}", annotation_position="top right")
    return fig


def layernorm_steps_sentence(steps: dict) -> str:
    """The caption of `layernorm_steps_figure`, from `layernorm_steps`'s numbers."""
    d = len(steps["x"])
    w, b = steps["w"], steps["b"]
    return (f"This vector has length ‖x‖ = {steps['x_norm']:.4g} over d = {d} dimensions and mean "
            f"**{steps['mean']:.4g}**; subtracting it leaves x − mean, of length {steps['centred_norm']:.4g}. Its "
            f"standard deviation is √(mean((x − mean)²) + ε) = **{steps['std']:.4g}** (ε = {steps['eps']:g}) — the rms "
            f"of the centred vector, so from here LayerNorm is RMSNorm on x − mean. Dividing by it gives a vector of "
            f"mean 0 and length {steps['x_hat_norm']:.4g} (√d = {math.sqrt(d):.4g}). The learned weight γ (from "
            f"{w.min():.3g} to {w.max():.3g}, mean {w.mean():.3g}) stretches each dimension, and the learned bias β "
            f"(from {b.min():.3g} to {b.max():.3g}, mean {b.mean():.3g}) shifts it — the one part RMSNorm has no "
            f"counterpart for: the output's length is **{steps['out_norm']:.4g}**.")


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


def plain_mlp_figure(pre: np.ndarray, post: np.ndarray, act_name: str, order: np.ndarray | None = None) -> go.Figure:
    """Two strips over the d_mlp neurons at one position of a plain MLP: pre = W_in x and act(pre), the value
    W_out reads. `order` sorts both alike (e.g. by |act(pre)|); the hover names each bar's neuron."""
    n = len(pre)
    order = np.arange(n) if order is None else np.asarray(order)
    rows = [("pre = W_in x", "pre", np.asarray(pre)[order]), (f"{act_name}(pre)", f"{act_name}(pre)",
                                                               np.asarray(post)[order])]
    sorted_ = not np.array_equal(order, np.arange(n))
    return _strips(rows, np.arange(n), f"neuron, sorted by |{act_name}(pre)| (largest first)" if sorted_ else
                   f"neuron (0 … {n - 1} of d_mlp = {n})", "neuron %{customdata}", customdata=order, row_height=170)


def _concentration(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """|values|, their order (largest first), their total, and how many of the largest make up half of it — what
    both MLP captions say: [3, -1, 0] -> half = 1 (3 of the total 4)."""
    mag = np.abs(values)
    order = np.argsort(-mag, kind="stable")
    total = float(mag.sum())
    half = int(np.searchsorted(np.cumsum(mag[order]), total / 2) + 1) if total > 0 else 0
    return mag, order, total, half


def plain_mlp_sentence(pre: np.ndarray, post: np.ndarray, act_name: str, act_min: tuple[float, float]) -> str:
    """The caption of `plain_mlp_figure` at one position, from its numbers."""
    pre, post = np.asarray(pre, dtype=np.float64), np.asarray(post, dtype=np.float64)
    n = len(pre)
    mag, order, total, half = _concentration(post)
    s = (f"{int((pre > 0).sum())} of the {n} pre-activations are positive. {act_name} lets those through almost "
         f"unchanged and squashes the negative ones towards 0 (its lowest value is {act_min[1]:.3f}, at "
         f"z ≈ {act_min[0]:.2f}). The largest |{act_name}(pre)| is {mag[order[0]]:.3g}, at neuron {int(order[0])}; ")
    s += (f"half of the total |{act_name}(pre)| comes from {half} neuron(s) ({half / n:.0%}): the MLP's output at "
          "this position is mostly the W_out columns of those neurons." if total > 0 else "every value is 0 here.")
    return s


def neuron_heatmap(values: np.ndarray, pos_labels: list[str], neurons: np.ndarray, act_name: str,
                   first_pos: int = 0, value_name: str | None = None) -> go.Figure:
    """values (T, N): act(gate) · up (a plain MLP: act(pre), named by `value_name`) at each shown position for the
    N neurons `neurons`. Positions down (token labels, escaped), neurons across; RdBu centred on 0 with a titled
    colour bar."""
    values = np.asarray(values, dtype=np.float32)
    T, N = values.shape
    lim = float(np.abs(values).max()) if values.size else 1.0
    rows = [f"{first_pos + i} {plotly_text(l)}" for i, l in enumerate(pos_labels)]
    fig = go.Figure(go.Heatmap(
        z=values, x=[f"n{int(i)}" for i in neurons], y=rows, colorscale="RdBu", reversescale=True,
        zmin=-(lim or 1.0), zmax=lim or 1.0, name="product",
        colorbar=dict(title=dict(text=value_name or f"{act_name}(gate)·up", side="right"), thickness=12),
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
    mag, order, total, half = _concentration(product)
    s = (f"{int((gate > 0).sum())} of the {n} gate values are positive. {act_name} lets those through almost "
         f"unchanged and squashes the negative ones towards 0 (its lowest value is {act_min[1]:.3f}, at "
         f"z ≈ {act_min[0]:.2f}). The product's largest |value| is {mag[order[0]]:.3g}, at neuron {int(order[0])}; ")
    s += (f"half of the product's total |value| comes from just {half} neuron(s) ({half / n:.0%}): the MLP's "
          "output at this position is mostly the W_down columns of those few neurons." if total > 0 else
          "every product is 0 here.")
    return s


# --------------------------------------------------------------------------------------------------------
# A mixture of experts
# --------------------------------------------------------------------------------------------------------

EXPERT_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]  # Okabe–Ito


def router_figure(indices: np.ndarray, weights: np.ndarray, n_experts: int, pos_labels: list[str],
                  first_pos: int = 0) -> go.Figure:
    """indices, weights (L, T, k): each layer's `hook_expert_indices` and `hook_expert_weights` at the shown
    positions. One panel per layer: positions down, experts across, a cell coloured and labelled with the
    router's weight where that expert was chosen, empty where it was not."""
    indices, weights = np.asarray(indices), np.asarray(weights, dtype=np.float64)
    L, T, _ = indices.shape
    rows = [f"{first_pos + i} {plotly_text(l)}" for i, l in enumerate(pos_labels)]
    cols = [f"e{e}" for e in range(n_experts)]
    fig = make_subplots(rows=1, cols=L, shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[f"block {l}" for l in range(L)])
    for l in range(L):
        z = np.full((T, n_experts), np.nan)
        np.put_along_axis(z, indices[l], weights[l], axis=1)
        fig.add_trace(go.Heatmap(
            z=z, x=cols, y=rows, zmin=0, zmax=1, colorscale="Viridis", name=f"block {l}", showscale=l == L - 1,
            text=[["" if np.isnan(v) else f"{v:.2f}" for v in r] for r in z], texttemplate="%{text}",
            textfont=dict(size=10), colorbar=dict(title=dict(text="router weight", side="right"), thickness=12),
            hovertemplate=f"block {l}<br>%{{y}}<br>expert %{{x}}: weight %{{z:.3f}}<extra></extra>",
        ), row=1, col=l + 1)
        fig.update_xaxes(title_text="expert", side="bottom", row=1, col=l + 1)
    fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace"))
    fig.update_yaxes(title_text="position (input token)", row=1, col=1)
    fig.update_layout(height=int(np.clip(16 * T + 170, 300, 1000)), margin=dict(l=10, r=10, t=40, b=10), **_CLEAR)
    return fig


def router_sentence(indices: np.ndarray, weights: np.ndarray, n_experts: int) -> str:
    """What the router did on the prompt, per layer: the expert most tokens chose and how much weight the first
    choice takes on average (1/k would be an even split, 1 all of it)."""
    indices, weights = np.asarray(indices), np.asarray(weights, dtype=np.float64)
    L, T, k = indices.shape
    parts = []
    for l in range(L):
        c = np.bincount(indices[l].ravel(), minlength=n_experts)
        e = int(np.argmax(c))
        parts.append(f"block {l}: expert {e} for {c[e]} of {T} tokens, first choice {weights[l][:, 0].mean():.0%}")
    return (f"Each token goes to {k} of the {n_experts} experts; the first choice's share of the weight is "
            f"{1 / k:.0%} when the {k} logits tie and 100% when one dominates. Most-chosen expert and mean "
            "first-choice weight per block — " + "; ".join(parts) + ".")


def expert_load_figure(counts: np.ndarray, n_tokens: int, k: int) -> go.Figure:
    """counts (L, E): tokens routed to each expert in each layer (each token counted once per expert it uses, so
    each row adds up to n_tokens·k). Grouped bars of the share of tokens each expert gets, and the even share
    k / E as a dashed line."""
    counts = np.asarray(counts)
    L, E = counts.shape
    x = [f"block {l}" for l in range(L)]
    fig = go.Figure()
    for e in range(E):
        fig.add_trace(go.Bar(x=x, y=counts[:, e] / n_tokens, name=f"expert {e}", customdata=counts[:, e],
                             marker_color=EXPERT_COLOURS[e % len(EXPERT_COLOURS)],
                             hovertemplate=f"%{{x}}, expert {e}: %{{customdata:,}} tokens (%{{y:.1%}})<extra></extra>"))
    fig.add_hline(y=k / E, line=dict(color="#555", dash="dash"),
                  annotation_text=f"even: {k}/{E} = {k / E:.0%}", annotation_position="top left")
    fig.update_yaxes(title_text="share of the tokens", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="layer")
    fig.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=40, b=10), legend=_LEGEND_ABOVE,
                      **_CLEAR)
    return fig


def load_sentence(counts: np.ndarray, n_tokens: int, k: int, aux: list[float]) -> str:
    """The caption of `expert_load_figure`: the busiest and idlest expert over all layers against the even share,
    and each layer's load-balancing loss (k when even, E at worst)."""
    counts = np.asarray(counts, dtype=np.float64)
    L, E = counts.shape
    share = counts / n_tokens
    hi, lo = np.unravel_index(np.argmax(share), share.shape), np.unravel_index(np.argmin(share), share.shape)
    return (f"Over {n_tokens:,} held-out tokens, evenly balanced, each expert would get {k}/{E} = {k / E:.0%} of them. "
            f"The busiest is expert {hi[1]} of block {hi[0]} with {share[hi]:.1%}, the idlest expert {lo[1]} of block "
            f"{lo[0]} with {share[lo]:.1%}. Switch Transformer's load-balancing loss on these tokens (the training "
            f"loss's auxiliary term; {k} when even, {E} when every token uses the same {k} experts), block by block: "
            + ", ".join(f"{a:.3f}" for a in aux) + ".")


# --------------------------------------------------------------------------------------------------------
# What training logged
# --------------------------------------------------------------------------------------------------------


def _block_colours(L: int) -> list[str]:
    import plotly.colors as pc

    return pc.sample_colorscale("Viridis", [0.9 * l / max(1, L - 1) for l in range(L)])


def diagnostics_figure(series: dict[str, dict], part: str, part_label: str) -> go.Figure:
    """series: variant name -> `model.analysis.blocks.diagnostics_series`. One column per variant; top row the
    gradient norm (before clipping) of `part` in each block, bottom row the residual stream's RMS after each block,
    over the logged steps; one colour per block, log y, the rows' y axes shared across columns."""
    names = list(series)
    n = len(names)
    fig = make_subplots(rows=2, cols=n, shared_xaxes=True, shared_yaxes="rows", vertical_spacing=0.08,
                        horizontal_spacing=0.03, subplot_titles=[plotly_text(v) for v in names])
    L = max(s["resid_rms"].shape[1] for s in series.values())
    colours = _block_colours(L)
    for c, name in enumerate(names, start=1):
        s = series[name]
        for row, values, what in ((1, s["grad"][part], "gradient norm"), (2, s["resid_rms"], "residual RMS")):
            for l in range(values.shape[1]):
                fig.add_trace(go.Scatter(
                    x=s["steps"], y=values[:, l], mode="lines+markers", marker=dict(size=4),
                    line=dict(color=colours[l], width=2), name=f"block {l}", legendgroup=f"block {l}",
                    showlegend=(c == 1 and row == 1),
                    hovertemplate=f"{plotly_text(name)}, block {l}<br>step %{{x}}: {what} %{{y:.4g}}<extra></extra>",
                ), row=row, col=c)
        fig.update_xaxes(title_text="training step", row=2, col=c)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text=f"‖∇ {part_label}‖", row=1, col=1)
    fig.update_yaxes(title_text="RMS after the block", row=2, col=1)
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=60, b=10), legend=_LEGEND_ABOVE, **_CLEAR)
    fig.update_layout(legend=dict(y=1.06))
    return fig


VANISHED = 1e-3  # block 0's gradient norm below this fraction of the last block's: "hardly reaches block 0"


def diagnostics_sentence(name: str, s: dict) -> str:
    """What one variant's log says, from its numbers only: the last logged step's gradient norms across the
    blocks and the stream's RMS after the last block; over every logged step, block 0's gradient norm as a
    fraction of the last block's (and, where it fell below VANISHED, at which steps and what the held-out loss
    did meanwhile); how often the total norm was clipped."""
    g, rms, total = s["grad"], s["resid_rms"], s["total"]
    ratio = g["block"][:, 0] / g["block"][:, -1]  # (N,)
    steps = s["steps"]
    small = np.flatnonzero(ratio < VANISHED)
    worst = int(np.argmin(ratio))
    last = g["block"].shape[0] - 1
    step = int(s["steps"][last])
    row = g["block"][last]
    lo, hi = int(np.argmin(row)), int(np.argmax(row))
    out = (f"{name}, step {step:,} (the last logged): the blocks' gradient norms run from {row[lo]:.3g} (block {lo}) "
           f"to {row[hi]:.3g} (block {hi}), block 0 at {row[0] / row[-1]:.2f}× the last block's; the stream's RMS "
           f"after the last block is {rms[last, -1]:.3g} (after block 0: {rms[last, 0]:.3g}).")
    out += (f" Over the {len(ratio)} logged steps, block 0's gradient norm relative to the last block's was lowest "
            f"at step {int(steps[worst]):,}: {ratio[worst]:.2g}×")
    if small.size:
        held = s.get("heldout", np.full(len(steps), np.nan))[small]
        held = held[np.isfinite(held)]
        out += (f", and was below {VANISHED:g}× at {small.size} of them (the first at step {int(steps[small[0]]):,}, "
                f"the last at {int(steps[small[-1]]):,}): the gradient hardly reached the first block")
        if held.size:
            out += (f"; the held-out loss at those steps stayed between {held.min():.3f} and {held.max():.3f} "
                    "nats/token")
            end = s.get("heldout", [np.nan])[-1]
            if small[-1] < len(steps) - 1 and np.isfinite(end):
                out += f", and was {end:.3f} at step {int(steps[-1]):,}"
    out += "."
    big = int(np.argmax(total))
    out += (f" The total gradient norm peaked at {total[big]:.3g} (step {int(s['steps'][big]):,}; median over the "
            f"{len(total)} logged steps {np.median(total):.3g})")
    if s.get("clip"):
        n_over = int((total > s["clip"]).sum())
        out += f" and was above the clip of {s['clip']:g} at {n_over} of them"
    return out + "."


def aux_loss_sentence(aux: list[float], k: int, n_experts: int, window: int = 100) -> str:
    """The balancing loss a training run logged every step (`train_log.json`'s `aux_loss`, unweighted): its mean
    over the first and the last `window` steps, against k (perfectly even) and E (every token on the same k)."""
    a = np.asarray(aux, dtype=np.float64)
    w = max(1, min(window, len(a) // 2 or 1))
    return (f"While training, the load-balancing loss ({k} when even, {n_experts} at worst) averaged "
            f"{a[:w].mean():.3f} over the first {w} steps and {a[-w:].mean():.3f} over the last {w} "
            f"({len(a):,} steps logged).")


def spread_sentence(spreads: dict[str, dict], n_positions: int) -> str:
    """On the prompt, how far each variant's next-token distribution moves from position to position (the
    `position_spread` of its trace): the largest total-variation distance of a position's distribution from their
    mean, named per variant, largest first."""
    order = sorted(spreads, key=lambda n: -spreads[n]["max"])
    parts = [f"{n} {spreads[n]['max']:.2g}" for n in order]
    out = (f"On your prompt ({n_positions} positions), how far each position's next-token distribution lies from "
           f"their mean, at most (total variation, 0 = the same distribution everywhere, 1 = no overlap): "
           + ", ".join(parts) + ".")
    flat = [n for n in order if spreads[n]["max"] < 0.01]
    if flat:
        out += (f" {' and '.join(flat)}: under 0.01 at every position — practically the same guess whatever the "
                "context.")
    return out
