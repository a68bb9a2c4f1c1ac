"""What every page shares: the shell (menu and sidebar), the loaded model, cached traces, the sidebar's choices,
URL state, Markdown escaping, downloads.

The model is loaded once per variant with `st.cache_resource` and never mutated: one object serves every
browser session. Traces are cached per (variant, prompt) and shared by reference — copying tens of MB of
activations on every rerun (what `st.cache_data` would do) is the slowest thing a page could do — so their
arrays are made read-only: a page that writes into one gets a ValueError instead of corrupting every other
student's view.

Memory is bounded in bytes, not in entries (a 256-token trace is ~29 MiB, a 20-token one ~1.3 MiB): the trace
cache, the figure cache and the pages' result cache (`shared_result`) are `BoundedCache`s (LRU,
`APP_TRACE_CACHE_MIB` / `APP_FIGURE_CACHE_MIB` / `APP_RESULT_CACHE_MIB`), and what one
session keeps in `st.session_state` is held under `APP_SESSION_STATE_MIB` by `run_shell`. Under a lecture hall's
load, `run_shell` lets at most `APP_MAX_CONCURRENT_RUNS` pages compute at once; the others see a "busy" notice
with their place in the queue (`RunGate`), and after `APP_BUSY_TIMEOUT_S` a "try again" button, never a hung page.

Page state that a teacher may want to share (layer, head, word, …) lives in the URL's query parameters:
`url_int` / `url_choice` / `url_text` read a value once per session from the URL (validated, with a
fallback) and `sync_url` writes the current value back after the widget ran.

A variant whose checkpoint is missing or unreadable is an error on the page (`require_model`), never replaced
by other weights.

Bring your own model: the sidebar's model source is our shipped variants or a folder on this machine — typed, or
picked among the Hugging Face cache's snapshots (`cached_snapshots`; listed, never downloaded) — carried in the URL
as `model=PATH`. Every model function takes a model key (`current_model`): a variant's name, or `folder_key(path)`.
`model_config`, `load_model`, `tokenizer_for` and `trace_prompt` answer for either; a folder that cannot be run
(`folder_problem`: family, pickled weights, tokenizer, memory, dtype) is an error on the page (`folder_gate`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import string
import sys
import threading
import time
import types
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

# Ends in a newline: in our tokenizer ".\n" / ",\n" is one token, so a prompt that stops at "," or "." asks the
# model to continue in the middle of a token (its best guess is then a space). Four lines, 48 tokens: a count
# that matches none of the model's sizes (d_head 32, 6 heads, 2 K/V heads, 4 layers, …), so a shape reads
# unambiguously. tests/test_default_prompt.py checks the guess and the logit lens at the default position.
DEFAULT_PROMPT = ("ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
                  "Arise, fair sun, and kill the envious moon,\n")
MAX_PROMPT_CHARS = 20_000  # the text box refuses more; tokens beyond the model's context are cut with a notice


# --------------------------------------------------------------------------------------------------------
# The shell: menu, sidebar, and the chosen page run inside them
# --------------------------------------------------------------------------------------------------------

# (file relative to this one, title, icon, what am I looking at): the app's menu, in order. Tests import it.
PAGES = [
    ("pages/home.py", "The whole path", ":material/route:",
     "One prompt's trip through the model, stage by stage, with the live tensor shapes."),
    ("pages/lesson.py", "Guided lesson", ":material/school:",
     "Ten steps from text to the next token: predict what the model will do, then see what it computed."),
    ("pages/tokenization.py", "Tokenization", ":material/text_fields:",
     "How text becomes token ids: our Shakespeare BPE beside GPT-4's, and the merges that build a word."),
    ("pages/embeddings.py", "Embeddings", ":material/scatter_plot:",
     "The vector each token starts as, where it sits among the vocabulary, and how position gets in."),
    ("pages/attention.py", "Attention", ":material/grid_view:",
     "Every head's attention pattern, one head zoomed with its raw scores, and what each head seems to do."),
    ("pages/logit_lens.py", "Layer by layer", ":material/layers:",
     "The logit lens: what the model would predict if it stopped after each block."),
    ("pages/blocks.py", "Building blocks", ":material/widgets:",
     "The model's norm step by step, the residual stream, what training logged per block, and its MLP (SwiGLU, "
     "GELU or a mixture of experts) on your prompt."),
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


# Narrow screens (1024 px with the sidebar open, a phone): Streamlit cuts a metric's value or a button's label to
# "0.…" / "B…" when its column is narrower than the text. Instead the metric's value shrinks with the viewport
# and both wrap. A style-only st.html takes no room on the page.
NARROW_CSS = """<style>
[data-testid="stMetricValue"] { font-size: clamp(1.2rem, 0.6rem + 1.6vw, 2.25rem); }
[data-testid="stMetricValue"] > div, [data-testid="stMetricLabel"] div, [data-testid="stMetricLabel"] p {
  white-space: normal; overflow-wrap: anywhere; text-overflow: clip; }
button[data-testid^="stBaseButton"] div, button[data-testid^="stBaseButton"] p {
  white-space: normal; overflow-wrap: anywhere; text-overflow: clip; }
</style>"""


def listed_pages() -> list[tuple[str, str, str, str]]:
    """The PAGES entries whose file exists (a checkout may leave a page out; the menu then leaves it out too)."""
    return [p for p in PAGES if (_ROOT / p[0]).is_file()]


def run_shell() -> None:
    """The app around every page: page config, the menu (`st.navigation` over PAGES), the sidebar's shared
    choices (model variant and prompt, mirrored into the URL) with one line on what the page shows — then the
    page the URL asks for, run inside all that. app.py is just this call."""
    st.set_page_config(page_title="Transformer internals, live", page_icon=":material/hub:", layout="wide")
    st.html(NARROW_CSS)
    pages = [st.Page(str(_ROOT / f), title=t, icon=i, default=(f == HOME)) for f, t, i, _ in listed_pages()]
    pg = st.navigation(pages)
    blurbs = {t: b for _, t, _, b in PAGES}
    with st.sidebar:
        model_source_sidebar()
        url_text("prompt", DEFAULT_PROMPT, MAX_PROMPT_CHARS)
        repair_text("prompt")
        st.text_area("Prompt", key="prompt", height=140, max_chars=MAX_PROMPT_CHARS,
                     help="Shared by every page. Plain text: anything you type is shown as text, never as HTML.")
        st.caption(f":material/visibility: **What am I looking at?** {blurbs.get(pg.title, '')}")
        sync_url("prompt")
    _register_cache_stats()
    # Bound what this session stores before the page runs, not after: what a page keeps (a generation's steps)
    # grows inside the gate during its run, is bounded at the start of the next one, and is rebuilt if dropped.
    if bound_session_state():
        st.toast(f"This session's stored history passed {SESSION_STATE_BYTES // _MIB} MiB, so its largest part "
                 "was cleared: a generation starts over from its prompt.", icon=":material/delete_sweep:")
    inside = _IN_SHELL.set(True)
    try:
        with admitted():  # a lecture hall at once: a few pages compute, the rest see "busy" (RunGate)
            folder_gate(pg.title)
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
# What pages compute from traces (logit-lens tables, tiled attention, quantized copies, decoding runs, …).
RESULT_CACHE_BYTES = int(_env_number("APP_RESULT_CACHE_MIB", 128, 1) * _MIB)
# One student's stored state: a Generation run to the full 256-token context is 6–7 MiB (logits and attention
# rows per step, the KV cache); the sliding-window variant has no such end, and stops at this bound instead.
SESSION_STATE_BYTES = int(_env_number("APP_SESSION_STATE_MIB", 16, 1) * _MIB)
MAX_CONCURRENT_RUNS = int(_env_number("APP_MAX_CONCURRENT_RUNS", 3, 1))  # pages computing at once, per process
BUSY_TIMEOUT_S = _env_number("APP_BUSY_TIMEOUT_S", 90, 0)  # a queued page gives up (with a "try again") after this
BUSY_TITLE = "The server is busy"  # the notice a queued student sees (the capacity benchmark counts it)
OVERLOADED_TITLE = "The server is overloaded"


_SAMPLED_OVER, _SAMPLE = 16, 16


def nbytes(obj: Any, _seen: Optional[set] = None, _depth: int = 0) -> int:
    """Bytes held by `obj`, estimated: NumPy arrays and torch tensors by their buffers, everything else by
    `sys.getsizeof` plus what it holds — containers and plain objects (`__dict__`, `__slots__`, dataclasses)
    walked once each (shared objects counted once); functions, classes and modules count nothing (code, not
    data). A list or tuple longer than 16 items is estimated from 16 evenly spaced ones (a 224-step Generation
    history: ~2 ms, not 20). For budgets, not accounting: on a Plotly figure it comes to ~80 % of what
    tracemalloc sees the figure allocate, and it never follows more than 16 levels deep."""
    if obj is None or isinstance(obj, bool):
        return 0
    if isinstance(obj, (int, float, complex, np.generic)):
        return sys.getsizeof(obj)
    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > 16:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj.base if isinstance(obj.base, np.ndarray) else None  # a view: count its buffer once
        if base is not None:
            return nbytes(base, seen, _depth + 1)
        return int(obj.nbytes) + 112
    if isinstance(obj, (str, bytes, bytearray, memoryview)):
        return sys.getsizeof(obj)
    if isinstance(obj, (type, types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType)):
        return 0
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
        base = sys.getsizeof(obj) if isinstance(obj, dict) else 64
        return base + sum(nbytes(k, seen, _depth + 1) + nbytes(v, seen, _depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        n = len(obj)
        if n > _SAMPLED_OVER and isinstance(obj, (list, tuple)):  # a long history: evenly spaced items, scaled
            step = n / _SAMPLE
            sample = sum(nbytes(obj[int((k + 0.5) * step)], seen, _depth + 1) for k in range(_SAMPLE))
            return sys.getsizeof(obj) + int(sample * n / _SAMPLE)
        return sys.getsizeof(obj) + sum(nbytes(x, seen, _depth + 1) for x in obj)
    if mod.startswith(("torch", "streamlit")):  # a module, a runtime object: shared, not this entry's to count
        return 64
    total = sys.getsizeof(obj)
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        total += nbytes(d, seen, _depth + 1)
    for slot in getattr(type(obj), "__slots__", ()):
        if isinstance(slot, str) and hasattr(obj, slot):
            total += nbytes(getattr(obj, slot), seen, _depth + 1)
    return total


def _figure_nbytes(fig: Any) -> int:
    """A figure as held in memory: the whole Plotly object walked (its trace and layout objects, not only their
    data: those are ~2/3 of it), else `nbytes` of whatever the builder returned."""
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
    """The trained variant — or a folder's model, for a key made by `folder_key` — loaded once per process and
    shared by every session (never mutated).

    Raises ValueError when its checkpoint is not in this checkout, or is truncated, corrupted or half-written
    by a training run (the message says which file), or when a folder cannot be run (`folder_problem`). Nothing
    else ever stands in for it: a page shows that message (`require_model`) instead of drawing some other
    weights under this variant's name."""
    if is_folder(variant):
        return _folder_model_of(variant)
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
    predicts anything on a page. A folder's model has its weights already: that model is returned."""
    from model.net.transformer import Transformer

    if is_folder(variant):
        return load_model(variant)
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
    if is_folder(variant):
        st.error(f"The model in **{plain_md(model_name(variant), 120)}** cannot be used, so {consequence}: "
                 f"{plain_md(problem, 400)}", icon=":material/error:")
        return
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


def freeze(value: Any, _depth: int = 0) -> Any:
    """Every NumPy array inside `value` (through dicts, lists, tuples and dataclass/object attributes, 6 levels)
    made read-only, in place: what a shared cache hands to every session must not be writable by one of them."""
    if _depth > 6 or value is None:
        return value
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, Mapping):
        for v in value.values():
            freeze(v, _depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            freeze(v, _depth + 1)
    elif hasattr(value, "__dict__") and not type(value).__module__.startswith(("torch", "plotly", "streamlit")):
        for v in vars(value).values():
            freeze(v, _depth + 1)
    return value


def shared_result(spinner: Optional[str] = None) -> Callable:
    """Decorator for a page's cached computation: one result per distinct arguments (hashed by value), shared by
    every rerun and session, kept in `RESULTS` — bounded in bytes (APP_RESULT_CACHE_MIB), where
    `st.cache_data(max_entries=…)` bounds only a count of entries that range from kilobytes (a decoding run) to
    megabytes (a many-panel attention grid, a tiled attention run at 256 tokens).
    Results are shared by reference, so their arrays are made read-only (`freeze`); a page copies before
    writing. `spinner` is shown while a miss computes inside a page run.

        @shared_result("Quantizing every matrix…")
        def weight_errors(variant: str) -> dict: ...
    """

    def deco(fn: Callable) -> Callable:
        # The defining file and name, not fn.__module__: every page script runs as "__main__".
        name = f"{fn.__code__.co_filename}:{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            def compute():
                if spinner and _in_script_run():
                    with st.spinner(spinner):
                        return freeze(fn(*args, **kwargs))
                return freeze(fn(*args, **kwargs))

            return RESULTS.get((name, value_digest(args, kwargs)), compute)

        wrapper.clear = RESULTS.clear
        return wrapper

    return deco


RESULTS = BoundedCache("results", RESULT_CACHE_BYTES)


def is_trained(variant: str) -> bool:
    """Its checkpoint is in this checkout (whether it loads is `checkpoint_problem`, which reads the file); a
    folder's model: the folder passes every check made before loading (`folder_problem`)."""
    if is_folder(variant):
        return folder_problem(variant) is None
    return variant in available_variants()


@dataclass(frozen=True)
class Prompt:
    text: str  # what the user typed (never rendered as HTML)
    ids: tuple[int, ...]  # token ids fed to the model (cut to the context)
    labels: tuple[str, ...]  # display label of each token (visible whitespace, honest partial bytes)
    n_total: int  # tokens before cutting
    special_lookalike: bool  # the text contains something like <|endoftext|>, tokenized as plain text
    repaired: bool = False  # the typed text held invalid characters (lone surrogates), replaced by U+FFFD
    context: int = 0  # the model's context; ids are cut to min(context, the app's cap for folder models)

    @property
    def truncated(self) -> bool:
        return self.n_total > len(self.ids)


@st.cache_data(show_spinner=False, max_entries=256)
def tokenize_prompt(text: str, max_tokens: int, model: Optional[str] = None) -> Prompt:
    """The text in the tokenizer of `model` (a model key; None: ours), cut to `max_tokens`."""
    tok = tokenizer_for(model or DEFAULT_VARIANT)
    ids = tok.encode(text)
    kept = ids[:max_tokens]
    return Prompt(text, tuple(kept), tuple(tok.token_label(i) for i in kept), len(ids),
                  tok.contains_special_lookalike(text))


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


class _BoundedCacheStats:
    """The bounded caches in Streamlit's own metrics endpoint (`/_stcore/metrics`, Prometheus text):
    cache_memory_bytes{cache_type="app_bounded_cache",cache="traces"|"figures"|"results"}. The capacity benchmark's
    soak reads them; a deployment can scrape them."""

    stats_families = ("cache_memory_bytes",)

    def get_stats(self, family_names=None):
        from streamlit.runtime.stats import CacheStat

        return {"cache_memory_bytes": [CacheStat("app_bounded_cache", c.name, c.bytes) for c in (TRACES, FIGURES, RESULTS)]}


_STATS_REGISTERED = threading.Event()


def _register_cache_stats() -> None:
    """Once per server process (run_shell calls it): add `_BoundedCacheStats` to the runtime's stats manager."""
    if _STATS_REGISTERED.is_set():
        return
    _STATS_REGISTERED.set()
    try:
        from streamlit.runtime import Runtime

        if Runtime.exists():
            Runtime.instance().stats_mgr.register_provider(_BoundedCacheStats())
    except Exception:  # metrics are a convenience: never a reason for a page to fail
        pass


def trace_prompt(variant: str, ids: tuple[int, ...]):
    """Every hook point of one forward pass, for (variant, ids): shared by every session and cached (`TRACES`,
    bounded in bytes: APP_TRACE_CACHE_MIB), read-only (`freeze_trace`). Keyed by the loaded model object too,
    so a reloaded checkpoint never answers with the old weights' trace."""
    from model.net.trace import run_with_trace

    ids = tuple(int(i) for i in ids)
    model = load_model(variant)
    token_label = tokenizer_for(variant).token_label

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
    """The shipped variant chosen in the sidebar (whatever the model source; see `current_model`)."""
    v = st.session_state.get("variant", DEFAULT_VARIANT)
    return v if v in VARIANTS else DEFAULT_VARIANT


def current_model() -> str:
    """The sidebar's model as a key every model function takes: the shipped variant's name, or `folder_key` of
    the folder typed or picked (an empty path gives the bare prefix, which `folder_problem` names)."""
    if ALLOW_FOLDERS and st.session_state.get("model_source") == "folder":
        path = st.session_state.get("model")
        return folder_key(path) if isinstance(path, str) and path.strip() else FOLDER_PREFIX
    return current_variant()


def current_prompt(model: Optional[str] = None) -> Prompt:
    """The sidebar's prompt in the tokenizer of `model` (default: the sidebar's model, `current_model`)."""
    from model.text.tokenizer import sanitise

    key = current_model() if model is None else model
    cfg = model_config(key)
    limit = min(cfg.max_seq_len, FOLDER_MAX_TOKENS) if is_folder(key) else cfg.max_seq_len
    raw = st.session_state.get("prompt", DEFAULT_PROMPT)
    raw = raw if isinstance(raw, str) else ""
    text = sanitise(raw)  # before the cache: st.cache_data hashes the text as UTF-8, which a lone surrogate breaks
    p = dataclasses.replace(tokenize_prompt(text, limit, key), context=cfg.max_seq_len)
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
        why = (f"this model's context is {len(p.ids)}" if not p.context or len(p.ids) >= p.context else
               f"the app reads at most {len(p.ids)} tokens of a folder's model (its context is {p.context:,}), "
               "so that every page stays interactive")
        st.warning(
            f"The prompt is {p.n_total} tokens; {why}. Only the first {len(p.ids)} tokens are shown.",
            icon=":material/content_cut:",
        )
    if p.special_lookalike:
        st.caption(
            ":material/info: Your text contains something that looks like a special token of this model's "
            "tokenizer (such as `<|endoftext|>`). It is tokenized as plain text, never as the special token."
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


def url_float(key: str, default: float, lo: float, hi: float) -> float:
    """A finite float from the URL, clamped to [lo, hi] with a notice; like `url_int` otherwise."""

    def parse(s: str) -> float:
        v = float(s)  # "abc" raises ValueError; "nan" and "inf" are refused below
        if not np.isfinite(v):
            raise ValueError(s)
        if not lo <= v <= hi:
            _url_notice(key, s, f"{min(hi, max(lo, v)):g}")
        return min(hi, max(lo, v))

    v = _from_url(key, parse, default)
    if not isinstance(v, (int, float)) or not lo <= v <= hi:
        st.session_state[key] = v = float(min(hi, max(lo, v if isinstance(v, (int, float)) else default)))
    return v


def url_tabs(labels: list[str], key: str):
    """`st.tabs` bound to the URL's `key` (only the open tab's `.open` is True). Streamlit drops a value that
    names no tab without a word; a link with one gets the usual notice here instead, once."""
    raw = st.query_params.get(key)
    if raw is not None and raw not in labels:
        _url_notice(key, raw, labels[0])
    return st.tabs(labels, key=key, bind="query-params")


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


# --------------------------------------------------------------------------------------------------------
# Bring your own model: a Hugging Face folder on this machine as the sidebar's model
# --------------------------------------------------------------------------------------------------------

# A model key is what every model function above takes: a shipped variant's name ("gqa-rope"), or this prefix
# and a folder's absolute path ("hf:/home/me/models/SmolLM-135M"). Variant names never contain ":".
FOLDER_PREFIX = "hf:"
SOURCES = {"shipped": "Ours (Shakespeare)", "folder": "A folder"}
# APP_MODEL_FOLDERS=0 hides the folder source: on a shared server a typed path makes the server read (never
# unpickle) files of its own disk, which a deployment may not want visitors to do.
ALLOW_FOLDERS = os.environ.get("APP_MODEL_FOLDERS", "1").strip().lower() not in ("0", "false", "no", "off")
# A folder's model reads at most this many prompt tokens: a 30-layer model's trace holds two [heads, T, T]
# arrays per layer and [T, vocab] logits — about 50 MB at 256 tokens for SmolLM-135M's shape, 0.8 GB at 2,048.
FOLDER_MAX_TOKENS = 256
MAX_FOLDER_MODELS = 2  # folder models held at once (fp32: 4 bytes a parameter); the least recent is dropped
MAX_PATH_CHARS = 1000


def is_folder(key: Optional[str]) -> bool:
    return isinstance(key, str) and key.startswith(FOLDER_PREFIX)


def folder_key(path: str) -> str:
    """The model key of a folder path: "~/m/x/" -> "hf:/home/me/m/x" (made absolute, symlinks kept)."""
    p = os.path.abspath(os.path.expanduser(path.strip()))
    return FOLDER_PREFIX + p


def folder_path(key: str) -> Path:
    return Path(key[len(FOLDER_PREFIX):])


def model_name(key: str) -> str:
    """A short name for messages and file names: the variant, "HuggingFaceTB/SmolLM-135M" for a Hugging Face
    cache snapshot, else the folder's own name."""
    if not is_folder(key):
        return key
    p = folder_path(key)
    if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
        return p.parent.parent.name[len("models--"):].replace("--", "/")
    return p.name or str(p)


def file_name(key: str) -> str:
    """`model_name` made safe for a download's file name: "HuggingFaceTB/SmolLM-135M" -> "HuggingFaceTB_SmolLM-135M"."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in model_name(key))[:80] or "model"


def hf_hub_cache() -> Path:
    """Where the Hugging Face libraries keep downloaded repositories: $HF_HUB_CACHE, else $HF_HOME/hub, else
    ~/.cache/huggingface/hub (their own order). Only read: the app never downloads."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_snapshots(hub: Optional[Path] = None) -> list[tuple[str, str]]:
    """(label, folder) of each model snapshot in the Hugging Face cache that has a config.json, newest first per
    repository: hub/models--ORG--NAME/snapshots/REVISION/ -> ("ORG/NAME @ 1a2b3c4", its path). Whether it can
    run is `folder_problem`'s question, asked when one is chosen."""
    hub = hf_hub_cache() if hub is None else Path(hub)
    out = []
    try:
        repos = sorted(p for p in hub.iterdir() if p.name.startswith("models--") and p.is_dir())
    except OSError:
        return []
    for repo in repos[:200]:
        try:
            snaps = sorted((s for s in (repo / "snapshots").iterdir() if (s / "config.json").is_file()),
                           key=lambda s: s.stat().st_mtime, reverse=True)
        except OSError:
            continue
        name = repo.name[len("models--"):].replace("--", "/")
        out += [(f"{name} @ {s.name[:7]}", str(s)) for s in snaps[:5]]
    return out


@st.cache_data(show_spinner=False, ttl=30)
def _cached_snapshots(hub: str) -> list[tuple[str, str]]:
    return cached_snapshots(Path(hub))


def _signature(folder: Path) -> tuple:
    """(name, size, mtime) of the files a load reads: a folder overwritten in place is inspected and loaded again."""
    sig = []
    for n in ("config.json", "tokenizer.json", "model.safetensors", "model.safetensors.index.json"):
        try:
            st_ = (folder / n).stat()
            sig.append((n, st_.st_size, st_.st_mtime_ns))
        except (OSError, ValueError):  # missing, unreadable, or a path the OS cannot take
            pass
    return tuple(sig)


@st.cache_resource(show_spinner=False, max_entries=32)
def _inspect_folder(path: str, signature: tuple):
    """(HFModelInfo, None) or (None, why not): every check made before a weight is read (config, family, memory
    estimate, weight files and dtypes, tensor names and shapes, tokenizer.json). Cached with its answer, so a
    refused folder is not read again on every rerun."""
    from model.net.hf_import import inspect_hf_folder

    _torch()
    try:
        return inspect_hf_folder(path), None
    except ValueError as e:
        return None, str(e)
    except (OSError, MemoryError, RecursionError, UnicodeError) as e:  # unreadable files, absurd shapes: a reason
        return None, f"{type(e).__name__}: {str(e)[:200]}"


def folder_problem(key: str) -> Optional[str]:
    """Why a folder's model cannot be run here, before loading it — or None."""
    path = key[len(FOLDER_PREFIX):] if is_folder(key) else ""
    if not path:
        return "no folder chosen: type a folder's path in the sidebar, or pick one found in the Hugging Face cache"
    if len(path) > MAX_PATH_CHARS:
        return f"the path is {len(path):,} characters long"
    if "\x00" in path:
        return "the path holds a NUL character: it cannot name a folder"
    return _inspect_folder(path, _signature(Path(path)))[1]


def folder_info(key: str):
    """The folder's `HFModelInfo` (config, family, parameters, stored dtypes, notes); ValueError when refused."""
    problem = folder_problem(key)
    if problem:
        raise ValueError(problem)
    path = key[len(FOLDER_PREFIX):]
    return _inspect_folder(path, _signature(Path(path)))[0]


@st.cache_resource(show_spinner="Loading the model from its folder…", max_entries=MAX_FOLDER_MODELS)
def _folder_model(path: str, signature: tuple):
    # A failed load raises, and st.cache_resource does not keep exceptions: the next rerun tries again.
    from model.net.hf_import import load_hf_model

    _torch()
    try:
        return load_hf_model(path)
    except (OSError, MemoryError) as e:
        raise ValueError(f"loading failed: {type(e).__name__}: {str(e)[:200]}") from None


def _folder_model_of(key: str):
    folder_info(key)  # refused before any weight is read (ValueError)
    path = key[len(FOLDER_PREFIX):]
    return _folder_model(path, _signature(Path(path)))


@st.cache_resource(show_spinner=False, max_entries=8)
def _folder_tokenizer(path: str, signature: tuple):
    from model.net.hf_import import load_hf_tokenizer

    return load_hf_tokenizer(path)


def tokenizer_for(key: str):
    """The tokenizer of a model key, as one object (encode, decode, token_bytes, token_label, piece,
    contains_special_lookalike, n_vocab, eos_id, specials, name): ours for every shipped variant, the folder's
    tokenizer.json for a folder. Typed special tokens stay text in both."""
    if is_folder(key):
        folder_info(key)  # a folder without a readable tokenizer.json is refused by the inspection
        path = key[len(FOLDER_PREFIX):]
        return _folder_tokenizer(path, _signature(Path(path)))
    from model.text.tokenizer import SHIPPED_TOKENIZER

    return SHIPPED_TOKENIZER


def model_config(key: str):
    """The ModelConfig of a model key: the variant's, or the one read from the folder's config.json (no weight
    read). ValueError for a folder that cannot be run; `run_shell` stops before a page when that happens."""
    if is_folder(key):
        return folder_info(key).config
    return variant_config(key)


def _pick_snapshot() -> None:
    """The cache list's on_change: the picked snapshot becomes the folder path (the text box shows it)."""
    picked = st.session_state.get("model_pick")
    if picked:
        st.session_state["model"] = picked


def model_source_sidebar() -> None:
    """The sidebar's model choice: our shipped variants, or a folder (typed, or one of the Hugging Face cache's
    snapshots). The URL carries `variant=` for ours and `model=PATH` for a folder, so a link reopens either."""
    if ALLOW_FOLDERS:
        url_text("model", "", MAX_PATH_CHARS)
        if st.session_state.get("model_source") not in SOURCES:
            st.session_state["model_source"] = "folder" if st.session_state.get("model") else "shipped"
        st.radio("Model", list(SOURCES), key="model_source", format_func=SOURCES.get, horizontal=True,
                 help="Ours: the Shakespeare models trained for this app. A folder: a Llama, Mistral, Qwen2 or "
                      "Gemma checkpoint already on this machine (config.json, model.safetensors, tokenizer.json); "
                      "nothing is ever downloaded.")
    if not ALLOW_FOLDERS or st.session_state.get("model_source") == "shipped":
        url_choice("variant", list(VARIANTS), DEFAULT_VARIANT)
        # The variants with weights, and the chosen one whatever it is (a link may name one whose checkpoint is
        # missing: its pages then say so). Defined but untrained variants are not offered.
        offered = [v for v in VARIANTS if is_trained(v) or v == st.session_state["variant"]]
        st.selectbox("Model variant", offered, key="variant", format_func=variant_label)
        sync_url("variant")
        if "model" in st.query_params:
            del st.query_params["model"]
        return
    hub = hf_hub_cache()
    snaps = _cached_snapshots(str(hub))
    if snaps:
        labels = dict((p, l) for l, p in snaps)
        if st.session_state.get("model_pick") not in labels:
            st.session_state["model_pick"] = ""
        st.selectbox(f"Found in the Hugging Face cache ({len(snaps)})", [""] + list(labels), key="model_pick",
                     format_func=lambda p: labels.get(p, "— pick one, or type a path below —"),
                     on_change=_pick_snapshot, help=f"Snapshots with a config.json under {hub}.")
    repair_text("model")
    st.text_input("Folder", key="model", max_chars=MAX_PATH_CHARS, placeholder="~/models/SmolLM-135M",
                  help="A folder with config.json, model.safetensors (or its index and shards) and tokenizer.json, "
                       "as transformers' save_pretrained writes it. Pickled .bin weights are refused: the app "
                       "never unpickles." + ("" if snaps else f" Nothing was found in the Hugging Face cache ({hub})."))
    sync_url("model")
    key = current_model()
    problem = folder_problem(key)
    if problem:
        st.caption(":material/error: This folder cannot be used; the page says why.")
    else:
        info = folder_info(key)
        c = info.config
        st.caption(f":material/check_circle: {plain_md(info.family)} · {info.n_params:,} parameters · "
                   f"{c.n_layers} layers · {c.n_heads} heads ({c.n_kv_heads} K/V) · vocabulary {c.vocab_size:,}"
                   + "".join(f" · {plain_md(n)}" for n in info.notes))


def folder_gate(page_title: str) -> None:
    """In `run_shell`, before the page: a folder that cannot be run is an error on the page, which then stops —
    every page's own code can count on `model_config(current_model())`. Compare is about our models alone and
    runs anyway."""
    key = current_model()
    if not is_folder(key) or page_title in MODEL_FREE_PAGES:
        return
    problem = folder_problem(key)
    if problem:
        st.title(page_title)
        if key == FOLDER_PREFIX:
            st.info("Type the path of a model folder in the sidebar (or pick one found in the Hugging Face "
                    "cache): a Llama, Mistral, Qwen2 or Gemma checkpoint with config.json, model.safetensors and "
                    "tokenizer.json.", icon=":material/folder_open:")
            st.stop()
        model_error(key, problem, "this page cannot show it")
        st.info("Choose **Ours (Shakespeare)** in the sidebar to go back to the shipped models.",
                icon=":material/info:")
        st.stop()


MODEL_FREE_PAGES = {"Compare variants"}  # pages that never run the sidebar's model
