"""Embeddings: the vector each prompt token starts as, its length, where it sits in a 2-D map of the whole
vocabulary and which tokens are its nearest neighbours; then how position gets in — a table of position
vectors for the absolute variants, or a plain statement of where it enters instead."""

from pathlib import Path

import numpy as np
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_csv, download_json, file_name, is_folder, load_model, model_config, prompt_notices,
    require_model, require_shell, sync_url, tokenizer_for, trace_prompt, url_int,
)
from model.analysis.geometry import cosine_by_distance, cosine_matrix, nearest_neighbours, pca
from model.analysis.rope import absolute_position_table
from viz.embeddings import (
    embedding_heatmap, norms_bar, norms_caption, position_heatmap, position_similarity_sentence,
    position_table_sentence, scale_label, similarity_heatmap, untrained_sentence, vocab_map,
)

require_shell()  # first, before any widget: see app_shared.require_shell

N_NEIGHBOURS = 10
MAX_MAP_POINTS = 8192  # grey dots in the vocabulary map: past this a 50k-token vocabulary only costs the browser


@st.cache_resource(show_spinner="Finding the tokens the training text never uses…", max_entries=2)
def untrained_ids(vocab_size: int) -> np.ndarray:
    """The ids of our tokenizer that never occur in the training split (counted from the corpus, read-only)."""
    from model.text.batches import never_trained

    out = np.flatnonzero(never_trained(vocab_size))
    out.flags.writeable = False
    return out


@st.cache_resource(show_spinner="Projecting the vocabulary…", max_entries=8)
def vocabulary(variant: str, leave_out: tuple[int, ...] = ()) -> dict:
    """The embedding matrix, its 2-D PCA (fitted without the rows `leave_out`), every token's label and norm, and
    the rows the map draws (all of them, or an even sample of MAX_MAP_POINTS for a large vocabulary). Shared by
    every prompt and session, not copied per rerun (a 49,152 × 576 table is 113 MB): every array is read-only."""
    E = load_model(variant).tok_embed.weight.detach().numpy()  # (V, d), a read-only view of the model's table
    label = tokenizer_for(variant).token_label
    V = E.shape[0]
    fit = np.ones(V, dtype=bool)
    fit[list(leave_out)] = False
    coords, explained = pca(E, 2, fit=fit)
    shown = np.arange(V) if V <= MAX_MAP_POINTS else np.unique(np.linspace(0, V - 1, MAX_MAP_POINTS).astype(int))
    shown = shown[fit[shown]]
    out = dict(E=E.view(), coords=coords, explained=explained, norms=np.linalg.norm(E, axis=1), shown=shown)
    for a in out.values():
        a.flags.writeable = False
    out["labels"] = tuple(label(i) for i in range(V))
    return out


@st.cache_data(show_spinner=False, max_entries=8)
def position_table(variant: str) -> np.ndarray:
    """The vector added at each position 0 .. max_seq_len-1 (learned: the trained table; sinusoidal: the formula)."""
    return absolute_position_table(load_model(variant))  # (N, d)


variant = current_model()
cfg = model_config(variant)
prompt = current_prompt()

st.title("Embeddings: tokens become vectors")
scale = cfg.token_scale
scaled = (f" This model then multiplies the row by {scale_label(scale, cfg.d_model)} before anything else "
          "happens; the charts below show the rows as stored in the table." if scale != 1 else "")
tied = (" This model ties the table to its output: the same matrix, transposed, turns the last vector back into "
        "scores over the vocabulary." if cfg.tie_embeddings else "")
st.markdown(
    f"The first layer is a lookup table: row *id* of a {cfg.vocab_size} × {cfg.d_model} matrix is the vector "
    f"token *id* starts as.{scaled} Training moves rows around so that tokens used alike end up close.{tied}"
)
require_model(variant)
if not prompt_notices(prompt):
    st.stop()

tr = trace_prompt(variant, prompt.ids)
voc = vocabulary(variant)
T, labels, ids = len(prompt.ids), list(prompt.labels), list(prompt.ids)
E_prompt = tr["hook_embed"]  # (T, d) the table's rows as stored: before any embedding scale

st.subheader("The prompt's token vectors")
st.plotly_chart(embedding_heatmap(E_prompt, labels), width="stretch", key="emb_heatmap")
st.caption(f"One row per token, one column per dimension (d = {cfg.d_model}). Repeated tokens get identical rows: "
           "at this point the model knows nothing about context or order.")
prompt_norms = np.linalg.norm(E_prompt, axis=1)  # (T,) like with like: the vocabulary's norms are of stored rows too
st.plotly_chart(norms_bar(prompt_norms, labels, float(np.median(voc["norms"]))), width="stretch", key="emb_norms")
has_table = cfg.pos_encoding in ("sinusoidal", "learned")
P = position_table(variant) if has_table else None
st.caption(norms_caption(prompt_norms, float(np.median(voc["norms"])), cfg.vocab_size, scale, cfg.d_model,
                         float(np.median(np.linalg.norm(P, axis=1))) if has_table else None))

st.subheader("The whole vocabulary, flattened to 2-D")
url_int("emb_pos", 0, 0, T - 1)
pos = st.selectbox("Token to look at", list(range(T)), key="emb_pos", format_func=lambda t: f"{t}: {labels[t]}")
sync_url("emb_pos")
tok = ids[pos]
# Tokens that never occur in the training text (found from the corpus, for our tokenizer only): left out of the
# map and its PCA unless asked for — untouched by training, they sit in one clump that the PCA spends itself on.
untrained = np.empty(0, dtype=np.int64) if is_folder(variant) else untrained_ids(cfg.vocab_size)
show_untrained = False
if len(untrained):
    show_untrained = st.toggle(f"Show the {len(untrained):,} never-trained tokens", value=False, key="emb_untrained",
                               help="Tokens that never occur in the training text (bytes and pieces always merged "
                                    "into longer tokens, <|endoftext|>): left out of the map and its PCA by default.")
voc_map = voc if show_untrained or not len(untrained) else vocabulary(variant, tuple(int(i) for i in untrained))
c1, c2 = st.columns([3, 2])
with c1:
    st.plotly_chart(vocab_map(voc_map["coords"], voc_map["labels"], ids, labels, voc_map["explained"], highlight=tok,
                              background=voc_map["shown"], untrained=untrained if show_untrained else None),
                    width="stretch", key="emb_map")
    if len(untrained):
        trained = np.ones(cfg.vocab_size, dtype=bool)
        trained[untrained] = False
        st.caption(untrained_sentence(len(untrained), cfg.vocab_size, [voc["labels"][i] for i in untrained[[0, 10, -2]]]
                                      if len(untrained) > 10 else [voc["labels"][i] for i in untrained[:3]],
                                      show_untrained, float(np.median(voc["norms"][untrained])),
                                      float(np.median(voc["norms"][trained]))))
    n_fit = cfg.vocab_size - (0 if voc_map is voc else len(untrained))  # the rows the PCA was fitted on
    sampled = (f" Grey dots: every {cfg.vocab_size // len(voc['shown'])}th token, {len(voc['shown']):,} of "
               f"{cfg.vocab_size:,} (the PCA and the neighbours use them all)." if len(voc["shown"]) < cfg.vocab_size
               else "")
    st.caption(f"PCA keeps the two directions along which the {n_fit:,} vectors vary most "
               f"({voc_map['explained'].sum():.0%} of the variance); distances in the other "
               f"{cfg.d_model - 2} dimensions are lost, so trust the neighbour list more than the picture." + sampled)
with c2:
    nn_idx, nn_sim = nearest_neighbours(voc["E"], tok, N_NEIGHBOURS + 1)
    neighbours = [{"token": voc["labels"][i], "id": int(i), "cosine": float(s)} for i, s in zip(nn_idx, nn_sim)]
    st.markdown("**Nearest neighbours** by cosine similarity (the token itself first)")
    cosine = st.column_config.ProgressColumn(format="%.3f", min_value=-1.0, max_value=1.0)
    st.dataframe(neighbours, hide_index=True, height=35 * (len(neighbours) + 1) + 3, column_config={"cosine": cosine})

st.subheader("Where does position come in?")
pos_data = {}
if has_table:
    N = P.shape[0]
    what = (f"a fixed formula — sines and cosines of geometrically spaced frequencies (Vaswani et al.), defined "
            f"at every position; drawn here for positions 0–{N - 1}, the context it was trained on"
            if cfg.pos_encoding == "sinusoidal" else
            f"a trained table (as in GPT-2) of {N} rows, one per position: there is no row for position {N}, so "
            "the model cannot read past it")
    # Not "without it attention could not tell word order": in a causal decoder the mask leaks order, and the
    # gqa-none variant learns without any position signal. What is true is narrower, and said so.
    st.markdown(
        f"This variant **adds a position vector** to each token vector before block 0: {what}. Attention by "
        "itself weighs the tokens it reads by content only; in the first block of a model with no position "
        "signal, shuffling the earlier tokens would not change what a token reads. The causal mask still leaks "
        "order (position m reads m + 1 tokens, and later blocks read what earlier ones made of that), which is "
        "all the *none* variant has; the position vector states position outright."
    )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(position_heatmap(P, "position vectors"), width="stretch", key="emb_pos_table")
    with c2:
        S = cosine_matrix(P)
        st.plotly_chart(similarity_heatmap(S, "cosine similarity between positions"), width="stretch",
                        key="emb_pos_sim")
    distances = [2**k for k in range(N.bit_length()) if 2**k < N]  # 1, 2, 4, … inside the table
    st.caption(position_table_sentence(P) + " "
               + position_similarity_sentence(distances, *cosine_by_distance(S, distances)))
    pos_data = {"position_vectors": P[:T], "position_similarity": S[:T, :T]}
else:
    kind = "" if is_folder(variant) else " variant"
    where = {
        "rope": f"**RoPE**{kind}: no position vector is added here. Position enters inside every attention "
                "layer instead: each query and key is *rotated* by an angle proportional to its position, so the "
                "score between two tokens depends on how far apart they are.",
        "alibi": f"**ALiBi**{kind}: no position vector is added here. Position enters inside every attention "
                 "layer instead: each head subtracts a penalty proportional to the distance between query and "
                 "key from its scores (a different slope per head) — visible in the attention page's raw scores.",
        "none": "**No positional encoding** at all: no position vector, no rotation, no bias. The only source of "
                "order is the causal mask — a token sees only what came before it, and models can learn to count "
                "from that alone.",
    }[cfg.pos_encoding]
    st.markdown(where)
    # A page_link to a file the navigation does not list raises, and app.py lists only files that exist.
    # Paths are taken from this file's folder, so they survive the folder being renamed.
    here = Path(__file__).parent
    if cfg.pos_encoding == "rope" and (here / "rope.py").exists():
        st.page_link(str(here / "rope.py"), label="See RoPE's rotations", icon=":material/360:")
    elif cfg.pos_encoding == "alibi":
        st.page_link(str(here / "attention.py"), label="See the biased scores on the attention page",
                     icon=":material/grid_view:")
    elif (here / "rope.py").exists():
        st.page_link(str(here / "rope.py"), label="Compare how the variants handle position", icon=":material/360:")

rows = [{"position": t, "token": labels[t], "id": ids[t], "norm": float(np.linalg.norm(E_prompt[t])),
         "pc1": float(voc["coords"][ids[t], 0]), "pc2": float(voc["coords"][ids[t], 1])} for t in range(T)]
c1, c2 = st.columns(2)
with c1:
    download_json({"variant": variant, "tokens": labels, "ids": ids, "embedding_rows": E_prompt, "embed_scale": scale,
                   "pca_explained_variance": voc["explained"], "neighbours_of": labels[pos],
                   "neighbours": neighbours, **pos_data}, f"embeddings_{file_name(variant)}.json")
with c2:
    download_csv(rows, f"embeddings_{file_name(variant)}.csv")
