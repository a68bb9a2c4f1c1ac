"""Layer by layer (the logit lens): the residual stream before block 0 and after each block, put through the
model's own ending — its final norm (RMSNorm or LayerNorm) and the unembedding; for a post-norm model, which has
no final norm, the unembedding alone — read as next-token predictions at every position."""

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_csv, download_json, file_name, load_model, model_config, plain_md,
    prompt_notices, require_model, require_shell, shared_result, sync_url, tokenizer_for, trace_prompt, url_int,
)
from model.analysis.lens import final_norm, lens_stages, lens_summary
from viz.lens import embedding_row_sentence, lens_heatmap, next_token_heatmap, next_token_lines

require_shell()  # first, before any widget: see app_shared.require_shell

K = 5  # predictions kept per (stage, position)
WINDOW = 24  # positions drawn at once: each cell carries a token label and must stay readable


@shared_result("Reading the residual stream through the unembedding…")
def lens(variant: str, ids: tuple[int, ...]) -> dict:
    """Top-K predictions and p(actual next token) at every (stage, position)."""
    model = load_model(variant)
    tr = trace_prompt(variant, ids)
    stages = lens_stages(model.cfg.n_layers)
    resids = np.stack([tr[name] for name, _ in stages])  # (S, T, d)
    top_idx, top_p, p_next = lens_summary(resids, W_U=model.W_U.detach().numpy(), ids=np.asarray(ids), k=K,
                                          **final_norm(model))  # (S, T, K) ×2, (S, T)
    return dict(stages=[name for _, name in stages], hooks=[h for h, _ in stages], top_idx=top_idx, top_p=top_p,
                p_next=p_next)


variant = current_model()
cfg = model_config(variant)
token_label = tokenizer_for(variant).token_label
prompt = current_prompt()

st.title("Layer by layer: the logit lens")
norm_name = "LayerNorm" if cfg.norm == "layernorm" else "RMSNorm"
if cfg.norm_position == "post":
    st.markdown(
        f"The model only predicts at the very end. This one is **post-norm**: every block ends in "
        f"{'an' if norm_name == 'RMSNorm' else 'a'} {norm_name} "
        "(the norm sits after each residual add, as in the original Transformer), so there is no final norm — "
        "the last block's output goes straight into the unembedding. The residual stream has the same shape "
        "after every block, and after every block it is already normalised, so we can apply that same ending "
        "*early*: each block's output (`hook_resid_post`) read through the unembedding directly. (Inside a block "
        "the stream after attention's add, `hook_resid_mid`, is a norm's output too: in a post-norm model the "
        "stream is normalised everywhere but at the embedding.) The embedding row is the one stream read here "
        "that no norm has touched. Reading down a column shows where "
        "in the stack the guess forms."
    )
else:
    st.markdown(
        f"The model only predicts at the very end: final {norm_name}"
        + (" (with its learned bias)" if cfg.norm == "layernorm" else "")
        + ", then the unembedding. But the residual stream has the same shape after every block, so we can "
        "apply that same ending *early* and ask: what would it predict if it stopped here? Reading down a column "
        "shows where in the stack the guess forms."
    )
require_model(variant)
if not prompt_notices(prompt):
    st.stop()

T = len(prompt.ids)
labels = list(prompt.labels)
res = lens(variant, prompt.ids)
stages = res["stages"]
top_labels = [[token_label(int(i)) for i in row] for row in res["top_idx"][:, :, 0]]  # (S, T)

start = 0
if T > WINDOW:
    url_int("lens_start", 0, 0, T - WINDOW)
    start = st.slider("First position shown", 0, T - WINDOW, key="lens_start",
                      help=f"The charts show {WINDOW} positions at a time.")
stop = min(T, start + WINDOW)
sl = slice(start, stop)

st.subheader("Top prediction after each block")
st.plotly_chart(
    lens_heatmap(res["top_p"][:, sl, 0], [row[sl] for row in top_labels], stages, labels[sl], start),
    width="stretch", key="lens_top",
)
tied_note = embedding_row_sentence(res["top_idx"][0, :, 0], np.asarray(prompt.ids)) if cfg.tie_embeddings else ""
st.caption("Each cell: the most likely next token if the model stopped at that row, coloured by its "
           "probability. The last row is the model's real output." + tied_note)

st.subheader("How likely is the token that actually comes next?")
next_labels = labels[1:] + ["(end of prompt)"]
st.plotly_chart(next_token_heatmap(res["p_next"][:, sl], stages, labels[sl], next_labels[sl], start),
                width="stretch", key="lens_next")

st.subheader("One position, every stage")
url_int("lens_pos", max(0, T - 2), 0, T - 1)
pos = st.selectbox("Position", list(range(T)), key="lens_pos",
                   format_func=lambda t: f"{t}: {labels[t]}" + (f"  →  next is {labels[t + 1]}" if t + 1 < T else ""))
sync_url("lens_start", "lens_pos")
c1, c2 = st.columns([3, 2])
with c1:
    table = [{"stage": stages[s], **{f"top {k + 1}": f"{token_label(int(res['top_idx'][s, pos, k]))}  "
                                                   f"({res['top_p'][s, pos, k]:.1%})" for k in range(K)}}
             for s in range(len(stages))]
    st.dataframe(table, hide_index=True)
with c2:
    if pos + 1 < T:
        st.plotly_chart(next_token_lines(res["p_next"], stages, pos, labels[pos]), width="stretch", key="lens_lines")
    else:
        st.caption("The last position has no next token in the prompt to score.")


@shared_result("Running the prompt with and without its trailing newline…")
def boundary(variant: str, text: str, limit: int):
    from model.analysis.boundary import boundary_pair
    from model.net.trace import forward_logits

    model, tok = load_model(variant), tokenizer_for(variant)
    return boundary_pair(lambda ids: forward_logits(model, ids), tok.encode, tok.token_label, text, k=8,
                         max_tokens=limit)


st.subheader("Where the prompt ends matters: the trailing newline")
pair = boundary(variant, prompt.text, len(prompt.ids) if prompt.truncated else cfg.max_seq_len)
if pair is None:
    st.caption("The prompt is only newlines: there is no text to compare with and without one.")
else:
    from model.analysis.boundary import boundary_sentence
    from viz.boundary import boundary_figure

    without, with_nl = pair
    st.plotly_chart(boundary_figure(
        (f"ends in “{without.last_label}” (no newline)", f"ends in “{with_nl.last_label}” (with the newline)"),
        ([token_label(int(i)) for i in without.top_ids], [token_label(int(i)) for i in with_nl.top_ids]),
        (without.top_probs, with_nl.top_probs)), width="stretch", key="lens_boundary")
    st.caption("The model's final output after your prompt with its trailing newlines removed (left) and with "
               "exactly one (right), computed now. " + plain_md(boundary_sentence(without, with_nl, token_label)))

rows = [
    {"stage": stages[s], "position": t, "input_token": labels[t], "top1": top_labels[s][t],
     "p_top1": float(res["top_p"][s, t, 0]), "actual_next": labels[t + 1] if t + 1 < T else "",
     "p_actual_next": float(res["p_next"][s, t]) if t + 1 < T else ""}
    for s in range(len(stages)) for t in range(T)
]
c1, c2 = st.columns(2)
with c1:
    download_json({"variant": variant, "tokens": labels, "ids": list(prompt.ids), "stages": stages,
                   "hooks": res["hooks"], "top_ids": res["top_idx"], "top_probs": res["top_p"],
                   "p_actual_next": res["p_next"]}, f"logit_lens_{file_name(variant)}.json")
with c2:
    download_csv(rows, f"logit_lens_{file_name(variant)}.csv")
