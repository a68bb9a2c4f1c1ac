"""What quantization costs in loss and saves in time, measured: held-out losses per format, and int8 speed.

Losses are next-token cross-entropy over non-overlapping 256-token windows of the held-out plays (the windows
of `model.evaluation`), kept per window so a format is compared with fp32 *paired* (same windows; mean
difference and its standard error). The KV-cache variant runs each window as a prefill through a `Q8KVCache`,
so attention reads every key and value as Q8_0 holds it — what cached decoding with that cache would read.

Speed is PyTorch's own int8: `torch.ao.quantization.quantize_dynamic` swaps every nn.Linear for one whose
weights are int8 per output channel and whose input is quantized to int8 per call (fbgemm / oneDNN kernels on
x86, "x86" engine; qnnpack on ARM). The unembedding (a plain matmul with the tied embedding) and attention's
own matmuls stay fp32. fp32 and int8 take turns, one thread, median of `repeats` (min and max kept): on a
shared CPU single timings are noise. torch has deprecated this API (its successor is the torchao package,
not installed here); where it is missing the speed entry says so instead of a number.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
import warnings
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from model.evaluation.evaluate import metrics
from model.evaluation.stats import paired_difference
from model.quantize.apply import Q8KVCache


@torch.no_grad()
def window_losses(model, windows: np.ndarray, batch: int = 8, kv_int8: bool = False) -> np.ndarray:
    """Mean next-token loss (nats) of each window: (n, T + 1) ids → (n,) float64."""
    out = []
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(np.asarray(windows[i : i + batch], dtype=np.int64))  # (b, T + 1)
        cache = Q8KVCache.for_model(model.cfg) if kv_int8 else None
        logits = model(w[:, :-1], cache=cache, fused=True)  # (b, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="none")  # (b·T,)
        out.append(loss.view(w.shape[0], -1).double().mean(1).numpy())  # (b,)
    return np.concatenate(out) if out else np.zeros(0)


def loss_entry(losses: np.ndarray, chars_per_token: float, reference: Optional[np.ndarray] = None) -> dict:
    """metrics() of the mean, and — against a reference on the same windows — the paired difference."""
    out = metrics(float(losses.mean()), chars_per_token)
    if reference is not None:
        diff, se = paired_difference(losses, reference)
        out.update(delta_nats=round(diff, 5), delta_se=round(se, 5) if se == se else None)
    return out


# --------------------------------------------------------------------------------------------------------
# PyTorch's int8 kernels
# --------------------------------------------------------------------------------------------------------


def torch_int8(model):
    """A copy of `model` with every nn.Linear replaced by torch's dynamic int8 Linear (per-channel weights),
    or None when this torch has no quantized CPU kernels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice, once per call
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                    dtype=torch.qint8)
    except (ImportError, RuntimeError, AttributeError):
        return None


def _times(fn: Callable[[], None], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _summary(seconds: list[float], per: int = 1) -> dict:
    ms = [1e3 * s / per for s in seconds]
    return {"median_ms": round(statistics.median(ms), 3), "min_ms": round(min(ms), 3), "max_ms": round(max(ms), 3)}


@torch.no_grad()
def measure_speed(model, repeats: int = 7, prompt: int = 64, decode: int = 32, seed: int = 0) -> dict:
    """fp32 vs torch's dynamic int8 on one thread: a 256-token prefill (batch 1 and 8), and cached decode steps
    (`decode` steps after a `prompt`-token prefill; per-step time). Models take turns within each repeat."""
    from model.net.kv_cache import KVCache

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        q = torch_int8(model)
        engine = torch.backends.quantized.engine
        out = {"engine": engine, "threads": 1, "repeats": repeats, "load_average_at_start":
               [round(x, 2) for x in os.getloadavg()], "cases": {}}
        if q is None:
            out["unavailable"] = "torch.ao.quantization.quantize_dynamic is not available in this torch"
            return out
        T = model.cfg.max_seq_len
        ids = torch.randint(0, model.cfg.vocab_size, (8, T), generator=torch.Generator().manual_seed(seed))

        def prefill(m, b):
            return lambda: m(ids[:b], fused=True)

        def decode_only(m):
            """Time only the decode steps: prefill outside the clock."""
            def run():
                cache = KVCache.for_model(m.cfg)
                m(ids[:1, :prompt], cache=cache)
                t = time.perf_counter()
                for i in range(decode):
                    m(ids[:1, prompt + i : prompt + i + 1], cache=cache)
                return time.perf_counter() - t
            return run

        cases = {
            f"prefill, {T} tokens": lambda m: prefill(m, 1),
            f"prefill, 8 × {T} tokens": lambda m: prefill(m, 8),
        }
        for m in (model, q):  # warm-up: first calls allocate and pick kernels
            for make in cases.values():
                make(m)()
            decode_only(m)()
        raw = {k: {"fp32": [], "int8": []} for k in list(cases) + ["decode step"]}
        for _ in range(repeats):
            for name, m in (("fp32", model), ("int8", q)):
                for case, make in cases.items():
                    raw[case][name] += _times(make(m), 1)
                raw["decode step"][name].append(decode_only(m)() / decode)
        for case, r in raw.items():
            out["cases"][case] = {k: _summary(v) for k, v in r.items()}
            out["cases"][case]["speedup"] = round(statistics.median(r["fp32"]) / statistics.median(r["int8"]), 3)
        return out
    finally:
        torch.set_num_threads(threads)
