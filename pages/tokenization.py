"""Tokenization: the prompt in the model's tokenizer — our Shakespeare BPE, or a folder's tokenizer.json — beside
GPT-4's cl100k (boxes, ids, bytes, counts), and a step-by-step replay of our BPE's merges that build one word from
its bytes."""

import regex
import streamlit as st

from app_shared import (
    current_model, current_prompt, download_csv, download_json, file_name, is_folder, model_config, model_name,
    plain_md, prompt_notices, require_shell, sync_url, tokenizer_for, url_choice,
)
from model.text.bpe import PAT_STR, merge_positions, replay_merges
from model.text.tokenizer import bytes_label, cl100k, encode, sanitise, shipped_ranks
from viz.tokens import merge_steps_figure, token_boxes

require_shell()  # first, before any widget: see app_shared.require_shell

MAX_REPLAY_BYTES = 48  # a replay is one row per merge; longer pieces (runs of spaces, pasted junk) are not offered
MAX_WORDS = 200  # distinct pieces offered for the replay
BACKTICK, QUOTE = "`", "'"  # a special token quoted in a code span must not end it


@st.cache_data(show_spinner=False, max_entries=64)
def tokenize_both(text: str, model: str) -> dict:
    """The model's tokenizer and GPT-4's on the same (sanitised) text: ids, the bytes of each token and its
    piece as the vocabulary spells it ("Ġthe" in a tokenizer.json; ours are bytes, so their label)."""
    text = sanitise(text)
    tok = tokenizer_for(model)
    ours = tok.encode(text)
    gpt4 = cl100k()
    theirs = gpt4.encode_ordinary(text)
    return {
        "ours": {"ids": ours, "bytes": [tok.token_bytes(i) for i in ours], "pieces": [tok.piece(i) for i in ours]},
        "cl100k": {"ids": theirs, "bytes": [gpt4.decode_single_token_bytes(i) for i in theirs]},
        "chars": len(text),
    }


@st.cache_data(show_spinner=False, max_entries=64)
def words_of(text: str) -> list[str]:
    """The distinct pre-tokenizer pieces of the text (GPT-4's regex), in order, short enough to replay."""
    seen = dict.fromkeys(p for p in regex.findall(PAT_STR, sanitise(text)[:4000])
                         if 1 < len(p.encode("utf-8")) <= MAX_REPLAY_BYTES)
    return list(seen)[:MAX_WORDS]


def boxes(tok_bytes: list[bytes], ids: list[int], limit: int):
    shown = list(zip(ids, tok_bytes))[:limit]
    labels = [bytes_label(b) for _, b in shown]
    hover = [f"{bytes_label(b)}\nid {i}\nbytes {b.hex(' ')}" for i, b in shown]
    breaks = [b.endswith(b"\n") for _, b in shown]
    return token_boxes(labels, hover=hover, breaks=breaks)


def token_rows(tok_bytes: list[bytes], ids: list[int], pieces: list[str] | None = None) -> list[dict]:
    rows = [{"#": k, "token": bytes_label(b), "id": i, "bytes": b.hex(" "), "n_bytes": len(b)}
            for k, (i, b) in enumerate(zip(ids, tok_bytes))]
    if pieces is not None:  # a tokenizer.json's own spelling, beside our label of the same bytes
        for r, piece in zip(rows, pieces):
            r["piece"] = piece
    return rows


variant = current_model()
cfg = model_config(variant)  # the tokenizer and the context length: no weights needed
folder = is_folder(variant)
tok = tokenizer_for(variant)
prompt = current_prompt()

st.title("Tokenization: text becomes ids")
# Counted, not typed: each vocabulary is its 256 single bytes plus one token per learned merge.
n_merges_ours = len(shipped_ranks()) - 256
n_merges_gpt4 = len(cl100k()._mergeable_ranks) - 256  # tiktoken keeps the ranks only under this name
# Its n_vocab (100,277) is the largest id + 1: ids 100,256 and 100,261–100,275 are unused. Count the tokens.
n_tokens_gpt4 = len(cl100k()._mergeable_ranks) + len(cl100k()._special_tokens)
same_regex = cl100k()._pat_str == PAT_STR
st.markdown(
    "A model never sees letters. Text is cut into pieces by a regular expression, each piece is turned into "
    "its UTF-8 bytes, and the bytes are merged into larger tokens by rules learned from data (byte-pair "
    f"encoding). Our model's tokenizer learned {n_merges_ours:,} merges from Shakespeare; GPT-4's learned "
    f"{n_merges_gpt4:,} from the web. Same algorithm, {'same regex' if same_regex else 'different regexes'}, very "
    "different vocabularies."
    + (f" The model in the sidebar, **{plain_md(model_name(variant))}**, brings its own: its tokenizer.json "
       f"({tok.n_vocab:,} tokens, read by the `tokenizers` library), shown on the left." if folder else "")
)
if not prompt_notices(prompt):
    st.stop()

both = tokenize_both(prompt.text, variant)
limit = len(prompt.ids) if folder else cfg.max_seq_len  # a folder's model reads at most FOLDER_MAX_TOKENS
if prompt.special_lookalike:
    typed = [(i, sp) for i, sp in tok.specials.items() if sp in prompt.text][:3]
    st.info(
        " ".join(f"`{sp.replace(BACKTICK, QUOTE)}` in your text is tokenized as **{len(tok.encode(sp))} ordinary tokens**, not as "
                 f"the special token (id {i})." for i, sp in typed)
        + " Only the program that prepares the training data (or a chat template) may insert a special token; "
        "typed text never can — otherwise anyone could inject 'end of document' into a prompt.",
        icon=":material/info:",
    )

sides = [("ours", f"{plain_md(model_name(variant))}'s tokenizer.json ({tok.n_vocab:,} tokens)" if folder else
          f"Our BPE ({cfg.vocab_size:,} tokens, trained on Shakespeare)"),
         ("cl100k", f"GPT-4's cl100k ({n_tokens_gpt4:,} tokens)")]
cols = st.columns(2, gap="large")
for (key, title), col in zip(sides, cols):
    ids, tb = both[key]["ids"], both[key]["bytes"]
    with col:
        st.markdown(f"**{title}**")
        m1, m2 = st.columns(2)
        m1.metric("tokens", f"{len(ids):,}")
        m2.metric("characters per token", f"{both['chars'] / max(1, len(ids)):.2f}")
        st.plotly_chart(boxes(tb, ids, limit), width="stretch", key=f"tok_boxes_{key}")
        if len(ids) > limit:
            st.caption(f"Boxes for the first {limit} of {len(ids):,} tokens; the counts cover the whole text.")
        if key == "ours" and folder:
            st.caption("“piece” is the vocabulary's own spelling in tokenizer.json (Ġ or ▁ for a space, <0xE2> "
                       "for a lone byte); “token” shows the same bytes as the app shows ours.")
        pieces = both[key].get("pieces") if folder else None
        st.dataframe(token_rows(tb, ids, pieces)[:limit], hide_index=True, height=260)
st.caption("␣ is a space, ↵ a newline, → a tab. `<0xE2>` is a byte that is only part of a character: a "
           "token may hold half of an emoji or a Chinese character, and the next token the rest.")

st.subheader("Replay the merges for one word" + (" (our Shakespeare BPE)" if folder else ""))
if folder:
    st.caption("The replay runs our BPE's ranks (tiktoken's format): the same algorithm your model's tokenizer "
               "ran when it was trained, with Shakespeare's merges.")
words = words_of(prompt.text)
if not words:
    st.caption("No piece of this prompt is long enough to merge (each is a single byte).")
    replay, word = [], None
else:
    default = max(words[:40], key=lambda w: len(w.encode("utf-8")))
    url_choice("tok_word", words, default)
    word = st.selectbox("Word (a piece of the pre-tokenizer's split)", words, key="tok_word",
                        format_func=lambda w: bytes_label(w.encode("utf-8")))
    ranks = shipped_ranks()
    steps = replay_merges(ranks, word.encode("utf-8"))
    merged_at = merge_positions(steps)
    st.plotly_chart(merge_steps_figure([[bytes_label(p) for p in s] for s in steps], merged_at),
                    width="stretch", key="tok_replay")
    replay = [{"step": k, "merged": f"{bytes_label(s[i])}", "from": f"{bytes_label(steps[k - 1][i])} + "
               f"{bytes_label(steps[k - 1][i + 1])}", "rank (= token id)": ranks[s[i]], "pieces": len(s)}
              for k, (s, i) in enumerate(zip(steps, merged_at)) if i is not None]
    final_ids = encode(word)
    replay_ids = [ranks[p] for p in steps[-1]]
    agrees = ("exactly what the real encoder (tiktoken) produces for this piece" if replay_ids == final_ids else
              f"but the real encoder (tiktoken) produces {final_ids} for this piece")  # checked, not assumed
    st.markdown(
        f"Start from the {len(steps[0])} bytes; at each step merge the adjacent pair whose merged bytes have the "
        f"**lowest rank** (the merge learned earliest). No pair left in the vocabulary → stop. "
        f"{len(steps) - 1} merge(s) give {len(steps[-1])} token(s): ids {replay_ids}, {agrees}."
    )
    if replay:
        st.dataframe(replay, hide_index=True)
sync_url("tok_word")

c1, c2 = st.columns(2)
with c1:
    download_json({
        "characters": both["chars"],
        "model": model_name(variant),
        "ours": {"ids": both["ours"]["ids"], "tokens": [bytes_label(b) for b in both["ours"]["bytes"]],
                 "bytes_hex": [b.hex() for b in both["ours"]["bytes"]], "pieces": both["ours"]["pieces"]},
        "cl100k": {"ids": both["cl100k"]["ids"], "tokens": [bytes_label(b) for b in both["cl100k"]["bytes"]],
                   "bytes_hex": [b.hex() for b in both["cl100k"]["bytes"]]},
        "replay": {"word": word, "merges": replay},
    }, "tokenization.json")
with c2:
    download_csv(token_rows(both["ours"]["bytes"], both["ours"]["ids"], both["ours"]["pieces"] if folder else None),
                 f"tokens_{file_name(variant)}.csv" if folder else "tokens_ours.csv")
