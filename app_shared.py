"""What every page shares: the shell (menu and sidebar), the loaded model, cached traces, the sidebar's choices,
URL state, Markdown escaping, downloads.

The model is loaded once per variant with `st.cache_resource` and never mutated: one object serves every
browser session. Traces are cached per (variant, prompt) and shared by reference — copying tens of MB of
activations on every rerun (what `st.cache_data` would do) is the slowest thing a page could do — so their
arrays are made read-only: a page that writes into one gets a ValueError instead of corrupting every other
student's view.

Memory is bounded in bytes, not in entries (a 256-token trace is ~29 MiB, a 20-token one ~1.3 MiB): the trace
cache and the figure cache are `BoundedCache`s (LRU, `APP_TRACE_CACHE_MIB` / `APP_FIGURE_CACHE_MIB`), and what one
session keeps in `st.session_state` is held under `APP_SESSION_STATE_MIB` by `run_shell`. Under a lecture hall's
load, `run_shell` lets at most `APP_MAX_CONCURRENT_RUNS` pages compute at once; the others see a "busy" notice
with their place in the queue (`RunGate`), and after `APP_BUSY_TIMEOUT_S` a "try again" button, never a hung page.

Page state that a teacher may want to share (layer, head, word, …) lives in the URL's query parameters:
`url_int` / `url_choice` / `url_text` read a value once per session from the URL (validated, with a
fallback) and `sync_url` writes the current value back after the widget ran.

A variant whose checkpoint is missing or unreadable is an error on the page (`require_model`), never replaced
by other weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import string
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

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
# The shell: menu, sidebar, and the chosen page run inside them
# --------------------------------------------------------------------------------------------------------

# (file relative to this one, title, icon, what am I looking at): the app's menu, in order. Tests import it.
PAGES = [
    ("pages/home.py", "The whole path", ":material/route:",
     "One prompt's trip through the model, stage by stage, with the live tensor shapes."),
    ("pages/tokenization.py", "Tokenization", ":material/text_fields:",
     "How text becomes token ids: our Shakespeare BPE beside GPT-4's, and the merges that build a word."),
    ("pages/embeddings.py", "Embeddings", ":material/scatter_plot:",
     "The vector each token starts as, where it sits among the vocabulary, and how position gets in."),
    ("pages/attention.py", "Attention", ":material/grid_view:",
     "Every head's attention pattern, one head zoomed with its raw scores, and what each head seems to do."),
    ("pages/logit_lens.py", "Layer by layer", ":material/layers:",
     "The logit lens: what the model would predict if it stopped after each block."),
    ("pages/generation.py", "Generation", ":material/play_arrow:",
     "One click, one decode step: the distribution, the sampling choice and the KV cache growing."),
    ("pages/decoding.py", "Decoding strategies", ":material/account_tree:",
     "Beam search as a tree (the KV cache reordered each step), and speculative decoding with a small draft."),
    ("pages/rope.py", "Positions (RoPE)", ":material/360:",
     "RoPE's rotations on the model's own queries and keys, and what the other variants use instead."),
    ("pages/compare.py", "Compare variants", ":material/compare:",
     "MHA vs GQA vs MQA and five positional encodings, measured on models trained alike."),
    ("pages/accounting.py", "Parameters, FLOPs, memory", ":material/calculate:",
     "Exact counts for our model or any Llama/Mistral/Qwen2/Gemma/GPT-2 config, checked against PyTorch."),
    ("pages/quantization.py", "Quantization", ":material/compress:",
     "Our model at int8 and int4: the grid each weight is rounded to, what it costs in loss, what it saves."),
    ("pages/inference.py", "Inside fast inference", ":material/speed:",
     "FlashAttention's tiles on your prompt, KV-cache memory (sliding window, paging), prefill vs decode on a roofline."),
]
HOME = "pages/home.py"
_ROOT = Path(__file__).resolve().parent

# True while `run_shell` runs the chosen page. A ContextVar, so it belongs to this script run's thread (each
# browser session runs in its own), and it is reset when the page returns, stops or reruns.
_IN_SHELL: ContextVar[bool] = ContextVar("in_shell", default=False)


def listed_pages() -> list[tuple[str, str, str, str]]:
    """The PAGES entries whose file exists (a checkout may leave a page out; the menu then leaves it out too)."""
    return [p for p in PAGES if (_ROOT / p[0]).is_file()]


def run_shell() -> None:
    """The app around every page: page config, the menu (`st.navigation` over PAGES), the sidebar's shared
    choices (model variant and prompt, mirrored into the URL) with one line on what the page shows — then the
    page the URL asks for, run inside all that. app.py is just this call."""
    st.set_page_config(page_title="Transformer internals, live", page_icon=":material/hub:", layout="wide")
    pages = [st.Page(str(_ROOT / f), title=t, icon=i, default=(f == HOME)) for f, t, i, _ in listed_pages()]
    pg = st.navigation(pages)
    blurbs = {t: b for _, t, _, b in PAGES}
    with st.sidebar:
        url_choice("variant", list(VARIANTS), DEFAULT_VARIANT)
        st.selectbox("Model variant", list(VARIANTS), key="variant", format_func=variant_label)
        url_text("prompt", DEFAULT_PROMPT, MAX_PROMPT_CHARS)
        repair_text("prompt")
        st.text_area("Prompt", key="prompt", height=140, max_chars=MAX_PROMPT_CHARS,
                     help="Shared by every page. Plain text: anything you type is shown as text, never as HTML.")
        st.caption(f":material/visibility: **What am I looking at?** {blurbs.get(pg.title, '')}")
        sync_url("variant", "prompt")
    # Bound what this session stores before the page runs, not after: the buttons' callbacks (run before this
    # script) still found what the last run left them, and the page rebuilds whatever was dropped.
    if bound_session_state():
        st.toast(f"This session's stored history passed {SESSION_STATE_BYTES // _MIB} MiB, so its largest part "
                 "was cleared: a generation starts over from its prompt.", icon=":material/delete_sweep:")
    inside = _IN_SHELL.set(True)
    try:
        with admitted():  # a lecture hall at once: a few pages compute, the rest see "busy" (RunGate)
            pg.run()
    finally:
        _IN_SHELL.reset(inside)


def require_shell() -> None:
    """Every page's first call: make sure the page runs inside `run_shell` (sidebar, shared prompt, menu).

    Why a page can find itself outside: with a folder named `pages/` beside app.py, Streamlit starts in its
    legacy multipage mode, and a fresh server whose *first* request is a deep link (`/attention?prompt=…`)
    runs `pages/attention.py` on its own — no app.py, so no sidebar, and the link's prompt ignored. The first
    `st.navigation` call ends that mode for good; AppTest re-enters it on every run. Outside the shell, this
    runs the shell right here: its `st.navigation` routes to this same page (same URL), which then runs inside
    it, and the outer copy stops. No rerun, so a click or widget change in this run reaches the page as usual.
    Inside the shell it does nothing. tests/test_browser.py::test_deep_link_on_a_fresh_server checks it.
    """
    if not _IN_SHELL.get():
        run_shell()
        st.stop()


# --------------------------------------------------------------------------------------------------------
# Bounds: memory in bytes, one session's state, and how many pages compute at once
# --------------------------------------------------------------------------------------------------------


def _env_number(name: str, default: float, lo: float) -> float:
    """A positive number from the environment (a deployment's knob), else `default`; junk falls back too."""
    try:
        v = float(os.environ.get(name, default))
    except ValueError:
        return default
    return v if v >= lo else default


_MIB = 2**20
# A trace is ~1.3 MiB for a 20-token prompt, ~29 MiB at the full 256 tokens; recomputing one is a 20–200 ms
# forward pass, so the cache only needs to hold the traces of the students active right now.
TRACE_CACHE_BYTES = int(_env_number("APP_TRACE_CACHE_MIB", 128, 1) * _MIB)
FIGURE_CACHE_BYTES = int(_env_number("APP_FIGURE_CACHE_MIB", 64, 1) * _MIB)
# One student's stored state: a Generation run to the full 256-token context is 6–7 MiB (logits and attention
# rows per step, the KV cache); the sliding-window variant has no such end, and stops at this bound instead.
SESSION_STATE_BYTES = int(_env_number("APP_SESSION_STATE_MIB", 16, 1) * _MIB)
MAX_CONCURRENT_RUNS = int(_env_number("APP_MAX_CONCURRENT_RUNS", 3, 1))  # pages computing at once, per process
BUSY_TIMEOUT_S = _env_number("APP_BUSY_TIMEOUT_S", 90, 0)  # a queued page gives up (with a "try again") after this
BUSY_TITLE = "The server is busy"  # the notice a queued student sees (the capacity benchmark counts it)
OVERLOADED_TITLE = "The server is overloaded"


def nbytes(obj: Any, _seen: Optional[set] = None, _depth: int = 0) -> int:
    """Bytes held by `obj`, estimated: NumPy arrays and torch tensors by their buffers, containers and plain
    objects (`__dict__`, `__slots__`, dataclasses) by walking them once each (shared objects counted once), strings
    and bytes by their length, anything else 64 bytes. For budgets, not accounting: it errs low on Python's own
    overheads and never follows more than 12 levels deep."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > 12:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj.base if isinstance(obj.base, np.ndarray) else None  # a view: count its buffer once
        if base is not None:
            return nbytes(base, seen, _depth + 1)
        return int(obj.nbytes) + 112
    if isinstance(obj, (str, bytes, bytearray, memoryview)):
        return len(obj) + 49
    if obj is None or isinstance(obj, (bool, int, float, complex, np.generic)):
        return 32
    mod = type(obj).__module__
    if mod.startswith("torch") and hasattr(obj, "untyped_storage"):
        try:
            st_ = obj.untyped_storage()
            if st_.data_ptr() in seen:
                return 0
            seen.add(st_.data_ptr())
            return int(st_.nbytes()) + 112
        except (RuntimeError, TypeError):
            return int(obj.numel() * obj.element_size())
    if isinstance(obj, Mapping):
        return 64 + sum(nbytes(k, seen, _depth + 1) + nbytes(v, seen, _depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        return 56 + 8 * len(obj) + sum(nbytes(x, seen, _depth + 1) for x in obj)
    if isinstance(obj, type) or callable(obj) and not hasattr(obj, "__dict__"):
        return 64
    if mod.startswith(("torch", "streamlit")):  # a module, a runtime object: shared, not this entry's to count
        return 64
    total = 64
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        total += nbytes(d, seen, _depth + 1)
    for slot in getattr(type(obj), "__slots__", ()):
        if isinstance(slot, str) and hasattr(obj, slot):
            total += nbytes(getattr(obj, slot), seen, _depth + 1)
    return total


def _figure_nbytes(fig: Any) -> int:
    """A Plotly figure's data and layout (its arrays included), else `nbytes` of whatever the builder returned."""
    data, layout = getattr(fig, "_data", None), getattr(fig, "_layout", None)
    if isinstance(data, list) and isinstance(layout, dict):
        return nbytes((data, layout))
    return nbytes(fig)


class BoundedCache:
    """A process-wide LRU cache bounded in bytes, shared by every session's thread.

        cache = BoundedCache("traces", 256 * 2**20, sizeof=nbytes)
        value = cache.get(key, lambda: compute())

    Each key is computed once at a time: concurrent callers of a missing key wait for the first one's result
    (a lecture hall opening the same link computes the default prompt's trace once). If that computation
    raises, the exception goes to its caller and the next waiter computes instead. After an insert, least
    recently used entries are evicted until the total is within `max_bytes`; an entry larger than the whole
    budget is returned but not kept. `stats()` says what it holds and did."""

    def __init__(self, name: str, max_bytes: int, sizeof: Callable[[Any], int] = nbytes) -> None:
        self.name, self.max_bytes, self._sizeof = name, int(max_bytes), sizeof
        self._lock = threading.Lock()
        self._data: "OrderedDict[Any, tuple[Any, int]]" = OrderedDict()
        self._pending: dict[Any, threading.Event] = {}
        self.bytes = 0
        self.hits = self.misses = self.evictions = self.too_big = 0

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        while True:
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                    self.hits += 1
                    return self._data[key][0]
                pending = self._pending.get(key)
                mine = pending is None
                if mine:
                    pending = self._pending[key] = threading.Event()
                    self.misses += 1
            if not mine:
                pending.wait()
                continue  # stored now (a hit), or its computation failed and this caller tries
            try:
                value = compute()
                size = int(self._sizeof(value))
                with self._lock:
                    self._store(key, value, size)
                return value
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                pending.set()

    def _store(self, key: Any, value: Any, size: int) -> None:
        if size > self.max_bytes:
            self.too_big += 1
            return
        self._data[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, s) = self._data.popitem(last=False)
            self.bytes -= s
            self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict:
        with self._lock:
            return {"name": self.name, "entries": len(self._data), "bytes": self.bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions, "too_big": self.too_big}


def value_digest(*values: Any) -> str:
    """A digest of values by content (arrays by dtype, shape and bytes; containers element by element; anything
    else pickled): the figure cache's key, so equal arguments share one figure whoever passed them."""
    h = hashlib.blake2b(digest_size=20)

    def feed(x: Any, depth: int = 0) -> None:
        if depth > 20:
            raise ValueError("arguments nested too deep to hash")
        if isinstance(x, np.ndarray):
            h.update(b"A" + str(x.dtype).encode() + repr(x.shape).encode())
            h.update(np.ascontiguousarray(x).tobytes() if x.dtype != object else pickle.dumps(x.tolist()))
        elif isinstance(x, (str, bytes)):
            b = x.encode("utf-8", "surrogatepass") if isinstance(x, str) else x
            h.update(b"S" if isinstance(x, str) else b"B")
            h.update(len(b).to_bytes(8, "little") + b)
        elif x is None or isinstance(x, (bool, int, float, complex, np.generic)):
            h.update(b"N" + type(x).__name__.encode() + repr(x).encode() + b";")
        elif isinstance(x, Mapping):
            h.update(b"D" + len(x).to_bytes(8, "little"))
            for k, v in x.items():
                feed(k, depth + 1)
                feed(v, depth + 1)
        elif isinstance(x, (list, tuple)):
            h.update((b"L" if isinstance(x, list) else b"T") + len(x).to_bytes(8, "little"))
            for v in x:
                feed(v, depth + 1)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            h.update(b"C" + type(x).__qualname__.encode())
            feed([getattr(x, f.name) for f in dataclasses.fields(x)], depth + 1)
        else:
            h.update(b"P" + pickle.dumps(x))

    feed(values)
    return h.hexdigest()


def _in_script_run() -> bool:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is not None


class RunGate:
    """At most `slots` page runs at once in this process; the rest wait in arrival order.

    Why: every session's script runs in its own thread of one Python process, and Plotly's figure building is
    pure Python under one GIL. A hundred pages computing at once do not finish sooner than three at a time —
    each takes a hundred times longer and every student stares at a frozen page. Queued, the first ones are
    done at once and the rest see where they stand (`run_shell` draws the notice)."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, int(slots))
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self.running = 0
        self.max_waiting = 0  # the longest the queue has been (a figure for the capacity benchmark)
        self.waited = 0  # runs that had to wait

    def _try_take(self, ticket: object) -> bool:  # under self._cond
        if self.running < self.slots and self._queue and self._queue[0] is ticket:
            self._queue.popleft()
            self.running += 1
            return True
        return False

    def join(self) -> tuple[object, bool]:
        """Queue up; (ticket, True) when a slot was free at once."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            got = self._try_take(ticket)
            if not got:
                self.waited += 1
                self.max_waiting = max(self.max_waiting, len(self._queue))
            return ticket, got

    def wait(self, ticket: object, timeout: float) -> bool:
        """Wait up to `timeout` s for the ticket's turn; True once it holds a slot."""
        with self._cond:
            return self._cond.wait_for(lambda: self._try_take(ticket), timeout=timeout)

    def place(self, ticket: object) -> int:
        """How many queued runs are ahead of this ticket."""
        with self._cond:
            try:
                return self._queue.index(ticket)
            except ValueError:
                return 0

    def leave(self, ticket: object) -> None:
        """Give up a place in the queue (a rerun, a closed tab, a timeout)."""
        with self._cond:
            try:
                self._queue.remove(ticket)
            except ValueError:
                pass
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self.running -= 1
            self._cond.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold a slot without any notice (for tests and tools)."""
        ticket, got = self.join()
        try:
            while not got:
                got = self.wait(ticket, 1.0)
        except BaseException:
            self.leave(ticket)
            raise
        try:
            yield
        finally:
            self.release()


GATE = RunGate(MAX_CONCURRENT_RUNS)


@contextmanager
def admitted(gate: Optional[RunGate] = None, timeout_s: Optional[float] = None) -> Iterator[None]:
    """Run the block once `gate` has a slot for this session. While queued the student sees a "busy" notice
    with their place, refreshed every second (each refresh is also where Streamlit can stop a run the student
    has left or replaced); after `timeout_s` they get an "overloaded" notice with a button to try again, and
    the run stops there."""
    gate = GATE if gate is None else gate
    timeout_s = BUSY_TIMEOUT_S if timeout_s is None else timeout_s
    ticket, got = gate.join()
    if not got:
        box = st.empty()
        t0 = time.monotonic()
        try:
            while not got:
                ahead = gate.place(ticket)
                waited = time.monotonic() - t0
                if waited > timeout_s:
                    gate.leave(ticket)
                    with box.container():
                        st.warning(f"**{OVERLOADED_TITLE}.** This page waited {waited:.0f} s behind other students' "
                                   "pages and was not computed. Try again in a moment — your settings are kept.",
                                   icon=":material/error:")
                        st.button("Try again", key="app_busy_retry", icon=":material/refresh:")
                    st.stop()
                box.info(f"**{BUSY_TITLE}:** {gate.running} pages are being computed"
                         + (f" and {ahead} {'is' if ahead == 1 else 'are'} ahead of yours" if ahead else "")
                         + f" (waiting {waited:.0f} s). Yours appears here by itself — no need to reload.",
                         icon=":material/hourglass_top:")
                got = gate.wait(ticket, 1.0)
        except BaseException:
            if not got:
                gate.leave(ticket)
            else:
                gate.release()
            raise
        box.empty()
    try:
        yield
    finally:
        gate.release()


def _is_plain(v: Any) -> bool:
    """Widget-sized values (numbers, text, short tuples of them): never trimmed from a session."""
    if v is None or isinstance(v, (bool, int, float, str, np.generic)):
        return True
    return isinstance(v, (tuple, list)) and len(v) <= 64 and all(
        x is None or isinstance(x, (bool, int, float, str)) for x in v)


def bound_session_state(state=None, limit: Optional[int] = None) -> list[str]:
    """Keep one session's stored state within `limit` bytes (SESSION_STATE_BYTES): while it is over, drop the
    largest entry that is not a widget-sized value (a generation's steps, a quick comparison's results …).
    Pages rebuild what they find missing — the Generation page starts over from its prompt — so this costs the
    student that history, never an error. `run_shell` calls it at the start of each run, so a session holds at
    most the limit plus what one interaction adds (Run N: 64 steps). Returns the keys dropped."""
    state = st.session_state if state is None else state
    limit = SESSION_STATE_BYTES if limit is None else limit
    sizes = {}
    for k in list(state.keys()):
        try:
            v = state[k]
        except KeyError:
            continue
        if not _is_plain(v):
            sizes[k] = nbytes(v)
    total, dropped = sum(sizes.values()), []
    for k in sorted(sizes, key=sizes.get, reverse=True):
        if total <= limit:
            break
        del state[k]
        total -= sizes[k]
        dropped.append(k)
    return dropped


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
    """The trained variant, loaded once per process and shared by every session (never mutated).

    Raises ValueError when its checkpoint is not in this checkout, or is truncated, corrupted or half-written
    by a training run (the message says which file). Nothing else ever stands in for it: a page shows that
    message (`require_model`) instead of drawing some other weights under this variant's name."""
    if variant not in available_variants():
        raise ValueError(f"no checkpoint for {variant} in this checkout (checkpoints/{variant}/model.safetensors)")
    return _trained_model(variant)


@st.cache_resource(show_spinner="Loading the model…")
def _trained_model(variant: str):
    # A failed load raises, and st.cache_resource does not keep exceptions: the next rerun tries the file again.
    from model.net.checkpoints import load_variant

    _torch()
    return load_variant(variant)


@st.cache_resource(show_spinner=False)
def shape_model(variant: str):
    """A module with the variant's shapes and freshly initialised weights: no checkpoint is read. Only for what
    depends on shapes alone — parameter counts, FLOPs, cache bytes (the accounting page's live check); it never
    predicts anything on a page."""
    from model.net.transformer import Transformer

    _torch()
    return Transformer(variant_config(variant)).eval().requires_grad_(False)


def checkpoint_problem(variant: str) -> Optional[str]:
    """Why the variant's trained weights cannot be used — missing from this checkout, or unreadable — or None."""
    try:
        load_model(variant)
        return None
    except ValueError as e:
        return str(e)


def require_model(variant: str) -> None:
    """Stop the page with a clear error when the variant's checkpoint is missing or cannot be loaded."""
    problem = checkpoint_problem(variant)
    if problem:
        model_error(variant, problem)
        st.stop()


def model_error(variant: str, problem: str, consequence: str = "nothing is shown that would need its weights") -> None:
    """The error a page shows for a variant whose checkpoint is missing or unreadable (`checkpoint_problem`)."""
    st.error(f"The trained **{variant}** model cannot be loaded, so {consequence}: {plain_md(problem, 300)}",
             icon=":material/error:")


def cached_figure(build: Callable, *args, **kwargs):
    """`build(*args, **kwargs)` for a viz function (pure: arrays and labels in, a figure out), built once per
    distinct arguments and shared by every rerun and session — st.plotly_chart only reads a figure. For figures
    that do not depend on the widget just changed: Plotly's validation costs 0.05–0.2 s per many-panel figure,
    which a rerun should not pay again. Arguments are hashed by value, so keep them small (not whole traces).
    The cache (`FIGURES`) is bounded in bytes: APP_FIGURE_CACHE_MIB."""
    name = f"{build.__module__}.{build.__qualname__}"
    return FIGURES.get((name, value_digest(args, kwargs)), lambda: build(*args, **kwargs))


FIGURES = BoundedCache("figures", FIGURE_CACHE_BYTES, sizeof=_figure_nbytes)


def is_trained(variant: str) -> bool:
    """Its checkpoint is in this checkout (whether it loads is `checkpoint_problem`, which reads the file)."""
    return variant in available_variants()


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


class ReadOnlyMapping(Mapping):
    """A dict's read-only face (a shared trace's hook name -> array): lookups, `in`, iteration, `.items()`."""

    def __init__(self, d: dict) -> None:
        self._d = d

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"ReadOnlyMapping({list(self._d)!r})"


def freeze_trace(tr):
    """The trace with every array read-only (writing raises ValueError), its hook mapping read-only and its
    token labels a tuple: what the shared cache hands to every session."""
    for a in [tr.ids, tr.positions, tr.logits, *tr.acts.values()]:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return dataclasses.replace(tr, acts=ReadOnlyMapping(dict(tr.acts)), tokens=tuple(tr.tokens))


TRACES = BoundedCache("traces", TRACE_CACHE_BYTES)


def trace_prompt(variant: str, ids: tuple[int, ...]):
    """Every hook point of one forward pass, for (variant, ids): shared by every session and cached (`TRACES`,
    bounded in bytes: APP_TRACE_CACHE_MIB), read-only (`freeze_trace`). Keyed by the loaded model object too,
    so a reloaded checkpoint never answers with the old weights' trace."""
    from model.net.trace import run_with_trace
    from model.text.tokenizer import token_label

    ids = tuple(int(i) for i in ids)
    model = load_model(variant)

    def compute():
        def run():
            return freeze_trace(run_with_trace(model, list(ids), tokens=[token_label(i) for i in ids]))

        if _in_script_run():
            with st.spinner("Running the model…"):
                return run()
        return run()

    return TRACES.get((variant, ids, model), compute)


trace_prompt.clear = TRACES.clear  # the st.cache_resource API this replaced


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


# --------------------------------------------------------------------------------------------------------
# URL state: read once per session, write back after each run
# --------------------------------------------------------------------------------------------------------


# Every ASCII punctuation character. CommonMark lets a backslash escape any of them (and only them) and then
# drops the backslash, so escaping them all is always safe; between them they cover everything that can start
# markup: emphasis (* _ ~), code (`), links and images ([ ] ( ) !), HTML and autolinks (< >), entities (&),
# headings, lists, quotes and tables at a line start (# - + . > |), and Streamlit's own additions — LaTeX ($),
# :emoji: / :material/icon: shortcodes and :red[coloured text] (: [ ]).
_MD_ESCAPED = frozenset(string.punctuation)


def plain_md(text: str, limit: Optional[int] = None) -> str:
    """`text` as literal Markdown, for messages that quote what a user typed or put in a link: each ASCII
    punctuation character backslash-escaped, line breaks turned into spaces (a blank line would start a new
    block), and cut to `limit` characters (with …) when given. The one Markdown escaper of the app.

    plain_md("**hi** <b>") -> "\\*\\*hi\\*\\* \\<b\\>";  plain_md("abcdef", 3) -> "abc…"
    """
    text = str(text)
    text = text if limit is None or len(text) <= limit else text[:limit] + "…"
    text = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return "".join("\\" + ch if ch in _MD_ESCAPED else ch for ch in text)


def _url_notice(key: str, raw: str, used: str) -> None:
    st.warning(f"The link's {plain_md(key, 60)}={plain_md(raw, 60)} cannot be used here; showing {plain_md(used, 60)} "
               "instead.",
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
            st.warning(f"The link's {plain_md(key, 60)} is {len(s):,} characters; only the first {max_chars:,} are used.",
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
    return VARIANT_BLURBS.get(v, v) + ("" if is_trained(v) else " (no checkpoint)")
