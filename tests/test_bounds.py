"""Memory bounds and the busy state (app_shared): caches bounded in bytes, shared traces read-only, one session's
stored state bounded, at most N pages computing at once with a clear notice for the rest.

Fast: no server. The same bounds under real load are the capacity benchmark's soak (`python -m bench
--classroom-only`); a real server's busy notice is tests/test_overload.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import app_shared
from app_shared import BoundedCache, RunGate, bound_session_state, nbytes
from model.net.checkpoints import DEFAULT_VARIANT

APP = str(Path(__file__).resolve().parent.parent / "app.py")
MiB = 2**20


# --- bytes ---------------------------------------------------------------------------------------------------


def test_nbytes_counts_buffers_once():
    a = np.zeros((256, 1024), np.float32)  # 1 MiB
    assert MiB <= nbytes(a) < MiB + 1024
    assert nbytes([a, a, a[:10]]) < MiB + 4096  # the same buffer (and a view of it) counted once
    t = torch.zeros(512, 512)  # 1 MiB
    assert MiB <= nbytes({"k": t, "v": t.view(-1)}) < MiB + 4096

    class Holder:
        def __init__(self):
            self.records = [np.ones(1024, np.float64) for _ in range(64)]  # 64 × 8 KiB

    assert 512 * 1024 <= nbytes(Holder()) < 600 * 1024


def test_bounded_cache_evicts_least_recently_used_by_bytes():
    c = BoundedCache("t", max_bytes=3 * MiB + 4096)
    block = lambda: np.zeros(MiB // 8)  # noqa: E731  1 MiB of float64
    for k in "abc":
        c.get(k, block)
    assert len(c) == 3
    c.get("a", lambda: pytest.fail("a is cached"))  # a is now the most recently used
    c.get("d", block)  # over budget: b (least recently used) goes
    assert set(c._data) == {"a", "c", "d"} and c.bytes <= c.max_bytes and c.evictions == 1
    big = c.get("huge", lambda: np.zeros(MiB))  # 8 MiB: larger than the whole budget — returned, not kept
    assert big.nbytes == 8 * MiB and "huge" not in c._data and c.too_big == 1 and c.bytes <= c.max_bytes


def test_bounded_cache_computes_each_key_once_at_a_time():
    c, calls, barrier = BoundedCache("t", 10 * MiB), [], threading.Barrier(8)

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return np.arange(10)

    def worker(out, i):
        barrier.wait()
        out[i] = c.get("same", compute)

    out = [None] * 8
    threads = [threading.Thread(target=worker, args=(out, i)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 1 and all(o is out[0] for o in out)  # one forward pass for a whole class


def test_bounded_cache_failure_passes_to_the_next_caller():
    c, n = BoundedCache("t", MiB), []

    def flaky():
        n.append(1)
        if len(n) == 1:
            raise RuntimeError("first try fails")
        return 7

    with pytest.raises(RuntimeError):
        c.get("k", flaky)
    assert c.get("k", flaky) == 7 and "k" in c._data


# --- shared traces and figures ----------------------------------------------------------------------------


def test_shared_traces_are_read_only_and_bounded_in_bytes(shipped_variants, monkeypatch):
    monkeypatch.setattr(app_shared.TRACES, "max_bytes", 6 * MiB)
    app_shared.TRACES.clear()
    ids = tuple(app_shared.tokenize_prompt("ROMEO. But soft, what light", 256).ids)
    tr = app_shared.trace_prompt(DEFAULT_VARIANT, ids)
    assert app_shared.trace_prompt(DEFAULT_VARIANT, ids) is tr  # shared, not copied
    pattern = tr["blocks.0.attn.hook_pattern"]
    with pytest.raises(ValueError):
        pattern[0, 0, 0] = 1.0  # a page writing into the shared trace
    with pytest.raises(ValueError):
        tr.logits *= 2
    with pytest.raises(TypeError):
        tr.acts["blocks.0.attn.hook_pattern"] = np.zeros(1)  # type: ignore[index]
    assert isinstance(tr.tokens, tuple)
    assert np.asarray(tr["blocks.0.hook_resid_post"]).flags.writeable is False
    for n in range(2, 14):  # ~1–2 MiB each: the budget holds 3–5 of them
        app_shared.trace_prompt(DEFAULT_VARIANT, ids[:n] + (7,) * n)
        assert app_shared.TRACES.bytes <= 6 * MiB
    assert app_shared.TRACES.evictions > 0
    app_shared.TRACES.clear()


def test_figure_cache_is_bounded_in_bytes(monkeypatch):
    import plotly.graph_objects as go

    cache = BoundedCache("figures", 2 * MiB, sizeof=app_shared._figure_nbytes)
    monkeypatch.setattr(app_shared, "FIGURES", cache)
    built = []

    def heatmap(seed: int, n: int):
        built.append(seed)
        return go.Figure(go.Heatmap(z=np.random.default_rng(seed).random((n, n))))

    f1 = app_shared.cached_figure(heatmap, 1, 256)  # 512 KiB of z
    assert app_shared.cached_figure(heatmap, 1, 256) is f1 and built == [1]  # same arguments: built once
    assert app_shared._figure_nbytes(f1) >= 512 * 1024
    for s in range(2, 10):
        app_shared.cached_figure(heatmap, s, 256)
        assert cache.bytes <= 2 * MiB
    assert len(cache) <= 4 and cache.evictions > 0


def test_page_results_are_shared_read_only_and_bounded_in_bytes(monkeypatch):
    """shared_result: one computation per distinct arguments (by value), its arrays read-only, the cache
    bounded in bytes; two functions of the same name in different files never share an entry."""
    cache = BoundedCache("results", 2 * MiB)
    monkeypatch.setattr(app_shared, "RESULTS", cache)
    calls = []

    @app_shared.shared_result()
    def table(seed: int, n: int) -> dict:
        calls.append(seed)
        return {"a": np.random.default_rng(seed).random((n, n)), "rows": [np.zeros(3)]}

    r1 = table(1, 256)  # 512 KiB
    assert table(1, 256) is r1 and calls == [1]
    with pytest.raises(ValueError):
        r1["a"][0, 0] = 1.0
    with pytest.raises(ValueError):
        r1["rows"][0][0] = 1.0
    for s in range(2, 10):
        table(s, 256)
        assert cache.bytes <= 2 * MiB
    assert cache.evictions > 0 and len(cache) <= 4
    ns: dict = {}
    exec(compile("def table(seed, n):\n    return seed * 10\n", "/elsewhere/page.py", "exec"), ns)
    assert app_shared.shared_result()(ns["table"])(1, 256) == 10  # same name and arguments, another file


def test_a_generation_click_computes_inside_the_gate(shipped_variants, monkeypatch):
    """Next's callback only records the request: with every slot taken the page waits (busy), and no model step
    is taken until it holds a slot — a click never computes outside the lecture hall's limit."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("pages/generation.py").run()
    assert not at.exception
    before = at.session_state["gen_stepper"].n_steps
    gate = RunGate(1)
    monkeypatch.setattr(app_shared, "GATE", gate)
    monkeypatch.setattr(app_shared, "BUSY_TIMEOUT_S", 1.0)
    with gate.held():
        at.button(key="gen_next").click().run()
        assert at.session_state["gen_stepper"].n_steps == before  # queued: nothing computed
    assert not at.exception and any(app_shared.OVERLOADED_TITLE in w.value for w in at.warning)


def test_value_digest_is_by_content():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert app_shared.value_digest(a, {"x": [1, "b"]}) == app_shared.value_digest(a.copy(), {"x": [1, "b"]})
    assert app_shared.value_digest(a) != app_shared.value_digest(a.astype(np.float64))
    assert app_shared.value_digest(a) != app_shared.value_digest(a.T)
    assert app_shared.value_digest([1, 2]) != app_shared.value_digest((1, 2))
    assert app_shared.value_digest("1") != app_shared.value_digest(1)


# --- one session's state -----------------------------------------------------------------------------------


class _History:  # like a Stepper: a growing list of records holding arrays
    def __init__(self, steps: int):
        self.records = [{"logits": np.zeros(2048, np.float32), "attn": np.zeros((4, 6, 64), np.float32)}
                        for _ in range(steps)]


def test_session_state_is_trimmed_largest_first():
    state = {"prompt": "x" * 20_000, "layer": 2, "temperature": 0.8, "gen_stepper": _History(1000),  # ~14 MiB
             "cmp_quick": {"a": np.zeros(MiB // 4, np.float32)}}  # 1 MiB
    assert bound_session_state(state, limit=8 * MiB) == ["gen_stepper"]
    assert set(state) == {"prompt", "layer", "temperature", "cmp_quick"}  # widget values are never trimmed
    assert bound_session_state(state, limit=8 * MiB) == []


def test_generation_history_is_bounded_in_a_real_session(shipped_variants, monkeypatch):
    """Run N on the Generation page, then Next with a tiny per-session budget: the bound is applied when the
    next run starts, so the steps are dropped with a toast, the page starts over from its prompt and takes the
    step the click asked for (the click only records it; the step runs inside the page). Nothing raises."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["n_steps"] = "20"
    at.switch_page("pages/generation.py").run()
    assert not at.exception
    at.button(key="gen_run").click().run()
    assert not at.exception and at.session_state["gen_stepper"].n_steps == 20  # within the default budget
    size = nbytes(at.session_state["gen_stepper"])
    monkeypatch.setattr(app_shared, "SESSION_STATE_BYTES", size // 2)
    at.button(key="gen_next").click().run()
    assert not at.exception
    assert any("stored history" in t.value for t in at.toast)
    assert at.session_state["gen_stepper"].n_steps == 1  # started over from the prompt, then the step asked for
    assert nbytes(at.session_state["gen_stepper"]) < size // 2


# --- at most N pages at once ------------------------------------------------------------------------------


def test_run_gate_admits_in_arrival_order_up_to_its_slots():
    gate, order, lock = RunGate(2), [], threading.Lock()
    held = [gate.join() for _ in range(2)]
    assert all(got for _, got in held) and gate.running == 2
    waiting = [gate.join() for _ in range(3)]
    assert not any(got for _, got in waiting) and [gate.place(t) for t, _ in waiting] == [0, 1, 2]

    stop = threading.Event()

    def wait(k, ticket):
        while not gate.wait(ticket, 0.05):
            if stop.is_set():
                return
        with lock:
            order.append(k)

    threads = [threading.Thread(target=wait, args=(k, t)) for k, (t, _) in enumerate(waiting)]
    [t.start() for t in threads]
    time.sleep(0.2)
    assert order == []  # both slots still held
    gate.release()
    time.sleep(0.2)
    assert order == [0]
    gate.leave(waiting[2][0])  # the third gives up (a rerun, a closed tab)
    gate.release()
    threads[1].join(2)
    assert order == [0, 1] and gate.running == 2 and gate.place(waiting[2][0]) == 0
    threads[2].join(0.3)
    assert threads[2].is_alive()  # it left the queue: it is never admitted
    stop.set()
    threads[2].join(2)
    gate.release()
    gate.release()
    assert gate.running == 0 and order == [0, 1]


def test_a_saturated_server_says_so_and_recovers(shipped_variants, monkeypatch):
    """Every slot taken for longer than a page may wait: the student gets the "overloaded" notice and a
    Try again button — no traceback, no page stuck running. Once a slot frees up, Try again draws the page."""
    gate = RunGate(1)
    monkeypatch.setattr(app_shared, "GATE", gate)
    monkeypatch.setattr(app_shared, "BUSY_TIMEOUT_S", 1.5)
    at = AppTest.from_file(APP, default_timeout=120)
    with gate.held():
        t = time.monotonic()
        at.run()
        assert time.monotonic() - t < 60
    assert not at.exception
    assert any(app_shared.OVERLOADED_TITLE in w.value for w in at.warning)
    assert not at.get("plotly_chart")
    at.button(key="app_busy_retry").click().run()
    assert not at.exception and at.get("plotly_chart")
    assert not any(app_shared.OVERLOADED_TITLE in w.value for w in at.warning)
    assert gate.running == 0


def test_a_queued_page_waits_then_draws(shipped_variants, monkeypatch):
    gate = RunGate(1)
    monkeypatch.setattr(app_shared, "GATE", gate)
    at = AppTest.from_file(APP, default_timeout=120)
    release = threading.Event()

    def hold():
        with gate.held():
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    while gate.running == 0:
        time.sleep(0.01)
    timer = threading.Timer(1.5, release.set)
    timer.start()
    at.run()
    holder.join()
    timer.join()
    assert not at.exception and at.get("plotly_chart") and gate.waited >= 1
    assert not any(app_shared.BUSY_TITLE in i.value for i in at.info)  # the notice is gone once the page is in
