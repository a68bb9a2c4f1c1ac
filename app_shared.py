"""What every page shares: the loaded model, cached traces, the sidebar's choices, URL state, downloads.

The model is loaded once per variant with `st.cache_resource` and never mutated: one object serves every
browser session. Traces are cached per (variant, prompt) with `st.cache_resource` too — they are plain
read-only NumPy data, and copying tens of MB of activations on every rerun (what `st.cache_data` would do)
is the slowest thing a page could do. Pages must treat them as read-only.

Page state that a teacher may want to share (layer, head, word, …) lives in the URL's query parameters:
`url_int` / `url_choice` / `url_text` read a value once per session from the URL (validated, with a
fallback) and `sync_url` writes the current value back after the widget ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import streamlit as st

from model.checkpoints import DEFAULT_VARIANT, VARIANT_BLURBS, VARIANTS, available_variants, variant_config

DEFAULT_PROMPT = "ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
MAX_PROMPT_CHARS = 20_000  # the text box refuses more; tokens beyond the model's context are cut with a notice


# --------------------------------------------------------------------------------------------------------
# Model and traces (cached, shared, read-only)
# --------------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the model…")
def load_model(variant: str):
    """The trained variant, or — if its checkpoint is not in this checkout — seeded random weights."""
    from model.checkpoints import load_variant
    from model.model import Transformer

    if variant in available_variants():
        return load_variant(variant)
    import torch

    torch.manual_seed(0)
    return Transformer(variant_config(variant)).eval().requires_grad_(False)


def is_trained(variant: str) -> bool:
    return variant in available_variants()


@st.cache_resource(show_spinner=False)
def tokenizer():
    from model.tokenizer import load_tokenizer

    return load_tokenizer()


@dataclass(frozen=True)
class Prompt:
    text: str  # what the user typed (never rendered as HTML)
    ids: tuple[int, ...]  # token ids fed to the model (cut to the context)
    labels: tuple[str, ...]  # display label of each token (visible whitespace, honest partial bytes)
    n_total: int  # tokens before cutting
    special_lookalike: bool  # the text contains something like <|endoftext|>, tokenized as plain text

    @property
    def truncated(self) -> bool:
        return self.n_total > len(self.ids)


@st.cache_data(show_spinner=False, max_entries=256)
def tokenize_prompt(text: str, max_tokens: int) -> Prompt:
    from model.tokenizer import contains_special_lookalike, encode, token_label

    ids = encode(text)
    kept = ids[:max_tokens]
    return Prompt(text, tuple(kept), tuple(token_label(i) for i in kept), len(ids), contains_special_lookalike(text))


@st.cache_resource(show_spinner="Running the model…", max_entries=32)
def trace_prompt(variant: str, ids: tuple[int, ...]):
    """Every hook point of one forward pass, for (variant, ids). Shared and cached: treat as read-only."""
    from model.trace import run_with_trace
    from model.tokenizer import token_label

    return run_with_trace(load_model(variant), list(ids), tokens=[token_label(i) for i in ids])


# --------------------------------------------------------------------------------------------------------
# The sidebar's shared choices
# --------------------------------------------------------------------------------------------------------


def current_variant() -> str:
    v = st.session_state.get("variant", DEFAULT_VARIANT)
    return v if v in VARIANTS else DEFAULT_VARIANT


def current_prompt() -> Prompt:
    cfg = variant_config(current_variant())
    return tokenize_prompt(st.session_state.get("prompt", DEFAULT_PROMPT), cfg.max_seq_len)


def prompt_notices(p: Prompt) -> bool:
    """Show the notices a prompt needs; return False when there is nothing to run the model on."""
    if not p.ids:
        st.info("Type a prompt in the sidebar to see what the model does with it.", icon=":material/edit_note:")
        return False
    if p.truncated:
        st.warning(
            f"The prompt is {p.n_total} tokens; this model's context is {len(p.ids)}. "
            f"Only the first {len(p.ids)} tokens are shown.",
            icon=":material/content_cut:",
        )
    if p.special_lookalike:
        st.caption(
            ":material/info: Your text contains something that looks like a special token "
            "(`<|endoftext|>`). It is tokenized as plain text, never as the special token."
        )
    return True


def trained_notice(variant: str) -> None:
    if not is_trained(variant):
        st.warning(
            f"No trained checkpoint for **{variant}** is in this checkout: showing seeded random weights, "
            "so patterns and predictions are meaningless.",
            icon=":material/warning:",
        )


# --------------------------------------------------------------------------------------------------------
# URL state: read once per session, write back after each run
# --------------------------------------------------------------------------------------------------------


def _from_url(key: str, parse: Callable[[str], object], default):
    if key not in st.session_state:
        raw = st.query_params.get(key)
        value = default
        if raw is not None:
            try:
                value = parse(raw)
            except (ValueError, TypeError):
                value = default
        st.session_state[key] = value
    return st.session_state[key]


def url_int(key: str, default: int, lo: int, hi: int) -> int:
    """An int from the URL, clamped to [lo, hi]; the session_state key is `key` (use it as the widget key)."""

    def parse(s: str) -> int:
        return min(hi, max(lo, int(s)))

    v = _from_url(key, parse, default)
    if not isinstance(v, int) or not lo <= v <= hi:  # e.g. a layer index from a deeper variant
        st.session_state[key] = v = min(hi, max(lo, int(v) if isinstance(v, (int, float)) else default))
    return v


def url_choice(key: str, options: list, default):
    def parse(s: str):
        if s not in [str(o) for o in options]:
            raise ValueError(s)
        return options[[str(o) for o in options].index(s)]

    v = _from_url(key, parse, default)
    if v not in options:
        st.session_state[key] = v = default
    return v


def url_text(key: str, default: str, max_chars: int = 200) -> str:
    return _from_url(key, lambda s: s[:max_chars], default)


def sync_url(*keys: str) -> None:
    """Write these session_state values into the URL's query parameters, so the link reopens this view."""
    for k in keys:
        if k in st.session_state:
            v = st.session_state[k]
            if st.query_params.get(k) != str(v):
                st.query_params[k] = str(v)


# --------------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------------


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return np.where(np.isfinite(x), x, None).tolist() if x.dtype.kind == "f" else x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def download_json(data: dict, filename: str, label: str = "Download data (JSON)") -> None:
    st.download_button(
        label,
        json.dumps(_jsonable(data), indent=1),
        file_name=filename,
        mime="application/json",
        icon=":material/download:",
    )


def download_csv(rows: list[dict], filename: str, label: str = "Download table (CSV)") -> None:
    import csv
    import io

    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    st.download_button(label, buf.getvalue(), file_name=filename, mime="text/csv", icon=":material/download:")


def variant_label(v: str) -> str:
    return VARIANT_BLURBS.get(v, v) + ("" if is_trained(v) else " (untrained)")
