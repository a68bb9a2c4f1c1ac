"""Figures and sentences of RoPE past its training context (`results/rope_scaling.json`, as
`model.evaluation.rope_scaling` writes it): the loss by position under each scaling, which pairs each scaling
compresses, and what the measurement supports in words.

    loss_by_position_figure(…)  -> mean loss per band of positions, ± 2 standard errors, one line per method,
                                   a vertical line at the trained context
    angle_ratios(…) / angle_ratio_figure(…) -> per method and pair, the angle at the last position over the
                                   largest angle training ever produced, (L − 1)·θ'_i / ((C − 1)·θ_i)
    scaling_sentences(res)      -> past the context, inside it, and at the far end: only what survives ± 2 s.e.
    finetune_sentences(res)     -> after the short fine-tunes (res["finetuned"]): what each fine-tune changed,
                                   what each scaling buys over the fine-tuned control, the far end, the
                                   logged progress; a difference only where its whole ± 2 s.e. interval
                                   clears ±ORDER_FLOOR (one fine-tune per method: its own spread unmeasured)

With `tuned_mean` / `tuned_se`, `loss_by_position_figure` draws the fine-tuned models solid (with their
intervals) and the untrained ones dotted beside them.

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


def _band_trace(centre, m, e, col: str, label: str, group: str) -> go.Scatter:
    """The shaded ± 2 s.e. band around a curve (no legend entry, no hover)."""
    return go.Scatter(
        x=np.concatenate([centre, centre[::-1]]), y=np.concatenate([m + 2 * e, (m - 2 * e)[::-1]]),
        fill="toself", fillcolor=_rgba(col, 0.15), line=dict(width=0), hoverinfo="skip", showlegend=False,
        legendgroup=group, name=f"{label} ± 2 s.e.")


def _curve_trace(centre, m, e, starts, ends, col: str, label: str, group: str, dash: str = "solid",
                 width: float = 2) -> go.Scatter:
    return go.Scatter(
        x=centre, y=m, mode="lines+markers", name=label, legendgroup=group, line=dict(color=col, width=width, dash=dash),
        marker=dict(size=5 if dash == "solid" else 3), customdata=np.stack([starts, ends - 1, e], -1),
        hovertemplate=f"{label}<br>positions %{{customdata[0]}}–%{{customdata[1]}}: %{{y:.3f}} "
                      "± %{customdata[2]:.3f} (1 s.e.)<extra></extra>")


def loss_by_position_figure(starts: np.ndarray, ends: np.ndarray, mean: Mapping[str, np.ndarray],
                            se: Mapping[str, np.ndarray], context: int,
                            labels: Optional[Mapping[str, str]] = None,
                            tuned_mean: Optional[Mapping[str, np.ndarray]] = None,
                            tuned_se: Optional[Mapping[str, np.ndarray]] = None) -> go.Figure:
    """Mean loss in each band of positions [start, end) per method (a point at the band's centre), with a shaded
    ± 2 standard-error band; a dashed vertical line where the trained context ends (positions ≥ context are new
    to the model). Legend below the plot.

    With `tuned_mean` (and `tuned_se`), per method the fine-tuned model is drawn solid with its band ("<label>,
    fine-tuned") and the untrained one dotted without ("<label>, as trained"), in the method's colour; one
    legend group per method, so a click shows or hides the pair."""
    starts, ends = np.asarray(starts), np.asarray(ends)
    centre = (starts + ends - 1) / 2
    labels = labels or {}
    fig = go.Figure()
    for i, (name, m) in enumerate(mean.items()):
        m = np.asarray(m, dtype=np.float64)
        e = np.asarray(se[name], dtype=np.float64)
        col, label = _colour(name, i), labels.get(name, name)
        if tuned_mean is None:
            fig.add_trace(_band_trace(centre, m, e, col, label, name))
            fig.add_trace(_curve_trace(centre, m, e, starts, ends, col, label, name))
            continue
        if name in tuned_mean:
            tm = np.asarray(tuned_mean[name], dtype=np.float64)
            te = np.asarray(tuned_se[name], dtype=np.float64)
            fig.add_trace(_band_trace(centre, tm, te, col, f"{label}, fine-tuned", name))
            fig.add_trace(_curve_trace(centre, tm, te, starts, ends, col, f"{label}, fine-tuned", name))
        fig.add_trace(_curve_trace(centre, m, e, starts, ends, col, f"{label}, as trained", name, dash="dot",
                                   width=1.5))
    fig.add_vline(x=context - 0.5, line=dict(dash="dash", color="#555"),
                  annotation_text=f"trained context ({context})", annotation_position="top left",
                  annotation_font_size=11)
    fig.update_xaxes(title_text="position m of the predicting token", range=[0, float(ends[-1])])
    fig.update_yaxes(title_text="mean loss (nats/token)")
    fig.update_layout(height=400 if tuned_mean is None else 440, margin=dict(l=10, r=10, t=30, b=10),
                      hovermode="closest", legend=dict(orientation="h", x=0, y=-0.25, yanchor="top"))
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


def far_end_sentence(res: dict, labels: Mapping[str, str], region: str = "last", floor: float = 0.0) -> str:
    """The methods at the far end (positions T − context … T − 1) ordered by mean loss, and for each neighbour in
    that order whether the paired interval separates them; no order is claimed where it does not. With `floor`,
    an order only where the whole interval clears ±floor (`finetune_sentences`)."""
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
        if _separated(diff, d["se"]) and _beyond(diff, d["se"], floor):
            claims.append(f"{labels.get(lo, lo)} is lower than {labels.get(hi, hi)} by {diff:.3f} ± {2 * d['se']:.3f}")
        elif _separated(diff, d["se"]):
            claims.append(f"{labels.get(lo, lo)} and {labels.get(hi, hi)} differ by {diff:.3f} ± {2 * d['se']:.3f}, "
                          f"an interval reaching within {floor:g} nats of 0: no order claimed")
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


# --------------------------------------------------------------------------------------------------------
# After the fine-tunes (res["finetuned"], `model.training.extend`)
# --------------------------------------------------------------------------------------------------------

# One fine-tune per method: its run-to-run spread is not measured, and the ± 2 s.e. over held-out windows does
# not contain it. So a claim about a fine-tuned model also asks that the whole paired interval clear this floor
# (|difference| − 2 s.e. > ORDER_FLOOR): about 3× the largest seed-to-seed sd of held-out loss among our fully
# trained variants (MHA, 0.017 nats over 3 seeds; README, results/seeds.json) — a guess at the scale of a
# training run's own spread, not a measurement of a fine-tune's.
ORDER_FLOOR = 0.05


def _beyond(mean: float, se: Optional[float], floor: float) -> bool:
    """The paired interval mean ± 2 s.e. lies wholly beyond ±floor (floor 0: it excludes 0)."""
    return se is not None and abs(mean) - 2 * se > floor


def _tuned_view(res: dict) -> dict:
    """res with the fine-tuned models as its methods and pairs, for the sentences written for the untrained."""
    return {**res, "methods": res["finetuned"]["methods"], "paired": res["finetuned"]["paired"]}


def _change(d: dict, floor: float = 0.0) -> str:
    """'lower by 0.200 ± 0.020' / 'higher by …' where the paired interval clears ±floor, else no claim."""
    if _beyond(d["mean"], d["se"], floor):
        return f"{'lower' if d['mean'] < 0 else 'higher'} by {abs(d['mean']):.3f} ± {2 * d['se']:.3f}"
    se = "n/a" if d["se"] is None else f"{2 * d['se']:.3f}"
    why = f"the interval reaches within {floor:g} nats of 0" if floor else "within 2 s.e."
    return f"no difference claimed: {d['mean']:+.3f} ± {se}, {why}"


def finetune_head_sentence(res: dict, floor: float = ORDER_FLOOR) -> str:
    """How the fine-tunes were run, from their records; what the intervals do and do not measure."""
    ft = res["finetuned"]
    recs = [m["finetune"] for m in ft["methods"].values()]
    r = recs[0]
    same = all((x["steps"], x["batch_size"], x["seq_len"], x["lr"], x["warmup"], x["weight_decay"])
               == (r["steps"], r["batch_size"], r["seq_len"], r["lr"], r["warmup"], r["weight_decay"]) for x in recs)
    labels = [m.get("label", n) for n, m in ft["methods"].items()]
    share = (f", {100 * r['tokens'] / ft['pretraining_tokens']:.1f} % of pre-training's "
             f"{ft['pretraining_tokens']:,}") if ft.get("pretraining_tokens") else ""
    how = (f"each for {r['steps']} steps of {r['batch_size']} windows of {r['seq_len']:,} training tokens "
           f"({r['tokens']:,} tokens{share}), AdamW at a constant lr {r['lr']:g} after {r['warmup']} warm-up steps, "
           + ("no weight decay" if r["weight_decay"] == 0 else f"weight decay {r['weight_decay']:g}")
           + ", the same batches for each" if same else
           "with the settings each one's train_log.json records (they differ)")
    return (f"Fine-tuned from the shipped weights at {res['positions']:,} positions: {', '.join(labels)}, {how}. "
            "Chen et al. 2023 fine-tune position interpolation (1,000 steps) and Peng et al. 2023 YaRN (400 steps); "
            "NTK-aware scaling was proposed without fine-tuning and gets the same budget here; **none** is the "
            "control — the same fine-tune with no scaling, so a scaling's lead over it is what the scaling buys "
            "beyond training on long windows. One fine-tune per method: the intervals (± 2 s.e., paired over the "
            f"same {res['windows']} held-out windows) say how precisely these windows measure each model, not how "
            "much a second fine-tune would differ; so a difference involving a fine-tuned model is claimed only "
            f"where its whole interval lies more than {floor:g} nats from 0 (about 3× the largest seed-to-seed "
            "spread of our trained variants' held-out loss: a guess at a run's own spread, not a measurement).")


def finetune_change_sentence(name: str, res: dict, floor: float = ORDER_FLOOR, original: str = "none") -> str:
    """One method before and after its fine-tune, at the far end and inside the trained context (paired), and
    inside the context against the shipped model unscaled (`vs_original`)."""
    ft = res["finetuned"]
    label = ft["methods"][name].get("label", name)
    vs = ft["vs_untrained"][name]
    parts = []
    for region in ("last", "inside"):
        before = res["methods"][name]["regions"][region]["mean"]
        after = ft["methods"][name]["regions"][region]["mean"]
        parts.append(f"at positions {_span(*res['regions'][region])} {before:.3f} → {after:.3f} nats/token "
                     f"({_change(vs[region], floor)})")
    out = f"**{label}**, as trained → fine-tuned: " + "; ".join(parts)
    orig = ft.get("vs_original", {}).get(name)
    if orig is not None and name != original:
        base = res["methods"][original]["regions"]["inside"]["mean"]
        out += f"; inside, against the shipped model unscaled ({base:.3f}): {_change(orig['inside'], floor)}"
    return out + "."


def finetune_control_sentence(name: str, res: dict, control: str = "none", floor: float = ORDER_FLOOR) -> str:
    """A fine-tuned scaling against the fine-tuned control, at the far end and inside the context."""
    ft = res["finetuned"]
    label = ft["methods"][name].get("label", name)
    d = ft["paired"][f"{name}-{control}"]
    parts = [f"at positions {_span(*res['regions'][r])} {_change(d[r], floor)}" for r in ("last", "inside")]
    return (f"**{label}**, fine-tuned, against the fine-tuned control (no scaling): " + "; ".join(parts) + ".")


def finetune_progress_sentence(res: dict) -> Optional[str]:
    """The held-out loss each fine-tune logged as it went (its first windows, all positions): whether it was
    still falling at the end is for the reader to see; the comparison is at this step count, not at convergence."""
    ft = res["finetuned"]["methods"]
    rows = [(m.get("label", n), m["finetune"].get("val") or []) for n, m in ft.items()]
    if not any(v for _, v in rows):
        return None
    steps = "/".join(str(v["step"]) for v in max((v for _, v in rows), key=len))
    n_win = next(iter(ft.values()))["finetune"].get("val_windows")
    listed = "; ".join(f"{label} " + " → ".join(f"{v['loss']:.3f}" for v in val) for label, val in rows if val)
    return (f"Held-out loss logged during each fine-tune (the first {n_win} windows, all {res['positions']:,} "
            f"positions, at steps {steps}): {listed}. Where it is still falling at the last step, a longer "
            "fine-tune might lower it further: these comparisons hold at this budget, not at convergence.")


def finetune_sentences(res: dict, floor: float = ORDER_FLOOR) -> list[str]:
    """The fine-tunes' reading: how they were run, what each changed, what each scaling buys over the control,
    and the far end among them — an order only past 2 s.e. and `floor`. [] without fine-tuned rows."""
    ft = res.get("finetuned")
    if not ft or not ft.get("methods"):
        return []
    names = list(ft["methods"])
    out = [finetune_head_sentence(res, floor)]
    out += [finetune_change_sentence(n, res) for n in names]
    if "none" in names:
        out += [finetune_control_sentence(n, res, "none", floor) for n in names if n != "none"]
    labels = {n: f"{m.get('label', n)}, fine-tuned" for n, m in ft["methods"].items()}
    out.append(far_end_sentence(_tuned_view(res), labels, floor=floor))
    progress = finetune_progress_sentence(res)
    return out + ([progress] if progress else [])
