"""Home: the whole path one prompt takes through the loaded model, with live shapes and links to each stage."""

import numpy as np
import streamlit as st

from app_shared import (
    checkpoint_problem, current_model, current_prompt, is_folder, model_config, model_error, model_name, plain_md,
    prompt_notices, require_shell, tokenizer_for, trace_prompt,
)
from model.accounting.arch import arch_from_model_config
from model.accounting.counts import count_params
from model.decoding.sampling import softmax
from viz.embeddings import scale_label
from viz.pipeline import HIT_XS, Stage, dims, pipeline_figure

HIT_CURVE = 2  # pipeline_figure's traces: names, shapes, then the invisible hit markers

require_shell()  # first, before any widget: see app_shared.require_shell
target = st.session_state.pop("home_open", None)  # a box clicked in the last run (see open_stage)
if target:
    st.switch_page(target)

variant = current_model()
cfg = model_config(variant)  # the diagram needs only the config: on a fresh server it is drawn before torch loads
prompt = current_prompt()
folder = is_folder(variant)

st.title("What a language model does with your text")
st.markdown(
    (f"**{plain_md(model_name(variant))}**, a Llama-style model from a folder on this machine, runs on your prompt "
     "(every weight computed in fp32 by this app's own code). " if folder else
     "A real, trained Llama-style model (trained here on Shakespeare) runs on your prompt. ")
    + "Each box below is a step of its computation, with the tensor's shape for your prompt. Hover a box for a "
    "plain-language definition; click it (or a link beside the diagram) to open the step's own page. New here? "
    "The **Guided lesson** walks through it in ten steps."
)
notice = st.container()  # filled once the diagram is out: knowing whether the checkpoint loads means loading it


def checkpoint_notice() -> bool:
    """Name a missing or unreadable checkpoint at the top of the page; True when the model can be used."""
    problem = checkpoint_problem(variant)
    if problem:
        with notice:
            model_error(variant, problem)
    return problem is None


if not prompt_notices(prompt):
    checkpoint_notice()
    st.stop()

T, d, nh, nkv, hd = len(prompt.ids), cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
V, pos = cfg.vocab_size, cfg.pos_encoding
TOK, EMB, ATT, ROPE, LENS, GEN = ("pages/tokenization.py", "pages/embeddings.py", "pages/attention.py",
                                  "pages/rope.py", "pages/logit_lens.py", "pages/generation.py")
P, D = (T, "positions"), (d, "d_model")  # every shape names its axes: "which 32 is which" is never a guess
BLOCKS = "pages/blocks.py"
post = cfg.norm_position == "post"  # post-norm: the norm after each residual add, and no final norm
norm = "LayerNorm" if cfg.norm == "layernorm" else "RMSNorm"
norm_help = (f"LayerNorm (layer normalisation): subtract the mean of each token's {d} numbers, divide them by their "
             "standard deviation, then multiply each by a learned weight and add a learned bias."
             if cfg.norm == "layernorm" else
             f"RMSNorm (root-mean-square normalisation): divide each token's {d} numbers by their typical size "
             "(the square root of the mean of their squares), then multiply each by a learned weight.") + (
    " It keeps the numbers in a steady range. This model is post-norm (as the original Transformer): the norm "
    "comes after the residual add, so the residual stream itself is replaced by its normalised version."
    if post else " It keeps the numbers in a steady range; the block reads this normalised copy, the residual "
    "stream itself is unchanged.")
act = "GELU" if cfg.mlp_act == "gelu_tanh" else "SiLU"  # a folder's Gemma gates with GELU (GeGLU)
glu = "GeGLU" if act == "GELU" else "SwiGLU"
if cfg.n_experts:
    E, k = cfg.n_experts, cfg.experts_per_token
    mlp_stages = [
        Stage(f"router: pick {k} of {E} experts", f"{dims(P, (E, 'experts'))} → {dims(P, (k, 'chosen'))}", "mlp",
              True, page=BLOCKS,
              help=f"A mixture of experts: a small matrix (the router) scores each of the {E} experts for each "
                   f"position; the {k} with the highest scores are chosen, and their scores, put through a softmax, "
                   f"become {k} weights that add up to 1. Each token chooses its own experts."),
        Stage(f"{k} {glu} experts, weighted sum, add to stream",
              f"{dims(P, (k, 'experts'), (cfg.d_mlp, 'd_mlp'))} → {dims(P, D)}", "mlp", True, page=BLOCKS,
              help=f"Each chosen expert is a small {glu} MLP of its own (d_mlp = {cfg.d_mlp}): a gate ({act} of one "
                   "projection times another) decides what passes, and a third matrix narrows it back to d_model. "
                   f"The {k} experts' outputs, weighted by the router, are added to the residual stream; the other "
                   f"{E - k} experts do no work for this token."),
    ]
elif cfg.mlp == "plain":
    mlp_stages = [Stage(f"{act} MLP, add to stream", f"{dims(P, (cfg.d_mlp, 'd_mlp'))} → {dims(P, D)}", "mlp", True,
                        page=BLOCKS,
                        help=f"A small two-layer network applied to each position on its own (GPT-2's): one matrix "
                             f"widens the vector to d_mlp = {cfg.d_mlp} numbers, {act} switches each one softly on or "
                             "off, and a second matrix narrows it back to d_model and adds the result to the "
                             "residual stream.")]
else:
    mlp_stages = [Stage(f"{glu} MLP, add to stream", f"{dims(P, (cfg.d_mlp, 'd_mlp'))} → {dims(P, D)}", "mlp", True,
                        page=BLOCKS,
                        help=f"A small two-layer network applied to each position on its own: it widens the vector to "
                             f"d_mlp = {cfg.d_mlp} numbers, where a gate ({act} of one projection times another) "
                             "decides what passes, narrows it back to d_model and adds the result to the residual "
                             "stream.")]
norm_stage = Stage(norm + (" (after the add)" if post else ""), dims(P, D), "norm", True, help=norm_help, page=BLOCKS)
group = nh // nkv
sharing = ("each query head has its own k and v (MHA)" if nkv == nh else
           f"every {group} query heads share one k and one v (GQA)" if nkv > 1 else "all query heads share one k and v (MQA)")
stages = [
    Stage("Text", f"{len(prompt.text):,} characters", "io",
          help="What you typed in the sidebar. The model never sees letters: first the text is cut into tokens.",
          page=TOK),
    Stage("Tokens (BPE)", f"{T} token ids = {T} positions", "io",
          help=f"Byte-pair encoding (BPE) splits the text into pieces from a fixed vocabulary of {V:,}: a common "
               "word is one piece, a rare one several. Each piece is replaced by its number, the token id. Each "
               "token is one position.", page=TOK),
    Stage("Token embedding", dims(P, D), "embed",
          help=f"Each token id picks one row of a learned table: a list of d_model = {d} numbers (the model's "
               "width) that stands for that token. From here on every position carries such a vector.", page=EMB),
]
if cfg.token_scale != 1:  # the sinusoidal variant's √d_model (Vaswani et al. §3.4): its own step, as in the model
    stages.append(Stage(f"× {scale_label(cfg.token_scale, d)}", dims(P, D), "embed",
                        help="Every token vector is multiplied by √d_model, so the position vectors added next do "
                             "not drown it out.", page=EMB))
if pos in ("sinusoidal", "learned"):
    stages.append(Stage(f"+ {pos} position vectors", dims(P, D), "embed",
                        help="A vector that means 'this is position n' is added to each token vector, so the "
                             "model can tell word order.", page=EMB))
stages += [norm_stage] * (not post) + [
    Stage(f"q, k, v{' (+ bias)' if cfg.qkv_bias else ''}",
          f"q: {dims(P, (nh, 'heads'), (hd, 'd_head'))}<br>k, v: {dims(P, (nkv, 'K/V heads'), (hd, 'd_head'))}",
          "attn", True,
          help=f"Three learned matrices turn each position's vector into a query q (what am I looking for?), a key "
               f"k (what do I hold?) and a value v (what I pass on when read). {nh} heads look in parallel, each "
               f"with d_head = {hd} numbers; {sharing}.", page=ATT),
]
if pos == "rope":
    stages.append(Stage("RoPE: rotate q and k",
                        f"q: {dims(P, (nh, 'heads'), (hd, 'd_head'))}<br>k: {dims(P, (nkv, 'K/V heads'), (hd, 'd_head'))}",
                        "attn", True,
                        help="RoPE (rotary position embedding): each pair of numbers in q and k is turned by an "
                             "angle that grows with the token's position, so the score of a query and a key "
                             "depends on how far apart they are.", page=ROPE))
stages += [
    Stage(f"scores q·k/√{hd}" + (" + ALiBi bias" if pos == "alibi" else "") + ", causal mask"
          + (f" (last {cfg.sliding_window} keys" + (" on some layers)" if cfg.sliding_layers else ")")
             if cfg.sliding_window else ""), dims((nh, "heads"), (T, "queries"), (T, "keys")),
          "attn", True,  # √d_head, not √d_model: the model divides by its head size
          help=f"How well each query matches each key: the dot product q·k (multiply matching numbers, add up), "
               f"divided by √d_head = √{hd} to keep it in range. The causal mask sets every later key's score to "
               "−∞: a token cannot read the future.", page=ATT),
    Stage("softmax → attention pattern", dims((nh, "heads"), (T, "queries"), (T, "keys")), "attn", True,
          help="Softmax turns each row of scores into positive weights that add up to 1 (e to the score, divided "
               "by the row's sum): the biggest scores take most of the weight. That row is where the token looks.",
          page=ATT),
    Stage("mix values, W_o, add to stream", dims(P, D), "attn", True,
          help="Each position averages the values v with its attention weights; the heads' results are joined, "
               "mapped back to d_model numbers by the matrix W_o and added to the residual stream: the running "
               "vector of each position that every block reads from and adds to.", page=ATT),
    norm_stage, *mlp_stages, *[norm_stage] * post,
    *[Stage(f"final {norm}", dims(P, D), "norm", help=norm_help, page=LENS)] * (not post),
    Stage("unembedding → logits", dims(P, (V, "vocabulary")), "io",
          help=f"Each position's vector is multiplied by {'the embedding table again (tied weights)' if cfg.tie_embeddings else 'a learned matrix'}: "
               f"one score per vocabulary token, {V:,} in all. These scores are the logits; a higher logit means "
               "the model finds that token more likely next."
               + (" This post-norm model has no final norm: its last block already ends in one." if post else ""),
          page=LENS),
    Stage("softmax + sampling", "1 next token id", "io",
          help="Softmax turns the last position's logits into probabilities. The next token is the most likely "
               "one (greedy) or drawn from them (sampling; temperature flattens or sharpens them). It is appended "
               "and the model runs again, reusing the keys and values it saved for earlier tokens: the KV cache.",
          page=GEN),
]


def open_stage() -> None:
    """A click on a box: remember its page; the run that follows switches to it (st.switch_page is not
    allowed inside a callback)."""
    for pt in st.session_state.home_path.selection.points:
        if pt.get("curve_number") == HIT_CURVE:
            st.session_state.home_open = stages[pt["point_index"] // len(HIT_XS)].page
            return


left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(pipeline_figure(stages, cfg.n_layers), width="stretch", key="home_path", on_select=open_stage,
                    selection_mode="points", config={"displaylogo": False, "displayModeBar": False})
    st.caption(":material/touch_app: Hover a box for what it means; click it to open its page. Shapes name their "
               f"axes: *positions* are your prompt's {T} tokens, *d_model* = {d} numbers per position, "
               f"*d_head* = {hd} numbers per head.")
    with st.expander("The formulas", icon=":material/functions:"):
        if cfg.norm == "layernorm":
            st.markdown(r"LayerNorm, with learned weight $\gamma$ and bias $\beta$ and $d$ = d_model:")
            st.latex(r"\mathrm{LayerNorm}(x) = \frac{x - \mu}{\sqrt{\tfrac{1}{d}\sum_{i=1}^{d} (x_i - \mu)^2 + "
                     r"\varepsilon}} \odot \gamma + \beta, \qquad \mu = \tfrac{1}{d}\textstyle\sum_i x_i")
        else:
            st.markdown("RMSNorm, with learned weights $g$ and $d$ = d_model:")
            st.latex(r"\mathrm{RMSNorm}(x) = \frac{x}{\sqrt{\tfrac{1}{d}\sum_{i=1}^{d} x_i^2 + \varepsilon}} \odot g")
        st.markdown("One head's attention; $M$ is the causal mask (0, or −∞ for a later key):")
        st.latex(r"\mathrm{softmax}\!\left(\frac{q\,k^\top}{\sqrt{d_\text{head}}} + M\right) v"
                 + rf"\qquad \sqrt{{d_\text{{head}}}} = \sqrt{{{hd}}}")
        st.markdown("Softmax over scores (or logits) $z$, at temperature $T$:")
        st.latex(r"p_i = \frac{e^{z_i / T}}{\sum_j e^{z_j / T}}")

        def gated(i: str = "") -> str:  # W_down,i(act(W_gate,i x) ⊙ W_up,i x); i: an expert's index, or none
            sub = f",{i}" if i else ""
            return (rf"W_{{\text{{down}}{sub}}}\big(\mathrm{{{act}}}(W_{{\text{{gate}}{sub}}}\,x) \odot "
                    rf"W_{{\text{{up}}{sub}}}\,x\big)")

        if cfg.n_experts:
            st.markdown(f"The MLP: a mixture of {cfg.n_experts} {glu} experts $E_i$, {cfg.experts_per_token} per "
                        r"token ($S$: the experts with the highest router logits $r = W_\text{router}\,x$, weighted "
                        "by the softmax of those logits), and the residual stream, once per block:")
            st.latex(r"\mathrm{MLP}(x) = \sum_{i \in S} \frac{\exp(r_i)}{\sum_{j \in S} \exp(r_j)}\, E_i(x), \qquad "
                     r"E_i(x) = " + gated("i"))
        elif cfg.mlp == "plain":
            st.markdown(f"The MLP ({act}, two matrices) and the residual stream, once per block:")
            st.latex(rf"\mathrm{{MLP}}(x) = W_\text{{out}}\,\mathrm{{{act}}}(W_\text{{in}}\,x)")
        else:
            st.markdown(("The MLP (GeGLU)" if act == "GELU" else r"The MLP (SwiGLU; SiLU$(a) = a\,\sigma(a)$)")
                        + " and the residual stream, once per block:")
            st.latex(r"\mathrm{MLP}(x) = " + gated())
        if post:
            st.latex(rf"x \leftarrow \mathrm{{{norm}}}(x + \mathrm{{Attn}}(x)), \qquad "
                     rf"x \leftarrow \mathrm{{{norm}}}(x + \mathrm{{MLP}}(x))")
        else:
            st.latex(rf"x \leftarrow x + \mathrm{{Attn}}(\mathrm{{{norm}}}(x)), \qquad "
                     rf"x \leftarrow x + \mathrm{{MLP}}(\mathrm{{{norm}}}(x))")
        if pos == "rope":
            st.markdown("RoPE turns pair $i$ of a query or key at position $m$ by the angle")
            st.latex(rf"m\,\theta_i, \qquad \theta_i = {cfg.rope_theta:g}^{{-2i/d_\text{{head}}}}")
        st.markdown("The KV cache per token, fp32 (4 bytes a number):")
        st.latex(rf"2 \times L \times n_\text{{kv}} \times d_\text{{head}} \times 4 = 2 \times {cfg.n_layers} "
                 rf"\times {nkv} \times {hd} \times 4 = {2 * cfg.n_layers * nkv * hd * 4:,}".replace(",", "{,}")
                 + r"\text{ bytes}")
usable = checkpoint_notice()
with right:
    if usable:
        tr = trace_prompt(variant, prompt.ids)
        probs = softmax(tr.logits[-1])
        top = np.argsort(-probs)[:5]
        st.subheader("The model's next-token guess")
        st.dataframe(
            [{"token": tokenizer_for(variant).token_label(int(i)), "probability": float(probs[i])} for i in top],
            hide_index=True,
            column_config={"probability": st.column_config.ProgressColumn(format="%.3f", min_value=0.0,
                                                                          max_value=1.0)},
        )
    st.subheader("Open a stage")
    st.page_link("pages/tokenization.py", label="Text → tokens", icon=":material/text_fields:")
    st.page_link("pages/embeddings.py", label="Tokens → vectors, and where position enters", icon=":material/scatter_plot:")
    st.page_link("pages/attention.py", label="q, k, v → scores → softmax → mix", icon=":material/grid_view:")
    if pos == "rope":
        st.page_link("pages/rope.py", label="RoPE rotations", icon=":material/360:")
    st.page_link("pages/logit_lens.py", label="The residual stream, block by block", icon=":material/layers:")
    st.page_link(BLOCKS, label=f"{norm} and the {'experts' if cfg.n_experts else 'MLP'}, taken apart",
                 icon=":material/widgets:")
    st.page_link("pages/generation.py", label="Logits → sampling, one token at a time (KV cache)", icon=":material/play_arrow:")
    st.page_link("pages/accounting.py", label="How many parameters and FLOPs was that?", icon=":material/calculate:")
    n_params = count_params(arch_from_model_config(cfg)).total  # exact; tests hold it to sum(p.numel())
    st.caption(f"Model: {plain_md(model_name(variant))} · {n_params:,} parameters · context {cfg.max_seq_len:,} "
               f"tokens · vocabulary {cfg.vocab_size:,}")
