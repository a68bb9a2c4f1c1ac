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
from viz.pipeline import Stage, pipeline_figure

require_shell()  # first, before any widget: see app_shared.require_shell

variant = current_model()
cfg = model_config(variant)  # the diagram needs only the config: on a fresh server it is drawn before torch loads
prompt = current_prompt()
folder = is_folder(variant)

st.title("What a language model does with your text")
st.markdown(
    (f"**{plain_md(model_name(variant))}**, a Llama-style model from a folder on this machine, runs on your prompt "
     "(every weight computed in fp32 by this app's own code). " if folder else
     "A real, trained Llama-style model (trained here on Shakespeare) runs on your prompt. ")
    + "Each box below is a step of its computation, with the tensor's shape for your prompt; the links beside it "
    "open the steps' own pages."
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
pos = cfg.pos_encoding
stages = [
    Stage("Text", f"{len(prompt.text)} characters", "io"),
    Stage("Tokens (BPE)", f"[{T}] ids", "io"),
    Stage("Token embedding", f"[{T}, {d}]", "embed"),
]
if cfg.token_scale != 1:  # the sinusoidal variant's √d_model (Vaswani et al. §3.4): its own step, as in the model
    stages.append(Stage(f"× {scale_label(cfg.token_scale, d)}", f"[{T}, {d}]", "embed"))
if pos in ("sinusoidal", "learned"):
    stages.append(Stage(f"+ {pos} position vectors", f"[{T}, {d}]", "embed"))
stages += [
    Stage("RMSNorm", f"[{T}, {d}]", "norm", True),
    Stage(f"q, k, v{' (+ bias)' if cfg.qkv_bias else ''}  ({nh} q heads, {nkv} k/v heads)", f"q [{T}, {nh}, {hd}]  k, v [{T}, {nkv}, {hd}]", "attn", True),
]
if pos == "rope":
    stages.append(Stage("RoPE: rotate q and k", f"[{T}, {nh}, {hd}]", "attn", True))
stages += [
    Stage(f"scores q·k/√{hd}" + (" + ALiBi bias" if pos == "alibi" else "") + ", causal mask"
          + (f" (last {cfg.sliding_window} keys" + (" on some layers)" if cfg.sliding_layers else ")")
             if cfg.sliding_window else ""), f"[{nh}, {T}, {T}]",
          "attn", True),  # √d_head, not √d_model: the model divides by its head size
    Stage("softmax → attention pattern", f"[{nh}, {T}, {T}]", "attn", True),
    Stage("mix values, W_o, add to stream", f"[{T}, {d}]", "attn", True),
    Stage("RMSNorm", f"[{T}, {d}]", "norm", True),
    Stage(f"{'GeGLU' if cfg.mlp_act == 'gelu_tanh' else 'SwiGLU'} MLP, add to stream", f"[{T}, {cfg.d_mlp}] → [{T}, {d}]", "mlp", True),
    Stage("final RMSNorm", f"[{T}, {d}]", "norm"),
    Stage("unembedding → logits", f"[{T}, {cfg.vocab_size}]", "io"),
    Stage("softmax + sampling", "next token", "io"),
]

left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(pipeline_figure(stages, cfg.n_layers), width="stretch", config={"displaylogo": False})
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
    st.page_link("pages/generation.py", label="Logits → sampling, one token at a time (KV cache)", icon=":material/play_arrow:")
    st.page_link("pages/accounting.py", label="How many parameters and FLOPs was that?", icon=":material/calculate:")
    n_params = count_params(arch_from_model_config(cfg)).total  # exact; tests hold it to sum(p.numel())
    st.caption(f"Model: {plain_md(model_name(variant))} · {n_params:,} parameters · context {cfg.max_seq_len:,} "
               f"tokens · vocabulary {cfg.vocab_size:,}")
