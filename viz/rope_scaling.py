"""Figures and sentences of RoPE past its training context (`results/rope_scaling.json`, as
`model.evaluation.rope_scaling` writes it): the loss by position under each scaling, which pairs each scaling
compresses, and what the measurement supports in words.

    loss_by_position_figure(…)  -> mean loss per band of positions, ± 2 standard errors, one line per method,
                                   a vertical line at the trained context
    angle_ratios(…) / angle_ratio_figure(…) -> per method and pair, the angle at the last position over the
                                   largest angle training ever produced, (L − 1)·θ'_i / ((C − 1)·θ_i)
    scaling_sentences(res)      -> past the context, inside it, and at the far end: only what survives ± 2 s.e.

Arrays and labels in, a `go.Figure` or strings out; no streamlit, no torch. The intervals are over held-out
windows of one trained model: they say how precisely this text measures these weights, not how another
training seed would do.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import plotly.graph_objects as go

# Okabe–Ito: distinct under the common colour-vision deficiencies.
COLOURS = {"none": "#000000", "linear": "#0072B2", "ntk": "#E69F00", "yarn": "#009E73"}
_FALLBACK = ("#CC79A7", "#D55E00", "#56B4E9", "#F0E442")


def _colour(name: str, i: int) -> str:
    return COLOURS.get(name, _FALLBACK[i % len(_FALLBACK)])


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def loss_by_position_figure(starts: np.ndarray, ends: np.ndarray, mean: Mapping[str, np.ndarray],
                            se: Mapping[str, np.ndarray], context: int,
                            labels: Optional[Mapping[str, str]] = None) -> go.Figure:
    """Mean loss in each band of positions [start, end) per method (a point at the band's centre), with a shaded
    ± 2 standard-error band; a dashed vertical line where the trained context ends (positions ≥ context are new
    to the model). Legend below the plot."""
    starts, ends = np.asarray(starts), np.asarray(ends)
    centre = (starts + ends - 1) / 2
    labels = labels or {}
    fig = go.Figure()
    for i, (name, m) in enumerate(mean.items()):
        m = np.asarray(m, dtype=np.float64)
        e = np.asarray(se[name], dtype=np.float64)
        col, label = _colour(name, i), labels.get(name, name)
        fig.add_trace(go.Scatter(
            x=np.concatenate([centre, centre[::-1]]), y=np.concatenate([m + 2 * e, (m - 2 * e)[::-1]]),
            fill="toself", fillcolor=_rgba(col, 0.15), line=dict(width=0), hoverinfo="skip", showlegend=False,
            legendgroup=name, name=f"{label} ± 2 s.e."))
        fig.add_trace(go.Scatter(
            x=centre, y=m, mode="lines+markers", name=label, legendgroup=name, line=dict(color=col, width=2),
            marker=dict(size=5), customdata=np.stack([starts, ends - 1, e], -1),
            hovertemplate=f"{label}<br>positions %{{customdata[0]}}–%{{customdata[1]}}: %{{y:.3f}} "
                          "± %{customdata[2]:.3f} (1 s.e.)<extra></extra>"))
    fig.add_vline(x=context - 0.5, line=dict(dash="dash", color="#555"),
                  annotation_text=f"trained context ({context})", annotation_position="top left",
                  annotation_font_size=11)
    fig.update_xaxes(title_text="position m of the predicting token", range=[0, float(ends[-1])])
    fig.update_yaxes(title_text="mean loss (nats/token)")
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=30, b=10), hovermode="closest",
                      legend=dict(orientation="h", x=0, y=-0.25, yanchor="top"))
    return fig


def angle_ratios(inv_freq: Mapping[str, np.ndarray], trained: np.ndarray, context: int,
                 length: int) -> np.ndarray:
    """(methods, pairs): the angle pair i reaches at the last position, (length − 1)·θ'_i, over the largest
    it reached in training, (context − 1)·θ_i. 1 = no new angle; the unscaled model at 4× has 1023/255 = 4.01
    for every pair. trained: the unscaled θ_i (hd/2,)."""
    t = np.asarray(trained, dtype=np.float64)
    return np.stack([(length - 1) * np.asarray(v, dtype=np.float64) / ((context - 1) * t) for v in inv_freq.values()])


def angle_ratio_figure(inv_freq: Mapping[str, np.ndarray], trained: np.ndarray, context: int, length: int,
                       labels: Optional[Mapping[str, str]] = None) -> go.Figure:
    """Methods × pairs heatmap of `angle_ratios`, each cell labelled. A dotted line splits the pairs that made a
    full turn inside the trained context (left: every angle mod 2π already seen) from those that never did
    (right: an angle past the largest one is new to the model)."""
    labels = labels or {}
    names = list(inv_freq)
    z = angle_ratios(inv_freq, trained, context, length)  # (M, P)
    P = z.shape[1]
    t = np.asarray(trained, dtype=np.float64)
    deg_last = np.degrees((length - 1) * np.stack([np.asarray(inv_freq[n], dtype=np.float64) for n in names]))
    deg_train = np.broadcast_to(np.degrees((context - 1) * t), z.shape)
    fig = go.Figure(go.Heatmap(
        z=z, x=np.arange(P), y=[labels.get(n, n) for n in names], zmin=min(1.0, float(z.min())),
        zmax=max(1.0, float(z.max())), colorscale="Reds", texttemplate="%{z:.2f}", textfont=dict(size=10),
        colorbar=dict(title=dict(text=f"angle at {length - 1}<br>÷ largest<br>in training", side="top"),
                      thickness=10),
        customdata=np.stack([deg_last, deg_train], -1), name="angle ratio",
        hovertemplate="%{y}, pair %{x}<br>at position " + str(length - 1) + ": %{customdata[0]:,.1f}°<br>"
                      "largest in training (position " + str(context - 1) + "): %{customdata[1]:,.1f}°"
                      "<br>ratio %{z:.3f}<extra></extra>"))
    wrapped = int(np.sum((context - 1) * t >= 2 * np.pi))  # fast pairs come first
    if 0 < wrapped < P:
        fig.add_vline(x=wrapped - 0.5, line=dict(dash="dot", color="#888"))
        fig.add_annotation(x=wrapped - 0.5, y=1.0, yref="paper", yanchor="bottom", xanchor="right", showarrow=False,
                           text="turned fully in training ", font=dict(size=11))
        fig.add_annotation(x=wrapped - 0.5, y=1.0, yref="paper", yanchor="bottom", xanchor="left", showarrow=False,
                           text=" never a full turn", font=dict(size=11))
    fig.update_xaxes(title_text="pair i (fast → slow)", dtick=1)
    fig.update_yaxes(title_text="method", autorange="reversed")
    fig.update_layout(height=90 + 55 * len(names), margin=dict(l=10, r=10, t=30, b=10))
    return fig


# --------------------------------------------------------------------------------------------------------
# Sentences: only what the paired intervals support
# --------------------------------------------------------------------------------------------------------


def _pm(mean: float, se: float, digits: int = 3) -> str:
    return f"{mean:+.{digits}f} ± {2 * se:.{digits}f}"


def _separated(mean: float, se: Optional[float]) -> bool:
    return se is not None and abs(mean) > 2 * se


def _span(a: int, b: int) -> str:
    return f"{a}–{b - 1}"


def past_context_sentence(name: str, label: str, res: dict) -> str:
    """One method past the context, each band paired with the same window's last in-context band: a rise where
    some band's interval lies above 0, else the largest |difference| + 2 s.e. it stays within."""
    m = res["methods"][name]
    ctx, ref = res["context"], res["reference"]
    starts, ends = np.asarray(res["bands"]["start"]), np.asarray(res["bands"]["end"])
    rise = np.asarray(m["rise_mean"], dtype=np.float64)
    se = np.asarray([np.nan if s is None else s for s in m["rise_se"]], dtype=np.float64)
    past = np.flatnonzero(starts >= ctx)
    ref_loss = float(np.mean(m["mean"][ref[0]:ref[1]]))
    if not len(past) or np.isnan(se[past]).any():
        return f"**{label}**: too few windows for an interval past {ctx}."
    lower = rise[past] - 2 * se[past]
    if (lower > 0).any():
        j = past[int(np.argmax(rise[past]))]
        first = past[int(np.flatnonzero(lower > 0)[0])]
        return (f"**{label}**: past {ctx} its loss rises above its own loss at positions {_span(*ref)} "
                f"({ref_loss:.3f}). The rise first clears 0 by more than 2 s.e. at positions "
                f"{_span(starts[first], ends[first])}; the highest band, {_span(starts[j], ends[j])}, is "
                f"{_pm(rise[j], se[j])} nats above.")
    w = float(np.max(np.abs(rise[past]) + 2 * se[past]))
    return (f"**{label}**: past {ctx}, out to position {int(ends[-1]) - 1}, its loss stays within {w:.3f} nats of "
            f"its own loss at positions {_span(*ref)} ({ref_loss:.3f}) in every band of {res['band']} positions "
            "(|difference| + 2 s.e., paired window by window).")


def inside_context_sentence(name: str, label: str, res: dict, baseline: str = "none") -> str:
    """A scaling's cost inside the trained context: its loss over 0 … context − 1 minus the unscaled model's, on
    the same windows; a cost or a gain only where the interval excludes 0."""
    d = res["paired"][f"{name}-{baseline}"]["inside"]
    span = _span(*res["regions"]["inside"])
    if d["se"] is None:
        return f"**{label}** inside the context ({span}): {d['mean']:+.3f} nats against no scaling (one window)."
    if _separated(d["mean"], d["se"]):
        what = "costs" if d["mean"] > 0 else "gains"
        return (f"**{label}** {what} {abs(d['mean']):.3f} nats/token inside the trained context ({span}) against no "
                f"scaling ({_pm(d['mean'], d['se'])}, paired over the same windows).")
    return (f"**{label}** inside the trained context ({span}): no difference from no scaling that the windows can "
            f"resolve ({_pm(d['mean'], d['se'])}).")


def far_end_sentence(res: dict, labels: Mapping[str, str], region: str = "last") -> str:
    """The methods at the far end (positions T − context … T − 1) ordered by mean loss, and for each neighbour in
    that order whether the paired interval separates them; no order is claimed where it does not."""
    names = list(res["methods"])
    span = _span(*res["regions"][region])
    means = {n: res["methods"][n]["regions"][region]["mean"] for n in names}
    order = sorted(names, key=lambda n: means[n])
    listed = ", ".join(f"{labels.get(n, n)} {means[n]:.3f}" for n in order)
    claims = []
    for lo, hi in zip(order, order[1:]):
        key = f"{hi}-{lo}" if f"{hi}-{lo}" in res["paired"] else f"{lo}-{hi}"
        d = res["paired"][key][region]
        diff = d["mean"] if key.startswith(hi + "-") else -d["mean"]  # hi − lo
        if _separated(diff, d["se"]):
            claims.append(f"{labels.get(lo, lo)} is lower than {labels.get(hi, hi)} by {diff:.3f} ± {2 * d['se']:.3f}")
        else:
            se = "n/a" if d["se"] is None else f"{2 * d['se']:.3f}"
            claims.append(f"{labels.get(lo, lo)} and {labels.get(hi, hi)} do not separate ({diff:.3f} ± {se})")
    return (f"At positions {span}, mean loss (nats/token): {listed}. Paired over the same windows, ± 2 s.e.: "
            + "; ".join(claims) + ".")


def scaling_sentences(res: dict) -> list[str]:
    """The section's reading, from the result dict: how it was measured, each method past the context, each
    scaling's cost inside it, and the far end — every claim backed by a paired interval (± 2 s.e.)."""
    labels = {n: m.get("label", n) for n, m in res["methods"].items()}
    n_win = res["windows"]
    head = (f"{n_win} held-out windows of {res['positions']:,} positions (the trained context is "
            f"{res['context']}), the same windows for every method, no training: the same weights with their "
            f"positions treated {len(res['methods'])} ways. Intervals are ± 2 standard errors over windows, "
            "paired where two numbers are compared; they measure this one trained model on this text, not "
            "another training seed.")
    out = [head]
    out += [past_context_sentence(n, labels[n], res) for n in res["methods"]]
    base = next(iter(res["methods"]))
    out += [inside_context_sentence(n, labels[n], res, base) for n in list(res["methods"])[1:]]
    out.append(far_end_sentence(res, labels))
    return out
