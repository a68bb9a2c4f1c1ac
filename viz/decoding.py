"""Figures of decoding strategies: the beam tree with greedy's path through it, the KV cache rows reordered
between beam steps, and speculative decoding's rounds, verdicts, acceptance and speed — and the captions that
compare them, each built from the numbers it compares.

Plain data in (lists of dicts and numbers, token labels), a `go.Figure` or a string out; no streamlit, no
torch. Every token label goes through `viz.tokens.plotly_text` (a prompt can contain `<b>`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.tokens import plotly_text

# Colour-blind safe (Okabe–Ito-like): no pair that differs only in red vs green.
KEPT, HYP, PRUNED, GREEDY = "#0072B2", "#CC79A7", "#A9B0BC", "#E69F00"
ACCEPTED, REJECTED, UNCHECKED, OWN = "#56B4E9", "#D55E00", "#C9CED6", "#CC79A7"
DRAFT, TARGET = "#F2A541", "#4C6FFF"
FATE_NAMES = {"kept": "kept: a beam of the next step", "hypothesis": "ended: kept as a hypothesis",
              "pruned": "pruned"}


# --------------------------------------------------------------------------------------------------------
# Beam search
# --------------------------------------------------------------------------------------------------------


def _tree_layout(columns: list[list[dict]]) -> list[list[float]]:
    """y of each candidate: its column sorted by cumulative log-prob, best on top (0, -1, -2, …)."""
    ys = []
    for col in columns:
        order = sorted(range(len(col)), key=lambda i: -col[i]["score"])
        y = [0.0] * len(col)
        for r, i in enumerate(order):
            y[i] = -float(r)
        ys.append(y)
    return ys


def beam_tree_figure(columns: list[list[dict]], greedy: list[dict], length_penalty: float) -> go.Figure:
    """The beam tree up to the last column given. columns[s]: the candidates step s looked at (dicts from
    `model.decoding.beam.tree_columns`: parent = the beam row of step s − 1 it extends, slot, label, logprob,
    score = cumulative log-prob, rank, fate, ends). A column is sorted best on top; each candidate hangs from
    its parent — the kept candidate of the column before with that slot (the prompt for step 0). Edges of
    kept and ended candidates carry their cumulative log-prob.

    greedy[s]: dict(index = greedy's candidate in column s or -1 once its path has left the tree, label,
    score = greedy's cumulative log-prob). Off-tree greedy tokens are drawn under the column, so greedy's
    whole path can be followed and compared by its numbers."""
    ys = _tree_layout(columns)
    n_rows = max([len(c) for c in columns] + [1])
    g_floor = -float(n_rows) - 0.6  # where greedy's off-tree tokens go
    pos = {}  # (step, slot) -> (x, y) of the kept candidate that is beam `slot` of the next step
    fig = go.Figure()
    edges = {f: ([], []) for f in FATE_NAMES}
    edge_text = ([], [], [])
    nodes = {f: dict(x=[], y=[], text=[], hover=[]) for f in FATE_NAMES}
    for s, col in enumerate(columns):
        x = s + 1
        for i, c in enumerate(col):
            px, py = (0, 0.0) if s == 0 else pos.get((s - 1, c["parent"]), (s, 0.0))
            ex, ey = edges[c["fate"]]
            ex += [px, x, None]
            ey += [py, ys[s][i], None]
            if c["fate"] == "kept":
                pos[(s, c["slot"])] = (x, ys[s][i])
            if c["fate"] != "pruned":
                edge_text[0].append(px + 0.7 * (x - px))  # near the child: fanned-out edges are apart there
                edge_text[1].append(py + 0.7 * (ys[s][i] - py))
                edge_text[2].append(f"{c['score']:.2f}")
            what = {"kept": f"kept as beam {c['slot']}",
                    "hypothesis": f"ended ({'end token' if c['ends'] else ''}): a hypothesis, score "
                                  f"{c['score']:.2f} / {s + 1}^{length_penalty:g}",
                    "pruned": "pruned" + (" (ends)" if c["ends"] else "")}[c["fate"]]
            n = nodes[c["fate"]]
            n["x"].append(x)
            n["y"].append(ys[s][i])
            n["text"].append(plotly_text(c["label"]))
            n["hover"].append(f"step {s + 1}: beam {c['parent']} + “{plotly_text(c['label'])}”<br>log p = "
                              f"{c['logprob']:.3f}, cumulative {c['score']:.3f}<br>rank {c['rank'] + 1} of all "
                              f"candidates · {what}")
    styles = {"kept": dict(color=KEPT, width=2.2), "hypothesis": dict(color=HYP, width=2),
              "pruned": dict(color=PRUNED, width=1, dash="dot")}
    for f, (ex, ey) in edges.items():
        if ex:
            fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=styles[f], hoverinfo="skip", showlegend=False))
    # Greedy's path: the prompt, then each step's greedy token (on the tree, or under it).
    gx, gy, gtext, ghover = [0], [0.0], [], []
    for s, g in enumerate(greedy[: len(columns)]):
        on = g["index"] >= 0
        gx.append(s + 1)
        gy.append(ys[s][g["index"]] if on else g_floor)
        gtext.append("" if on else plotly_text(g["label"]))
        ghover.append(f"greedy, step {s + 1}: “{plotly_text(g['label'])}”, cumulative {g['score']:.3f}"
                      + ("" if on else "<br>(its path is no longer among the beams)"))
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", name="greedy's path", line=dict(color=GREEDY, width=6),
                             opacity=0.35, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=gx[1:], y=gy[1:], mode="markers+text", name="greedy's token",
                             marker=dict(color="rgba(0,0,0,0)", size=17, line=dict(color=GREEDY, width=2.5)),
                             text=gtext, textposition="bottom center", textfont=dict(family="monospace", color=GREEDY),
                             customdata=ghover, hovertemplate="%{customdata}<extra></extra>", showlegend=False))
    marker = {"kept": dict(color=KEPT, size=10), "hypothesis": dict(color=HYP, size=13, symbol="star"),
              "pruned": dict(color=PRUNED, size=6)}
    for f, n in nodes.items():
        if n["x"]:
            fig.add_trace(go.Scatter(
                x=n["x"], y=n["y"], mode="markers+text", name=FATE_NAMES[f], marker=marker[f], text=n["text"],
                textposition="middle right", customdata=n["hover"], hovertemplate="%{customdata}<extra></extra>",
                textfont=dict(family="monospace", size=12 if f != "pruned" else 10,
                              color=None if f != "pruned" else PRUNED)))
    fig.add_trace(go.Scatter(x=edge_text[0], y=edge_text[1], mode="text", text=edge_text[2], showlegend=False,
                             textfont=dict(size=9, color=KEPT), textposition="top center", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[0], y=[0.0], mode="markers+text", text=["prompt"], textposition="middle left",
                             marker=dict(color="#555", size=12, symbol="square"), showlegend=False,
                             hovertemplate="the prompt (one beam)<extra></extra>"))
    n_cols = len(columns)
    fig.update_xaxes(range=[-0.9, n_cols + 0.95], tickvals=list(range(n_cols + 1)),
                     ticktext=["prompt"] + [str(s + 1) for s in range(n_cols)], title_text="token generated",
                     showgrid=False, zeroline=False, fixedrange=True)
    fig.update_yaxes(visible=False, range=[g_floor - 0.9, 0.8], fixedrange=True)
    fig.update_layout(height=int(np.clip(70 + 30 * (n_rows + 2), 320, 900)), margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0), hovermode="closest")
    return fig


def cache_reorder_figure(parents: list[int], old_labels: list[str], new_labels: list[str]) -> go.Figure:
    """The KV cache's batch rows before and after a beam step: new row i is a copy of old row parents[i].
    Old rows no new beam extends are dropped (grey ✕); a row copied twice feeds two beams."""
    B_old, B_new = len(old_labels), len(parents)
    used = {p: parents.count(p) for p in set(parents)}
    fig = go.Figure()
    for i, p in enumerate(parents):
        fig.add_trace(go.Scatter(x=[0, 1], y=[-p, -i], mode="lines", showlegend=False, hoverinfo="skip",
                                 line=dict(color=KEPT if p == i else OWN, width=2.5)))
    fig.add_trace(go.Scatter(
        x=[0] * B_old, y=[-r for r in range(B_old)], mode="markers+text", showlegend=False,
        marker=dict(size=14, symbol=["square" if r in used else "x" for r in range(B_old)],
                    color=[KEPT if r in used else PRUNED for r in range(B_old)]),
        text=[f"row {r}: {plotly_text(l)}" for r, l in enumerate(old_labels)], textposition="middle left",
        textfont=dict(family="monospace"),
        customdata=[f"old row {r}: " + (f"copied to {used[r]} new row(s)" if r in used else "dropped")
                    for r in range(B_old)], hovertemplate="%{customdata}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=[1] * B_new, y=[-i for i in range(B_new)], mode="markers+text", showlegend=False,
        marker=dict(size=14, symbol="square", color=KEPT),
        text=[f"row {i} ← {p}: {plotly_text(l)}" for i, (p, l) in enumerate(zip(parents, new_labels))],
        textposition="middle right", textfont=dict(family="monospace"),
        customdata=[f"new row {i} = old row {p}" for i, p in enumerate(parents)],
        hovertemplate="%{customdata}<extra></extra>"))
    fig.update_xaxes(visible=False, range=[-1.6, 2.6], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-max(B_old, B_new) + 0.4, 0.8], fixedrange=True)
    # Two lines each, bottom-anchored into the top margin: on one line they ran into each other in a half column.
    fig.add_annotation(x=0, y=0.5, yanchor="bottom", text="<b>cache rows<br>before</b>", showarrow=False)
    fig.add_annotation(x=1, y=0.5, yanchor="bottom", text="<b>after the<br>reorder</b>", showarrow=False)
    fig.update_layout(height=85 + 34 * max(B_old, B_new), margin=dict(l=10, r=10, t=35, b=10))
    return fig


# --------------------------------------------------------------------------------------------------------
# Speculative decoding
# --------------------------------------------------------------------------------------------------------

_VERDICT_COLOUR = {"accepted": ACCEPTED, "rejected": REJECTED, "not checked": PRUNED}
_VERDICT_CODE = {"accepted": 0, "rejected": 1, "not checked": 2, "resampled": 3, "bonus": 3}
_VERDICT_SCALE = [[0.0, ACCEPTED], [0.25, ACCEPTED], [0.25, REJECTED], [0.5, REJECTED], [0.5, UNCHECKED],
                  [0.75, UNCHECKED], [0.75, OWN], [1.0, OWN]]


def rounds_figure(rounds: list[dict], current: int, k: int) -> go.Figure:
    """One row per round (first on top): its draft guesses, coloured by the target's verdict — accepted,
    rejected, not checked — then the target's own token (resampled from the residual, or the bonus).
    rounds[r]: dict(labels, verdicts, q, p — one per guess; extra_label, extra_kind, extra_p). The current
    round is boxed."""
    n = len(rounds)
    cols = k + 1
    z = np.full((n, cols), np.nan)
    text = np.full((n, cols), "", dtype=object)
    hover = np.full((n, cols), "", dtype=object)
    for r, rd in enumerate(rounds):
        for i, (lab, v, q, p) in enumerate(zip(rd["labels"], rd["verdicts"], rd["q"], rd["p"])):
            z[r, i] = _VERDICT_CODE[v]
            text[r, i] = plotly_text(lab)
            hover[r, i] = (f"round {r + 1}, guess {i + 1}: “{plotly_text(lab)}”<br>p_draft {q:.3f} · p_target {p:.3f}"
                           f" · accept with min(1, p/q) = {min(1.0, p / q) if q > 0 else 0:.3f}<br>{v}")
        j = cols - 1  # always the last column, also when a round near the end had fewer than K guesses
        z[r, j] = _VERDICT_CODE[rd["extra_kind"]]
        text[r, j] = plotly_text(rd["extra_label"])
        hover[r, j] = (f"round {r + 1}: the target's own token “{plotly_text(rd['extra_label'])}”, p_target "
                       f"{rd['extra_p']:.3f}<br>{rd['extra_kind']}")
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"guess {i + 1}" for i in range(k)] + ["target's token"], y=[f"round {r + 1}" for r in range(n)],
        zmin=0, zmax=3, colorscale=_VERDICT_SCALE, showscale=False, xgap=3, ygap=3, text=text,
        texttemplate="%{text}", textfont=dict(family="monospace", size=12, color="#111"), customdata=hover,
        hovertemplate="%{customdata}<extra></extra>"))
    for name, colour in (("accepted", ACCEPTED), ("rejected", REJECTED), ("not checked", UNCHECKED),
                         ("target's own (resampled / bonus)", OWN)):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 marker=dict(color=colour, size=12, symbol="square")))
    if 0 <= current < n:
        fig.add_shape(type="rect", x0=-0.5, x1=cols - 0.5, y0=current - 0.5, y1=current + 0.5,
                      line=dict(color="#111", width=2.5))
    fig.update_yaxes(autorange="reversed", fixedrange=True)
    fig.update_xaxes(side="top", fixedrange=True)
    fig.update_layout(height=int(np.clip(90 + 30 * n, 200, 760)), margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.02, yanchor="top", x=0), plot_bgcolor="rgba(0,0,0,0)")
    return fig


def verdict_figure(labels: list[str], q: list[float], p: list[float], accept: list[float], u: list,
                   verdicts: list[str], greedy: bool = False) -> go.Figure:
    """One round's guesses: the draft's probability q and the target's p of each guessed token, the chance it
    survives, min(1, p/q), and the uniform number it was tested against (accepted when u < min(1, p/q)).
    Greedy (`greedy=True`): q and p are the models' plain softmax (at temperature 0 the rule's own q and p are
    one-hot, so a guess survives, 1, exactly when it is the target's argmax, else 0), and nothing is drawn."""
    x = [f"{i + 1}: {plotly_text(l)}" for i, l in enumerate(labels)]
    qn, pn = ("draft's softmax", "target's softmax") if greedy else ("p_draft (q)", "p_target (p)")
    fig = go.Figure()
    for name, y, colour in ((qn, q, DRAFT), (pn, p, TARGET)):
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=colour,
                             hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>"))
    an = "accepted iff the target's argmax (1 / 0)" if greedy else "accept chance min(1, p/q)"
    fig.add_trace(go.Scatter(x=x, y=accept, mode="markers", name=an,
                             marker=dict(symbol="line-ew-open", size=38, line=dict(width=3),
                                         color=[_VERDICT_COLOUR[v] for v in verdicts]),
                             customdata=verdicts, hovertemplate="%{x}: %{y:.3f} → %{customdata}<extra></extra>"))
    if any(v is not None for v in u):
        fig.add_trace(go.Scatter(x=x, y=[np.nan if v is None else v for v in u], mode="markers",
                                 name="u drawn (accepted if below the line)",
                                 marker=dict(symbol="x", size=11, color=[ACCEPTED if v == "accepted" else REJECTED
                                                                          for v in verdicts]),
                                 hovertemplate="%{x}: u = %{y:.3f}<extra></extra>"))
    fig.update_layout(barmode="group", height=330, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), yaxis_title="probability")
    fig.update_yaxes(range=[0, 1.05])
    fig.update_xaxes(tickfont=dict(family="monospace"))
    return fig


def acceptance_figure(rows: list[dict]) -> go.Figure:
    """Acceptance rate and tokens per target forward against K, one line per temperature. rows: dicts with
    temperature, k, acceptance_rate, tokens_per_target_forward (from `speculative.acceptance_sweep`)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["acceptance rate (accepted ÷ proposed)", "tokens per target forward"])
    temps = sorted({r["temperature"] for r in rows})
    palette = ["#4C6FFF", "#29A36A", "#F28C28", "#E4572E", "#8E5BD0"]
    for j, t in enumerate(temps):
        rs = sorted((r for r in rows if r["temperature"] == t), key=lambda r: r["k"])
        ks = [r["k"] for r in rs]
        colour = palette[j % len(palette)]
        name = "T = 0 (greedy)" if t == 0 else f"T = {t:g}"
        fig.add_trace(go.Scatter(x=ks, y=[r["acceptance_rate"] for r in rs], mode="lines+markers", name=name,
                                 line=dict(color=colour), legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=ks, y=[r["tokens_per_target_forward"] for r in rs], mode="lines+markers",
                                 name=name, line=dict(color=colour), legendgroup=name, showlegend=False), row=1, col=2)
    if rows:
        ks = sorted({r["k"] for r in rows})
        fig.add_trace(go.Scatter(x=ks, y=[k + 1 for k in ks], mode="lines", name="K + 1 (every guess accepted)",
                                 line=dict(color="#999", dash="dot")), row=1, col=2)
    fig.update_xaxes(title_text="K (draft tokens per round)", dtick=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def speedup_figure(ks: list[int], ideal: list[float], predicted: list[float], measured: list[float]) -> go.Figure:
    """Per K, three speedups over plain decoding: the ideal one (costs in proportion to FLOPs, verifying K + 1
    tokens as cheap as one step), the one predicted from this CPU's measured step costs, and the measured
    wall-clock one. A dotted line at 1: below it, speculation is slower than plain decoding."""
    x = [str(k) for k in ks]
    fig = go.Figure()
    for name, y, colour in (("ideal: cost ∝ FLOPs, verification free", ideal, "#C9CED6"),
                            ("predicted from this CPU's step costs", predicted, TARGET),
                            ("measured, wall-clock", measured, DRAFT)):
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=colour, text=[f"{v:.2f}×" for v in y],
                             textposition="outside", hovertemplate="K = %{x}: %{y:.2f}×<extra>" + name + "</extra>"))
    fig.add_hline(y=1, line=dict(color="#888", dash="dot"))
    top = max([1.0] + list(ideal) + list(predicted) + list(measured))
    fig.update_layout(barmode="group", height=330, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                      xaxis_title="K (draft tokens per round)", yaxis_title="× plain decoding")
    fig.update_yaxes(range=[0, top * 1.18])
    fig.update_xaxes(type="category")
    return fig


# --------------------------------------------------------------------------------------------------------
# Captions: every comparison from the numbers it compares
# --------------------------------------------------------------------------------------------------------

LOOP_SHARE = 0.3  # a continuation whose 3-grams repeat this much is called looping


def comparison_caption(rows: list[dict]) -> str:
    """Greedy vs beam vs sampled continuations. rows: greedy, beam search, then the sampled runs, each with
    "strategy", "tokens", "total log-prob", "log-prob per token", "repeated 3-grams" (a share)."""
    g, b, samples = rows[0], rows[1], rows[2:]
    def rep(r: dict) -> str:
        return f"{r['repeated 3-grams']:.0%}"

    lp_cmp = ("higher" if b["total log-prob"] > g["total log-prob"] else
              "lower" if b["total log-prob"] < g["total log-prob"] else "the same")
    loops = [r["strategy"] for r in rows if r["repeated 3-grams"] >= LOOP_SHARE]
    searches_loop = [r["strategy"] for r in (g, b) if r["repeated 3-grams"] >= LOOP_SHARE]
    text = (f"Total log-prob (under the model, temperature 1): beam {b['total log-prob']:.1f} vs greedy "
            f"{g['total log-prob']:.1f} — {lp_cmp}"
            + (f" over {b['tokens']} vs {g['tokens']} tokens" if b["tokens"] != g["tokens"] else "")
            + f". Repeated 3-grams (the share of the text's 3-token runs that already occurred in it): greedy "
            f"{rep(g)}, beam {rep(b)}, sampled {' and '.join(rep(r) for r in samples)}. "
            + (f"Looping (≥ {LOOP_SHARE:.0%} repeated): {', '.join(loops)}. " if loops else
               f"None repeats ≥ {LOOP_SHARE:.0%} of its 3-grams here. "))
    if searches_loop:
        text += ("Greedy and beam search both chase probability, and for a small model the most probable "
                 "continuation of a loop is more of the loop. ")
    if not samples:
        return text.rstrip()
    d_tok = g["log-prob per token"] - sum(r["log-prob per token"] for r in samples) / len(samples)
    s_max = max(r["repeated 3-grams"] for r in samples)
    less = s_max < min(g["repeated 3-grams"], b["repeated 3-grams"])
    text += (f"Sampling (the mean of {len(samples)} sampled runs) scored {abs(d_tok):.2f} nats per token "
             f"{'below' if d_tok > 0 else 'above'} greedy")
    if less and d_tok > 0 and s_max < LOOP_SHARE and searches_loop:
        return text + (" and repeated less than both: less likely per token, but it does not loop — why the "
                       "app samples by default.")
    return text + (" and repeated less than both." if less else ".")


def acceptance_caption(rows: list[dict], ks: list[int], temperatures: list[float], n_tokens: int,
                       k_shown: int) -> str:
    """The acceptance sweep (rows from `speculative.acceptance_sweep`): its trend in K at the lowest
    temperature, where tokens per target forward peak, and the temperatures side by side at K = k_shown."""
    by = {(r["temperature"], r["k"]): r for r in rows}
    lo = temperatures[0]
    a1, a2 = by[(lo, ks[0])]["acceptance_rate"], by[(lo, ks[-1])]["acceptance_rate"]
    trend = "falls" if a2 < a1 else "rises" if a2 > a1 else "stays"
    tpf = {k: by[(lo, k)]["tokens_per_target_forward"] for k in ks}
    top = max(tpf.values())
    best = [k for k in ks if tpf[k] == top]
    return (f"One run of {n_tokens} tokens per point, on this prompt. At T = {lo:g} the acceptance rate {trend} "
            + (f"at {a1:.0%} from K = {ks[0]} to K = {ks[-1]}" if trend == "stays" else
               f"from {a1:.0%} at K = {ks[0]} to {a2:.0%} at K = {ks[-1]}")
            + (": every guess counts as proposed, and the guesses after a rejection are thrown away unchecked, "
               "so long rounds waste more." if trend == "falls" else ".")
            + f" Tokens per target forward are highest at K = {' and '.join(map(str, best))} ({top:.2f}). "
            f"At K = {k_shown}: "
            + ", ".join(f"T = {t:g} accepts {by[(t, k_shown)]['acceptance_rate']:.0%}" for t in temperatures) + ".")


def speed_caption(sp: dict, k_costs: int) -> str:
    """What `speculative.measure_speed` measured, and a verdict only where its runs do not overlap: faster
    (every speculative run beat every plain run), slower (the reverse), or within the run-to-run spread.
    k_costs: the K whose verification forward (K + 1 tokens) is quoted."""
    best = max(sp["by_k"], key=lambda r: r["measured_speedup"])
    co = sp["costs"]
    plain, spec = sp["plain_runs_s"], best["runs_s"]
    if max(spec) < min(plain):
        verdict = (f"speculative decoding is faster than plain decoding here: each of its {len(spec)} runs at "
                   f"K = {best['k']} beat each of plain decoding's {len(plain)}")
    elif min(spec) > max(plain):
        verdict = (f"even at its best K speculative decoding is slower than plain decoding here: each of its "
                   f"{len(spec)} runs took longer than each of plain decoding's {len(plain)}")
    else:
        verdict = ("that is inside this machine's run-to-run spread (plain decoding "
                   f"{min(plain):.2f}–{max(plain):.2f} s, speculative {min(spec):.2f}–{max(spec):.2f} s over "
                   f"{len(plain)} runs each), so these runs do not say which is faster")
    c_cpu, c_flops = sp["draft_over_target_cpu"], sp["draft_over_target_flops"]
    return (
        f"By FLOPs the draft costs c = {c_flops:.2f} of the target per step; measured in CPU time it costs "
        f"{c_cpu:.2f} (a draft step {co['draft_1_cpu_s'] * 1e3:.2f} ms, a target step "
        f"{co['target_1_cpu_s'] * 1e3:.2f} ms, the target on {k_costs + 1} tokens at once "
        f"{co[f'target_{k_costs + 1}_cpu_s'] * 1e3:.2f} ms)"
        + (": far more than its FLOPs say — most likely the fixed cost of each call and each layer in eager "
           "PyTorch, which the draft's fewer, narrower layers shrink far less than its FLOPs. "
           if c_cpu > 1.3 * c_flops else ": close to what its FLOPs say. " if c_cpu >= c_flops / 1.3 else
           ": less than its FLOPs say. ")
        + f"Best measured: {best['measured_speedup']:.2f}× at K = {best['k']} (median of {sp['repeats']}; "
        f"ideal {best['ideal_speedup']:.2f}×, predicted {best['predicted_speedup']:.2f}×; in CPU time "
        f"{best['measured_speedup_cpu']:.2f}×) — {verdict}. Plain decoding took {sp['plain_seconds']:.2f} s "
        "(median); timings move with whatever else this machine is running."
    )
