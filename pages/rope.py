"""Where position enters. For RoPE, on the model's own queries and keys (the `hook_q` / `hook_rot_q` captures):
one frequency pair before and after rotation, the angle table and wavelengths, the relative-position property
checked live, and the long-term decay. For the other variants: their table or bias instead.

Thin: the prompt's cached trace → `model/analysis/rope.py` (the model's own `apply_rope`, in float64) →
`viz/rope.py`.
"""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_csv, is_folder, load_model, model_config, prompt_notices, require_model,
    require_shell, sync_url, trace_prompt, url_choice, url_int,
)
from model.analysis import rope as rope_probe
from model.evaluation import rope_scaling as rope_scaling_eval
from model.analysis.geometry import cosine_by_distance, cosine_matrix
from model.analysis.heads import kv_head_of
from viz.rope_scaling import angle_ratio_figure, finetune_sentences, loss_by_position_figure, scaling_sentences
from viz.embeddings import embed_scale_sentence, position_similarity_sentence, position_table_sentence
from viz.rope import (abs_score_figure, abs_score_sentence, alibi_figure, angle_table_figure, angle_table_sentence,
                      fixed_vector_figure, pair_arrows_figure, pair_turn_sentence, position_table_figure, shift_figure,
                      similarity_figure, wavelength_figure, wavelength_sentence)

require_shell()  # first, before any widget: see app_shared.require_shell

MAX_ARROWS = 32  # positions drawn at once in the arrow plot
MAX_SHIFT = 512  # Δ and relative distances explored (past the context on purpose: RoPE is a formula)
PLOT_CONFIG = {"displaylogo": False}

variant = current_model()
cfg = model_config(variant)
prompt = current_prompt()
compare_page = Path(__file__).resolve().parent / "compare.py"

st.title("Positions: how the model knows where a token is")
require_model(variant)


def link_to_compare() -> None:
    if compare_page.exists() and not is_folder(variant):  # Compare is about our trained variants
        st.page_link("pages/compare.py", label="Compare the five positional encodings, trained alike",
                     icon=":material/compare:")


# --- the variants without RoPE -------------------------------------------------------------------------------
if cfg.pos_encoding != "rope":
    T = len(prompt.ids)
    pe = cfg.pos_encoding
    st.info(f"This variant (**{variant}**) does not use RoPE. Choose a `-rope` variant in the sidebar to see the "
            "rotations; below is what this one uses instead.", icon=":material/info:")
    if pe in ("sinusoidal", "learned"):
        model = load_model(variant)
        table = rope_probe.absolute_position_table(model)  # (max_seq_len, d_model)
        if pe == "sinusoidal":
            token_median = float(np.median(np.linalg.norm(model.tok_embed.weight.detach().numpy(), axis=1)))
            st.markdown(
                "**Sinusoidal positions** (Vaswani et al. 2017): a fixed formula, "
                f"PE[m, 2i] = sin(m / 10000^(2i/d_model)), PE[m, 2i+1] = cos(m / 10000^(2i/d_model)) with d_model = "
                f"{cfg.d_model}, defined at every position m (drawn below for 0–{table.shape[0] - 1}, the training "
                "context), added to the token embedding once, before the first block. "
                + embed_scale_sentence(cfg.token_scale, cfg.d_model, token_median,
                                       float(np.median(np.linalg.norm(table, axis=1))))
                + " Like RoPE it uses a spectrum of frequencies, but it is added to the vector rather than rotating "
                "q and k, so relative position reaches attention only indirectly."
            )
        else:
            st.markdown(
                f"**Learned positions** (GPT-2 style): a trained table of {cfg.max_seq_len} vectors, one per "
                "position, added to the token embedding. Nothing exists past the last row: this model cannot "
                f"take position {cfg.max_seq_len} at all."
            )
        c1, c2 = st.columns(2)
        N = table.shape[0]
        what = (f"sinusoidal formula at positions 0–{N - 1} × {cfg.d_model}" if pe == "sinusoidal"
                else f"learned table [{N} positions × {cfg.d_model}]")
        sim = cosine_matrix(table)
        c1.plotly_chart(position_table_figure(table, what, T), key="rope_table", config=PLOT_CONFIG)
        c2.plotly_chart(similarity_figure(sim, "cosine similarity between position vectors"),
                        key="rope_similarity", config=PLOT_CONFIG)
        distances = [2**k for k in range(N.bit_length()) if 2**k < N]  # 1, 2, 4, … inside the table
        st.caption("Left: " + position_table_sentence(table) + " Right: how alike the vectors of two positions "
                   "are. " + position_similarity_sentence(distances, *cosine_by_distance(sim, distances)))
    elif pe == "alibi":
        slopes = rope_probe.alibi_head_slopes(cfg.n_heads)
        n = min(max(T, 2), 48)
        if cfg.n_heads & (cfg.n_heads - 1) == 0:
            rule = f"; here n = {cfg.n_heads}: "
        else:
            rule = (f"; for a head count that is not a power of two (here {cfg.n_heads}) the paper takes the series of "
                    "the power of two below and fills in with every other slope of the next one: ")
        st.markdown(
            "**ALiBi** (Press et al. 2022): no position vector at all. Each head adds a fixed penalty to its "
            "attention scores, −slope × (how far back the key is), so distant tokens count less. For n heads the "
            "slopes are the geometric series 2^(−8/n), 2^(−16/n), …" + rule
            + ", ".join(f"{s:.4g}" for s in slopes) + "."
        )
        st.plotly_chart(alibi_figure(slopes, n), key="rope_alibi", config=PLOT_CONFIG)
        st.caption(f"The bias for positions 0–{n - 1} (query down, key across); above the diagonal is masked.")
    else:
        st.markdown(
            "**No positional encoding.** Nothing in this model says where a token is: no table, no rotation, no "
            "bias. Only the causal mask breaks the symmetry — position m attends over m + 1 tokens — and "
            "that is enough for a decoder to learn position implicitly, e.g. by how spread out an attention "
            "row is (Haviv et al. 2022, *Transformer language models without positional encodings still learn "
            "positional information*). Without the mask, the model could not tell word order at all."
        )
    link_to_compare()
    st.stop()

# --- RoPE: the model's own q and k ---------------------------------------------------------------------------
if not prompt_notices(prompt):
    st.stop()
T = len(prompt.ids)
hd, nh, nkv, theta = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads, cfg.rope_theta
scaling = cfg.rope_scaling  # None for ours; an imported Llama-3.1 or interpolated model rescales the frequencies
tr = trace_prompt(variant, prompt.ids)
st.markdown(
    f"RoPE (Su et al. 2021) rotates every query and key, pair of dimensions by pair: pair i = (x₂ᵢ, x₂ᵢ₊₁) of a "
    f"vector at position m turns by the angle m·θᵢ, with θᵢ = {theta:g}^(−2i/{hd}). Nothing is added to the "
    "residual stream; the dot product of a rotated q at m and a rotated k at n depends only on m − n. "
    "Everything below is the model's own q and k for your prompt."
    + ("" if scaling is None else
       f" This model also **rescales** the frequencies ({scaling['rope_type']} RoPE scaling, factor "
       f"{scaling['factor']:g}, to stretch its context): every θᵢ below, and every angle and score computed from "
       "it, is the rescaled one the model uses.")
)

url_int("rope_layer", 0, 0, cfg.n_layers - 1)
url_int("rope_head", 0, 0, nh - 1)
url_int("rope_pair", 0, 0, hd // 2 - 1)
url_choice("rope_which", ["q", "k"], "q")
c = st.columns([2, 2, 3, 2])
layer = c[0].selectbox("Layer", list(range(cfg.n_layers)), key="rope_layer")
head = c[1].selectbox("Query head", list(range(nh)), key="rope_head")
pair = c[2].slider("Frequency pair i", 0, hd // 2 - 1, key="rope_pair", help="0 turns fastest, the last slowest.")
which = c[3].segmented_control("Vector", ["q", "k"], key="rope_which", required=True) or "q"
sync_url("rope_layer", "rope_head", "rope_pair", "rope_which")
kvh = kv_head_of(head, nh, nkv)
inv = rope_probe.inv_freq(hd, theta, scaling)
waves = rope_probe.wavelengths(hd, theta, scaling)

# --- one pair, before and after ------------------------------------------------------------------------------
st.subheader(f"Pair {pair} of {which}, position by position", anchor=False)
hi = T - 1
lo_default = (0, min(hi, MAX_ARROWS // 2 - 1))
# A shorter prompt than last run: bring this session's positions back inside it before the widgets read them.
if "rope_span" in st.session_state and max(st.session_state.rope_span) > hi:
    st.session_state.rope_span = lo_default
if T > 1:
    if "rope_span" not in st.session_state:  # the link carries the span as rope_from and rope_to (two ints)
        a, b = url_int("rope_from", lo_default[0], 0, hi), url_int("rope_to", lo_default[1], 0, hi)
        st.session_state.rope_span = (min(a, b), max(a, b))
    span = st.slider("Positions drawn", 0, hi, key="rope_span", help=f"At most {MAX_ARROWS} at once.")
    st.session_state.rope_from, st.session_state.rope_to = span
    sync_url("rope_from", "rope_to")
    start, end = span[0], min(span[1], span[0] + MAX_ARROWS - 1)
else:
    start, end = 0, 0
idx = np.arange(start, end + 1)
h_idx = head if which == "q" else kvh
before = tr[f"blocks.{layer}.attn.hook_{which}"][idx, h_idx, 2 * pair: 2 * pair + 2]  # (N, 2)
after = tr[f"blocks.{layer}.attn.hook_rot_{which}"][idx, h_idx, 2 * pair: 2 * pair + 2]  # (N, 2)
angles = idx * inv[pair]
shared = " — a K/V head, shared by its group" if which == "k" and nkv < nh else ""
# Full width, one above the other: side by side, the three square panels shrink below readable at 900 px.
st.plotly_chart(pair_arrows_figure(before, after, idx, [prompt.labels[i] for i in idx], angles,
                                   f"{which} (head {h_idx}{shared})"),
                key="rope_arrows", config=PLOT_CONFIG)
cf, ct = st.columns([1, 1], gap="medium")
cf.plotly_chart(fixed_vector_figure(idx, angles, pair), key="rope_fixed", config=PLOT_CONFIG)
ct.caption(pair_turn_sentence(pair, inv[pair], T, cfg.max_seq_len) + " Each position of the prompt holds another "
           "token, so the model's arrows (above) differ in length and starting direction; the panel on the left "
           "turns one fixed vector by the same angles, so only the rotation changes from position to position.")

# --- angles and wavelengths ----------------------------------------------------------------------------------
st.subheader("The angle table and the wavelengths", anchor=False)
n_rows = max(T, min(cfg.max_seq_len, 64))
st.plotly_chart(angle_table_figure(rope_probe.angle_table(n_rows, hd, theta, scaling), waves, T), key="rope_angles",
                config=PLOT_CONFIG)
st.caption(angle_table_sentence(inv, n_rows))
st.plotly_chart(wavelength_figure(waves, cfg.max_seq_len), key="rope_waves", config=PLOT_CONFIG)
st.caption(wavelength_sentence(inv, cfg.max_seq_len))

# --- the relative-position property --------------------------------------------------------------------------
st.subheader("Only m − n matters", anchor=False)
st.markdown(f"Take the query of one prompt token and the key of another (layer {layer}, head {head}, before rotation) "
            "and place them at any positions.")
c = st.columns(3)
url_int("rope_m", T - 1, 0, T - 1)  # also brings a position back inside a shorter prompt
url_int("rope_n", max(0, T - 4), 0, T - 1)
url_int("rope_delta", 100, 0, MAX_SHIFT)
m = c[0].number_input("Query position m", 0, T - 1, key="rope_m")
n = c[1].number_input("Key position n", 0, T - 1, key="rope_n")
delta = c[2].number_input("Move both by Δ", 0, MAX_SHIFT, key="rope_delta")
sync_url("rope_m", "rope_n", "rope_delta")
q = tr[f"blocks.{layer}.attn.hook_q"][m, head].astype(np.float64)  # (hd,) before rotation
k = tr[f"blocks.{layer}.attn.hook_k"][n, kvh].astype(np.float64)  # (hd,)
s_mn, s_shift = rope_probe.scores_at(q, k, [m, m + delta], [n, n + delta], theta, scaling)
c = st.columns(4)
c[0].metric(f"score at ({m}, {n})", f"{s_mn:.6f}")
c[1].metric(f"score at ({m + delta}, {n + delta})", f"{s_shift:.6f}")
c[2].metric("difference", f"{abs(s_mn - s_shift):.1e}")
if m >= n:
    own = float(tr[f"blocks.{layer}.attn.hook_attn_scores"][head, m, n])
    c[3].metric("the model's own score", f"{own:.6f}", help="hook_attn_scores at (m, n), computed in float32 by the "
                "model's forward pass; the probe recomputes it in float64.")
else:
    c[3].metric("the model's own score", "masked", help="A query never reads a later key (causal mask).")
deltas = np.arange(0, MAX_SHIFT + 1, 16)
both = rope_probe.scores_at(q, k, m + deltas, n + deltas, theta, scaling)
q_only = rope_probe.scores_at(q, k, m + deltas, np.full_like(deltas, n), theta, scaling)
st.plotly_chart(shift_figure(deltas, both, q_only, m, n), key="rope_shift", config=PLOT_CONFIG)
st.caption(f"Green: both moved together — the score stays at {s_mn:.4f} (largest change "
           f"{np.abs(both - both[0]).max():.1e}). Grey: only the query moves, so m − n grows and the score changes.")

st.markdown(f"Now vary the distance. Does RoPE make far-apart tokens score lower? Take every query and every key "
            f"of your prompt (layer {layer}, head {head}, before rotation), place each query that far after each "
            "key, and average the size of the score.")
dist = np.arange(0, MAX_SHIFT)
all_scores = rope_probe.scores_by_distance(tr[f"blocks.{layer}.attn.hook_q"][:, head],
                                           tr[f"blocks.{layer}.attn.hook_k"][:, kvh], dist, theta, scaling)
mean_abs, se_abs = rope_probe.mean_abs_by_distance(all_scores)
st.plotly_chart(abs_score_figure(dist, mean_abs, se_abs, T), key="rope_distance", config=PLOT_CONFIG)
st.caption(abs_score_sentence(dist, mean_abs, se_abs, all_scores.shape[0]))
download_csv([{"distance": int(d), "mean_abs_score": float(a), "standard_error": float(e)}
              for d, a, e in zip(dist, mean_abs, se_abs)], "rope_score_vs_distance.csv")
link_to_compare()

# --- past the training context -------------------------------------------------------------------------------
# The committed measurement (`python -m model.evaluation.rope_scaling` → results/rope_scaling.json, with the
# fine-tunes of `python -m model.training.extend` where they were run): no model runs here.


@st.cache_data(show_spinner=False)
def rope_scaling_results(path: str, mtime: float) -> dict | None:
    """The measurement, or None when the file is missing or unreadable (mtime in the key: a new run is read)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


st.subheader("Past the training context", anchor=False)
scaling_path = rope_scaling_eval.RESULTS_PATH  # read at run time: tests point it elsewhere
scaling_res = rope_scaling_results(str(scaling_path), scaling_path.stat().st_mtime if scaling_path.is_file() else 0.0)
if scaling_res is None:
    st.info("No measurement of RoPE past its training context yet (`results/rope_scaling.json` is missing or "
            "unreadable). Run `python -m model.evaluation.rope_scaling --threads 1` and reload the page.",
            icon=":material/info:")
elif variant != scaling_res.get("variant"):
    st.info(f"Measured on **{scaling_res.get('variant')}** only: choose it in the sidebar to see how its loss "
            f"behaves out to {scaling_res.get('length', '?')} positions under each RoPE scaling.",
            icon=":material/info:")
else:
    sm = scaling_res["methods"]
    ctx, length = scaling_res["context"], scaling_res["length"]
    labels = {n: m["label"] for n, m in sm.items()}
    yarn_f = next((m["attention_factor"] for m in sm.values() if m["attention_factor"] != 1), None)
    st.markdown(
        f"This model was trained on {ctx}-token windows: no position past {ctx - 1} ever rotated its q and k. "
        f"Here it reads {length:,} tokens of the held-out plays with the same weights, its positions treated "
        f"{len(sm)} ways, none of them trained: **none** rotates on as trained (extrapolation); **linear** "
        f"divides every θᵢ by {scaling_res['factor']:g} (position interpolation, Chen et al. 2023); **NTK-aware** "
        "raises the base, so the fast pairs stay almost as trained and the slowest are interpolated "
        "(bloc97 2023; the static form); **YaRN** keeps the fast pairs, interpolates the slow ones, ramps between "
        "(Peng et al. 2023)"
        + (f" and multiplies every q·k by {yarn_f:.4g}² = {yarn_f ** 2:.3f}." if yarn_f else ".")
    )
    st.plotly_chart(loss_by_position_figure(
        np.asarray(scaling_res["bands"]["start"]), np.asarray(scaling_res["bands"]["end"]),
        {n: np.asarray(m["band_mean"], dtype=float) for n, m in sm.items()},
        {n: np.asarray(m["band_se"], dtype=float) for n, m in sm.items()}, ctx, labels),
        key="rope_scaling_loss", config=PLOT_CONFIG)
    reading = scaling_sentences(scaling_res)
    st.caption(reading[0])
    st.markdown("\n".join(f"- {s}" for s in reading[1:]))
    trained_freq = next(m["inv_freq"] for m in sm.values() if m["rope_scaling"] is None)
    st.plotly_chart(angle_ratio_figure({n: np.asarray(m["inv_freq"]) for n, m in sm.items()},
                                       np.asarray(trained_freq), ctx, length, labels),
                    key="rope_scaling_angles", config=PLOT_CONFIG)
    st.caption(f"Each cell: how far pair i has turned at position {length - 1} under that method, over the largest "
               f"angle it reached in training (position {ctx - 1}, unscaled). 1 means no angle the model has not "
               "seen; above 1, the pair is taken further than ever. Pairs left of the dotted line turned a full "
               "circle within the trained context, so every angle (mod 360°) was already seen there; for those "
               "right of it a ratio above 1 is genuinely new. The price is compression: a ratio near 1 on a fast pair "
               "means neighbouring positions now turn apart by less than in training (linear does this to every "
               "pair; NTK-aware and YaRN spare the fastest).")
    tuned = scaling_res.get("finetuned", {}).get("methods", {})
    if tuned:
        st.markdown("**After a short fine-tune at the longer context.** The papers follow these scalings with "
                    f"training at the new length. Here each method's model is fine-tuned on {length:,}-token "
                    "windows under its scaling (`python -m model.training.extend`), then read on the same "
                    "held-out windows: solid lines fine-tuned, dotted as trained.")
        st.plotly_chart(loss_by_position_figure(
            np.asarray(scaling_res["bands"]["start"]), np.asarray(scaling_res["bands"]["end"]),
            {n: np.asarray(m["band_mean"], dtype=float) for n, m in sm.items()},
            {n: np.asarray(m["band_se"], dtype=float) for n, m in sm.items()}, ctx,
            {**labels, **{n: m["label"] for n, m in tuned.items()}},
            tuned_mean={n: np.asarray(m["band_mean"], dtype=float) for n, m in tuned.items()},
            tuned_se={n: np.asarray(m["band_se"], dtype=float) for n, m in tuned.items()}),
            key="rope_scaling_finetuned", config=PLOT_CONFIG)
        tuned_reading = finetune_sentences(scaling_res)
        st.caption(tuned_reading[0])
        st.markdown("\n".join(f"- {s}" for s in tuned_reading[1:]))
