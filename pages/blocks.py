"""Building blocks: the parts every block of the loaded model is made of, on the live trace of the sidebar's prompt —
its norm step by step on one token's vector (RMSNorm, or LayerNorm with its mean and bias; the other formula beside
it), before each sublayer or, for a post-norm model, after each residual add; the residual stream's length through
the layers; what a training run logged per block (gradient norms, the stream's RMS); and the MLP the model has: a
gated one (SwiGLU; GeGLU for a Gemma folder) or GPT-2's plain GELU MLP with the neurons that fire for which tokens,
or a mixture of experts with the router's choices, the load on each expert and the tokens each one gets."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_json, file_name, is_folder, is_trained, load_model, model_config,
    plain_md, prompt_notices, require_model, require_shell, shared_result, sync_url, tokenizer_for, trace_prompt,
    url_choice, url_int,
)
from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.analysis.blocks import (
    GRAD_PARTS, activation, balance_loss, config_differences, describe, diagnostics_series, expert_counts,
    expert_tokens, firing_positions, layernorm_formula, layernorm_steps, norm_choices, norm_hooks, norm_input,
    position_spread, pre_norm_partner, residual_norms, residual_stages, rmsnorm_steps, top_neurons,
)
from model.net.checkpoints import (ARCHITECTURE_VARIANTS, VARIANT_BLURBS, VARIANTS, diagnostic_runs, load_train_log,
                                   variant_dir)
from viz.blocks import (
    activation_minimum, aux_loss_sentence, diagnostics_figure, diagnostics_sentence, expert_load_figure, growth_sentence,
    layernorm_figure, layernorm_sentence, layernorm_steps_figure, layernorm_steps_sentence, load_sentence,
    neuron_heatmap, plain_mlp_figure, plain_mlp_sentence, residual_norm_heatmap, residual_norm_lines, rmsnorm_figure,
    rmsnorm_sentence, router_figure, router_sentence, spread_sentence, swiglu_figure, swiglu_sentence,
)

require_shell()  # first, before any widget: see app_shared.require_shell

WINDOW = 48  # positions in the neuron and router heatmaps at once: each row carries a token label
FIRES_AT = 3  # positions listed per neuron in the table
LOAD_WINDOWS = 4  # held-out windows (of the context, 256 tokens) routed for the expert load: 1,024 tokens
MIN_SEEN = 5  # a token must occur this often in those windows to be ranked among an expert's tokens
TOP_TOKENS = 8  # tokens listed per expert
PART_LABELS = {"block": "attention, MLP and norms together", "attn": "attention", "mlp": "the MLP",
               "norms": "the norms' weights"}
# A config field in words, for the sentence that says what else a compared pair differs in.
FIELD_WORDS = {"norm": "the norm's kind (RMSNorm or LayerNorm)", "mlp": "the MLP's kind", "mlp_act": "its activation",
               "d_mlp": "the MLP's width", "n_experts": "the experts", "experts_per_token": "the experts per token"}


@shared_result()
def norm_step(variant: str, ids: tuple[int, ...], which: str, layer: int, pos: int) -> dict:
    """The chosen norm's every step on the vector at `pos` it reads (RMSNorm, or LayerNorm with the model's
    weight and bias), the model's own output there (hook_normalized), and the other formula on the same vector
    (LayerNorm's without γ and β for an RMSNorm model; RMSNorm's x / rms for a LayerNorm one)."""
    model = load_model(variant)
    cfg = model.cfg
    tr = trace_prompt(variant, ids)
    src, dst, weight = norm_hooks(which, layer, cfg.n_layers, cfg.norm_position)
    x = norm_input(tr, src)[pos]  # (d,)
    g = model.get_parameter(weight).detach().numpy()  # (d,)
    if cfg.norm == "layernorm":
        b = model.get_parameter(weight.removesuffix("weight") + "bias").detach().numpy()  # (d,)
        steps, other = layernorm_steps(x, g, b, cfg.norm_eps), rmsnorm_steps(x, np.ones_like(g), cfg.norm_eps)
    else:
        steps, other = rmsnorm_steps(x, g, cfg.norm_eps), layernorm_formula(x, cfg.norm_eps)
    return dict(steps=steps, hook=tr[dst][pos].copy(), hooks=(src, dst, weight), other=other)


@shared_result()
def stream_norms(variant: str, ids: tuple[int, ...]) -> dict:
    """‖resid‖ at every stage × position, the median per stage and its growth."""
    model = load_model(variant)
    tr = trace_prompt(variant, ids)
    stages = residual_stages(model.cfg.n_layers)
    out = residual_norms(np.stack([tr[h] for h, _ in stages]))  # (S, T, d) -> (S, T)
    return dict(out, stages=[name for _, name in stages], hooks=[h for h, _ in stages])


@shared_result()
def mlp_parts(variant: str, ids: tuple[int, ...], layer: int, n_top: int) -> dict:
    """A gated MLP: the layer's gate (hook_pre), up (hook_pre_linear) and product (hook_post) at every position,
    the activation recomputed in NumPy. A plain one: its pre-activation (hook_pre) and activation (hook_post);
    the activation recomputed too. Either way the n_top neurons with the largest peak |hook_post| over the
    prompt, and where each fires most."""
    model = load_model(variant)
    tr = trace_prompt(variant, ids)
    pre = tr[f"blocks.{layer}.mlp.hook_pre"]  # (T, d_mlp)
    post = tr[f"blocks.{layer}.mlp.hook_post"]  # (T, d_mlp)
    top = top_neurons(post, n_top)  # (N,)
    out = dict(gate=pre, post=post, act=activation(pre, model.cfg.mlp_act).astype(np.float32), top=top,
               fires=firing_positions(post, top, FIRES_AT))
    if model.cfg.mlp == "gated":
        out["up"] = tr[f"blocks.{layer}.mlp.hook_pre_linear"]  # (T, d_mlp)
    return out


@shared_result()
def routing(variant: str, ids: tuple[int, ...]) -> dict:
    """Every layer's router on the prompt: chosen experts and their weights (L, T, k), router logits (L, T, E)."""
    tr = trace_prompt(variant, ids)
    L = load_model(variant).cfg.n_layers
    return {k: np.stack([tr[f"blocks.{l}.mlp.hook_{k}"] for l in range(L)])
            for k in ("expert_indices", "expert_weights", "router_logits")}


@shared_result("Routing held-out text through every layer…")
def heldout_routing(variant: str, n_windows: int) -> dict:
    """The first `n_windows` windows of the held-out plays (the context's length each), through the model: per
    layer the experts each token chose, how many tokens each expert got, the load-balancing loss, and the tokens
    routed to each expert most consistently."""
    from model.net.trace import run_with_trace
    from model.text.batches import encoded_split

    model = load_model(variant)
    cfg = model.cfg
    ids, _ = encoded_split("val")
    T = cfg.max_seq_len
    windows = ids[: n_windows * T].astype(np.int64).reshape(n_windows, T)  # (n, T): a fixed slice, no sampling
    keep = ("hook_expert_indices", "hook_router_logits")
    trs = [run_with_trace(model, w, names=lambda n: n.endswith(keep)) for w in windows]
    L, E, k = cfg.n_layers, cfg.n_experts, cfg.experts_per_token
    idx = np.stack([np.concatenate([t[f"blocks.{l}.mlp.hook_expert_indices"] for t in trs]) for l in range(L)])
    logits = np.stack([np.concatenate([t[f"blocks.{l}.mlp.hook_router_logits"] for t in trs]) for l in range(L)])
    flat = windows.reshape(-1)  # (N,)
    return dict(n_tokens=len(flat), counts=expert_counts(idx, E),  # (L, E)
                aux=[balance_loss(logits[l], k) for l in range(L)],
                tokens=[expert_tokens(flat, idx[l], E, MIN_SEEN, TOP_TOKENS) for l in range(L)])


@shared_result()
def logged_diagnostics(logs: tuple) -> dict:
    """logs: (name, path, mtime) of each train_log.json (the path and time make the cache key follow the file)
    -> name -> `diagnostics_series`, for the logs that have diagnostics."""
    out = {}
    for name, path, _ in logs:
        series = diagnostics_series(json.loads(Path(path).read_text()))
        if series is not None:
            out[name] = series
    return out


@shared_result()
def next_token_spread(variant: str, ids: tuple[int, ...]) -> dict:
    """`position_spread` of the variant's next-token logits at every position of the prompt."""
    return position_spread(trace_prompt(variant, ids).logits)


RERUN = " (re-run)"  # the name a diagnostics-only re-run's series goes by: "gqa-rope (re-run)"


@shared_result()
def two_runs(rerun: str, shipped: str, mtimes: tuple[float, float]) -> str:
    """How a diagnostics-only re-run compares with the shipped run of the same variant, from their two logs: the
    first step whose training loss differs and both runs' last held-out losses. (The files' times make the cache
    key follow them: two logs are not re-read on every rerun of the page.)"""
    a, b = (json.loads(Path(p).read_text()) for p in (rerun, shipped))
    la, lb = a.get("train_loss") or [], b.get("train_loss") or []
    part = next((i + 1 for i, (x, y) in enumerate(zip(la, lb)) if x != y), None)
    va, vb = a.get("val") or [], b.get("val") or []
    out = (f"their training losses are equal (to the logged four decimals) up to step {part - 1:,} and part from "
           f"step {part:,}, so its weights are not the shipped ones" if part
           else "their logged training losses are equal at every step")
    if va and vb:
        out += (f"; held-out loss at step {va[-1]['step']:,}: {va[-1]['loss']:.3f} nats/token (re-run), "
                f"{vb[-1]['loss']:.3f} (shipped)")
    return out + "."


variant = current_model()
cfg = model_config(variant)
prompt = current_prompt()
parts = describe(cfg)
norm_name, mlp_name, act_name, post = parts["norm"], parts["mlp"], parts["act"], cfg.norm_position == "post"
NORM_OPTIONS = norm_choices(cfg.norm_position)
article = "an" if norm_name == "RMSNorm" else "a"  # "an RMSNorm", "a LayerNorm"

st.title(f"Building blocks: {norm_name}, the residual stream, " + ("the experts" if cfg.n_experts else mlp_name))
if post:
    placement = (f"This model is **post-norm**, as the original Transformer: {article} **{norm_name}** comes *after* each "
                 "residual add, so the stream itself is replaced by its normalised version after every attention "
                 "layer and every MLP, and there is no final norm.")
else:
    placement = f"Before each of them sits {article} **{norm_name}**, and after the last block a final one."
mlp_words = (f"each MLP is a **mixture of {cfg.n_experts} {parts['expert']} experts**, {cfg.experts_per_token} per "
             "token, chosen by a router" if cfg.n_experts else f"the MLP is a **{mlp_name}**")
st.markdown(
    "Every block of this model is built from the same few parts. The **residual stream** is the one vector per "
    "token that runs through the whole model: each attention layer and each MLP reads it and *adds* its "
    f"result back to it. {placement} Here {mlp_words}. Below, each part is taken apart on your prompt, with the "
    "numbers the model really computed."
)
require_model(variant)
if not prompt_notices(prompt):
    st.stop()

T = len(prompt.ids)
labels = list(prompt.labels)
L = cfg.n_layers


def pos_label(t: int) -> str:
    return f"{t}: {labels[t]}"


# --------------------------------------------------------------------------------------------------------
# 1. The norm
# --------------------------------------------------------------------------------------------------------

st.header(f"1. {norm_name}, step by step")
if cfg.norm == "layernorm":
    st.markdown(
        "**LayerNorm** (GPT-2, the original Transformer) first subtracts the vector's mean, then divides by its "
        "standard deviation — the root-mean-square of what is left — then multiplies each dimension by a learned "
        "weight $\\gamma$ and adds a learned bias $\\beta$. It keeps the numbers a layer reads in a steady range, "
        "however large the residual stream has grown."
    )
    st.latex(r"\operatorname{LayerNorm}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} \odot \gamma + \beta, "
             r"\qquad \mu = \tfrac{1}{d}\textstyle\sum_i x_i, \quad \sigma^2 = \tfrac{1}{d}\sum_i (x_i - \mu)^2")
else:
    st.markdown(
        "**RMSNorm** rescales a vector so that its root-mean-square — the square root of the mean of its squared "
        "entries — becomes 1, then multiplies each dimension by a learned weight $g$. It keeps the numbers a layer "
        "reads in a steady range, however large the residual stream has grown."
    )
    st.latex(r"\operatorname{rms}(x) = \sqrt{\tfrac{1}{d}\textstyle\sum_{i=1}^{d} x_i^2 + \varepsilon}, \qquad "
             r"\operatorname{RMSNorm}(x) = \frac{x}{\operatorname{rms}(x)} \odot g")
if post:
    st.markdown(f"Post-norm: the {norm_name} after attention (`ln1`) reads the stream *plus* what attention added, "
                "and its output *is* the stream from there on; the same for the one after the MLP (`ln2`). So here "
                "the norm does not only steady what a layer reads: it sets the size of the stream itself.")
url_choice("blk_norm", list(NORM_OPTIONS), "attn")
url_int("blk_layer", 0, 0, L - 1)
url_int("blk_pos", T - 1, 0, T - 1)
c1, c2, c3 = st.columns(3)
with c1:
    which = st.selectbox("Which norm", list(NORM_OPTIONS), key="blk_norm", format_func=NORM_OPTIONS.get)
with c2:
    layer = st.selectbox("Layer", list(range(L)), key="blk_layer", format_func=lambda l: f"block {l}",
                         disabled=which == "final", help="The final norm comes after the last block, in no layer.")
with c3:
    pos = st.selectbox("Position", list(range(T)), key="blk_pos", format_func=pos_label)

res = norm_step(variant, prompt.ids, which, layer, pos)
steps, other = res["steps"], res["other"]
src, dst, weight = res["hooks"]
where = "after the last block" if which == "final" else f"in block {layer}"
st.markdown(f"The vector is {'the sum ' if ' + ' in src else 'the residual stream '}at position {pos} "
            f"(**{plain_md(labels[pos], 40)}**) read by the norm {plain_md(NORM_OPTIONS[which])} {where}: `{src}`. "
            f"The output is what the model records at `{dst}`.")
match = float(np.abs(steps["out"] - res["hook"]).max())
if cfg.norm == "layernorm":
    st.plotly_chart(layernorm_steps_figure(steps), width="stretch", key="blk_lnsteps")
    st.caption(layernorm_steps_sentence(steps) + f" The model's own `hook_normalized` differs from this output by "
               f"at most {match:.1e} (float32 rounding).")
    st.subheader("For comparison: RMSNorm's x / rms on the same vector")
    st.markdown("**RMSNorm** (Llama, and this app's default model) skips the subtraction of the mean and the bias: "
                "it divides x itself by its root-mean-square. Drawn: RMSNorm's x / rms (without a weight) beside "
                "this LayerNorm's (x − mean) / std (before γ and β), on the same vector.")
    st.plotly_chart(layernorm_figure(other["x_hat"], steps["x_hat"]), width="stretch", key="blk_ln")
    st.caption(layernorm_sentence(other, dict(mean=steps["mean"], std=steps["std"], out=steps["x_hat"])))
else:
    st.plotly_chart(rmsnorm_figure(steps["x"], steps["x_hat"], steps["g"], steps["out"]), width="stretch",
                    key="blk_rms")
    st.caption(rmsnorm_sentence(steps) + f" The model's own `hook_normalized` differs from this output by at most "
               f"{match:.1e} (float32 rounding).")
    st.subheader("For comparison: the LayerNorm formula on the same vector")
    ln_live = ("" if is_folder(variant) or not is_trained("gqa-layernorm") else
               " The **gqa-layernorm** variant has a trained LayerNorm: choose it in the sidebar to see one step by "
               "step.")
    st.markdown(
        "**LayerNorm** (GPT-2, the original Transformer) first subtracts the vector's mean, then divides by its "
        "standard deviation, then applies a learned gain $\\gamma$ and bias $\\beta$. This model has no LayerNorm: "
        "what is drawn is the formula (without $\\gamma$ and $\\beta$) applied to this vector, not what a trained "
        "LayerNorm model would compute." + ln_live
    )
    st.latex(r"\operatorname{LayerNorm}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} \odot \gamma + \beta, "
             r"\qquad \mu = \tfrac{1}{d}\textstyle\sum_i x_i, \quad \sigma^2 = \tfrac{1}{d}\sum_i (x_i - \mu)^2")
    st.plotly_chart(layernorm_figure(steps["x_hat"], other["out"]), width="stretch", key="blk_ln")
    st.caption(layernorm_sentence(steps, other))

# --------------------------------------------------------------------------------------------------------
# 2. The residual stream's norm
# --------------------------------------------------------------------------------------------------------

norms = stream_norms(variant, prompt.ids)
if post:
    st.header("2. The residual stream's length through the layers")
    st.markdown(
        "Attention and the MLP still *add* their outputs to the **residual stream**, but in this post-norm model "
        f"{article} {norm_name} follows every add, so the stream read after any attention or MLP is already normalised: "
        "its length ‖resid‖ is set by the norm's learned weight, not by how much the blocks have added. Only the "
        "embedding, read before block 0, is a raw sum."
    )
else:
    st.header("2. The residual stream grows through the layers")
    st.markdown(
        "Attention and the MLP never replace the **residual stream**; each adds its output to it. So its length "
        "‖resid‖ — the square root of the sum of its squared entries — tends to grow from block to block. The "
        "norms in front of every layer are why that does no harm: each layer reads a rescaled copy."
    )
st.plotly_chart(residual_norm_lines(norms["norms"], norms["median"], norms["stages"], pos, labels[pos]),
                width="stretch", key="blk_growth")
st.caption(growth_sentence(norms["median"], norms["stages"], T) + " Grey: every position; black: the median; "
           f"orange, dashed: position {pos} chosen above.")
st.plotly_chart(residual_norm_heatmap(norms["norms"], norms["stages"], labels), width="stretch",
                key="blk_growth_map")
st.caption("The same lengths for every position (across) at every stage (down).")

# --------------------------------------------------------------------------------------------------------
# 3. Pre- vs post-norm: what training logged
# --------------------------------------------------------------------------------------------------------

st.header("3. Pre- vs post-norm: what training logged")
st.markdown(
    "Where the norm sits changes how gradients reach the early blocks and how large the stream grows while the "
    "model trains. The training runs log, every 250 steps, each block's gradient norm *before clipping* "
    "(attention, MLP and the norms' own weights) and the RMS of the residual stream after each block, on that "
    "step's batch (`train_log.json`, `diagnostics`). Drawn here: whatever those logs hold — no more."
)
if is_folder(variant):
    st.caption("A folder's model comes with no training log here; below are our variants' logs.")
trained = [v for v in VARIANTS if is_trained(v)]
logs = tuple((v, str(p), p.stat().st_mtime) for v in trained
             if (p := variant_dir(v) / "train_log.json").is_file())
reruns = {v + RERUN: p for v, p in diagnostic_runs().items() if v in trained}
diag = logged_diagnostics(logs + tuple((n, str(p), p.stat().st_mtime) for n, p in reruns.items()))
diag = {n: s for n, s in diag.items() if not (n in reruns and n.removesuffix(RERUN) in diag)}  # own log first
configs = {v: dataclasses.asdict(model_config(v.removesuffix(RERUN))) for v in diag}
post_variants = [v for v in diag if configs[v]["norm_position"] == "post"]
partner = pre_norm_partner(post_variants[0], configs) if post_variants else None
own = next((n for n in (variant, variant + RERUN) if n in diag), None)  # the sidebar variant's own series, if any
shown = list(dict.fromkeys(([own] if own else []) + post_variants[:1] + ([partner] if partner else [])))
if not shown:
    st.info("No variant in this checkout has diagnostics in its `train_log.json`: the logs of the first variants "
            "predate them, and the variants trained since are not here.", icon=":material/info:")
else:
    url_choice("blk_diag", list(GRAD_PARTS), "block")
    part = st.radio("Gradient norm of", list(GRAD_PARTS), key="blk_diag", horizontal=True, format_func=PART_LABELS.get)
    st.plotly_chart(diagnostics_figure({v: diag[v] for v in shown}, part, PART_LABELS[part]), width="stretch",
                    key="blk_diag_fig")
    notes = []
    if not is_folder(variant) and not own:
        notes.append(f"{variant}'s own log has no diagnostics: it was trained before they were logged.")
    for n in (x for x in shown if x in reruns):
        v = n.removesuffix(RERUN)
        shipped_log = variant_dir(v) / "train_log.json"
        compared = two_runs(str(reruns[n]), str(shipped_log), (reruns[n].stat().st_mtime, shipped_log.stat().st_mtime))
        notes.append(f"{n} is a second training of {v}, same recipe and seed, run to log these numbers (the "
                     f"shipped run predates them): {compared}")
    if post_variants and partner:
        differ = config_differences(configs[post_variants[0]], configs[partner])
        others_ = [f for f in differ if f != "norm_position"]
        notes.append(
            f"{post_variants[0]} (post-norm) is set beside {partner}, the pre-norm variant with diagnostics whose "
            f"config is closest to it: they differ in {', '.join(differ)}"
            + (f" — so this pair cannot separate where the norm sits from "
               f"{', '.join(FIELD_WORDS.get(f, f) for f in others_)}. The clean pair, the "
               "default retrained with diagnostics (it differs from the post-norm variant in norm_position alone), "
               "is not in this checkout." if others_ else ": a clean pre- vs post-norm pair."))
    elif post_variants:
        notes.append(f"No pre-norm variant's log has diagnostics to set beside {post_variants[0]}.")
    else:
        notes.append("No post-norm variant's log has diagnostics in this checkout: there is no pre- vs post-norm "
                     "pair to draw.")
    st.caption(" ".join(notes) + f" Top: each block's gradient norm ({PART_LABELS[part]}); bottom: the stream's "
               "RMS after each block (log scales). " + " ".join(diagnostics_sentence(v, diag[v]) for v in shown))
    # What the variants drawn do with the prompt, on their shipped weights (a re-run has none of its own: its
    # variant's shipped weights stand in, under the variant's own name; a folder's model reads the prompt in
    # another tokenizer, so the ids would not be ours).
    weighed = [n for n in dict.fromkeys(x.removesuffix(RERUN) for x in shown) if n in trained]
    if not is_folder(variant) and weighed:
        st.caption(spread_sentence({n: next_token_spread(n, prompt.ids) for n in weighed}, T))

# --------------------------------------------------------------------------------------------------------
# 4. The MLP
# --------------------------------------------------------------------------------------------------------

mlp_export = {}
if cfg.n_experts:
    E, k = cfg.n_experts, cfg.experts_per_token
    st.header(f"4. The mixture of experts: {E} experts, {k} per token")
    st.markdown(
        f"Each block's MLP is **{E} {parts['expert']} MLPs** (the *experts*, each {cfg.d_mlp} wide) and a "
        f"**router**, a {cfg.d_model} × {E} matrix that scores every expert for every token. A token goes to its "
        f"{k} highest-scoring experts only; their outputs are added up, weighted by the softmax of those {k} "
        f"scores (Mixtral's routing). The other {E - k} experts do no work for that token. While training, a "
        "load-balancing loss (Switch Transformer's) pushes the router to spread tokens over all experts."
    )
    top_k = r"\operatorname{top}_{" + str(k) + r"}(r)"
    st.latex(r"\operatorname{MLP}(x) = \sum_{i \in " + top_k + r"} \frac{\exp(r_i)}{\sum_{j \in " + top_k
             + r"} \exp(r_j)}\; \operatorname{Expert}_i(x), \qquad r = W_\text{router}\, x")
    arch = arch_from_model_config(cfg)
    total, active = acc.count_params(arch), acc.active_params(arch)
    tg, ag = total.by_group(), active.by_group()
    c = st.columns(3)
    c[0].metric("Parameters in the model", f"{total.total:,}")
    c[1].metric("Used per token", f"{active.total:,}", f"{active.total / total.total:.1%} of them",
                delta_color="off", delta_arrow="off")
    c[2].metric("MLP weights per token, per block (router included)", f"{ag['mlp'] // L:,}",
                f"of {tg['mlp'] // L:,}", delta_color="off", delta_arrow="off")
    st.caption(f"Exact, from the accounting calculator (`count_params`, `active_params`): in each block a token uses "
               f"{k} of the {E} experts ({3 * cfg.d_model * cfg.d_mlp:,} weights each) and the router "
               f"({cfg.d_model} × {E} = {cfg.d_model * E:,}); attention, the norms and the embedding are used by "
               "every token. The Parameters, FLOPs, memory page has the whole count.")

    st.subheader("The router's choice for every token")
    route = routing(variant, prompt.ids)
    start = 0
    if T > WINDOW:
        url_int("blk_start", 0, 0, T - WINDOW)
        start = st.slider("First position shown", 0, T - WINDOW, key="blk_start",
                          help=f"The heatmap shows {WINDOW} positions at a time.")
    sl = slice(start, min(T, start + WINDOW))
    st.plotly_chart(router_figure(route["expert_indices"][:, sl], route["expert_weights"][:, sl], E, labels[sl],
                                  start), width="stretch", key="blk_router")
    st.caption("For each block (panel), each token (row) and each expert (column): the router's weight where that "
               f"expert was one of the token's {k}, empty where it was not; each row's two weights add up to 1. The "
               "model's own hooks `hook_expert_indices` and `hook_expert_weights`. "
               + router_sentence(route["expert_indices"], route["expert_weights"], E))

    st.subheader("The load on each expert, over held-out text")
    held = heldout_routing(variant, LOAD_WINDOWS)
    st.plotly_chart(expert_load_figure(held["counts"], held["n_tokens"], k), width="stretch", key="blk_load")
    train_aux = [] if is_folder(variant) else (load_train_log(variant) or {}).get("aux_loss") or []
    st.caption(f"The first {LOAD_WINDOWS} windows of {cfg.max_seq_len} tokens of the held-out plays, routed through "
               "the model; a token counts once for each expert it goes to. "
               + load_sentence(held["counts"], held["n_tokens"], k, held["aux"])
               + (" " + aux_loss_sentence(train_aux, k, E) if train_aux else ""))

    st.subheader("What each expert gets")
    url_int("blk_mlp_layer", 0, 0, L - 1)
    moe_layer = st.selectbox("Layer", list(range(L)), key="blk_mlp_layer", format_func=lambda l: f"block {l}")
    token_label = tokenizer_for(variant).token_label
    rows = []
    for e, toks in enumerate(held["tokens"][moe_layer]):
        rows.append({"expert": e, "tokens": int(held["counts"][moe_layer, e]),
                     "tokens routed to it most consistently (routed / seen)":
                         ",  ".join(f"{token_label(t)} ({n}/{m})" for t, n, m in toks) or "—"})
    st.dataframe(rows, hide_index=True)
    st.caption(f"Block {moe_layer}, the same {held['n_tokens']:,} held-out tokens: for each expert, the tokens seen "
               f"at least {MIN_SEEN} times whose occurrences go to it most consistently (the share routed to it, "
               "then the count). A token that always goes to the same expert is a hint of what that expert handles; "
               "frequent tokens split between experts rank lower. Counted, not interpreted: the router sees the "
               "token in its context, not the token alone.")
    sync_url("blk_norm", "blk_layer", "blk_pos", "blk_diag", "blk_mlp_layer", "blk_start")
    mlp_export = {"layer_choices": route["expert_indices"], "layer_weights": route["expert_weights"],
                  "heldout_tokens": held["n_tokens"], "expert_counts": held["counts"], "balance_loss": held["aux"]}
else:
    gated = cfg.mlp == "gated"
    st.header(f"4. {mlp_name}: the MLP's " + ("gate" if gated else "neurons"))
    if not gated:
        st.markdown(
            f"**The {act_name} MLP** is GPT-2's: one matrix $W_{{in}}$ widens the normalized stream to "
            f"{cfg.d_mlp} numbers (the *pre-activations*), {act_name} acts on each on its own, and $W_{{out}}$ maps "
            f"the result back to the stream. Two matrices instead of SwiGLU's three: at {cfg.d_mlp} wide it holds "
            f"2·{cfg.d_model}·{cfg.d_mlp} = {2 * cfg.d_model * cfg.d_mlp:,} weights per block. **{act_name}** "
            "(tanh form) is $\\tfrac{z}{2}\\left(1 + \\tanh\\left(\\sqrt{2/\\pi}\\,(z + 0.044715 z^3)\\right)\\right)$: "
            "close to $z$ for large positive $z$, close to 0 for large negative $z$ — a soft on/off switch for "
            "each neuron, with nothing to gate it but its own input."
        )
        st.latex(r"\operatorname{MLP}(x) = W_{out}\,\operatorname{" + act_name + r"}(W_{in}\,x)")
    elif cfg.mlp_act == "silu":
        st.markdown(
            "**SwiGLU** is the MLP of Llama and of this model: two projections of the normalized stream side by "
            "side, a *gate* $W_{gate}x$ and an *up* projection $W_{up}x$, multiplied neuron by neuron after the "
            "gate goes through SiLU; $W_{down}$ then maps the product back to the stream. **SiLU** (also called "
            "swish) is $z\\cdot\\sigma(z)$: close to $z$ for large positive $z$, close to 0 for large negative $z$, "
            "smooth in between — a soft on/off switch for each neuron."
        )
    else:
        st.markdown(
            "**GeGLU** is this model's MLP (as in Gemma): two projections of the normalized stream side by side, a "
            "*gate* $W_{gate}x$ and an *up* projection $W_{up}x$, multiplied neuron by neuron after the gate goes "
            "through GELU; $W_{down}$ then maps the product back to the stream. **GELU** (tanh form) is "
            "$\\tfrac{z}{2}\\left(1 + \\tanh\\left(\\sqrt{2/\\pi}\\,(z + 0.044715 z^3)\\right)\\right)$: close to $z$ "
            "for large positive $z$, close to 0 for large negative $z$ — a soft on/off switch for each neuron. It "
            "plays the part SiLU plays in SwiGLU, Llama's version of the same design."
        )
    if gated:
        st.latex(r"\operatorname{MLP}(x) = W_{down}\big(\operatorname{" + act_name + r"}(W_{gate}\,x) \odot W_{up}\,x\big)"
                 + (r", \qquad \operatorname{SiLU}(z) = z\,\sigma(z) = \frac{z}{1 + e^{-z}}" if cfg.mlp_act == "silu"
                    else ""))
    url_int("blk_mlp_layer", 0, 0, L - 1)
    url_int("blk_mlp_pos", T - 1, 0, T - 1)
    url_choice("blk_sort", [False, True], False)
    n_max = min(32, cfg.d_mlp)
    url_int("blk_topn", min(16, n_max), 1, n_max)
    c1, c2, c3 = st.columns([1, 1, 1])
    with c1:
        mlp_layer = st.selectbox("Layer", list(range(L)), key="blk_mlp_layer", format_func=lambda l: f"block {l}")
    with c2:
        mlp_pos = st.selectbox("Position", list(range(T)), key="blk_mlp_pos", format_func=pos_label)
    with c3:
        sort = st.toggle("Sort the neurons by |" + ("product" if gated else f"{act_name}(pre)") + "|", key="blk_sort")
    n_top = int(st.session_state["blk_topn"])
    mlp = mlp_parts(variant, prompt.ids, mlp_layer, n_top)
    gate, act, post = mlp["gate"][mlp_pos], mlp["act"][mlp_pos], mlp["post"][mlp_pos]
    order = np.argsort(-np.abs(post), kind="stable") if sort else None
    act_min = activation_minimum(lambda z: activation(z, cfg.mlp_act))
    value = f"{act_name}(gate)·up" if gated else f"{act_name}(pre)"
    if gated:
        up = mlp["up"][mlp_pos]
        st.plotly_chart(swiglu_figure(gate, act, up, post, act_name, order), width="stretch", key="blk_swiglu")
        st.caption(f"Block {mlp_layer}, position {mlp_pos} (**{plain_md(labels[mlp_pos], 40)}**), {cfg.d_mlp} neurons. "
                   + swiglu_sentence(gate, post, act_name, act_min)
                   + f" Gate, up and product are the model's hooks `blocks.{mlp_layer}.mlp.hook_pre`, "
                     f"`hook_pre_linear` and `hook_post`; {act_name}(gate) is recomputed from the gate.")
    else:
        up = None
        st.plotly_chart(plain_mlp_figure(gate, post, act_name, order), width="stretch", key="blk_plain")
        err = float(np.abs(act - post).max())
        st.caption(f"Block {mlp_layer}, position {mlp_pos} (**{plain_md(labels[mlp_pos], 40)}**), {cfg.d_mlp} neurons. "
                   + plain_mlp_sentence(gate, post, act_name, act_min)
                   + f" Both are the model's hooks `blocks.{mlp_layer}.mlp.hook_pre` and `hook_post`; {act_name} "
                     f"recomputed here from the pre-activations differs from `hook_post` by at most {err:.1e}.")

    st.subheader("Which neurons fire for which tokens")
    st.slider("Neurons shown", 1, n_max, key="blk_topn",
              help=f"The neurons whose largest |{value}| over the whole prompt is biggest, largest first.")
    start = 0
    if T > WINDOW:
        url_int("blk_start", 0, 0, T - WINDOW)
        start = st.slider("First position shown", 0, T - WINDOW, key="blk_start",
                          help=f"The heatmap shows {WINDOW} positions at a time.")
    sync_url("blk_norm", "blk_layer", "blk_pos", "blk_diag", "blk_mlp_layer", "blk_mlp_pos", "blk_sort", "blk_topn",
             "blk_start")
    top = mlp["top"]
    sl = slice(start, min(T, start + WINDOW))
    st.plotly_chart(neuron_heatmap(mlp["post"][sl][:, top], labels[sl], top, act_name, start, value), width="stretch",
                    key="blk_neurons")
    st.caption(f"Block {mlp_layer}: the {len(top)} neurons (columns) whose {value} reaches the largest |value| "
               "anywhere in the prompt, at every position (rows). Red above 0, blue below. A neuron that lights up "
               "on a few rows only is one that responds to those tokens in their context.")
    rows = []
    for rank, (n, where_) in enumerate(zip(top, mlp["fires"]), start=1):
        col = mlp["post"][:, n]
        rows.append({"rank": rank, "neuron": int(n), f"peak |{'product' if gated else value}|":
                         round(float(np.abs(col).max()), 4),
                     f"fires most at (position: token, {'product' if gated else value})":
                         ",  ".join(f"{int(t)}: {labels[int(t)]} ({col[int(t)]:+.3f})" for t in where_)})
    st.dataframe(rows, hide_index=True)
    mlp_export = {"layer": mlp_layer, "position": mlp_pos, "activation": act_name,
                  ("gate" if gated else "pre"): gate, ("act_gate" if gated else "act_pre"): act,
                  **({"up": up} if gated else {}), ("product" if gated else "post"): post, "top_neurons": top}

# --------------------------------------------------------------------------------------------------------
# 5. The other blocks
# --------------------------------------------------------------------------------------------------------

st.header("The other blocks")
others = [v for v in ARCHITECTURE_VARIANTS if v != variant]
ready = [v for v in others if is_trained(v)]
missing = [v for v in others if not is_trained(v)]
lines = [f"- **{v}** — {plain_md(VARIANT_BLURBS[v])}: choose it in the sidebar to take its block apart here."
         for v in ready]
lines += [f"- **{v}** — {plain_md(VARIANT_BLURBS[v])}: defined, but its weights are not in this checkout."
          for v in missing]
st.markdown("The architecture comparison trains the default with one part changed at a time — the norm, where it "
            "sits, the MLP, a mixture of experts. This page shows only the parts the loaded model really has.\n\n"
            + "\n".join(lines))

download_json({"variant": variant, "tokens": labels, "ids": list(prompt.ids),
               "norm": {"kind": norm_name, "position": cfg.norm_position, "norm": which, "layer": layer,
                        "token_position": pos, "input": src, "output_hook": dst, **steps},
               "residual_norms": {"stages": norms["stages"], "hooks": norms["hooks"], "norms": norms["norms"],
                                  "median": norms["median"], "growth": norms["growth"]},
               "mlp": {"kind": mlp_name, **mlp_export}},
              f"building_blocks_{file_name(variant)}.json")
