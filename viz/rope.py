"""Figures of where position enters: RoPE's rotated pairs, angles, wavelengths, the relative-position property
and the long-term decay; and what the other variants use (sinusoidal table, learned table, ALiBi biases).
Arrays and labels in, a `go.Figure` out; and the sentences that describe them, written from the same numbers
(degrees actually turned, not "fast" or "slow" by eye). No streamlit, no torch.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from viz.tokens import plotly_text

POS_SCALE = "Viridis"


def pair_arrows_figure(before: np.ndarray, after: np.ndarray, positions: np.ndarray, labels: list[str],
                       angles: np.ndarray, what: str) -> go.Figure:
    """One frequency pair (x_2i, x_2i+1) of q or k at each position, as arrows from the origin: left as the
    projection made it, right after RoPE turned it by m·θ_i. before, after: (N, 2); angles: (N,) radians."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=["before rotation", "after:<br>turned by m·θᵢ"])  # short: 150 px on a phone
    n = len(positions)
    colours = sample_colorscale(POS_SCALE, list(np.linspace(0, 1, n))) if n > 1 else ["#440154"]
    lim = 1.12 * float(max(np.abs(before).max(), np.abs(after).max(), 1e-6)) if n else 1.0
    arrows = []  # set once below: add_annotation in a loop re-validates every earlier one (O(n²); 4× slower at 16)
    for j, V in enumerate((before, after)):
        xref, yref = ("x", "y") if j == 0 else ("x2", "y2")
        arrows += [dict(x=V[p, 0], y=V[p, 1], ax=0, ay=0, xref=xref, yref=yref, axref=xref, ayref=yref,
                        showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=1.6, arrowcolor=colours[p], text="")
                   for p in range(n)]
        fig.add_trace(go.Scatter(
            x=V[:, 0], y=V[:, 1], mode="markers",
            marker=dict(size=7, color=positions, colorscale=POS_SCALE, showscale=j == 1,
                        colorbar=dict(title="position m", thickness=10)),
            customdata=np.stack([positions, angles, np.degrees(angles) % 360], -1) if n else None,
            text=[plotly_text(l) for l in labels], name="before" if j == 0 else "after",
            hovertemplate="m = %{customdata[0]} %{text}<br>(%{x:.3f}, %{y:.3f})<br>"
                          "m·θᵢ = %{customdata[1]:.3f} rad (%{customdata[2]:.0f}° mod 360)<extra></extra>",
        ), row=1, col=j + 1)
        fig.update_xaxes(range=[-lim, lim], zeroline=True, title_text="x₂ᵢ", row=1, col=j + 1)
        fig.update_yaxes(range=[-lim, lim], zeroline=True, title_text="x₂ᵢ₊₁", row=1, col=j + 1,
                         scaleanchor="x" if j == 0 else "x2", scaleratio=1)
    fig.update_layout(annotations=[*fig.layout.annotations, *arrows],  # after the two subplot titles
                      title=dict(text=what.replace(" — ", "<br>"), font=dict(size=14), x=0, xanchor="left"),
                      height=470, margin=dict(l=10, r=10, t=90, b=10), showlegend=False)
    return fig


def fixed_vector_figure(positions: np.ndarray, angles: np.ndarray, pair: int) -> go.Figure:
    """One fixed vector, (1, 0), rotated by m·θᵢ at each of the positions drawn beside it: the same arrow at every
    position, so only the rotation changes (the model's own arrows also change because each position holds a
    different token). angles: (N,) radians."""
    n = len(positions)
    colours = sample_colorscale(POS_SCALE, list(np.linspace(0, 1, n))) if n > 1 else ["#440154"]
    x, y = np.cos(angles), np.sin(angles)
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="markers+text", text=[str(int(p)) for p in positions], textposition="top center",
        marker=dict(size=7, color=positions, colorscale=POS_SCALE), name="rotated (1, 0)",
        customdata=np.stack([positions, np.degrees(angles) % 360], -1) if n else None,
        hovertemplate="m = %{customdata[0]}: turned %{customdata[1]:.0f}° (mod 360)<extra></extra>",
    ))
    t = np.linspace(0, 2 * np.pi, 121)
    fig.add_trace(go.Scatter(x=np.cos(t), y=np.sin(t), mode="lines", line=dict(color="#DDD", width=1),
                             hoverinfo="skip", name="unit circle"))
    fig.update_layout(annotations=[dict(x=x[p], y=y[p], ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y",
                                        showarrow=True, arrowhead=2, arrowwidth=1.6, arrowcolor=colours[p], text="")
                                   for p in range(n)],
                      title=dict(text=f"(1, 0) in pair {pair},<br>turned by m·θᵢ", font=dict(size=13)),
                      height=450, margin=dict(l=10, r=10, t=60, b=10), showlegend=False)
    fig.update_xaxes(range=[-1.3, 1.3], zeroline=True, title_text="x₂ᵢ")
    fig.update_yaxes(range=[-1.3, 1.3], zeroline=True, title_text="x₂ᵢ₊₁", scaleanchor="x", scaleratio=1)
    return fig


def abs_score_figure(distances: np.ndarray, mean: np.ndarray, se: np.ndarray, n_prompt: int) -> go.Figure:
    """Mean |q·k|/√d_head by relative distance, over every (query, key) pair of the prompt placed that far
    apart, with a ±2 standard-error band; one axis. A dotted line at the farthest distance the prompt reaches."""
    d = np.asarray(distances)
    lo, hi = mean - 2 * se, mean + 2 * se
    fig = go.Figure([
        go.Scatter(x=np.concatenate([d, d[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                   fillcolor="rgba(76,111,255,0.18)", line=dict(width=0), hoverinfo="skip", name="± 2 standard errors"),
        go.Scatter(x=d, y=mean, mode="lines", line=dict(color="#4C6FFF", width=2), name="mean |score|",
                   customdata=se, hovertemplate="distance %{x}: %{y:.3f} ± %{customdata:.3f} (1 s.e.)<extra></extra>"),
    ])
    if 0 < n_prompt <= d[-1]:
        fig.add_vline(x=n_prompt - 1, line=dict(dash="dot", color="#888"), annotation_text="farthest in the prompt",
                      annotation_position="top right")
    fig.update_xaxes(title_text="relative distance m − n")
    fig.update_yaxes(title_text="mean |q·k| / √d_head", rangemode="tozero")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def abs_score_sentence(distances: np.ndarray, mean: np.ndarray, se: np.ndarray, n_pairs: int, near: int = 8) -> str:
    """What the mean |score| by distance shows, from its numbers: the average over the first `near` distances
    against the far half, and whether they differ by more than twice their combined standard error."""
    d = np.asarray(distances)
    half = len(d) // 2
    a, b = slice(0, min(near, half)), slice(half, len(d))
    m_near, m_far = float(np.mean(mean[a])), float(np.mean(mean[b]))
    e_near, e_far = float(np.mean(se[a])), float(np.mean(se[b]))  # the window's typical s.e. (a conservative stand-in)
    gap, tol = m_near - m_far, 2 * float(np.hypot(e_near, e_far))
    s = (f"Each point: the mean |score| of all {n_pairs:,} (query, key) pairs of your prompt for this head, every "
         f"query placed that far after every key. Over distances {int(d[a][0])}–{int(d[a][-1])} it is "
         f"{m_near:.3f} (± {e_near:.3f}); over {int(d[b][0])}–{int(d[b][-1])}, {m_far:.3f} (± {e_far:.3f}).")
    if gap > tol:
        s += " For these vectors, scores are smaller far away than nearby: the rotation alone makes distant keys count less here."
    elif -gap > tol:
        s += " For these vectors, scores are larger far away than nearby: no decay with distance here."
    else:
        s += " The two differ by less than twice their standard error: no clear decay with distance for these vectors."
    return s


def angle_table_figure(angles: np.ndarray, wavelengths: np.ndarray, n_prompt: int) -> go.Figure:
    """m·θᵢ over positions × pairs, as the angle on the circle (mod 2π, a cyclic colour scale): fast pairs
    (left) wrap many times, slow pairs (right) barely turn. The prompt's positions are below the dotted line."""
    T, P = angles.shape
    fig = go.Figure(go.Heatmap(
        z=np.mod(angles, 2 * np.pi), x=np.arange(P), y=np.arange(T), zmin=0, zmax=2 * np.pi, colorscale="Twilight",
        customdata=np.stack([angles, np.broadcast_to(wavelengths, angles.shape)], -1),
        colorbar=dict(title="m·θᵢ mod 2π", thickness=10), name="angles",
        hovertemplate="position %{y}, pair %{x}<br>m·θᵢ = %{customdata[0]:.3f} rad<br>"
                      "one turn every %{customdata[1]:,.1f} positions<extra></extra>",
    ))
    if 0 < n_prompt < T:
        fig.add_hline(y=n_prompt - 0.5, line=dict(dash="dot", color="#888"),
                      annotation_text="end of the prompt", annotation_position="bottom right")
    fig.update_xaxes(title_text="pair i (fast → slow)", dtick=1)
    fig.update_yaxes(title_text="position m", autorange="reversed")
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def wavelength_figure(wavelengths: np.ndarray, context: int) -> go.Figure:
    """2π/θᵢ per pair on a log axis, against the context: pairs above the line (red) never finish one turn inside
    it, those below (blue) do. How far each actually turns is `wavelength_sentence`'s job."""
    P = len(wavelengths)
    fig = go.Figure(go.Bar(
        x=np.arange(P), y=wavelengths, name="wavelength",
        marker_color=["#4C6FFF" if w < context else "#E4572E" for w in wavelengths],
        hovertemplate="pair %{x}: one turn every %{y:,.1f} positions<extra></extra>",
    ))
    # A trace, not add_hline: shapes on a log axis take log10 coordinates.
    fig.add_trace(go.Scatter(x=[-0.5, P - 0.5], y=[context, context], mode="lines", name=f"context = {context}",
                             line=dict(dash="dash", color="#888"), hoverinfo="name"))
    fig.add_annotation(x=-0.4, y=np.log10(context), text=f"context {context}", showarrow=False,
                       yshift=10, xanchor="left")
    fig.update_yaxes(type="log", dtick=1, title_text="positions per turn (2π/θᵢ)")  # dtick=1: one tick a decade
    fig.update_xaxes(title_text="pair i (fast→slow)")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig


def shift_figure(deltas: np.ndarray, both: np.ndarray, q_only: np.ndarray, m: int, n: int) -> go.Figure:
    """The relative-position property: the score of one q and one k moved together to (m+Δ, n+Δ) stays put;
    moving only the query to m+Δ changes it, because then m − n changes."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=deltas, y=both, mode="lines+markers", name=f"both moved: q at {m}+Δ, k at {n}+Δ",
                             line=dict(color="#29A36A", width=3)))
    fig.add_trace(go.Scatter(x=deltas, y=q_only, mode="lines", name=f"only q moved: q at {m}+Δ, k at {n}",
                             line=dict(color="#9AA3B2")))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25),
                      xaxis_title="Δ (positions moved)", yaxis_title="score q·k/√d_head")
    return fig


# --------------------------------------------------------------------------------------------------------
# What the other variants use
# --------------------------------------------------------------------------------------------------------


def position_table_figure(table: np.ndarray, title: str, n_prompt: int) -> go.Figure:
    """An absolute position table [position, d_model] (sinusoidal or learned): row m is added to the token
    embedding at position m."""
    lim = float(np.abs(table).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=table, zmid=0, zmin=-lim, zmax=lim, colorscale="RdBu_r", name="table",
                               colorbar=dict(thickness=10),
                               hovertemplate="position %{y}, dim %{x}: %{z:.3f}<extra></extra>"))
    if 0 < n_prompt < table.shape[0]:
        fig.add_hline(y=n_prompt - 0.5, line=dict(dash="dot", color="#888"),
                      annotation_text="end of the prompt", annotation_position="bottom right")
    fig.update_yaxes(title_text="position m", autorange="reversed")
    fig.update_xaxes(title_text="dimension")
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=40, b=10), title=title)
    return fig


def similarity_figure(sim: np.ndarray, title: str) -> go.Figure:
    """Cosine similarity between the position vectors of every pair of positions."""
    fig = go.Figure(go.Heatmap(z=sim, zmin=-1, zmax=1, zmid=0, colorscale="RdBu_r", name="cosine",
                               colorbar=dict(thickness=10),
                               hovertemplate="positions %{y} and %{x}: %{z:.2f}<extra></extra>"))
    fig.update_yaxes(title_text="position", autorange="reversed", scaleanchor="x")
    fig.update_xaxes(title_text="position")
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=40, b=10), title=title)
    return fig


def alibi_figure(slopes: np.ndarray, n: int) -> go.Figure:
    """ALiBi's bias −slope_h·(m − n) added to head h's scores, for an n-token prompt (masked above the
    diagonal). Steep heads look only nearby; shallow heads see far back."""
    H = len(slopes)
    cols = min(H, 3)
    rows = -(-H // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.04, vertical_spacing=0.1,
                        subplot_titles=[f"head {h}: slope {s:.4g}" for h, s in enumerate(slopes)])
    m = np.arange(n)
    dist = m[:, None] - m[None, :]  # (n, n) how far back each key is
    vmin = float(-slopes.max() * max(n - 1, 1))
    for h, s in enumerate(slopes):
        bias = np.where(dist >= 0, -s * dist, np.nan)
        fig.add_trace(go.Heatmap(z=bias, zmin=vmin, zmax=0, coloraxis="coloraxis", name=f"head {h}",
                                 hovertemplate="query %{y}, key %{x}: bias %{z:.3f}<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
        fig.update_yaxes(autorange="reversed", row=h // cols + 1, col=h % cols + 1)
    fig.update_layout(height=260 * rows + 40, margin=dict(l=10, r=10, t=40, b=10),
                      coloraxis=dict(colorscale="Reds_r", cmin=vmin, cmax=0, colorbar=dict(title="bias", thickness=10)))
    return fig


# --------------------------------------------------------------------------------------------------------
# Sentences: how far the pairs actually turn, from θᵢ and the lengths involved
# --------------------------------------------------------------------------------------------------------

SMALL_TURN_DEG = 10.0  # under this, a pair is "almost unrotated": cos 10° = 0.985


def _degrees(rad: float) -> str:
    """An angle for prose: 0.5 rad -> '29°'; 40 rad -> '2,292° (6.4 turns)'; under 10° with a decimal."""
    deg = float(np.degrees(rad))
    if deg >= 360:
        return f"{deg:,.0f}° ({deg / 360:.1f} turns)"
    return f"{deg:.1f}°" if deg < 10 else f"{deg:.0f}°"


def pair_turn_sentence(pair: int, theta: float, n_prompt: int, context: int) -> str:
    """What pair `pair` (θ = theta rad per position) does across the prompt (positions 0 … n_prompt−1) and the
    context (0 … context−1): the angles swept, and a qualitative word only where the angle earns it."""
    wave = 2 * np.pi / theta
    s = (f"θ_{pair} = {theta:.4g} rad per position: one full turn every {wave:,.1f} positions. Position m turns "
         f"by m·θ_{pair} (hover an arrow tip); the lengths do not change, since rotation keeps norms. ")
    whole = _degrees((context - 1) * theta)  # position 0 … context−1
    if n_prompt < 2:
        return s + (f"This prompt has one position, which does not turn; across the {context}-token context the "
                    f"last position turns {whole}.")
    swept = (n_prompt - 1) * theta
    s += (f"From the first to the last position of this prompt (0 … {n_prompt - 1}) the pair turns "
          f"{_degrees(swept)}; across the {context}-token context, {whole}.")
    if swept >= 2 * np.pi:
        s += " More than a full turn inside the prompt: this pair alone repeats itself within it."
    elif np.degrees(swept) < SMALL_TURN_DEG:
        s += f" Under {SMALL_TURN_DEG:.0f}° across the prompt: here this pair hardly tells positions apart."
    return s


def angle_table_sentence(inv_freq: np.ndarray, n_rows: int) -> str:
    """The angle table's caption: what it shows, and how far the fastest and slowest pairs turn over its rows."""
    P = len(inv_freq)
    span = max(n_rows - 1, 0)
    fastest, slowest = _degrees(span * inv_freq[0]), _degrees(span * inv_freq[-1])
    return ("m·θᵢ for every position and pair, as a point on the circle (mod 2π); hover for the angle and the "
            f"pair's wavelength. Over positions 0 … {span}, pair 0 turns {fastest} and pair {P - 1} turns {slowest}.")


def wavelength_sentence(inv_freq: np.ndarray, context: int) -> str:
    """The wavelength chart's caption: which pairs finish a turn inside the context (blue, as drawn), how far the
    others turn across it (red), and which turn less than SMALL_TURN_DEG — the only ones 'almost unrotated'."""
    waves = 2 * np.pi / inv_freq
    P = len(waves)
    swept = np.degrees((context - 1) * inv_freq)  # (P,) across positions 0 … context−1
    fast = np.flatnonzero(waves < context)  # the figure's blue bars
    slow = np.flatnonzero(waves >= context)
    s = f"{len(fast)} of {P} pairs (blue) have a wavelength shorter than the {context}-token context"
    if not len(slow):
        return s + "."
    s += (f"; the other {len(slow)} (red, pairs {slow[0]}–{slow[-1]}) never finish a turn inside it. "
          if len(slow) > 1 else f"; pair {slow[0]} (red) never finishes a turn inside it. ")
    s += (f"Across the whole context they still turn {_degrees(np.radians(swept[slow[0]]))} (pair {slow[0]}) down to "
          f"{_degrees(np.radians(swept[slow[-1]]))} (pair {slow[-1]})."
          if len(slow) > 1 else f"Across the whole context it still turns {_degrees(np.radians(swept[slow[0]]))}.")
    tiny = np.flatnonzero(swept < SMALL_TURN_DEG)
    if len(tiny):
        which = f"pairs {tiny[0]}–{tiny[-1]}" if len(tiny) > 1 else f"pair {tiny[0]}"
        s += (f" Only {which} turn{'' if len(tiny) > 1 else 's'} less than {SMALL_TURN_DEG:.0f}° in the context: "
              "within it they are almost unrotated, close to position-free.")
    return s

