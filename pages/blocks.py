"""Building blocks: the parts every block is made of, on the live trace of the sidebar's prompt — RMSNorm step by
step on one token's vector (with the LayerNorm formula beside it), the residual stream's length growing through
the layers, and the gated MLP (SwiGLU; GeGLU for a Gemma folder) with the neurons that fire for which tokens."""

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_json, file_name, load_model, model_config, plain_md, prompt_notices,
    require_model, require_shell, shared_result, sync_url, trace_prompt, url_choice, url_int,
)
from model.analysis.blocks import (
    ACT_NAMES, GLU_NAMES, NORMS, activation, firing_positions, layernorm_formula, norm_hooks, residual_norms,
    residual_stages, rmsnorm_steps, top_neurons,
)
from viz.blocks import (
    activation_minimum, growth_sentence, layernorm_figure, layernorm_sentence, neuron_heatmap, residual_norm_heatmap,
    residual_norm_lines, rmsnorm_figure, rmsnorm_sentence, swiglu_figure, swiglu_sentence,
)

require_shell()  # first, before any widget: see app_shared.require_shell

WINDOW = 48  # positions in the neuron heatmap at once: each row carries a token label and must stay readable
FIRES_AT = 3  # positions listed per neuron in the table


@shared_result()
def norm_step(variant: str, ids: tuple[int, ...], which: str, layer: int, pos: int) -> dict:
    """RMSNorm's every step on the vector at `pos` that the chosen norm reads, the model's own output there
    (hook_normalized), and the LayerNorm formula on the same vector."""
    model = load_model(variant)
    tr = trace_prompt(variant, ids)
    src, dst, weight = norm_hooks(which, layer, model.cfg.n_layers)
    x = tr[src][pos]  # (d,)
    g = model.get_parameter(weight).detach().numpy()  # (d,)
    steps = rmsnorm_steps(x, g, model.cfg.norm_eps)
    return dict(steps=steps, hook=tr[dst][pos].copy(), hooks=(src, dst, weight),
                ln=layernorm_formula(x, model.cfg.norm_eps))


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
    """The layer's gate (hook_pre), up (hook_pre_linear) and product (hook_post) at every position, the
    activation recomputed in NumPy, and the n_top neurons with the largest peak |product| over the prompt."""
    model = load_model(variant)
    tr = trace_prompt(variant, ids)
    gate = tr[f"blocks.{layer}.mlp.hook_pre"]  # (T, d_mlp)
    up = tr[f"blocks.{layer}.mlp.hook_pre_linear"]  # (T, d_mlp)
    post = tr[f"blocks.{layer}.mlp.hook_post"]  # (T, d_mlp)
    top = top_neurons(post, n_top)  # (N,)
    return dict(gate=gate, up=up, post=post, act=activation(gate, model.cfg.mlp_act).astype(np.float32),
                top=top, fires=firing_positions(post, top, FIRES_AT))


variant = current_model()
cfg = model_config(variant)
prompt = current_prompt()
act_name, glu_name = ACT_NAMES.get(cfg.mlp_act, cfg.mlp_act), GLU_NAMES.get(cfg.mlp_act, "gated MLP")

st.title("Building blocks: RMSNorm, the residual stream, " + glu_name)
st.markdown(
    "Every block of this model is built from the same few parts. The **residual stream** is the one vector per "
    "token that runs through the whole model: each attention layer and each MLP reads it and *adds* its "
    f"result back to it. Before each of them sits an **RMSNorm**, and the MLP is a **{glu_name}**. Below, each "
    "part is taken apart on your prompt, with the numbers the model really computed."
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
# 1. RMSNorm
# --------------------------------------------------------------------------------------------------------

st.header("1. RMSNorm, step by step")
st.markdown(
    "**RMSNorm** rescales a vector so that its root-mean-square — the square root of the mean of its squared "
    "entries — becomes 1, then multiplies each dimension by a learned weight $g$. It keeps the numbers a layer "
    "reads in a steady range, however large the residual stream has grown."
)
st.latex(r"\operatorname{rms}(x) = \sqrt{\tfrac{1}{d}\textstyle\sum_{i=1}^{d} x_i^2 + \varepsilon}, \qquad "
         r"\operatorname{RMSNorm}(x) = \frac{x}{\operatorname{rms}(x)} \odot g")
url_choice("blk_norm", list(NORMS), "attn")
url_int("blk_layer", 0, 0, L - 1)
url_int("blk_pos", T - 1, 0, T - 1)
c1, c2, c3 = st.columns(3)
with c1:
    which = st.selectbox("Which norm", list(NORMS), key="blk_norm", format_func=NORMS.get)
with c2:
    layer = st.selectbox("Layer", list(range(L)), key="blk_layer", format_func=lambda l: f"block {l}",
                         disabled=which == "final", help="The final norm comes after the last block, in no layer.")
with c3:
    pos = st.selectbox("Position", list(range(T)), key="blk_pos", format_func=pos_label)

res = norm_step(variant, prompt.ids, which, layer, pos)
steps = res["steps"]
src, dst, weight = res["hooks"]
where = "after the last block" if which == "final" else f"in block {layer}"
st.markdown(f"The vector is the residual stream at position {pos} (**{plain_md(labels[pos], 40)}**), read by the "
            f"norm {plain_md(NORMS[which])} {where}: `{src}`. The output is what the model records at `{dst}`.")
st.plotly_chart(rmsnorm_figure(steps["x"], steps["x_hat"], steps["g"], steps["out"]), width="stretch",
                key="blk_rms")
match = float(np.abs(steps["out"] - res["hook"]).max())
st.caption(rmsnorm_sentence(steps) + f" The model's own `hook_normalized` differs from this output by at most "
           f"{match:.1e} (float32 rounding).")

st.subheader("For comparison: the LayerNorm formula on the same vector")
st.markdown(
    "**LayerNorm** (GPT-2, the original Transformer) first subtracts the vector's mean, then divides by its "
    "standard deviation, then applies a learned gain $\\gamma$ and bias $\\beta$. No model in this app has a "
    "trained LayerNorm yet: what is drawn is the formula (without $\\gamma$ and $\\beta$) applied to this vector, "
    "not what a trained LayerNorm model would compute."
)
st.latex(r"\operatorname{LayerNorm}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} \odot \gamma + \beta, "
         r"\qquad \mu = \tfrac{1}{d}\textstyle\sum_i x_i, \quad \sigma^2 = \tfrac{1}{d}\sum_i (x_i - \mu)^2")
st.plotly_chart(layernorm_figure(steps["x_hat"], res["ln"]["out"]), width="stretch", key="blk_ln")
st.caption(layernorm_sentence(steps, res["ln"]))

# --------------------------------------------------------------------------------------------------------
# 2. The residual stream's norm
# --------------------------------------------------------------------------------------------------------

st.header("2. The residual stream grows through the layers")
st.markdown(
    "Attention and the MLP never replace the **residual stream**; each adds its output to it. So its length "
    "‖resid‖ — the square root of the sum of its squared entries — tends to grow from block to block. The norms "
    "in front of every layer are why that does no harm: each layer reads a rescaled copy."
)
norms = stream_norms(variant, prompt.ids)
st.plotly_chart(residual_norm_lines(norms["norms"], norms["median"], norms["stages"], pos, labels[pos]),
                width="stretch", key="blk_growth")
st.caption(growth_sentence(norms["median"], norms["stages"], T) + " Grey: every position; black: the median; "
           f"orange, dashed: position {pos} chosen above.")
st.plotly_chart(residual_norm_heatmap(norms["norms"], norms["stages"], labels), width="stretch",
                key="blk_growth_map")
st.caption("The same lengths for every position (across) at every stage (down).")

# --------------------------------------------------------------------------------------------------------
# 3. The gated MLP
# --------------------------------------------------------------------------------------------------------

st.header(f"3. {glu_name}: the MLP's gate")
if cfg.mlp_act == "silu":
    st.markdown(
        "**SwiGLU** is the MLP of Llama and of this model: two projections of the normalized stream side by side, "
        "a *gate* $W_{gate}x$ and an *up* projection $W_{up}x$, multiplied neuron by neuron after the gate goes "
        "through SiLU; $W_{down}$ then maps the product back to the stream. **SiLU** (also called swish) is "
        "$z\\cdot\\sigma(z)$: close to $z$ for large positive $z$, close to 0 for large negative $z$, smooth "
        "in between — a soft on/off switch for each neuron."
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
st.latex(r"\operatorname{MLP}(x) = W_{down}\big(\operatorname{" + act_name + r"}(W_{gate}\,x) \odot W_{up}\,x\big)"
         + (r", \qquad \operatorname{SiLU}(z) = z\,\sigma(z) = \frac{z}{1 + e^{-z}}" if cfg.mlp_act == "silu" else ""))
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
    sort = st.toggle("Sort the neurons by |product|", key="blk_sort")
n_top = int(st.session_state["blk_topn"])
mlp = mlp_parts(variant, prompt.ids, mlp_layer, n_top)
gate, act, up, post = mlp["gate"][mlp_pos], mlp["act"][mlp_pos], mlp["up"][mlp_pos], mlp["post"][mlp_pos]
order = np.argsort(-np.abs(post), kind="stable") if sort else None
st.plotly_chart(swiglu_figure(gate, act, up, post, act_name, order), width="stretch", key="blk_swiglu")
act_min = activation_minimum(lambda z: activation(z, cfg.mlp_act))
st.caption(f"Block {mlp_layer}, position {mlp_pos} (**{plain_md(labels[mlp_pos], 40)}**), {cfg.d_mlp} neurons. "
           + swiglu_sentence(gate, post, act_name, act_min)
           + f" Gate, up and product are the model's hooks `blocks.{mlp_layer}.mlp.hook_pre`, `hook_pre_linear` "
             f"and `hook_post`; {act_name}(gate) is recomputed from the gate.")

st.subheader("Which neurons fire for which tokens")
st.slider("Neurons shown", 1, n_max, key="blk_topn",
          help="The neurons whose largest |product| over the whole prompt is biggest, largest first.")
start = 0
if T > WINDOW:
    url_int("blk_start", 0, 0, T - WINDOW)
    start = st.slider("First position shown", 0, T - WINDOW, key="blk_start",
                      help=f"The heatmap shows {WINDOW} positions at a time.")
sync_url("blk_norm", "blk_layer", "blk_pos", "blk_mlp_layer", "blk_mlp_pos", "blk_sort", "blk_topn", "blk_start")
top = mlp["top"]
sl = slice(start, min(T, start + WINDOW))
st.plotly_chart(neuron_heatmap(mlp["post"][sl][:, top], labels[sl], top, act_name, start), width="stretch",
                key="blk_neurons")
st.caption(f"Block {mlp_layer}: the {len(top)} neurons (columns) whose product {act_name}(gate)·up reaches the "
           "largest |value| anywhere in the prompt, at every position (rows). Red above 0, blue below. A neuron "
           "that lights up on a few rows only is one that responds to those tokens in their context.")
rows = []
for rank, (n, where_) in enumerate(zip(top, mlp["fires"]), start=1):
    col = mlp["post"][:, n]
    rows.append({"rank": rank, "neuron": int(n), "peak |product|": round(float(np.abs(col).max()), 4),
                 "fires most at (position: token, product)":
                     ",  ".join(f"{int(t)}: {labels[int(t)]} ({col[int(t)]:+.3f})" for t in where_)})
st.dataframe(rows, hide_index=True)

# --------------------------------------------------------------------------------------------------------
# 4. What is not here yet
# --------------------------------------------------------------------------------------------------------

st.header("What is not here yet")
st.markdown(
    "Post-norm blocks (the norm after the residual addition instead of before), a trained LayerNorm, a plain GELU "
    "MLP and mixture-of-experts MLPs would each need a model trained that way, and none is shipped with this app "
    "yet; this page shows only the parts the loaded model really has."
)

download_json({"variant": variant, "tokens": labels, "ids": list(prompt.ids),
               "rmsnorm": {"norm": which, "layer": layer, "position": pos, "input_hook": src, "output_hook": dst,
                           "x": steps["x"], "rms": steps["rms"], "x_over_rms": steps["x_hat"], "g": steps["g"],
                           "output": steps["out"]},
               "residual_norms": {"stages": norms["stages"], "hooks": norms["hooks"], "norms": norms["norms"],
                                  "median": norms["median"], "growth": norms["growth"]},
               "mlp": {"layer": mlp_layer, "position": mlp_pos, "activation": act_name, "gate": gate, "act_gate": act,
                       "up": up, "product": post, "top_neurons": top}},
              f"building_blocks_{file_name(variant)}.json")
