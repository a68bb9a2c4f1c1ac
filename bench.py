"""How fast is the app, on this machine? One run, medians of several repeats, printed as ratios and seconds.

    python -m bench                  # a table, each figure beside its goal
    python -m bench --json           # one JSON object (the keys below, and the figures behind them)
    python -m bench --repeats 9 --first-chart-runs 5
    python -m bench --no-browser     # without Chromium: no first-chart figure
    python -m bench --folder-model-only   # page reruns on a random model of SmolLM-135M's shape, from a folder
    python -m bench --classroom-only [--students 10,25,50,100,150] [--soak-minutes 10] [--replicas 2]
                                     # a lecture hall: capacity sweep and soak (--classroom: both parts)

What it measures (the app's own code paths; the default model `gqa-rope`, or seeded random weights of the same
shape when its checkpoint is not in this checkout):

    traced_over_untraced_{64,256}   `run_with_trace` (every hook point copied out) ÷ `forward_logits`   goal <= 1.5
    recompute_over_cached_256       a forward over all 256 positions ÷ one cached decode step at 256  goal >= 3
    page_rerun_median_s             each page rerun after a widget change (AppTest), the slowest page's
                                    median; every page's median is in `pages`                       goal < 0.5 s
    folder_model                    the same page reruns with the sidebar's model a folder holding a random
                                    model of SmolLM-135M's shape (134.5 M parameters, 30 layers, 9 heads,
                                    vocabulary 49,152): its slowest median and every page's (`bench_folder`;
                                    `--folder-model-only` runs just this, `--no-folder-model` leaves it out)
    first_chart_s                   a fresh `streamlit run app.py` opened in Chromium: seconds from
                                    navigation to the first Plotly chart, median over fresh servers  goal < 6 s
    speculative                     speculative decoding with the shipped draft against plain decoding, K = 2
                                    and 4 at T = 0 and 0.8: acceptance, tokens per target forward, measured and
                                    ideal speedup (`model.decoding.speculative.measure_speed`)
    peak_rss_all_variants_mib       the last server's peak resident memory after every variant has been
                                    loaded (each opened once through the home page)
    classroom (--classroom)         simulated students (scripts/student.py: real websockets, the browser's
                                    messages) following a lecture-paced lesson against fresh servers, at each
                                    class size: p50/p95 latency per interaction, the servers' CPU and resident
                                    memory per student, tracebacks, busy notices, leaks between students, and
                                    `students_p95_under_1s`; then a soak (classes coming and going for minutes)
                                    with the resident memory's slope after warm-up

Timings are wall-clock, so they depend on what else the machine is doing: they come with the CPU seconds spent
(`*_cpu_s`: this process for forwards and reruns; the server's and Chromium's processes for the first chart)
and the load average, so a busy machine can be told from a slow app. Traced and untraced forwards, and cached
and recomputed steps, are interleaved, so a load spike hits both alike.
What it does not do: assert anything (tests never time), or touch checkpoints/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHART = '[data-testid="stPlotlyChart"] .main-svg'
GOALS = {  # key: (comparison, goal)
    "traced_over_untraced_64": ("<=", 1.5),
    "traced_over_untraced_256": ("<=", 1.5),
    "recompute_over_cached_256": (">=", 3.0),
    "page_rerun_median_s": ("<", 0.5),
    "first_chart_s": ("<", 6.0),
}


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# --------------------------------------------------------------------------------------------------------
# The model: traced vs untraced, cached vs recomputed
# --------------------------------------------------------------------------------------------------------


def default_model():
    """The app's default model, loaded as the app loads it (app_shared.load_model: one torch thread); when its
    checkpoint is missing or unreadable, seeded random weights of the same shape — speed does not depend on the
    values, and the result says which it timed. Returns (model, trained)."""
    import app_shared

    v = app_shared.DEFAULT_VARIANT
    if app_shared.checkpoint_problem(v) is None:
        return app_shared.load_model(v), True
    return app_shared.shape_model(v), False


def bench_trace(model, T: int, repeats: int) -> dict:
    """Median traced and untraced forward of T tokens, run alternately."""
    import numpy as np

    from model.net.trace import forward_logits, run_with_trace

    ids = np.random.default_rng(T).integers(0, model.cfg.vocab_size - 1, T)
    forward_logits(model, ids), run_with_trace(model, ids)  # warm-up: allocator, first-call overheads
    plain, traced = [], []
    for _ in range(repeats):
        plain.append(_timed(lambda: forward_logits(model, ids)))
        traced.append(_timed(lambda: run_with_trace(model, ids)))
    u, t = _median([w for w, _ in plain]), _median([w for w, _ in traced])
    return {f"untraced_{T}_s": u, f"traced_{T}_s": t, f"traced_over_untraced_{T}": t / u,
            f"traced_over_untraced_{T}_cpu": _median([c for _, c in traced]) / _median([c for _, c in plain])}


def bench_decode(model, T: int, repeats: int) -> dict:
    """A forward over all T positions (what the next token costs without a cache) vs one decode step that adds
    position T-1 to a cache already holding T-1 positions. The cache is truncated back after each step."""
    import numpy as np
    import torch

    from model.net.kv_cache import KVCache

    ids = torch.as_tensor(np.random.default_rng(1).integers(0, model.cfg.vocab_size - 1, T)).view(1, -1)  # (1, T)
    cache = KVCache.for_model(model.cfg)
    with torch.no_grad():
        model(ids[:, : T - 1], cache=cache)  # prefill T-1 positions

        def step():
            model(ids[:, T - 1 :], cache=cache)  # (1, 1): the decode step at position T-1
            cache.truncate(T - 1)

        def recompute():
            model(ids)

        step(), recompute()
        cached, full = [], []
        for _ in range(repeats):
            cached.append(_timed(step))
            full.append(_timed(recompute))
    c, f = _median([w for w, _ in cached]), _median([w for w, _ in full])
    return {f"cached_step_{T}_s": c, f"recompute_{T}_s": f, f"recompute_over_cached_{T}": f / c}


def bench_speculative(model, repeats: int) -> dict:
    """Speculative decoding with the shipped draft: 48 tokens from the default prompt, K = 2 and 4, greedy and
    T = 0.8, each against plain decoding of the same tokens (interleaved, medians)."""
    import app_shared
    from model.decoding.sampling import SamplerConfig
    from model.decoding.speculative import measure_speed
    from model.text.tokenizer import encode

    if app_shared.checkpoint_problem("draft") is not None:
        return {"speculative": None, "speculative_note": "no trained draft in checkpoints/draft"}
    draft, ids = app_shared.load_model("draft"), encode(app_shared.DEFAULT_PROMPT)
    runs = [measure_speed(model, draft, ids, 48, [2, 4], SamplerConfig(temperature=t), seed=0, repeats=repeats)
            for t in (0.0, 0.8)]
    return {"speculative": [{"temperature": r["temperature"], "plain_seconds": r["plain_seconds"],
                             "draft_over_target_flops": r["draft_over_target_flops"],
                             "draft_over_target_cpu": r["draft_over_target_cpu"], **row}
                            for r in runs for row in r["by_k"]]}


# --------------------------------------------------------------------------------------------------------
# Page reruns (AppTest): one widget change per rerun
# --------------------------------------------------------------------------------------------------------


def _alternate(kind: str, key: str, a, b):
    """A change that flips the widget `key` between two values, so after one round both are cached."""

    def change(at, i: int) -> None:
        getattr(at, kind)(key=key).set_value(a if i % 2 else b)

    change.__doc__ = f"{kind} {key}: {a!r} <-> {b!r}"
    return change


def _click(key: str):
    def change(at, i: int) -> None:
        at.button(key=key).click()

    change.__doc__ = f"button {key}"
    return change


def _seq_len(at, i: int) -> None:
    """number_input 'Sequence length s': 128 <-> 256"""
    next(w for w in at.number_input if w.label.startswith("Sequence length")).set_value(128 if i % 2 else 256)


PROMPT_B = "JULIET.\nO Romeo, Romeo, wherefore art thou Romeo?"

# page file -> the change a user makes there. A page not listed (or whose widget is gone) is timed on a rerun
# after the sidebar prompt changes between two texts, which every page reads.
PAGE_CHANGES: dict[str, Callable] = {
    "pages/tokenization.py": _alternate("selectbox", "tok_word", "ROMEO", " soft"),
    "pages/embeddings.py": _alternate("selectbox", "emb_pos", 1, 2),
    "pages/attention.py": _alternate("selectbox", "att_layer", 1, 2),
    "pages/logit_lens.py": _alternate("selectbox", "lens_pos", 3, 4),
    "pages/generation.py": _click("gen_next"),
    "pages/decoding.py": _click("beam_view_next"),
    "pages/rope.py": _alternate("slider", "rope_pair", 3, 4),
    "pages/compare.py": _alternate("selectbox", "cmp_layer_attn", 2, 3),
    "pages/accounting.py": _seq_len,
}


def _prompt_change(at, i: int) -> None:
    """sidebar prompt: default <-> another text"""
    from app_shared import DEFAULT_PROMPT

    # Through session_state: after switch_page, AppTest's element tree no longer holds app.py's sidebar.
    at.session_state["prompt"] = PROMPT_B if i % 2 else DEFAULT_PROMPT


def app_pages() -> list[str]:
    """The page files the app's menu lists (app_shared.PAGES) and that exist."""
    import app_shared

    return [e[0] for e in app_shared.listed_pages()]


def bench_page(page: str, repeats: int, model_dir: Optional[str] = None) -> dict:
    """A page's reruns after its widget change; on the folder's model when `model_dir` is given (the sidebar's
    "A folder", through the URL as a link would open it)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    if model_dir is not None:
        at.query_params["model"] = model_dir
    first_w, first_c = _timed(lambda: at.switch_page(page).run())
    change = PAGE_CHANGES.get(page, _prompt_change)
    try:
        change(at, 0)
    except (KeyError, ValueError, StopIteration, AttributeError):
        change = _prompt_change  # the page's widget is not there (yet): fall back to the shared one
        change(at, 0)
    at.run()  # warm-up: both values seen once
    runs = []
    for i in range(1, repeats + 1):
        change(at, i)
        runs.append(_timed(at.run))
    return {"page": page, "change": change.__doc__, "first_run_s": first_w, "first_run_cpu_s": first_c,
            "rerun_median_s": _median([w for w, _ in runs]), "rerun_median_cpu_s": _median([c for _, c in runs]),
            "reruns_s": [round(w, 3) for w, _ in runs], "exception": bool(at.exception)}


# --------------------------------------------------------------------------------------------------------
# Bring your own model: the same page reruns on a model of SmolLM-135M's shape, from a folder
# --------------------------------------------------------------------------------------------------------

# HuggingFaceTB/SmolLM-135M's config.json, the fields that set its shape (134.5 M parameters, tied embedding).
SMOLLM_135M = dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                   num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5,
                   rope_theta=10000.0, tie_word_embeddings=True)


def make_folder_model(out: Path) -> Path:
    """A seeded random model of SmolLM-135M's shape, saved as a Hugging Face folder by our exporter (Llama's
    layout, fp32), with a byte-level BPE tokenizer.json trained here on the training plays (≈ 46 k tokens:
    the corpus runs out of pairs before 49,152; the model's extra rows are labelled by id). Nothing downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from model.net.hf_import import config_from_hf
    from model.net.transformer import Transformer
    from model.text.corpus import load_corpus
    from model.training.export import export_hf

    export_hf(Transformer(config_from_hf(SMOLLM_135M), init_seed=0).eval().requires_grad_(False), out)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = load_corpus("train")
    tok.train_from_iterator((text[i:i + 10_000] for i in range(0, len(text), 10_000)),
                            trainers.BpeTrainer(vocab_size=SMOLLM_135M["vocab_size"],
                                                special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    tok.save(str(out / "tokenizer.json"))
    return out


def bench_folder(repeats: int) -> dict:
    """Every page's rerun after its widget change (`PAGE_CHANGES`), with the sidebar's model a folder holding
    `make_folder_model`'s model: the `page_rerun_median_s` figure for a model 68× ours."""
    from model.net.hf_import import inspect_hf_folder

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        folder = make_folder_model(Path(d) / "smollm-135m-shape")
        built = time.perf_counter() - t0
        info = inspect_hf_folder(folder)
        pages = [bench_page(p, repeats, model_dir=str(folder)) for p in app_pages()]
    slowest = max(pages, key=lambda r: r["rerun_median_s"])
    return {"shape": "SmolLM-135M", "params": info.n_params, "build_s": built,
            "page_rerun_median_s": slowest["rerun_median_s"], "page_rerun_slowest": slowest["page"], "pages": pages}


def print_folder(r: dict) -> None:
    print(f"folder model: random weights of {r['shape']}'s shape ({r['params']:,} parameters; built and saved in "
          f"{r['build_s']:.0f} s): page rerun after a widget change, slowest median "
          f"{r['page_rerun_median_s']:.2f} s ({Path(r['page_rerun_slowest']).stem})   "
          f"{_verdict('page_rerun_median_s', r['page_rerun_median_s'])}")
    for p in r["pages"]:
        print(f"    {Path(p['page']).stem:<14} {p['rerun_median_s']:6.2f} / {p['rerun_median_cpu_s']:5.2f}; "
              f"first {p['first_run_s']:5.2f}   [{p['change']}]" + ("  EXCEPTION" if p["exception"] else ""))


# --------------------------------------------------------------------------------------------------------
# A real server in Chromium: first chart, peak memory with every variant loaded
# --------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mib(pid: int) -> dict:
    """VmHWM (peak resident set) and VmRSS of a process, from /proc (Linux)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            out[k] = int(v.split()[0]) / 1024  # kB -> MiB
    return out


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far: user + system) for every process, from /proc (Linux)."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, …
            except OSError:
                continue  # it exited meanwhile
            out[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)  # fields 4, 14, 15 of stat(5)
    return out


def _cpu_s(pid: int, leave_out: Optional[int] = None) -> float:
    """CPU seconds used so far by `pid` and its descendants, without the subtree of `leave_out`."""
    procs = _processes()

    def counts(q: int) -> bool:
        while q in procs:
            if q == leave_out:
                return False
            if q == pid:
                return True
            q = procs[q][0]
        return False

    return sum(c for q, (_, c) in procs.items() if counts(q))


@contextmanager
def _server(log: Path):
    """`streamlit run app.py` on a free loopback port; yields (process, base URL, seconds until /_stcore/health)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
           str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("streamlit did not answer /_stcore/health in 120 s")
        yield proc, url, time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_idle(page) -> None:
    page.wait_for_selector(CHART, timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


def bench_browser(log_dir: Path, runs: int) -> dict:
    """`runs` fresh servers, each opened once in Chromium: seconds from navigation to the first chart (and the
    CPU the server and the browser used meanwhile). The last server then opens every variant, for memory."""
    from playwright.sync_api import sync_playwright

    from model.net.checkpoints import available_variants

    first = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for i in range(runs):
                with _server(log_dir / f"streamlit{i}.log") as (proc, url, started):
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    me = os.getpid()
                    server0, browser0 = _cpu_s(proc.pid), _cpu_s(me, leave_out=proc.pid) - time.process_time()
                    t = time.perf_counter()
                    page.goto(url + "/")
                    page.wait_for_selector(CHART, timeout=120_000)
                    first.append({"first_chart_s": time.perf_counter() - t, "server_start_s": started,
                                  "server_cpu_s": _cpu_s(proc.pid) - server0,
                                  "browser_cpu_s": _cpu_s(me, leave_out=proc.pid) - time.process_time() - browser0})
                    if i < runs - 1:
                        page.close()
                        continue
                    _wait_idle(page)
                    rss_first = _peak_rss_mib(proc.pid)
                    for v in available_variants():  # the home page loads the variant, traces the prompt
                        page.goto(f"{url}/?variant={v}")
                        _wait_idle(page)
                    rss_all = _peak_rss_mib(proc.pid)
        finally:
            browser.close()
    med = lambda k: _median([r[k] for r in first])  # noqa: E731
    return {"first_chart_s": med("first_chart_s"), "first_chart_runs_s": [round(r["first_chart_s"], 2) for r in first],
            "first_chart_server_cpu_s": med("server_cpu_s"), "first_chart_browser_cpu_s": med("browser_cpu_s"),
            "server_start_s": med("server_start_s"), "rss_after_first_chart_mib": rss_first.get("VmRSS"),
            "peak_rss_all_variants_mib": rss_all.get("VmHWM"), "rss_all_variants_mib": rss_all.get("VmRSS"),
            "variants_loaded": len(available_variants())}


def bench_memory_in_process() -> dict:
    """Without a browser: peak RSS of a fresh Python process that imports the app's code and loads every variant."""
    code = ("import app_shared, resource\n"
            "from model.net.checkpoints import available_variants\n"
            "for v in available_variants(): app_shared.trace_prompt(v, tuple(app_shared.tokenize_prompt("
            "app_shared.DEFAULT_PROMPT, 256).ids))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    return {"peak_rss_all_variants_mib": float(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None,
            "peak_rss_note": "no browser: a plain Python process that loaded every variant, not the server"}


# --------------------------------------------------------------------------------------------------------
# A lecture hall: simulated students over real websockets (scripts/student.py), capacity and soak
# --------------------------------------------------------------------------------------------------------

P95_GOAL_S = 1.0  # "the number of students one process serves with p95 under 1 s"


def _proc_sample(pid: int) -> tuple[float, float]:
    """(resident MiB, CPU seconds so far) of one process, from /proc (Linux)."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


class _Sampler:
    """Samples the servers' summed RSS and CPU, and the load average, on every tick."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.t0 = pids, time.perf_counter()
        self.rows: list[tuple[float, float, float, float]] = []  # (t, rss MiB, cpu s, load1)
        self.tick()

    def tick(self) -> None:
        try:
            s = [_proc_sample(p) for p in self.pids]
        except OSError:
            return
        self.rows.append((time.perf_counter() - self.t0, sum(r for r, _ in s), sum(c for _, c in s),
                          os.getloadavg()[0]))

    def rss(self) -> float:
        return self.rows[-1][1]

    def cpu(self) -> float:
        return self.rows[-1][2]


def _cache_metrics(url: str) -> dict:
    """MiB per cache kind from the server's /_stcore/metrics: Streamlit's st.cache_data (sized), media files,
    session state, and the app's byte-bounded caches (`app_bounded_cache:traces`, `…:figures`). st.cache_resource
    entries are not sized by Streamlit (reported as 1 byte each), so the pages' own resource caches are not in it."""
    import re

    out: dict = {}
    try:
        with urllib.request.urlopen(url + "/_stcore/metrics", timeout=30) as r:
            text = r.read().decode()
    except OSError as e:
        return {"error": str(e)}
    for m in re.finditer(r'^cache_memory_bytes\{cache_type="([^"]*)",cache="([^"]*)"\} (\S+)$', text, re.M):
        kind = m[1] + (":" + m[2] if m[1] == "app_bounded_cache" else "")
        out[kind] = out.get(kind, 0.0) + float(m[3]) / 2**20
    return {k: round(v, 2) for k, v in out.items()}


@contextmanager
def _target(replicas: int, log_dir: Path, env: dict):
    """One app server (replicas = 1) or `replicas` behind nginx, each warmed up (`_warm_up`, straight to the
    replica); yields (the URL students open, the servers' pids)."""
    from scripts.replicas import app_server, cluster

    if replicas <= 1:
        with app_server(log_dir / "server.log", env=env) as s:
            _warm_up(s.url)
            yield s.url, [s.pid]
    else:
        with cluster(replicas, workdir=log_dir, env=env) as c:
            for r in c.replicas:
                _warm_up(r.url)
            yield c.url, [r.pid for r in c.replicas]


def _warm_up(url: str) -> None:
    """One student through the whole lesson, back to back: torch imported, the model loaded, every page of the
    lesson compiled and the shared caches filled for the default prompt — what the first minute of a lecture
    pays once, not per student. RuntimeError if the lesson fails on an idle server."""
    from scripts.student import run_class, summarize

    s = summarize(asyncio.run(run_class(url, 1, period=0.0, spread=0.0, first=999)))
    if s["ok"] != s["interactions"]:
        raise RuntimeError(f"the warm-up student failed on {url}: {s['failures'][:3]}")


def bench_class(levels: list[int], period: float, spread: float, rounds: int, replicas: int, slots: Optional[int],
                log_dir: Path, seed: int = 0) -> dict:
    """For each class size N: a fresh server (or cluster), warmed up by one student; then N students follow
    the lesson, lecture-paced. Latency per interaction, the servers' CPU and memory per student, failures."""
    from scripts.student import run_class, summarize

    env = {} if slots is None else {"APP_MAX_CONCURRENT_RUNS": str(slots)}
    out = []
    for n in levels:
        d = log_dir / f"class{n}"
        d.mkdir(parents=True, exist_ok=True)
        with _target(replicas, d, env) as (url, pids):
            time.sleep(2)
            sampler = _Sampler(pids)
            base_rss, base_cpu, load0 = sampler.rss(), sampler.cpu(), os.getloadavg()
            client0, t0 = time.process_time(), time.perf_counter()
            studs = asyncio.run(run_class(url, n, period=period, spread=spread, rounds=rounds, seed=seed,
                                          on_tick=sampler.tick))
            sampler.tick()
            wall, client_cpu = time.perf_counter() - t0, time.process_time() - client0
            caches = _cache_metrics(url) if replicas <= 1 else None
        s = summarize(studs)
        server_cpu = sampler.cpu() - base_cpu
        peak = max(r[1] for r in sampler.rows)
        out.append({
            "students": n, "replicas": replicas, "load_average_at_start": list(load0),
            "load_average_max": max(r[3] for r in sampler.rows), "wall_s": wall,
            **{k: s[k] for k in ("interactions", "ok", "p50_s", "p95_s", "max_s", "tracebacks", "error_alerts",
                                 "busy_notices", "overloaded_notices", "timeouts", "leaks", "n_failures",
                                 "failures", "by_kind")},
            "server_cpu_s": server_cpu, "server_cpu_s_per_student": server_cpu / n,
            "server_cpu_s_per_interaction": server_cpu / max(1, s["interactions"]),
            "server_cores_busy": server_cpu / wall,
            "client_cpu_s": client_cpu,
            "rss_after_warm_up_mib": base_rss, "rss_peak_mib": peak,
            "rss_per_student_mib": (peak - base_rss) / n, "caches_mib_at_end": caches,
            "rss_timeline": [(round(t, 1), round(r, 1)) for t, r, _, _ in sampler.rows[:: max(1, len(sampler.rows) // 60)]],
        })
    served = [r["students"] for r in out if r["p95_s"] is not None and r["p95_s"] < P95_GOAL_S
              and r["n_failures"] == 0 and not r["leaks"]]
    return {"class_levels": out, "students_p95_under_1s": max(served) if served else 0,
            "class_settings": {"period_s": period, "spread_s": spread, "rounds": rounds, "replicas": replicas,
                               "max_concurrent_runs": slots or "app default", "seed": seed}}


def bench_soak(minutes: float, class_size: int, period: float, spread: float, slots: Optional[int],
               log_dir: Path, extra_env: Optional[dict] = None) -> dict:
    """Many sessions over minutes on one server: classes of `class_size` new students (new prompts, so new
    traces) follow the lesson once and leave, one class after another. Resident memory is sampled throughout;
    after the first third (warm-up) it should stay flat — the caches are bounded in bytes, and a closed session's
    state is freed once Streamlit drops it (server.disconnectedSessionTTL, 120 s by default)."""
    from scripts.student import run_class, summarize

    env = ({} if slots is None else {"APP_MAX_CONCURRENT_RUNS": str(slots)}) | (extra_env or {})
    d = log_dir / "soak"
    d.mkdir(parents=True, exist_ok=True)
    waves, all_students = [], []
    with _target(1, d, env) as (url, pids):
        sampler = _Sampler(pids)
        load0, t_end, k = os.getloadavg(), time.perf_counter() + minutes * 60, 0
        while time.perf_counter() < t_end:
            studs = asyncio.run(run_class(url, class_size, period=period, spread=spread, seed=k,
                                          first=k * class_size % 900, on_tick=sampler.tick))
            sampler.tick()
            sm = summarize(studs)
            waves.append({"wave": k, "t_s": round(sampler.rows[-1][0], 1), "rss_mib": round(sampler.rss(), 1),
                          "ok": sm["ok"], "interactions": sm["interactions"], "p95_s": sm["p95_s"],
                          "caches_mib": _cache_metrics(url)})
            all_students += studs
            k += 1
    rows = sampler.rows
    t_total = rows[-1][0]
    after = [(t, r) for t, r, _, _ in rows if t >= t_total / 3]
    slope = None
    if len(after) >= 3:
        import numpy as np

        slope = float(np.polyfit([t / 60 for t, _ in after], [r for _, r in after], 1)[0])
    s = summarize(all_students)
    return {"soak": {
        "minutes": t_total / 60, "sessions": len(all_students), "class_size": class_size, "waves": waves,
        "server_env": env,
        "load_average_at_start": list(load0), "interactions": s["interactions"], "ok": s["ok"],
        "p95_s": s["p95_s"], "tracebacks": s["tracebacks"], "leaks": s["leaks"], "n_failures": s["n_failures"],
        "rss_start_mib": rows[0][1], "rss_after_warm_up_mib": after[0][1] if after else None,
        "rss_end_mib": rows[-1][1], "rss_max_mib": max(r for _, r, _, _ in rows),
        "rss_max_after_warm_up_mib": max((r for _, r in after), default=None),
        "rss_slope_after_warm_up_mib_per_min": slope,
        "rss_timeline": [(round(t, 1), round(r, 1)) for t, r, _, _ in rows[:: max(1, len(rows) // 60)]],
    }}


def run_classroom(a) -> dict:
    levels = [int(x) for x in a.students.split(",") if x.strip()]
    out: dict = {"load_average_at_start": list(os.getloadavg()), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-class-") as d:
        out.update(bench_class(levels, a.period, a.spread, a.rounds, a.replicas, a.slots, Path(d)))
        if a.soak_minutes > 0:
            extra = dict(kv.split("=", 1) for kv in a.soak_env.split(",") if "=" in kv)
            out.update(bench_soak(a.soak_minutes, a.soak_class, a.soak_period, a.soak_spread, a.slots, Path(d), extra))
    out["load_average_at_end"] = list(os.getloadavg())
    return out


def _f(x, fmt="{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def print_classroom(r: dict) -> None:
    cs = r["class_settings"]
    print(f"classroom: {cs['replicas']} replica(s), lesson step every {cs['period_s']:g} s, reaction times uniform "
          f"in [0, {cs['spread_s']:g}) s, {cs['rounds']} round(s); max concurrent runs {cs['max_concurrent_runs']}; "
          f"load average {r['load_average_at_start'][0]:.1f} at start, {r['load_average_at_end'][0]:.1f} at end")
    print(f"  {'students':>8} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'ok':>9} {'busy':>5} {'tb':>3} {'leaks':>5} "
          f"{'CPU s/student':>13} {'cores':>6} {'MiB/student':>11} {'RSS MiB':>8} {'load max':>8}")
    for x in r["class_levels"]:
        print(f"  {x['students']:>8} {_f(x['p50_s']):>7} {_f(x['p95_s']):>7} {_f(x['max_s']):>7} "
              f"{x['ok']:>4}/{x['interactions']:<4} {x['busy_notices']:>5} {x['tracebacks']:>3} {len(x['leaks']):>5} "
              f"{x['server_cpu_s_per_student']:>13.2f} {x['server_cores_busy']:>6.2f} {x['rss_per_student_mib']:>11.2f} "
              f"{x['rss_peak_mib']:>8.0f} {x['load_average_max']:>8.1f}")
    print(f"  students served with p95 < {P95_GOAL_S:g} s and no failure: {r['students_p95_under_1s']}"
          f"  (server CPU per interaction: "
          + ", ".join(f"{x['server_cpu_s_per_interaction']:.2f} s at {x['students']}" for x in r["class_levels"]) + ")")
    last = r["class_levels"][-1]
    print(f"  per interaction at {last['students']} students (p50 / p95 s):")
    for k, v in last["by_kind"].items():
        print(f"    {k:<22} {_f(v['p50_s']):>6} / {_f(v['p95_s']):>6}   ({v['ok']}/{v['n']} ok, {_f(v['mean_kib'], '{:.0f}')} KiB)")
    if "soak" in r:
        s = r["soak"]
        print(f"soak (server environment {s.get('server_env') or 'default'}):")
        print(f"  {s['sessions']} sessions in {s['minutes']:.1f} min ({s['ok']}/{s['interactions']} interactions ok, "
              f"p95 {_f(s['p95_s'])} s, {s['tracebacks']} tracebacks, {len(s['leaks'])} leaks): RSS "
              f"{s['rss_start_mib']:.0f} MiB after warm-up of the server, {_f(s['rss_after_warm_up_mib'], '{:.0f}')} "
              f"after the first third, {s['rss_end_mib']:.0f} at the end (max {s['rss_max_mib']:.0f}); slope after "
              f"the first third {_f(s['rss_slope_after_warm_up_mib_per_min'], '{:+.1f}')} MiB/min")
        for w in s["waves"]:
            c = w.get("caches_mib") or {}
            print(f"    wave {w['wave']:>3} at {w['t_s']:>6.0f} s: RSS {w['rss_mib']:6.0f} MiB, p95 {_f(w['p95_s'])} s; "
                  "caches (MiB) " + ", ".join(f"{k} {v:g}" for k, v in sorted(c.items())))


# --------------------------------------------------------------------------------------------------------


def _quiet_streamlit() -> None:
    import logging

    # Cached functions called outside a script run (AppTest's setup, this process) log a warning each time.
    for name in ("streamlit.runtime.scriptrunner_utils.script_run_context",
                 "streamlit.runtime.caching.cache_data_api"):
        logging.getLogger(name).addFilter(lambda record: False)


def run(repeats: int, browser: bool, first_chart_runs: int, folder_model: bool = True) -> dict:
    import logging

    # Cached functions called outside a script run (AppTest's setup, this process) log a warning each time.
    for name in ("streamlit.runtime.scriptrunner_utils.script_run_context",
                 "streamlit.runtime.caching.cache_data_api"):
        logging.getLogger(name).addFilter(lambda record: False)
    model, trained = default_model()
    import torch

    out: dict = {"load_average_at_start": list(os.getloadavg()), "cpu_count": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(), "repeats": repeats}
    out["model"] = "gqa-rope" + ("" if trained else " (untrained: seeded random weights)")
    for T in (64, 256):
        out.update(bench_trace(model, T, max(repeats, 5)))
    out.update(bench_decode(model, 256, max(repeats, 5)))
    if trained:
        out.update(bench_speculative(model, repeats))

    if browser and os.path.exists(CHROMIUM):
        with tempfile.TemporaryDirectory() as d:
            out.update(bench_browser(Path(d), first_chart_runs))
    else:
        out["first_chart_s"] = None
        out["first_chart_note"] = f"not measured: {'--no-browser' if not browser else CHROMIUM + ' is missing'}"
        out.update(bench_memory_in_process())

    pages = [bench_page(p, repeats) for p in app_pages()]
    slowest = max(pages, key=lambda r: r["rerun_median_s"])
    out.update(page_rerun_median_s=slowest["rerun_median_s"], page_rerun_slowest=slowest["page"], pages=pages)
    if folder_model:
        out["folder_model"] = bench_folder(repeats)
    out["load_average_at_end"] = list(os.getloadavg())
    return out


def _verdict(key: str, value) -> str:
    if key not in GOALS or value is None:
        return ""
    op, goal = GOALS[key]
    ok = {"<=": value <= goal, ">=": value >= goal, "<": value < goal}[op]
    return f"goal {op} {goal:g}: {'ok' if ok else 'MISSED'}"


def print_table(r: dict) -> None:
    print(f"model {r['model']} · {r['cpu_count']} CPUs · torch threads {r['torch_threads']} · "
          f"load average {r['load_average_at_start'][0]:.1f} at start, {r['load_average_at_end'][0]:.1f} at end")
    rows = [
        ("traced / untraced forward, 64 tokens", "traced_over_untraced_64", "{:.2f}×"),
        ("traced / untraced forward, 256 tokens", "traced_over_untraced_256", "{:.2f}×"),
        ("full recompute / cached decode step, T = 256", "recompute_over_cached_256", "{:.1f}×"),
        (f"page rerun after a widget change, slowest median ({r['page_rerun_slowest']})", "page_rerun_median_s",
         "{:.2f} s"),
        ("first chart in Chromium on a fresh server (navigation -> chart)", "first_chart_s", "{:.2f} s"),
        ("peak RSS with every variant loaded", "peak_rss_all_variants_mib", "{:.0f} MiB"),
    ]
    for label, key, fmt in rows:
        v = r.get(key)
        print(f"  {label:<78} {fmt.format(v) if v is not None else 'n/a':>10}   {_verdict(key, v)}")
    print(f"  (untraced forward {r['untraced_256_s'] * 1e3:.1f} ms, traced {r['traced_256_s'] * 1e3:.1f} ms at 256 "
          f"tokens; cached step {r['cached_step_256_s'] * 1e3:.2f} ms, recompute {r['recompute_256_s'] * 1e3:.1f} ms)")
    for x in r.get("speculative") or []:
        print(f"  (speculative, T = {x['temperature']:g}, K = {x['k']}: {x['acceptance_rate']:.0%} accepted, "
              f"{x['tokens_per_target_forward']:.2f} tokens per target forward; speedup {x['measured_speedup']:.2f}× "
              f"measured ({x['measured_speedup_cpu']:.2f}× in CPU time), {x['predicted_speedup']:.2f}× predicted "
              f"from step costs, {x['ideal_speedup']:.2f}× ideal; draft / target step: "
              f"{x['draft_over_target_flops']:.2f} in FLOPs, {x['draft_over_target_cpu']:.2f} in CPU time)")
    if r.get("first_chart_server_cpu_s") is not None:
        print(f"  (first chart, median of {len(r['first_chart_runs_s'])} fresh servers {r['first_chart_runs_s']}: "
              f"the server used {r['first_chart_server_cpu_s']:.2f} s of CPU and Chromium "
              f"{r['first_chart_browser_cpu_s']:.2f} s meanwhile; each server answered its health check "
              f"{r['server_start_s']:.2f} s after launch)")
    print("  page reruns (median wall s / CPU s; first run s):")
    for p in r["pages"]:
        print(f"    {Path(p['page']).stem:<14} {p['rerun_median_s']:6.2f} / {p['rerun_median_cpu_s']:5.2f}; "
              f"first {p['first_run_s']:5.2f}   [{p['change']}]" + ("  EXCEPTION" if p["exception"] else ""))
    if r.get("folder_model"):
        print_folder(r["folder_model"])


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the app on this machine (see the module docstring).")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeats", type=int, default=5, help="repeats per figure (medians are reported)")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium first-chart measurement")
    ap.add_argument("--first-chart-runs", type=int, default=3, help="fresh servers timed (the median is reported)")
    c = ap.add_argument_group("classroom", "simulated students over websockets (scripts/student.py)")
    c.add_argument("--classroom", action="store_true", help="also run the capacity sweep and the soak (the long run)")
    c.add_argument("--classroom-only", action="store_true", help="only the capacity sweep and the soak")
    f = ap.add_argument_group("folder model", "page reruns on a random model of SmolLM-135M's shape (bench_folder)")
    f.add_argument("--no-folder-model", action="store_true", help="leave the folder model's page reruns out")
    f.add_argument("--folder-model-only", action="store_true", help="only the folder model's page reruns")
    c.add_argument("--students", default="10,25,50,100,150", help="class sizes, comma-separated")
    c.add_argument("--period", type=float, default=20.0, help="seconds between lesson steps")
    c.add_argument("--spread", type=float, default=10.0, help="students' reaction times: uniform in [0, spread) s")
    c.add_argument("--rounds", type=int, default=1, help="passes through the lesson (later ones with a new prompt)")
    c.add_argument("--replicas", type=int, default=1, help="app processes behind nginx (1: no proxy)")
    c.add_argument("--slots", type=int, default=None, help="APP_MAX_CONCURRENT_RUNS for the servers")
    c.add_argument("--soak-minutes", type=float, default=10.0, help="0: no soak")
    c.add_argument("--soak-class", type=int, default=20, help="students per class in the soak")
    c.add_argument("--soak-period", type=float, default=3.0)
    c.add_argument("--soak-spread", type=float, default=2.0)
    c.add_argument("--soak-env", default="", metavar="K=V,…",
                   help="environment for the soak's server, e.g. APP_TRACE_CACHE_MIB=8,APP_FIGURE_CACHE_MIB=8,"
                        "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL=20: small bounds fill within a short soak")
    a = ap.parse_args(argv)
    if a.repeats < 1 or a.first_chart_runs < 1:
        ap.error("--repeats and --first-chart-runs must be >= 1")
    r: dict = {}
    if a.folder_model_only:
        _quiet_streamlit()
        r = {"folder_model": bench_folder(a.repeats), "load_average_at_end": list(os.getloadavg())}
        print(json.dumps(r, indent=1, default=str)) if a.json else print_folder(r["folder_model"])
        return 0
    if not a.classroom_only:
        r = run(a.repeats, browser=not a.no_browser, first_chart_runs=a.first_chart_runs,
                folder_model=not a.no_folder_model)
    if a.classroom or a.classroom_only:
        r["classroom"] = run_classroom(a)
    if a.json:
        print(json.dumps(r, indent=1, default=str))
    else:
        if not a.classroom_only:
            print_table(r)
        if "classroom" in r:
            print_classroom(r["classroom"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
