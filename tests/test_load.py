"""A classroom at once: 20 sessions against one app process, tracing different prompts and stepping generation
at the same moment. Each must see only its own tokens and numbers, nothing may raise, and the one shared model
must come out bit-identical.

Two levels:
- the model's own code paths (`run_with_trace`, `Stepper`) in 20 threads on the one model object, started
  together by a barrier, each checked against the same call made alone beforehand;
- the app itself: 20 `AppTest` sessions in 20 threads. They share this process's `st.cache_resource`
  (the model, the traces), exactly as browser sessions share a server; each opens the attention page, then
  the generation page and clicks Next, and its charts and session state are checked against its own prompt.

AppTest is built for one session at a time: each run installs a fresh mock `Runtime` as the process-wide one
and removes it when it ends, compiles the scripts in a private cache, and resets Streamlit's multipage mode.
Twenty at once would pull the runtime from under each other, and compiling in 20 threads trips a CPython 3.11
bug ("AST constructor recursion depth mismatch"). `one_server()` gives them what a real server has: one
runtime, one script cache (whose lock serialises compiles) and st.navigation mode throughout.

No timing is asserted. On 2 busy cores the AppTest half takes about a minute.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_shared
from model.net.checkpoints import DEFAULT_VARIANT
from model.decoding.sampling import SamplerConfig
from model.decoding.stepper import Stepper
from model.text.tokenizer import encode, token_label
from model.net.trace import run_with_trace
from viz.tokens import axis_labels
from app_support import arr, chart

APP = str(Path(__file__).resolve().parent.parent / "app.py")
N_SESSIONS = 20
WORDS = ["Romeo", "Juliet", "Verona", "Mercutio", "Tybalt", "Benvolio", "Capulet", "Montague", "Friar", "Nurse",
         "Paris", "Balthasar", "Sampson", "Gregory", "Abram", "Escalus", "Rosaline", "Peter", "Lammas", "Mantua"]
PROMPTS = [f"{w} {i}: what light through yonder {WORDS[(i * 7 + 3) % N_SESSIONS].lower()} breaks?"
           for i, w in enumerate(WORDS)]  # 20 distinct prompts, 15-20 tokens each
SAMPLER = SamplerConfig(temperature=1.0)  # a real random draw, so a shared generator would show


def weights_digest(model) -> str:
    """SHA-256 over every tensor of the state dict, name and bytes: equal digests = bit-identical weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def assert_untouched(model, digest: str) -> None:
    assert weights_digest(model) == digest, "the shared model's weights changed"
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()), "a hook was left behind"


def run_all(fn, n: int = N_SESSIONS) -> list:
    """fn(i) in n threads at once (a barrier lines them up); results in order, the first exception re-raised."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait(timeout=120)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


@contextmanager
def one_server():
    """While inside: every AppTest in this process shares one runtime and one script cache, like the sessions
    of one `streamlit run` (see the module docstring)."""
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test
    from streamlit.testing.v1.util import patch_config_options

    runtime = mock.MagicMock(spec=Runtime)  # what AppTest installs for one run, built once for all sessions
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.dataframe_source_mgr = DataframeSourceManager()
    runtime.cache_storage_manager = MemoryCacheStorageManager()
    runtime.bidi_component_registry = BidiComponentManager()
    script_cache = ScriptCache()

    class PerRunRuntime(Runtime):  # AppTest's per-run install/remove lands here, not on the real class
        pass

    class PerRunPagesManager(PagesManager):  # likewise its per-run reset of the multipage mode
        pass

    # CPython 3.11 keeps AST-building state per interpreter, not per thread: two threads parsing or compiling
    # at once can fail with "AST constructor recursion depth mismatch" (a real server compiles each page once
    # and caches it; 20 AppTests parse Streamlit's magic concurrently). One lock around both, as a server has.
    ast_lock = threading.RLock()
    real_parse, real_compile = ast.parse, builtins.compile

    def locked_parse(*a, **k):
        with ast_lock:
            return real_parse(*a, **k)

    def locked_compile(*a, **k):
        with ast_lock:
            return real_compile(*a, **k)

    saved = Runtime._instance, PagesManager.uses_pages_directory
    Runtime._instance, PagesManager.uses_pages_directory = runtime, False
    try:
        with patch_config_options({"global.appTest": True}), \
                mock.patch.object(app_test, "Runtime", PerRunRuntime), \
                mock.patch.object(app_test, "PagesManager", PerRunPagesManager), \
                mock.patch.object(app_test, "ScriptCache", lambda: script_cache), \
                mock.patch.object(ast, "parse", locked_parse), \
                mock.patch.object(builtins, "compile", locked_compile):
            yield
    finally:
        Runtime._instance, PagesManager.uses_pages_directory = saved


pytestmark = pytest.mark.slow  # about a minute on 2 busy cores


@pytest.fixture(scope="module")
def model(shipped_variants):
    """The app's own cached model object: the one every AppTest session below gets from st.cache_resource
    (the shipped default, asserted committed)."""
    return app_shared.load_model(DEFAULT_VARIANT)


@pytest.fixture(scope="module")
def reference(model):
    """Each prompt traced and stepped alone, one after another: what every concurrent run must reproduce."""
    out = []
    for i, p in enumerate(PROMPTS):
        ids = encode(p)
        tr = run_with_trace(model, ids)
        s = Stepper(model.cfg, ids, seed=i, label=token_label)
        s.prefill(model, SAMPLER)
        s.run_n(model, 3, SAMPLER)
        out.append({"ids": ids, "trace": tr, "tokens": s.generated_ids, "logits": [r.logits for r in s.records]})
    assert len({tuple(r["ids"]) for r in out}) == N_SESSIONS  # every session's tokens differ from every other's
    return out


def test_twenty_threads_trace_and_step_one_shared_model(model, reference):
    digest = weights_digest(model)

    def session(i: int) -> None:
        ref = reference[i]
        tr = run_with_trace(model, ref["ids"])
        assert tr.names() == ref["trace"].names()
        for name in tr.names():  # one thread at a time on the model: the same numbers, bit for bit
            np.testing.assert_array_equal(tr[name], ref["trace"][name], err_msg=f"session {i}: {name}")
        np.testing.assert_array_equal(tr.logits, ref["trace"].logits)
        s = Stepper(model.cfg, ref["ids"], seed=i, label=token_label)
        s.prefill(model, SAMPLER)
        s.run_n(model, 3, SAMPLER)
        assert s.generated_ids == ref["tokens"], f"session {i} drew other tokens"
        for got, want in zip([r.logits for r in s.records], ref["logits"]):
            np.testing.assert_array_equal(got, want)
        assert s.cache.length == len(ref["ids"]) + 3

    run_all(session)
    assert_untouched(model, digest)


def test_twenty_app_sessions_at_once(model, reference):
    """20 AppTest sessions: attention page, then generation page + Next, all at once; each sees only its own."""
    digest = weights_digest(model)

    def session(i: int) -> dict:
        ref, prompt = reference[i], PROMPTS[i]
        labels = [token_label(t) for t in ref["ids"]]
        at = AppTest.from_file(APP, default_timeout=240)
        at.query_params.update(prompt=prompt, variant=DEFAULT_VARIANT, att_layer=str(i % model.cfg.n_layers),
                               att_head=str(i % model.cfg.n_heads), seed=str(i), temperature="1.0")
        at.run()  # app.py and the home page, as a browser's first visit: the prompt comes from the link
        assert not at.exception, (i, at.exception)
        assert at.session_state["prompt"] == prompt

        at.switch_page("pages/attention.py").run()
        assert not at.exception, (i, at.exception)
        pattern = next(t for t in chart(at, "att_zoom")["data"] if t.get("name") == "pattern")
        assert pattern["x"] == axis_labels(labels), f"session {i} sees another prompt's tokens"
        want = ref["trace"][f"blocks.{i % model.cfg.n_layers}.attn.hook_pattern"][i % model.cfg.n_heads]
        got = arr(pattern["z"]).astype(np.float32)
        finite = np.isfinite(got)
        np.testing.assert_array_equal(got[finite], want[finite], err_msg=f"session {i}: attention pattern")

        at.switch_page("pages/generation.py").run()
        assert not at.exception, (i, at.exception)
        at.button(key="gen_next").click().run()
        assert not at.exception, (i, at.exception)
        s = at.session_state["gen_stepper"]
        assert s.prompt_ids == ref["ids"], f"session {i}'s stepper holds another prompt"
        assert s.generated_ids == ref["tokens"][:2], f"session {i} drew other tokens"
        for got_l, want_l in zip([r.logits for r in s.records], ref["logits"]):
            np.testing.assert_array_equal(got_l, want_l)
        cache_rows = chart(at, "gen_cache")["data"][0]["y"]
        assert len(cache_rows) == len(ref["ids"]) + 1
        return {"i": i, "prompt_ids": list(s.prompt_ids), "n_cached": s.cache.length}

    with one_server():
        results = run_all(session)
    assert [r["i"] for r in results] == list(range(N_SESSIONS))
    assert all(r["n_cached"] == len(reference[r["i"]]["ids"]) + 1 for r in results)
    assert app_shared.load_model(DEFAULT_VARIANT) is model  # every session used this one object …
    assert_untouched(model, digest)  # … and left it as it was
    # 20 pages through app_shared.GATE's few slots: every slot given back, no one left queued.
    assert app_shared.GATE.running == 0 and not app_shared.GATE._queue
