"""Attention: every layer × head at once, one head zoomed beside its raw scores, the heads' role scores, and
(for GQA/MQA) which query heads share each K/V head."""

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_csv, download_json, file_name, load_model, model_config,
    prompt_notices, require_model, require_shell, shared_result, sync_url, trace_prompt, url_choice, url_int,
)
from model.analysis.heads import ROLE_HELP, ROLES, kv_groups, kv_head_of, repeated_random_ids, role_scores
from viz.attention import attention_grid, head_zoom, kv_sharing_figure, role_heatmaps, shared_keys_figure

require_shell()  # first, before any widget: see app_shared.require_shell

GRID_MAX_TOKENS = 48  # the overview draws L×H panels; past this many tokens each cell is under a pixel
INDUCTION_PERIOD = 24  # length of the random block that is repeated to measure induction
# The overview draws at most this many layers × heads at once: a 30-layer, 32-head model would otherwise be 960
# panels of a few pixels each, and a figure that takes seconds to build. Larger models are paged.
GRID_LAYERS = 8
GRID_HEADS = 12


def pages_of(n: int, size: int) -> list[int]:
    """The first index of each page of `size` over range(n): pages_of(30, 8) -> [0, 8, 16, 24]."""
    return list(range(0, n, size))


@st.cache_resource(show_spinner="Running the model on a repeated random sequence…", max_entries=8)
def induction_patterns(variant: str) -> list[np.ndarray]:
    """Attention patterns of the model on [r; r], r = INDUCTION_PERIOD random tokens (same r every time)."""
    from model.net.trace import run_with_trace

    model = load_model(variant)
    ids = repeated_random_ids(INDUCTION_PERIOD, model.cfg.vocab_size, seed=0)
    tr = run_with_trace(model, ids, names=lambda n: n.endswith("attn.hook_pattern"))
    return [tr[f"blocks.{l}.attn.hook_pattern"] for l in range(model.cfg.n_layers)]


@shared_result()
def head_roles(variant: str, ids: tuple[int, ...]) -> dict:
    tr = trace_prompt(variant, ids)
    L = model_config(variant).n_layers
    patterns = [tr[f"blocks.{l}.attn.hook_pattern"] for l in range(L)]
    return role_scores(patterns, induction_patterns(variant), INDUCTION_PERIOD)


@shared_result()
def grid_figure(variant: str, ids: tuple[int, ...], role: str, sort: bool, layer0: int = 0, head0: int = 0):
    """The L×H overview, or its page of GRID_LAYERS layers from `layer0` × GRID_HEADS heads from `head0`. Shared
    and cached (st.plotly_chart only reads a figure): its 24 subplots cost ~0.15 s of Plotly validation, which a
    rerun for the zoom's layer or head should not pay again. Sorting orders the heads shown, within each layer."""
    cfg = model_config(variant)
    tr = trace_prompt(variant, ids)
    n = min(len(ids), GRID_MAX_TOKENS)
    layers = range(layer0, min(cfg.n_layers, layer0 + GRID_LAYERS))
    heads = list(range(head0, min(cfg.n_heads, head0 + GRID_HEADS)))
    patterns = [tr[f"blocks.{l}.attn.hook_pattern"][heads, :n, :n] for l in layers]
    masked = ~np.isfinite(tr["blocks.0.attn.hook_attn_scores"][0, :n, :n])
    kv_of_head = [kv_head_of(h, cfg.n_heads, cfg.n_kv_heads) for h in heads]
    scores = head_roles(variant, ids)[role][np.ix_(list(layers), heads)]
    return attention_grid(patterns, masked, scores, role, sort, kv_of_head if cfg.n_kv_heads < cfg.n_heads else None,
                          first_layer=layer0, first_head=head0)


variant = current_model()
cfg = model_config(variant)
prompt = current_prompt()

st.title("Attention")
reads = ("itself and every earlier token" if cfg.sliding_window is None else
         f"itself and the earlier tokens inside its {cfg.sliding_window}-position window")
st.markdown(
    f"Each head compares the current token's **query** with the **key** of {reads} (a dot product, scaled by "
    f"1/√d_head = 1/√{cfg.head_dim}, the size of one head), masks the rest, and turns each row into weights "
    "with a softmax. The weights — the *pattern* — say how much of each of those tokens' **value** the head copies "
    "into this position."
)
require_model(variant)
if not prompt_notices(prompt):
    st.stop()

tr = trace_prompt(variant, prompt.ids)
T, L, H = len(prompt.ids), cfg.n_layers, cfg.n_heads
labels = list(prompt.labels)
groups = kv_groups(cfg.n_heads, cfg.n_kv_heads)
kv_of_head = [kv_head_of(h, cfg.n_heads, cfg.n_kv_heads) for h in range(H)]
shared_kv = cfg.n_kv_heads < cfg.n_heads
roles = head_roles(variant, prompt.ids)

# ---- every head at once -----------------------------------------------------------------------------
st.subheader("Every layer × head")
c1, c2 = st.columns([2, 1])
with c1:
    url_choice("att_role", list(ROLES), "previous-token")
    role = st.selectbox("Colour and label the heads by", list(ROLES), key="att_role",
                        help="Scores are means of attention weights, from 0 (never) to 1 (always).")
with c2:
    url_choice("att_sort", [False, True], False)
    sort = st.toggle("Sort each layer's heads by this score", key="att_sort")
st.caption(f":material/help: **{role}**: {ROLE_HELP[role]}.")

n_grid = min(T, GRID_MAX_TOKENS)
layer0 = head0 = 0
if L > GRID_LAYERS or H > GRID_HEADS:  # a large model: one page of the grid at a time
    c1, c2 = st.columns(2)
    with c1:
        if L > GRID_LAYERS:
            starts = pages_of(L, GRID_LAYERS)
            url_choice("att_layers", starts, 0)
            layer0 = st.selectbox(f"Layers shown ({GRID_LAYERS} at a time, of {L})", starts, key="att_layers",
                                  format_func=lambda a: f"layers {a}–{min(L, a + GRID_LAYERS) - 1}")
    with c2:
        if H > GRID_HEADS:
            starts = pages_of(H, GRID_HEADS)
            url_choice("att_heads", starts, 0)
            head0 = st.selectbox(f"Heads shown ({GRID_HEADS} at a time, of {H})", starts, key="att_heads",
                                 format_func=lambda a: f"heads {a}–{min(H, a + GRID_HEADS) - 1}")
    sync_url("att_layers", "att_heads")
st.plotly_chart(grid_figure(variant, prompt.ids, role, sort, layer0, head0), width="stretch", key="att_grid")
if L > GRID_LAYERS or H > GRID_HEADS:
    st.caption(f"This model has {L} layers × {H} heads = {L * H:,} heads; the grid draws "
               f"{min(L - layer0, GRID_LAYERS)} × {min(H - head0, GRID_HEADS)} of them at once. The role-score "
               "heat maps below cover all of them: find a head there, then page to it here.")
if n_grid < T:
    # The panels are cut for legibility; the scores are not (a score over 48 tokens would disagree with the
    # zoom and the table), so the caption says which is which.
    st.caption(f"The overview draws the first {n_grid} of {T} tokens, but the scores in its titles and frames are "
               f"measured on all {T}, as in the table below (induction: on its own repeated sequence). The zoom "
               "below shows every token.")
window_note = (f" and keys {cfg.sliding_window} or more positions back (the sliding window)"
               if cfg.sliding_window is not None and cfg.sliding_window < n_grid else "")
st.caption("Query position runs down, key position across; grey is the mask: the future (a token cannot read "
           f"it){window_note}.")

with st.expander(f"All {len(ROLES)} role scores", icon=":material/table:"):
    st.plotly_chart(role_heatmaps(roles, kv_of_head if shared_kv else None), width="stretch", key="att_roles")
    st.caption(f"Induction is measured on {INDUCTION_PERIOD} random tokens repeated twice, not on your prompt: "
               "in the second copy, the next token can only be predicted by finding the earlier copy.")
    rows = [{"layer": l, "head": h, "kv_head": kv_of_head[h], **{r: float(roles[r][l, h]) for r in ROLES}}
            for l in range(L) for h in range(H)]
    st.dataframe(rows, hide_index=True, column_config={r: st.column_config.NumberColumn(format="%.3f") for r in ROLES})

# ---- one head zoomed --------------------------------------------------------------------------------
st.subheader("One head, zoomed")
# Open on the head that scores highest on the chosen role, rather than on an arbitrary layer 0, head 0.
best_l, best_h = (int(i) for i in np.unravel_index(np.argmax(np.nan_to_num(roles[role], nan=-1.0)), (L, H)))
c1, c2 = st.columns(2)
with c1:
    url_int("att_layer", best_l, 0, L - 1)
    layer = st.selectbox("Layer", list(range(L)), key="att_layer", format_func=lambda l: f"layer {l}")
with c2:
    url_int("att_head", best_h, 0, H - 1)
    head = st.selectbox("Head", list(range(H)), key="att_head", format_func=lambda h: f"head {h}"
                        + (f" (reads K/V head {kv_of_head[h]})" if shared_kv else ""))
sync_url("att_role", "att_sort", "att_layer", "att_head")

pattern = tr[f"blocks.{layer}.attn.hook_pattern"][head]  # (T, T)
scores = tr[f"blocks.{layer}.attn.hook_attn_scores"][head]  # (T, T), -inf where masked
st.plotly_chart(head_zoom(pattern, scores, labels, f"layer {layer}, head {head}"), width="stretch", key="att_zoom")
bias_note = " They already include ALiBi's distance penalty (−slope × distance)." if cfg.pos_encoding == "alibi" else ""
st.caption(f"Scores are q·k/√d_head (d_head = {cfg.head_dim}) before the softmax; masked cells are −∞ there and "
           f"exactly 0 after it, shown grey.{bias_note} "
           + "  ·  ".join(f"{r}: {roles[r][layer, head]:.2f}" for r in ROLES))

# ---- GQA / MQA sharing ------------------------------------------------------------------------------
if shared_kv:
    st.subheader(f"{cfg.attention_kind}: query heads sharing K/V heads")
    st.plotly_chart(kv_sharing_figure(groups), width="stretch", key="att_kv")
    st.markdown(
        f"This model has **{cfg.n_heads} query heads** but only **{cfg.n_kv_heads} key/value head"
        f"{'s' if cfg.n_kv_heads > 1 else ''}**: each K/V head serves {cfg.group_size} query heads, so the KV "
        f"cache is {cfg.n_heads // cfg.n_kv_heads}× smaller than with one K/V head per query head (MHA). "
        "Heads that share keys can still attend differently, because their queries differ."
    )
    # The actual keys the chosen head's group shares, beside the queries of every head that reads them.
    kv = kv_of_head[head]
    members = [h for h in range(H) if kv_of_head[h] == kv]
    rot = "hook_rot_k" if f"blocks.{layer}.attn.hook_rot_k" in tr else "hook_k"
    qname = "hook_rot_q" if rot == "hook_rot_k" else "hook_q"
    st.plotly_chart(shared_keys_figure(tr[f"blocks.{layer}.attn.{rot}"][:, kv],
                                       [tr[f"blocks.{layer}.attn.{qname}"][:, h] for h in members], members, kv, labels,
                                       rot == "hook_rot_k"), width="stretch", key="att_shared_keys")
    st.caption(f"Layer {layer}: the {len(members)} query heads {', '.join(map(str, members))} all read these same "
               f"{T} keys (K/V head {kv}, the group of head {head} chosen above). Each score of those heads is one "
               "row of its query panel dotted with one row of the key panel, ÷ √d_head: the keys are computed and "
               "cached once for the whole group.")
else:
    st.caption(f"{cfg.attention_kind}: every query head has its own key/value head.")

# ---- downloads --------------------------------------------------------------------------------------
c1, c2 = st.columns(2)
with c1:
    download_json(
        {"variant": variant, "tokens": labels, "ids": list(prompt.ids), "layer": layer, "head": head,
         "pattern": pattern, "scores": scores, "role_scores": roles, "kv_groups": groups,
         "induction_period": INDUCTION_PERIOD},
        f"attention_{file_name(variant)}_L{layer}H{head}.json", "Download this head and all role scores (JSON)",
    )
with c2:
    download_csv(rows, f"head_roles_{file_name(variant)}.csv", "Download role scores (CSV)")
