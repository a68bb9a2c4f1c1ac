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

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas  # noqa: F401  (see below)
import plotly.graph_objects  # noqa: F401
import plotly.subplots  # noqa: F401
import pyarrow  # noqa: F401
import streamlit as st

from model.net.checkpoints import DEFAULT_VARIANT, VARIANT_BLURBS, VARIANTS, available_variants, variant_config

# pandas, pyarrow (st.dataframe) and plotly are imported here, once, before any page runs. Left to the pages,
# on a fresh server one session's st.dataframe imports pandas while another builds a Plotly figure, whose
# narwhals checks look pandas up in sys.modules without the import lock and find it half-initialised:
# "partially initialized module 'pandas' has no attribute 'Series'", a traceback for an early visitor.
# tests/test_load.py starts 20 sessions at once.

DEFAULT_PROMPT = "ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
MAX_PROMPT_CHARS = 20_000  # the text box refuses more; tokens beyond the model's context are cut with a notice


# --------------------------------------------------------------------------------------------------------
# The shell
# --------------------------------------------------------------------------------------------------------


def require_shell() -> None:
    """Make sure this page runs inside app.py (sidebar, shared prompt), even on a fresh server's first deep link.

    Streamlit 1.67 decides per process whether an app is a legacy multipage app: if a folder named `pages/`
    sits beside the main script, it starts in that mode, and a visitor whose *first* request is a deep link
    (`/attention?prompt=…`) gets `pages/attention.py` run on its own — no app.py, so no sidebar, no variant,
    the link's prompt ignored. The first `st.navigation` call switches the mode off for good, i.e. once
    somebody has opened the home page. AppTest re-enters the mode on every run.

    Our layout keeps `pages/` (one file per concept), so every page calls this first. In the legacy mode it
    runs app.py right here — its `st.navigation` switches the mode off and routes to this same page (same
    query string), which then renders inside the shell — and stops this outer copy. No rerun: a button
    click or a widget change in this run reaches the page as usual. Outside that mode it does nothing.
    Streamlit is pinned (requirements.txt); tests/test_browser.py::test_deep_link_on_a_fresh_server and the
    AppTest sidebar test fail if a new version changes this.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        path, code = _shell_code()
        exec(code, {"__name__": "__main__", "__file__": path})  # noqa: S102  (our own app.py, as Streamlit runs it)
        st.stop()


_SHELL_LOCK = threading.Lock()
_SHELL: list = []


def _shell_code() -> tuple[str, object]:
    """app.py compiled once per process, under a lock: first visitors may arrive together (Streamlit's own
    script cache compiles each page once for the same reason)."""
    with _SHELL_LOCK:
        if not _SHELL:
            path = str(Path(__file__).with_name("app.py"))
            with open(path, encoding="utf-8") as f:
                _SHELL.append((path, compile(f.read(), path, "exec")))
        return _SHELL[0]


# --------------------------------------------------------------------------------------------------------
# Model and traces (cached, shared, read-only)
# --------------------------------------------------------------------------------------------------------


def _torch():
    """torch, imported on first use rather than with this module: the home page's first chart needs no model,
    and on a fresh server importing torch is a second of CPU the first visitor would otherwise wait for.

    One thread per forward pass: the models are tiny (a 256-token forward is ~20 ms on one core) and each
    browser session runs in its own thread. With PyTorch's default of one OpenMP thread per core, concurrent
    sessions oversubscribe the cores and spin-wait on each other (on a busy 2-core machine a forward went from
    0.17 s to 3 s). Concurrency comes from the sessions, not from inside one matmul."""
    import torch

    torch.set_num_threads(1)  # applies to every thread, including the sessions' script threads
    return torch


def load_model(variant: str):
    """The trained variant, or — if its checkpoint is not in this checkout, or cannot be read — seeded random
    weights (`trained_notice` says which, and why)."""
    if variant in available_variants():
        try:
            return _trained_model(variant)
        except ValueError:  # truncated, corrupted, or half-written by a training run: see checkpoint_problem
            pass
    return _random_model(variant)


@st.cache_resource(show_spinner="Loading the model…")
def _trained_model(variant: str):
    # A failed load raises, and st.cache_resource does not keep exceptions: the next rerun tries the file again.
    from model.net.checkpoints import load_variant

    _torch()
    return load_variant(variant)


@st.cache_resource(show_spinner=False)
def _random_model(variant: str):
    from model.net.transformer import Transformer

    _torch().manual_seed(0)
    return Transformer(variant_config(variant)).eval().requires_grad_(False)


def checkpoint_problem(variant: str) -> Optional[str]:
    """Why the variant's checkpoint, present in this checkout, cannot be loaded (None when it can, or is absent)."""
    if variant not in available_variants():
        return None
    try:
        _trained_model(variant)
        return None
    except ValueError as e:
        return str(e)


def cached_figure(build: Callable, *args, **kwargs):
    """`build(*args, **kwargs)` for a viz function (pure: arrays and labels in, a figure out), built once per
    distinct arguments and shared by every rerun and session — st.plotly_chart only reads a figure. For figures
    that do not depend on the widget just changed: Plotly's validation costs 0.05–0.2 s per many-panel figure,
    which a rerun should not pay again. Arguments are hashed by value, so keep them small (not whole traces)."""
    return _cached_figure(f"{build.__module__}.{build.__qualname__}", build, args, kwargs)


@st.cache_resource(show_spinner=False, max_entries=256)
def _cached_figure(name: str, _build: Callable, args: tuple, kwargs: dict):
    return _build(*args, **kwargs)  # `_build` is not hashed (leading underscore); `name` stands for it


def is_trained(variant: str) -> bool:
    """Its checkpoint is in this checkout (whether it loads is `checkpoint_problem`, which reads the file)."""
    return variant in available_variants()


@st.cache_resource(show_spinner=False)
def tokenizer():
    from model.text.tokenizer import load_tokenizer

    return load_tokenizer()


@dataclass(frozen=True)
class Prompt:
    text: str  # what the user typed (never rendered as HTML)
    ids: tuple[int, ...]  # token ids fed to the model (cut to the context)
    labels: tuple[str, ...]  # display label of each token (visible whitespace, honest partial bytes)
    n_total: int  # tokens before cutting
    special_lookalike: bool  # the text contains something like <|endoftext|>, tokenized as plain text
    repaired: bool = False  # the typed text held invalid characters (lone surrogates), replaced by U+FFFD

    @property
    def truncated(self) -> bool:
        return self.n_total > len(self.ids)


@st.cache_data(show_spinner=False, max_entries=256)
def tokenize_prompt(text: str, max_tokens: int) -> Prompt:
    from model.text.tokenizer import contains_special_lookalike, encode, token_label

    ids = encode(text)
    kept = ids[:max_tokens]
    return Prompt(text, tuple(kept), tuple(token_label(i) for i in kept), len(ids), contains_special_lookalike(text))


@st.cache_resource(show_spinner="Running the model…", max_entries=32)
def trace_prompt(variant: str, ids: tuple[int, ...]):
    """Every hook point of one forward pass, for (variant, ids). Shared and cached: treat as read-only."""
    from model.net.trace import run_with_trace
    from model.text.tokenizer import token_label

    return run_with_trace(load_model(variant), list(ids), tokens=[token_label(i) for i in ids])


# --------------------------------------------------------------------------------------------------------
# The sidebar's shared choices
# --------------------------------------------------------------------------------------------------------


def current_variant() -> str:
    v = st.session_state.get("variant", DEFAULT_VARIANT)
    return v if v in VARIANTS else DEFAULT_VARIANT


def current_prompt() -> Prompt:
    from model.text.tokenizer import sanitise

    cfg = variant_config(current_variant())
    raw = st.session_state.get("prompt", DEFAULT_PROMPT)
    raw = raw if isinstance(raw, str) else ""
    text = sanitise(raw)  # before the cache: st.cache_data hashes the text as UTF-8, which a lone surrogate breaks
    p = tokenize_prompt(text, cfg.max_seq_len)
    return dataclasses.replace(p, repaired=True) if text != raw else p


def prompt_notices(p: Prompt) -> bool:
    """Show the notices a prompt needs; return False when there is nothing to run the model on."""
    if p.repaired:
        st.warning("Your text held characters that are not valid Unicode (lone surrogates); each was replaced "
                   "by � (U+FFFD) before tokenizing.", icon=":material/healing:")
    if not p.ids:
        st.info("Type a prompt in the sidebar to see what the model does with it.", icon=":material/edit_note:")
        return False
    if not p.text.strip():
        st.info(f"Your prompt is only whitespace: the model reads it as {len(p.ids)} token(s) of spaces, tabs "
                "or newlines (shown as ␣ → ↵).", icon=":material/space_bar:")
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
    problem = checkpoint_problem(variant)
    if problem:
        st.error(f"The checkpoint of **{variant}** cannot be loaded, so this shows seeded random weights "
                 f"(patterns and predictions are meaningless): {plain_md(problem, 300)}", icon=":material/error:")
    elif not is_trained(variant):
        st.warning(
            f"No trained checkpoint for **{variant}** is in this checkout: showing seeded random weights, "
            "so patterns and predictions are meaningless.",
            icon=":material/warning:",
        )


# --------------------------------------------------------------------------------------------------------
# URL state: read once per session, write back after each run
# --------------------------------------------------------------------------------------------------------


_MD_SPECIAL = set("\\`*_[]<>$~|#{}!:")


def plain_md(text: str, limit: int = 60) -> str:
    """`text` as literal Markdown (its `*`, `[`, `<`, `$`, `:`… backslash-escaped), cut to `limit` characters:
    for messages that quote what a user typed or put in a link."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def _url_notice(key: str, raw: str, used: str) -> None:
    st.warning(f"The link's {plain_md(key)}={plain_md(raw)} cannot be used here; showing {plain_md(used)} instead.",
               icon=":material/link_off:")


def _from_url(key: str, parse: Callable[[str], object], default):
    """Read `key` from the URL once per session. A value `parse` rejects (ValueError) falls back to `default`
    with a notice; `parse` may itself adjust a value (clamp, cut) and say so with `_url_notice`."""
    if key not in st.session_state:
        raw = st.query_params.get(key)
        value = default
        if raw is not None:
            try:
                value = parse(raw)
            except (ValueError, TypeError, OverflowError):
                value = default
                _url_notice(key, raw, str(default))
        st.session_state[key] = value
    return st.session_state[key]


def url_int(key: str, default: int, lo: int, hi: int) -> int:
    """An int from the URL, clamped to [lo, hi]; the session_state key is `key` (use it as the widget key)."""

    def parse(s: str) -> int:
        v = int(s)  # "1.5", "1e3", "abc" and 5,000-digit numbers raise ValueError
        if not lo <= v <= hi:
            _url_notice(key, s, str(min(hi, max(lo, v))))
        return min(hi, max(lo, v))

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
    def parse(s: str) -> str:
        if len(s) > max_chars:
            st.warning(f"The link's {plain_md(key)} is {len(s):,} characters; only the first {max_chars:,} are used.",
                       icon=":material/content_cut:")
        return s[:max_chars]

    return _from_url(key, parse, default)


def repair_text(key: str) -> None:
    """Call before drawing the text widget `key`: lone surrogates in its value (no browser sends them, but the
    session state API can hold them) cannot be encoded for the widget, so they become U+FFFD, with a notice."""
    from model.text.tokenizer import sanitise

    v = st.session_state.get(key)
    if isinstance(v, str) and sanitise(v) != v:
        st.session_state[key] = sanitise(v)
        st.warning("The text held characters that are not valid Unicode (lone surrogates); each was replaced "
                   "by � (U+FFFD).", icon=":material/healing:")


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
