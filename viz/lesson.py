"""The guided lesson: ten steps from text to the next-token choice and the KV cache, then the comparisons. Each
step names the page that shows it (and the URL state that opens it prepared), asks for a prediction, and holds
the answer computed from the model's own numbers for the current prompt and variant.

Every figure an answer states is computed here from arrays handed in (the trace, the logits, the embedding
table, the committed evaluation); the comparison steps reuse the Compare page's sentences
(`viz.compare_text`), which state an order only where its interval excludes 0. Nothing here is typed by hand
but the questions.

Pure functions: arrays, dicts and strings in, `Step`s out. No streamlit, no torch. `esc` is the caller's
Markdown escaper for text that comes from the prompt (token labels, words).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import regex

from model.analysis.geometry import nearest_neighbours
from model.analysis.heads import previous_token_score
from model.analysis.lens import logit_lens
from model.analysis.rope import scores_at
from model.decoding.sampling import entropy, softmax, top_p_mask
from model.text.bpe import PAT_STR
from viz.compare_text import read_attention_variants, read_positions

# The Tokenization page offers these pieces for its merge replay (its `words_of`): the lesson must pick one of
# them, or the page would fall back to its default with a notice. tests/test_lesson.py opens the link.
REPLAY_MAX_BYTES = 48
REPLAY_MAX_WORDS = 200
HOT_T = 2.0  # the temperature step: the Generation page's slider reaches 2
NUCLEUS = 0.9  # top-p used to count "how many tokens are still in play"
SHIFT = 100  # the RoPE step moves query and key by this much (the page's default Δ)


@dataclass(frozen=True)
class Step:
    title: str
    page: str  # a file of app_shared.PAGES
    params: Mapping[str, str]  # the page's URL state that opens it prepared for this step
    question: str  # the prediction asked for (Markdown)
    look: str  # where on the page to look (Markdown)
    answer: str  # the model's answer (Markdown), computed
    value: Mapping = field(default_factory=dict)  # the answer in machine form (tests check it)


def _plain(s: str) -> str:
    return s


# --------------------------------------------------------------------------------------------------------
# One answer per step
# --------------------------------------------------------------------------------------------------------


def replay_pieces(text: str) -> list[str]:
    """The pieces the Tokenization page offers for its replay, in order (its `words_of`, with the same limits)."""
    seen = dict.fromkeys(p for p in regex.findall(PAT_STR, text[:4000]) if 1 < len(p.encode("utf-8")) <= REPLAY_MAX_BYTES)
    return list(seen)[:REPLAY_MAX_WORDS]


def tokens_step(text: str, n_tokens: int, encode: Callable[[str], list[int]], label: Callable[[int], str],
                esc: Callable[[str], str] = _plain) -> Step:
    """The piece of the prompt that becomes the most tokens (ties: the first); how many and which."""
    words = replay_pieces(text)
    counts = [len(encode(w)) for w in words]
    if not words:
        word, ids = "", []
    else:
        word = words[int(np.argmax(counts))]
        ids = encode(word)
    pieces = " · ".join(f"`{esc(label(i))}`" for i in ids)
    answer = (f"**{len(ids)} token{'s' if len(ids) != 1 else ''}**: {pieces} (ids {', '.join(map(str, ids))}). "
              f"The whole prompt, {len(text):,} characters, is **{n_tokens} tokens** — "
              f"{len(text) / max(1, n_tokens):.2f} characters per token.") if words else \
        f"This prompt has no piece longer than one byte; it is {n_tokens} tokens."
    return Step(
        "Text → tokens", "pages/tokenization.py", {"tok_word": word} if word else {},
        f"The model never sees letters, only token ids. How many tokens will the piece **“{esc(word)}”** become?",
        "The replay at the bottom merges its bytes pair by pair until no merge is left.",
        answer, {"word": word, "ids": list(ids), "n_tokens": n_tokens})


def embedding_step(ids: Sequence[int], labels: Sequence[str], E: np.ndarray, label: Callable[[int], str],
                   esc: Callable[[str], str] = _plain) -> Step:
    """The prompt's longest word-like token: its vector's length and its nearest vocabulary neighbour."""
    cands = [t for t, l in enumerate(labels) if l.strip("␣").isalpha()] or list(range(len(ids)))
    pos = max(cands, key=lambda t: (len(labels[t].strip("␣")), -t))
    nn, sim = nearest_neighbours(E, int(ids[pos]), 2)
    other, cos = int(nn[1]), float(sim[1])
    return Step(
        "Tokens → vectors", "pages/embeddings.py", {"emb_pos": str(pos)},
        f"Token {pos}, **`{esc(labels[pos])}`**, is looked up as one row of a table. How many numbers is that row, "
        "and which other token of the vocabulary has the most similar vector?",
        "“Nearest neighbours” beside the vocabulary map (cosine similarity, the token itself first).",
        f"A vector of **{E.shape[1]} numbers** (d_model) — row {int(ids[pos])} of a {E.shape[0]:,} × {E.shape[1]} "
        f"table. Its nearest neighbour is **`{esc(label(other))}`** (id {other}), cosine similarity {cos:.3f}.",
        {"pos": pos, "neighbour": other, "cosine": cos, "d_model": int(E.shape[1])})


def attention_step(patterns: Sequence[np.ndarray], labels: Sequence[str], esc: Callable[[str], str] = _plain) -> Step:
    """The strongest previous-token head (as the Attention page scores it) and where the last token looks.
    patterns[l]: (H, T, T)."""
    scores = np.stack([previous_token_score(p) for p in patterns])  # (L, H)
    layer, head = (int(i) for i in np.unravel_index(np.argmax(np.nan_to_num(scores, nan=-1.0)), scores.shape))
    row = np.asarray(patterns[layer][head, -1], dtype=np.float64)  # (T,) the last query's weights
    T = len(row)
    key = int(np.argmax(row))
    prev = " — the token just before it" if key == T - 2 else ""
    return Step(
        "Attention: one head", "pages/attention.py",
        {"att_role": "previous-token", "att_layer": str(layer), "att_head": str(head)},
        f"Layer {layer}, head {head} is this model's strongest *previous-token* head (score {scores[layer, head]:.2f}). "
        f"From the last token, **`{esc(labels[-1])}`** (position {T - 1}), which earlier token will it look at most?",
        "“One head, zoomed”: the bottom row of the pattern is the last token's query.",
        f"Key **{key}, `{esc(labels[key])}`**{prev}, with weight **{row[key]:.2f}** of the row's 1.00 "
        f"(next: {float(np.sort(row)[-2]):.2f}).",
        {"layer": layer, "head": head, "key": key, "weight": float(row[key])})


def lens_step(resids: np.ndarray, ln_weight, eps: float, W_U: np.ndarray, ids: Sequence[int],
              labels: Sequence[str], stage_names: Sequence[str], label: Callable[[int], str],
              esc: Callable[[str], str] = _plain, norm: str = "rmsnorm", ln_bias=None) -> Step:
    """resids (S, T, d): the stream before block 0 and after each block. Picks the position whose correct final
    guess forms latest in the stack, and says after which stage it first becomes the top prediction. The ending
    is the model's own (`model.analysis.lens.final_norm`): norm="none" for a post-norm model, which has none."""
    T = len(ids)
    top = np.stack([logit_lens(resids[s:s + 1], ln_weight, eps, W_U, norm, ln_bias)[0].argmax(-1)
                    for s in range(len(resids))])
    nxt = np.asarray(ids[1:])
    first = [int(np.argmax(top[:, t] == nxt[t])) if top[-1, t] == nxt[t] else None for t in range(T - 1)]
    right = [t for t in range(T - 1) if first[t] is not None]
    pos = max(right, key=lambda t: (first[t], t)) if right else max(0, T - 2)
    if T < 2:
        answer, f = "The prompt has one token: nothing comes next inside it.", None
    elif first[pos] is None:
        answer, f = (f"At no position of this prompt is the model's final guess the real next token; at position "
                     f"{pos} it ends on `{esc(label(int(top[-1, pos])))}` instead of `{esc(labels[pos + 1])}`."), None
    else:
        f = first[pos]
        answer = (f"It first becomes the top guess **{stage_names[f]}**"
                  + (" — the last block, where the real output is read" if f == len(stage_names) - 1 else "") + "; "
                  + ("it is already there before any block: the embedding alone predicts it." if f == 0 else
                     "before that the top guesses were "
                     + ", ".join(f"`{esc(label(int(top[s, pos])))}`" for s in range(f)) + "."))
    return Step(
        "Layer by layer", "pages/logit_lens.py", {"lens_pos": str(pos)},
        (f"At position {pos}, **`{esc(labels[pos])}`**, the real next token is **`{esc(labels[pos + 1])}`**. Reading "
         "the stream early (" + ("the unembedding after each block — this post-norm model has no final norm, each "
                                 "block already ends in one" if norm == "none" else
                                 "final norm + unembedding after each block")
         + "): after which block does it *first* become the top guess?") if T > 1 else "What comes next?",
        "“One position, every stage”, and the column for this position in the first chart.",
        answer, {"pos": pos, "first_stage": f})


def greedy_step(logits: np.ndarray, label: Callable[[int], str], esc: Callable[[str], str] = _plain) -> Step:
    """logits: (V,) at the last position."""
    p = softmax(np.asarray(logits, dtype=np.float64))
    order = np.argsort(-p, kind="stable")
    a, b = int(order[0]), int(order[1])
    return Step(
        "The next-token choice", "pages/generation.py", {"temperature": "0.0", "top_p": "1.0", "top_k": "0",
                                                          "min_p": "0.0"},
        "At temperature 0 the model always takes its most likely token. Which token comes next, and how sure is it?",
        "The sampling panel: the bars are the distribution over all tokens; the chosen one is marked.",
        f"**`{esc(label(a))}`** with probability **{p[a]:.3f}**; the runner-up is `{esc(label(b))}` at {p[b]:.3f}. "
        f"The other {len(p) - 2:,} tokens share the remaining {max(0.0, 1 - p[a] - p[b]):.3f}.",
        {"token": a, "p": float(p[a]), "runner_up": b})


def nucleus_size(p: np.ndarray, top_p: float = NUCLEUS) -> int:
    return int(top_p_mask(p, top_p, np.ones(len(p), dtype=bool)).sum())


def temperature_step(logits: np.ndarray, label: Callable[[int], str], esc: Callable[[str], str] = _plain) -> Step:
    """T = 1 against T = HOT_T: top probability, entropy (bits) and how many tokens top-p 0.9 keeps."""
    z = np.asarray(logits, dtype=np.float64)
    p1, p2 = softmax(z), softmax(z / HOT_T)
    a = int(np.argmax(p1))
    h1, h2 = entropy(p1) / np.log(2), entropy(p2) / np.log(2)
    n1, n2 = nucleus_size(p1), nucleus_size(p2)
    return Step(
        f"Temperature {HOT_T:g}", "pages/generation.py",
        {"temperature": str(HOT_T), "top_p": str(NUCLEUS), "top_k": "0", "min_p": "0.0"},
        f"Dividing the logits by T = {HOT_T:g} before the softmax: what happens to the distribution? Will the top "
        f"token's probability rise or fall, and will top-p {NUCLEUS} keep more tokens or fewer?",
        "The raw / tempered / filtered panels of the sampling step.",
        f"Flatter: `{esc(label(a))}` falls from **{p1[a]:.3f}** to **{p2[a]:.3f}**, the entropy rises from "
        f"**{h1:.2f} to {h2:.2f} bits**, and top-p {NUCLEUS} keeps **{n2:,} tokens instead of {n1:,}** — more "
        f"unlikely tokens get a chance.",
        {"p1": float(p1[a]), "p2": float(p2[a]), "h1": float(h1), "h2": float(h2), "n1": n1, "n2": n2})


def kv_step(cached_k: Sequence[np.ndarray], cached_v: Sequence[np.ndarray], n_heads: int, n_prompt: int) -> Step:
    """cached_k[l], cached_v[l]: (positions held, n_kv_heads, d_head), what each layer's cache holds after the
    prompt (fewer than n_prompt positions where a sliding window has dropped the oldest)."""
    L = len(cached_k)
    _, nkv, hd = cached_k[0].shape
    tensors = list(cached_k) + list(cached_v)
    total = sum(int(np.asarray(x).size) for x in tensors) * 4  # fp32 bytes, every layer, K and V
    per_pos = 2 * L * nkv * hd * 4  # what one more position adds (before any window is full)
    mha = per_pos * n_heads // nkv
    held = sorted({int(x.shape[0]) for x in cached_k})
    window = (f" (a sliding window keeps at most {held[0]} positions in {'some layers' if len(held) > 1 else 'each layer'})"
              if held[0] < n_prompt else "")
    kind = ("one K/V head per query head (MHA)" if nkv == n_heads else
            f"{nkv} K/V head{'s' if nkv > 1 else ''} for {n_heads} query heads")
    return Step(
        "The KV cache", "pages/generation.py", {"temperature": "0.0", "top_p": "1.0", "top_k": "0", "min_p": "0.0"},
        f"Each decode step reuses every earlier position's keys and values instead of recomputing them. After your "
        f"{n_prompt}-token prompt, how many bytes does the cache hold, and how many does each new token add?",
        "The KV cache tensors under the sampling step: press **Next token** and watch one row appear per layer.",
        f"**{total:,} bytes** (fp32){window}: {L} layers × (K and V) × positions × {nkv} K/V "
        f"head{'s' if nkv > 1 else ''} × {hd} numbers × 4 bytes. Each new token adds **{per_pos:,} bytes**. This "
        f"model has {kind}; with one K/V head per query head it would add {mha:,}.",
        {"total": total, "per_position": per_pos, "mha_per_position": mha})


def rope_step(q: np.ndarray, k: np.ndarray, m: int, n: int, layer: int, head: int, theta: float,
              scaling: Optional[dict], pos_encoding: str, labels: Sequence[str], esc: Callable[[str], str] = _plain) -> Step:
    """q (d_head,), k (d_head,): one query and one key before rotation."""
    params = {"rope_layer": str(layer), "rope_head": str(head), "rope_m": str(m), "rope_n": str(n),
              "rope_delta": str(SHIFT)}
    if pos_encoding != "rope":
        return Step("Positions", "pages/rope.py", {}, "How does this variant tell positions apart?",
                    "The section on what the other variants use instead of rotations.",
                    f"This variant uses **{pos_encoding}** position information, not RoPE: there is no rotation to "
                    "measure here. Choose a RoPE variant in the sidebar to run this step.", {"rope": False})
    s = scores_at(np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64), [m, m + SHIFT], [n, n + SHIFT],
                  theta, scaling)
    return Step(
        "RoPE: only distance counts", "pages/rope.py", params,
        f"RoPE turns q and k by angles that grow with position. Take the query of `{esc(labels[m])}` (position {m}) "
        f"and the key of `{esc(labels[n])}` (position {n}) in layer {layer}, head {head}. Move both {SHIFT} positions "
        "later: will their score change?",
        "“Only m − n matters”: the two scores and their difference.",
        f"No: **{s[0]:.6f}** at ({m}, {n}) and **{s[1]:.6f}** at ({m + SHIFT}, {n + SHIFT}) — a difference of "
        f"{abs(s[0] - s[1]):.1e}, rounding only. Each pair is turned by the same angle for both, so only the gap "
        f"m − n = {m - n} is left in the score.",
        {"rope": True, "s": float(s[0]), "s_shift": float(s[1])})


def compare_steps(res: Optional[dict], seeds: Optional[Sequence[dict]], context: int) -> list[Step]:
    """The two comparison steps: the Compare page's own sentences, which say an order only where it survives."""
    attn = read_attention_variants(res, seeds=seeds) if res else ["No evaluation result is committed yet."]
    pos = read_positions(res, context, seeds=seeds) if res else ["No evaluation result is committed yet."]
    return [
        Step("MHA, GQA, MQA", "pages/compare.py", {"cmp_tab": "Attention variants"},
             "Sharing K/V heads (GQA, MQA) shrinks the KV cache. Will it cost held-out loss in our models, and can "
             "we tell from one training run each?",
             "“What our numbers show” at the bottom of the tab, and the bars with the seed dots.",
             "\n".join(f"- {l}" for l in attn), {"lines": attn}),
        Step("Positional encodings", "pages/compare.py", {"cmp_tab": "Positional encodings"},
             f"All five were trained on {context}-token windows. Which will still work on text longer than that?",
             "“Loss by position” past the dashed line at the training context.",
             "\n".join(f"- {l}" for l in pos), {"lines": pos}),
    ]
