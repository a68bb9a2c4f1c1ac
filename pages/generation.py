"""Generation, one decode step per click: the distribution and the sampling choice, the KV cache growing,
and the new token's attention — for the step you are on or any earlier one.

Thin: this user's `model.decoding.stepper.Stepper` lives in `st.session_state` and changes only in the buttons'
callbacks; figures come from `viz/generation.py`. Sampler settings, seed, N, the decode steps taken (gen_steps),
the step shown (gen_view) and the layer are in the URL: a fresh session replays gen_steps steps from the prompt.
"""

import dataclasses

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_json, load_model, model_config, model_name, plain_md, prompt_notices,
    require_model, require_shell, sync_url, tokenizer_for, url_choice, url_int,
)
from model.decoding.sampling import SamplerConfig
from model.decoding.stepper import Stepper, kv_bytes_by_attention
from viz.generation import (attention_rows_figure, cache_bytes_figure, cache_figure, distribution_figure,
                            history_figure, kv_kinds_figure, plural, prob_text, shape_text, step_cost_text,
                            temperature_pair_figure, temperature_pair_sentence, top_slice)

require_shell()  # first, before any widget: see app_shared.require_shell

TEMPERATURES = [round(0.05 * i, 2) for i in range(41)]  # 0 (greedy) … 2
TOP_PS = [round(0.05 * i, 2) for i in range(1, 21)]  # 0.05 … 1.0 (1.0 = off)
MIN_PS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]  # 0 = off
N_SHOWN = 15  # bars in the sampling panel (the chosen token is added when it is not among them)
PLOT_CONFIG = {"displaylogo": False}
ROW_LAYERS = 8  # layers of attention rows drawn at once (a 30-layer model is paged around the chosen layer)
# Decode steps a link may ask to replay: our models' whole context. A sliding window has no end; this is its.
MAX_REPLAY = 256

variant = current_model()
cfg = model_config(variant)
tok = tokenizer_for(variant)
decode, token_label = tok.decode, tok.token_label
prompt = current_prompt()

st.title("Generation, one token at a time")
st.markdown(
    "The prompt goes through the model once, all positions in parallel (the **prefill**), which fills the KV "
    "cache and gives the first next-token distribution. Each **Next token** then feeds the token just chosen "
    "as a single new position: one decode step that reads every earlier position's keys and values from the "
    "cache instead of recomputing them."
)
require_model(variant)
model = load_model(variant)
if not prompt_notices(prompt):
    st.stop()

# --- settings (in the URL) -----------------------------------------------------------------------------------
url_choice("temperature", TEMPERATURES, 0.8)
url_int("top_k", 0, 0, cfg.vocab_size)
url_choice("top_p", TOP_PS, 1.0)
url_choice("min_p", MIN_PS, 0.0)
url_int("seed", 0, 0, 2**31 - 1)
url_int("n_steps", 10, 1, 64)
c = st.columns([3, 2, 3, 3, 2, 2])
c[0].select_slider("Temperature", TEMPERATURES, key="temperature", help="0 = greedy: always the most likely token.")
c[1].number_input("Top-k", 0, cfg.vocab_size, key="top_k", help="Keep the k most likely tokens. 0 = off.")
c[2].select_slider("Top-p", TOP_PS, key="top_p", help="Keep the smallest set whose probability reaches p. 1 = off.")
c[3].select_slider("Min-p", MIN_PS, key="min_p", help="Keep tokens with at least min-p × the top probability. 0 = off.")
c[4].number_input("Seed", 0, 2**31 - 1, key="seed", help="Changing the seed starts over.")
c[5].number_input("N", 1, 64, key="n_steps", help="Steps taken by Run N.")
sync_url("temperature", "top_k", "top_p", "min_p", "seed", "n_steps")


def sampler_from_state() -> SamplerConfig:
    s = st.session_state
    return SamplerConfig(temperature=float(s.temperature), top_k=int(s.top_k) or None,
                         top_p=float(s.top_p) if s.top_p < 1 else None, min_p=float(s.min_p) or None)


sampler = sampler_from_state()

# --- this user's stepper -------------------------------------------------------------------------------------
ident = (variant, prompt.ids, int(st.session_state.seed))
stepper = st.session_state.get("gen_stepper")
if stepper is None or st.session_state.get("gen_ident") != ident:
    stepper = Stepper(cfg, prompt.ids, seed=ident[2], label=token_label)
    stepper.prefill(model, sampler)
    st.session_state.gen_stepper, st.session_state.gen_ident = stepper, ident
    st.session_state.pop("gen_view", None)
    if "gen_steps" not in st.session_state and stepper.ready:
        # A link's run, once per session: replay its decode steps from the prompt with the link's seed and
        # settings. Each draw depends only on those and the tokens before it, so the same tokens come out.
        room = stepper.room
        want = url_int("gen_steps", 0, 0, MAX_REPLAY if room is None else min(room, MAX_REPLAY))
        if want:
            with st.spinner(f"Replaying the link's {want} decode steps…"):
                stepper.run_n(model, want, sampler)
        url_int("gen_view", len(stepper.records) - 1, 0, len(stepper.records) - 1)
stepper.resample_last(sampler)  # new settings redraw the current token from its stored logits (no model call)


def show_latest() -> None:
    st.session_state.gen_view = len(st.session_state.gen_stepper.records) - 1


# The buttons' callbacks only record what was asked: Streamlit runs callbacks before the script, outside the
# shell's RunGate, so a model step taken there would bypass the lecture hall's limit on pages computing at once.
# The step is taken here, inside the gate, on the stepper this run just checked.
def ask(action: str) -> None:
    st.session_state.gen_action = action


action = st.session_state.pop("gen_action", None)
if action == "next":
    stepper.next(model, sampler)
elif action == "back":
    stepper.back(model)
elif action == "run":
    stepper.run_n(model, int(st.session_state.n_steps), sampler)
elif action == "reset":
    stepper.reset(model, sampler)
if action is not None:
    show_latest()
st.session_state.gen_steps = stepper.n_steps  # the link replays this many steps (with its seed and settings)
sync_url("gen_steps")


def on_pick() -> None:
    points = st.session_state.gen_history.selection.points
    if points:
        st.session_state.gen_view = int(points[0]["point_index"])


# Four equal columns and the status on its own line: beside the status, at 1280 px with the sidebar open, the
# buttons were squeezed to "B…", "R…".
b = st.columns(4, vertical_alignment="center")
b[0].button("Next token", key="gen_next", type="primary", icon=":material/skip_next:", on_click=ask, args=("next",),
            disabled=not stepper.ready or stepper.room == 0, width="stretch")
b[1].button("Back", key="gen_back", icon=":material/undo:", on_click=ask, args=("back",), disabled=not stepper.can_back(),
            width="stretch")
b[2].button(f"Run {st.session_state.n_steps}", key="gen_run", icon=":material/fast_forward:", on_click=ask, args=("run",),
            disabled=not stepper.ready or stepper.room == 0, width="stretch")
b[3].button("Reset", key="gen_reset", icon=":material/restart_alt:", on_click=ask, args=("reset",), width="stretch")
st.markdown(f"**cache: {plural(stepper.cache.n_cached, 'position')}** · prompt {len(stepper.prompt_ids)} + "
            f"{plural(stepper.n_steps, 'decode step')} · {plural(len(stepper.generated_ids), 'token')} chosen")

if stepper.message:
    st.warning(stepper.message, icon=":material/block:")
if not stepper.ready:
    st.stop()

records = stepper.records
latest = len(records) - 1
if not 0 <= st.session_state.get("gen_view", latest) <= latest:
    st.session_state.gen_view = latest
if latest > 0:
    step_names = ["0 · prefill"] + [f"{k} · fed {token_label(x.fed[0])}" for k, x in enumerate(records) if k]
    st.select_slider("Step shown", list(range(latest + 1)), key="gen_view",
                     format_func=lambda k: step_names[k] if 0 <= k < len(step_names) else str(k))
    sync_url("gen_view")
else:
    st.query_params.pop("gen_view", None)  # only the prefill: nothing to choose, and no stale step in the link
if any(x.sampler != records[-1].sampler for x in records):
    st.caption(":material/link: Some steps of this run were drawn with other settings than the current ones. A link "
               "replays every step with the settings it carries, so from the first such step on it may choose "
               "other tokens.")
view = st.session_state.get("gen_view", latest)
r = records[view]
ids = stepper.token_ids()
labels = [token_label(i) for i in ids]

# --- the history strip ---------------------------------------------------------------------------------------
st.subheader("The chosen tokens", anchor=False)
st.caption("Colour: the probability each token had in the model's raw distribution when it was chosen — orange "
           "unlikely, pale about 0.5, blue near 1. Click a token to see the step that chose it; the outlined "
           "one is shown below.")
st.plotly_chart(history_figure([x.label for x in records], np.array([x.prob for x in records]), view),
                key="gen_history", on_select=on_pick, selection_mode="points", config=PLOT_CONFIG)
with st.expander("The whole text so far", icon=":material/notes:"):
    st.code(decode(ids[: len(stepper.prompt_ids)]) + decode(stepper.generated_ids), language=None, wrap_lines=True)

# --- the sampling panel --------------------------------------------------------------------------------------
is_current = view == latest
res = r.result()
title = "the prefill" if r.is_prefill else f"decode step {view}"
st.subheader(f"Step {view}: {title} chooses token {view + 1}", anchor=False)
left, right = st.columns([5, 2], gap="large")  # [3, 1] cut "3.98 → 3.33" at 1024 px
with left:
    shown = top_slice(res.tempered, N_SHOWN, res.token)
    s = r.sampler
    if res.greedy:  # no filters run: the argmax is the whole kept set
        names, kept = ["greedy: argmax only"], [res.kept[shown]]
    else:
        names = [f"top-k {s.top_k}" if s.top_k else "top-k off", f"top-p {s.top_p}" if s.top_p else "top-p off",
                 f"min-p {s.min_p}" if s.min_p else "min-p off"]
        kept = [res.kept_top_k[shown], res.kept_top_p[shown], res.kept_min_p[shown]]
    ranks = np.array([res.rank_of(int(i)) for i in shown])
    fig = distribution_figure([token_label(int(i)) for i in shown], res.raw[shown], res.tempered[shown],
                              res.final[shown], kept, names, int(np.flatnonzero(shown == res.token)[0]), ranks,
                              res.greedy)
    st.plotly_chart(fig, key="gen_dist", config=PLOT_CONFIG)
with right:
    st.markdown("**Chosen token**")
    st.code(r.label, language=None)
    st.metric("Probability (raw softmax)", prob_text(res.prob))
    st.metric("Probability it was drawn with", prob_text(res.final[res.token]))
    st.metric("Rank", f"{res.rank + 1} of {len(res.raw):,}")
    st.metric("Entropy (nats)", f"{res.entropy_raw:.2f} → {res.entropy_final:.2f}",
              help="Of the raw softmax → of the distribution drawn from. How spread out it is: 0 = certain, "
                   f"ln {len(res.raw):,} = {np.log(len(res.raw)):.2f} = uniform.")
    st.caption(f"Kept set: {plural(int(res.kept.sum()), 'token')}.")
if res.greedy:
    st.info("Temperature 0 is **greedy**: the most likely token, every time; no random draw, so the seed does "
            "not matter. Small models often loop when greedy.", icon=":material/target:")
if is_current:
    st.caption(":material/tune: Changing a setting redraws this step's choice from its stored logits (no model "
               "call) and applies to every step after it.")
else:
    st.caption(f":material/history: An earlier step, shown as it was drawn (temperature {s.temperature}, "
               f"top-k {s.top_k or 'off'}, top-p {s.top_p or 'off'}, min-p {s.min_p or 'off'}). "
               "Settings apply to the current step.")

# --- two temperatures on the same logits ----------------------------------------------------------------------
st.subheader("Two temperatures, the same logits", anchor=False)
url_choice("temperature2", TEMPERATURES, 1.5)
t2 = st.select_slider("Second temperature", TEMPERATURES, key="temperature2",
                      help="Compared with this step's own temperature; the filters and the random number stay the same.")
sync_url("temperature2")
pair = (res, r.result(dataclasses.replace(s, temperature=float(t2))))
pair_shown = top_slice(res.raw, N_SHOWN, res.token)  # the same tokens in both panels (raw order = any T's order)
st.plotly_chart(temperature_pair_figure(
    [token_label(int(i)) for i in pair_shown], tuple(x.final[pair_shown] for x in pair), (s.temperature, float(t2)),
    tuple(int(np.flatnonzero(pair_shown == x.token)[0]) if x.token in pair_shown else -1 for x in pair)),
    key="gen_temps", config=PLOT_CONFIG)
st.caption(plain_md(temperature_pair_sentence(
    (s.temperature, float(t2)), tuple(float(x.final.max()) for x in pair), tuple(x.entropy_final for x in pair),
    tuple(int(x.kept.sum()) for x in pair), tuple(token_label(x.token) for x in pair))))

# --- the KV cache --------------------------------------------------------------------------------------------
st.subheader("The KV cache", anchor=False)
url_int("gen_layer", 0, 0, cfg.n_layers - 1)
if cfg.n_layers <= ROW_LAYERS:
    layer = st.segmented_control("Layer", list(range(cfg.n_layers)), required=True, key="gen_layer",
                                 format_func=lambda l: f"layer {l}")
else:  # 30 buttons would wrap into a wall: a list instead
    layer = st.selectbox("Layer", list(range(cfg.n_layers)), key="gen_layer", format_func=lambda l: f"layer {l}")
sync_url("gen_layer")
layer = 0 if layer is None else layer
K, V, pos = stepper.cache_rows(layer, upto=r.cache_len)
new_from = r.first_pos
k_shape_text = shape_text(b=1, kv=cfg.n_kv_heads, n=r.n_cached, d=cfg.head_dim)  # every size named
# The K and V panels take the full width: in a 3/5 column at 1024 px their titles and colour bars collided.
st.plotly_chart(cache_figure(K, V, pos, [labels[p] for p in pos], cfg.n_kv_heads, cfg.head_dim, new_from),
                key="gen_cache", config=PLOT_CONFIG)
st.caption("One row per position, newest at the bottom (boxed: written by this step). Keys are stored after "
           "RoPE: a key's rotation depends only on its own position, so it never needs redoing."
           if cfg.pos_encoding == "rope" else "One row per position, newest at the bottom (boxed: this step).")
cl, cr = st.columns(2, gap="large")
with cl:
    by_kind_now = kv_bytes_by_attention(cfg, r.cache_len)
    st.markdown(
        f"Each layer holds K and V, each of shape {k_shape_text}. All {cfg.n_layers} layers: 2 (K and V) × "
        f"{shape_text(L=cfg.n_layers, kv=cfg.n_kv_heads, n=r.n_cached, d=cfg.head_dim)} "
        f"numbers × 4 bytes = **{r.cache_bytes:,} bytes** ({r.cache_bytes / 1024:,.1f} KiB)."
    )
    st.info(step_cost_text(r.is_prefill, r.cache_len, len(r.key_positions), r.flops_cached, r.flops_recompute),
            icon=":material/bolt:")
with cr:
    st.plotly_chart(kv_kinds_figure(by_kind_now, cfg.attention_kind), key="gen_kinds", config=PLOT_CONFIG)
    st.caption(f"The same model with one K/V head per query head (MHA) or one shared by all (MQA): only the K/V "
               f"head count changes. This model is {cfg.attention_kind} ({cfg.n_heads} query heads, "
               f"{cfg.n_kv_heads} K/V heads).")
steps = list(range(len(records)))
by_kind_steps = {k: [kv_bytes_by_attention(cfg, x.cache_len)[k] for x in records] for k in by_kind_now}
st.plotly_chart(cache_bytes_figure(steps, [x.cache_bytes for x in records], by_kind_steps, cfg.attention_kind),
                key="gen_bytes", config=PLOT_CONFIG)

# --- the new token's attention -------------------------------------------------------------------------------
q_pos = r.cache_len - 1
st.subheader("The new position's attention", anchor=False)
fed = "the last prompt position" if r.is_prefill else "fed by this step"
row0 = layer // ROW_LAYERS * ROW_LAYERS if cfg.n_layers > ROW_LAYERS else 0
row1 = min(cfg.n_layers, row0 + ROW_LAYERS)
shown_layers = (f" Layers {row0}–{row1 - 1} of {cfg.n_layers} are drawn (the page of {ROW_LAYERS} holding the layer "
                "chosen above)." if cfg.n_layers > ROW_LAYERS else "")
st.caption(f"The query is position {q_pos} (“{plain_md(labels[q_pos])}”, {fed}): each head's weights over every cached "
           "position, per layer. Each row sums to 1; the colour runs up to the largest weight shown." + shown_layers)
st.plotly_chart(attention_rows_figure(r.attn[row0:row1], r.key_positions, [labels[p] for p in r.key_positions],
                                      first_layer=row0),
                key="gen_attn", config=PLOT_CONFIG)

download_json(
    {"variant": model_name(variant), "prompt_ids": stepper.prompt_ids, "seed": stepper.seed,
     "steps": [{"step": x.index, "fed": list(x.fed), "token": x.token, "label": x.label, "prob": x.prob,
                "rank": x.rank, "cache_positions": x.cache_len, "cache_bytes": x.cache_bytes,
                "flops": x.flops_cached, "flops_without_cache": x.flops_recompute,
                "sampler": {"temperature": x.sampler.temperature, "top_k": x.sampler.top_k,
                            "top_p": x.sampler.top_p, "min_p": x.sampler.min_p}} for x in records]},
    "generation_steps.json", "Download the steps (JSON)",
)
