"""Guided lesson: ten steps through the model on your prompt. Each step opens a page prepared for it (through
that page's URL state), asks for a prediction, and reveals the answer the model computes for this prompt and
variant. The step is in the URL (`step`, 1-based), so each one is a link.

Thin: the steps and their answers come from `viz/lesson.py`; this page fetches the arrays and draws.
"""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from app_shared import (
    PAGES, checkpoint_problem, current_model, current_prompt, is_folder, load_model, model_error,
    plain_md, prompt_notices, require_shell, shared_result, tokenizer_for, trace_prompt,
)
from model.analysis.heads import kv_head_of
from model.analysis.lens import final_norm, lens_stages
from model.evaluation import seeds as seed_runs
from model.evaluation.evaluate import RESULTS_PATH
from viz import lesson

require_shell()  # first, before any widget: see app_shared.require_shell

TITLES = {f: t for f, t, _, _ in PAGES}


@shared_result("Working out the lesson's answers…")
def lesson_steps(variant: str, text: str, ids: tuple[int, ...], results: str, seeds: str) -> list:
    """Every step with its answer, for this variant and prompt. `results` / `seeds`: the committed JSON texts
    (part of the cache key, so a new evaluation is picked up)."""
    model = load_model(variant)
    cfg = model.cfg
    tr = trace_prompt(variant, ids)
    tok = tokenizer_for(variant)
    label = tok.token_label
    labels = [label(i) for i in ids]
    L = cfg.n_layers
    stages = lens_stages(L)
    resids = np.stack([tr[h] for h, _ in stages])  # (S, T, d)
    rot = cfg.pos_encoding == "rope"
    # What the cache holds is K after RoPE (the rotation is applied once, when the key is written), and V.
    ks = [tr[f"blocks.{l}.attn.hook_rot_k" if rot else f"blocks.{l}.attn.hook_k"] for l in range(L)]
    vs = [tr[f"blocks.{l}.attn.hook_v"] for l in range(L)]
    windows = [cfg.layer_window(l) for l in range(L)]
    ks = [k[-w:] if w else k for k, w in zip(ks, windows)]
    vs = [v[-w:] if w else v for v, w in zip(vs, windows)]
    T = len(ids)
    m, n = T - 1, max(0, T - 4)  # the Positions page's own default pair
    att = lesson.attention_step([tr[f"blocks.{l}.attn.hook_pattern"] for l in range(L)], labels, plain_md)
    layer, head = att.value["layer"], att.value["head"]
    kvh = kv_head_of(head, cfg.n_heads, cfg.n_kv_heads)  # the K/V head this query head reads
    res = json.loads(results) if results else None
    runs = json.loads(seeds)["runs"] if seeds else None
    return [
        lesson.tokens_step(text, T, tok.encode, label, plain_md),
        lesson.embedding_step(ids, labels, model.tok_embed.weight.detach().float().numpy(), label, plain_md),
        att,
        lesson.lens_step(resids, W_U=model.W_U.detach().numpy(), ids=ids, labels=labels,
                         stage_names=[name for _, name in stages], label=label, esc=plain_md, **final_norm(model)),
        lesson.greedy_step(tr.logits[-1], label, plain_md),
        lesson.temperature_step(tr.logits[-1], label, plain_md),
        lesson.kv_step(ks, vs, cfg.n_heads, T),
        lesson.rope_step(tr[f"blocks.{layer}.attn.hook_q"][m, head], tr[f"blocks.{layer}.attn.hook_k"][n, kvh], m, n,
                         layer, head, cfg.rope_theta, cfg.rope_scaling, cfg.pos_encoding, labels, plain_md),
        *lesson.compare_steps(res, runs, cfg.max_seq_len),
    ]


def _read(p: Path) -> str:
    return p.read_text() if p.is_file() else ""


variant = current_model()
prompt = current_prompt()
st.title("Guided lesson")
st.markdown("Ten steps through the model, on your prompt. Each step opens a page set up for it and asks you to "
            "**predict** something first; then reveal what the model actually computed. Change the prompt in the "
            "sidebar and every answer is recomputed.")
if is_folder(variant):
    st.info("The lesson runs on our Shakespeare variants (it ends by comparing them). Choose *Our variants* under "
            "Model in the sidebar.", icon=":material/info:")
    st.stop()
problem = checkpoint_problem(variant)
if problem:
    model_error(variant, problem)
    st.stop()
if not prompt_notices(prompt):
    st.stop()

steps = lesson_steps(variant, prompt.text, prompt.ids, _read(Path(RESULTS_PATH)), _read(Path(seed_runs.SEEDS_PATH)))
N = len(steps)

# The step lives in the URL and is read on every run (not once per session like the pages' other state): the
# Previous / Next buttons and each step's link change it, and the page must follow.
# Back from a step's page through the menu (no step in the URL): resume where this session was.
raw = st.query_params.get("step", str(st.session_state.get("lesson_last", 1)))
try:
    k = int(raw)
except ValueError:
    k = 1
    st.warning(f"The link's step={plain_md(raw, 20)} is not a step number; showing step 1.", icon=":material/link_off:")
if not 1 <= k <= N:
    st.warning(f"The lesson has steps 1–{N}; showing step {min(N, max(1, k))}.", icon=":material/link_off:")
    k = min(N, max(1, k))
if st.query_params.get("step") != str(k):
    st.query_params["step"] = str(k)
st.session_state.lesson_last = k
step = steps[k - 1]


def go(to: int) -> None:
    st.query_params["step"] = str(to)


st.progress(k / N, text=f"Step {k} of {N}")
st.subheader(f"{k}. {step.title}", anchor=False)
st.markdown(f":material/psychology_alt: **Predict.** {step.question}")
st.text_input("Your prediction (for yourself; nothing is sent anywhere)", key=f"lesson_guess_{k}")
st.page_link(step.page, label=f"Open {TITLES.get(step.page, step.page)} set up for this step",
             icon=":material/open_in_new:", query_params=dict(step.params))
st.caption(f":material/visibility: **Where to look:** {step.look}")

shown = f"lesson_revealed_{k}"  # per step and session: coming back to a step keeps its answer open


def reveal() -> None:
    st.session_state[shown] = True


st.button("Reveal the model's answer", icon=":material/lightbulb:", key=f"lesson_reveal_{k}", on_click=reveal,
          disabled=bool(st.session_state.get(shown)))
if st.session_state.get(shown):
    with st.container(border=True, key="lesson_answer"):
        st.markdown(f"**The model's answer** (computed now, for your prompt and {plain_md(variant)}):\n\n{step.answer}")

c1, c2, _ = st.columns([1, 1, 2])
c1.button("Previous", icon=":material/arrow_back:", disabled=k == 1, on_click=go, args=(k - 1,), key="lesson_prev",
          width="stretch")
c2.button("Next", icon=":material/arrow_forward:", disabled=k == N, on_click=go, args=(k + 1,), key="lesson_next",
          width="stretch")

with st.expander("All steps (each is a link)", icon=":material/list:"):
    for i, s in enumerate(steps, 1):
        st.page_link("pages/lesson.py", label=f"{i}. {s.title}", query_params={"step": str(i)},
                     icon=":material/radio_button_checked:" if i == k else ":material/radio_button_unchecked:")
