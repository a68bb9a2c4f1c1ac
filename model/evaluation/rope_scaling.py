"""Our RoPE model past its training context under each RoPE scaling: as trained, and after a short fine-tune.

    python -m model.evaluation.rope_scaling --threads 1     # → results/rope_scaling.json
    python -m model.evaluation.rope_scaling --windows 2 --out /tmp/r.json   # two windows (seconds; the tests)

The variant gqa-rope was trained on 256-token windows. Here it reads held-out windows 4× as long (1,024
positions; `val_windows` of the held-out plays, non-overlapping) four ways, the same weights each time
(`scaled_model`: a fresh model with `rope_scaling` replaced, the shipped one left alone):
  none    plain extrapolation: past 255 every pair turns further than training ever took it;
  linear  position interpolation (Chen et al. 2023), s = 4: every θ_i / 4, position 1023 turns as 255.75 did;
  ntk     static NTK-aware scaling (bloc97 2023), s = 4: the base 10000 becomes 10000 · 4^(32/30) — fast pairs
          nearly as trained, the slowest interpolated by 4 (transformers' "dynamic" is the length-dependent
          variant of this; see `model.net.positions.scale_inv_freq`);
  yarn    YaRN (Peng et al. 2023), s = 4, β_fast 32, β_slow 1: a ramp from kept (fast pairs) to interpolated
          (slow ones), and q·k multiplied by (0.1·ln 4 + 1)² = 1.30, as transformers applies it.

Then, on the same windows, each method's fine-tuned model where it exists: `checkpoints/gqa-rope-ft-<method>/`,
written by `model.training.extend` (a short fine-tune on 1,024-token windows under that scaling; "none" is
the control, fine-tuned alike without a scaling). Those rows go under "finetuned": their own per-position
and band numbers, the paired differences among them (each scaling against the fine-tuned control: what the
scaling buys beyond training on long windows), each against the same method untrained (`vs_untrained`:
what the fine-tune changed) and against the shipped model unscaled (`vs_original`), with the fine-tune's
settings and tokens. The untrained rows do not depend on them.

"The loss at position m" is the cross-entropy of the next token predicted by the query at RoPE position m, so
from tokens 0 … m (`evaluate.token_losses`' column m; Compare's curve calls it position m + 1). Positions
0 … 255 are inside the trained context. Per method: that loss at every m, averaged over the windows; its
mean in bands of 64 positions with a standard error over windows; each window's mean over 0–255 (inside),
256–1023 (past) and 768–1023 (the last quarter); the rise of each band over the same window's last in-context
band (192–255), paired; and every pair of methods' differences, paired window by window. The windows are the
unit of sampling: standard errors are std / √windows (positions of one window are not independent). For the
fine-tuned models that is all they measure: one fine-tune per method, so how much a second fine-tune run would
differ is not measured here.

Cheap by construction: one fp32 forward per window and model (fused attention, no grad); positions 0–255 of
a 1,024-token forward are exactly a 256-token forward's (causal), so the in-context losses come free.

What it does not do: other variants or lengths, the dynamic NTK variant (its base depends on the current
length; on one full 1,024-token forward with factor 1 it equals `ntk` here), or any generation metric.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import itertools
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from model.evaluation.evaluate import cpu_name, to_json, token_losses
from model.net.positions import rope_attention_factor, rope_inv_freq
from model.net.transformer import Transformer

RESULTS_PATH = Path(__file__).resolve().parents[2] / "results" / "rope_scaling.json"
VARIANT = "gqa-rope"
FACTOR = 4.0  # s: the context is stretched to s × 256 = 1,024 positions
BAND = 64  # positions per band for the means with standard errors
METHODS = ("none", "linear", "ntk", "yarn")
LABELS = {"none": "none (extrapolation)", "linear": "linear (position interpolation)",
          "ntk": "NTK-aware (static)", "yarn": "YaRN"}
TUNED_LABELS = {**LABELS, "none": "none (no scaling)"}  # fine-tuned at 1,024, "none" no longer extrapolates


def scalings(context: int, factor: float = FACTOR) -> dict[str, Optional[dict]]:
    """The rope_scaling of each method for a model trained on `context` positions, stretched `factor` times."""
    return {
        "none": None,
        "linear": {"rope_type": "linear", "factor": factor},
        "ntk": {"rope_type": "ntk", "factor": factor},
        "yarn": {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": context,
                 "beta_fast": 32.0, "beta_slow": 1.0},
    }


def scaled_model(model, scaling: Optional[dict]):
    """A new eval-mode Transformer with `model`'s weights and rope_scaling = `scaling`; `model` is not touched
    (the app shares it between sessions)."""
    m = Transformer(dataclasses.replace(model.cfg, rope_scaling=scaling))
    m.load_state_dict(model.state_dict())
    return m.eval().requires_grad_(False)


@torch.no_grad()
def position_losses(model, windows: np.ndarray, batch: int = 4) -> np.ndarray:
    """Cross-entropy at every position of every window: windows (n, T + 1) → (n, T) float64, column m the loss
    of the prediction made at position m."""
    return token_losses(model, windows, batch)


# --------------------------------------------------------------------------------------------------------
# Summaries: plain NumPy on the (windows, positions) losses
# --------------------------------------------------------------------------------------------------------


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over windows (axis 0) and its standard error std / √n (NaN with one window).
    [[1, 2], [3, 6]] -> ([2, 4], [1, 2])."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    se = x.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), se


def _r(x) -> list | float:
    """Rounded to 4 decimals for the JSON (NaN → None)."""
    a = np.round(np.asarray(x, dtype=np.float64), 4)
    if a.ndim == 0:
        return None if np.isnan(a) else float(a)
    return [None if np.isnan(v) else float(v) for v in a]


def _bands_and_regions(L: np.ndarray, starts: np.ndarray, ends: np.ndarray, regions: dict) -> tuple:
    """Per window: the mean of each band (n, B) and of each region {name: (n,)}, from losses L (n, T)."""
    n = L.shape[0]
    per_band = np.stack([L[:, s:e].mean(axis=1) for s, e in zip(starts, ends)], axis=1)  # (n, B)
    per_region = {k: L[:, a:b].mean(axis=1) if b > a else np.full(n, np.nan) for k, (a, b) in regions.items()}
    return per_band, per_region


def _paired(band_a: np.ndarray, band_b: np.ndarray, region_a: dict, region_b: dict) -> dict:
    """a − b window by window: per region {mean, se} and per band band_mean / band_se."""
    d_mean, d_se = mean_se(band_a - band_b)
    return {**{k: dict(zip(("mean", "se"), map(_r, mean_se(region_a[k] - region_b[k])))) for k in region_a},
            "band_mean": _r(d_mean), "band_se": _r(d_se)}


def summarize(losses: dict[str, np.ndarray], context: int, band: int = BAND) -> dict:
    """Everything the page and its sentences read, from {method: losses (n, T)} on the same windows.

    bands: [start, end) of each band of `band` positions; regions: inside [0, context), past [context, T),
    last [T − context, T); reference: the last in-context band [context − band, context), against which each
    band's rise is paired window by window. `paired["a-b"]`: a − b on the same windows, for every pair of
    methods (a after b in the dict's order), per region and per band.
    """
    names = list(losses)
    n, T = losses[names[0]].shape
    starts = np.arange(0, T, band)
    ends = np.minimum(starts + band, T)
    regions = {"inside": (0, min(context, T)), "past": (min(context, T), T), "last": (max(T - context, 0), T)}
    ref = (max(context - band, 0), min(context, T))
    per_band, per_region, methods = {}, {}, {}
    for name in names:
        L = np.asarray(losses[name], dtype=np.float64)  # (n, T)
        per_band[name], per_region[name] = _bands_and_regions(L, starts, ends, regions)  # (n, B), each (n,)
        b_mean, b_se = mean_se(per_band[name])
        rise_mean, rise_se = mean_se(per_band[name] - L[:, ref[0]:ref[1]].mean(axis=1, keepdims=True))
        methods[name] = {
            "mean": _r(L.mean(axis=0)),  # (T,) loss at each position, over the windows
            "band_mean": _r(b_mean), "band_se": _r(b_se),
            "regions": {k: dict(zip(("mean", "se"), map(_r, mean_se(v)))) for k, v in per_region[name].items()},
            "rise_mean": _r(rise_mean), "rise_se": _r(rise_se),  # band − reference band, paired
            "window": {k: _r(v) for k, v in per_region[name].items()},  # each window's region means
        }
    paired = {}
    for a, b in itertools.combinations(names, 2):
        a, b = b, a  # the later method minus the earlier one: "linear-none" = linear − none
        paired[f"{a}-{b}"] = _paired(per_band[a], per_band[b], per_region[a], per_region[b])
    return {"windows": int(n), "positions": int(T), "context": int(context), "band": int(band),
            "bands": {"start": starts.tolist(), "end": ends.tolist()},
            "regions": {k: list(v) for k, v in regions.items()},
            "reference": list(ref), "methods": methods, "paired": paired}


def summarize_finetuned(losses: dict[str, np.ndarray], tuned: dict[str, np.ndarray], context: int,
                        band: int = BAND, original: str = "none") -> dict:
    """The fine-tuned models beside the untrained ones, on the same windows: `methods` and `paired` as
    `summarize` gives them for the fine-tuned models among themselves ("linear-none" = fine-tuned linear −
    the fine-tuned control), `vs_untrained[name]` = fine-tuned − the same method untrained, window by window
    (what the fine-tune changed), and `vs_original[name]` = fine-tuned − the untrained model without a scaling
    (`original`: the shipped model as it is — did the fine-tune keep its short-context loss?)."""
    res = summarize(tuned, context, band)
    starts, ends = np.asarray(res["bands"]["start"]), np.asarray(res["bands"]["end"])
    regions = {k: tuple(v) for k, v in res["regions"].items()}

    def split(L: np.ndarray) -> tuple:
        return _bands_and_regions(np.asarray(L, dtype=np.float64), starts, ends, regions)

    vs, vs_orig = {}, {}
    base = split(losses[original]) if original in losses else None
    for name, L in tuned.items():
        ft, un = split(L), split(losses[name])
        vs[name] = _paired(ft[0], un[0], ft[1], un[1])
        if base is not None:
            vs_orig[name] = _paired(ft[0], base[0], ft[1], base[1])
    return {"methods": res["methods"], "paired": res["paired"], "vs_untrained": vs, "vs_original": vs_orig}


# --------------------------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------------------------


def evaluate_scalings(model, windows: np.ndarray, factor: float = FACTOR, band: int = BAND, batch: int = 4,
                      step: Optional[Callable[[str], None]] = None, finetuned: Optional[dict] = None) -> dict:
    """Every method of `scalings` on the same windows (n, T + 1) → the `summarize` dict, with each method's
    rope_scaling, label, frequencies (θ_i, 6 significant digits) and attention factor added.

    `finetuned` = {method: (fine-tuned model, its record)}: those models on the same windows, under
    out["finetuned"] (`summarize_finetuned`, each method's record as "finetune"); the untrained rows are the
    same with or without them."""
    cfg = model.cfg
    methods = scalings(cfg.max_seq_len, factor)
    losses = {}
    for name, scaling in methods.items():
        if step:
            step(name)
        losses[name] = position_losses(scaled_model(model, scaling), windows, batch)
    out = summarize(losses, cfg.max_seq_len, band)

    def described(name: str, scaling: Optional[dict], row: dict) -> dict:
        inv = rope_inv_freq(cfg.head_dim, cfg.rope_theta, scaling).double().numpy()  # (hd/2,)
        return {"label": LABELS[name], "rope_scaling": scaling,
                "attention_factor": round(rope_attention_factor(scaling), 6),
                "inv_freq": [float(f"{x:.6g}") for x in inv], **row}

    for name, scaling in methods.items():
        out["methods"][name] = described(name, scaling, out["methods"][name])
    if finetuned:
        tuned = {}
        for name in (m for m in methods if m in finetuned):  # METHODS order
            if step:
                step(f"{name}, fine-tuned")
            tuned[name] = position_losses(finetuned[name][0], windows, batch)
        ft = summarize_finetuned(losses, tuned, cfg.max_seq_len, band)
        ft["methods"] = {name: {**described(name, methods[name], row), "label": TUNED_LABELS[name],
                                "finetune": finetuned[name][1]} for name, row in ft["methods"].items()}
        out["finetuned"] = ft
    return out


def finetuned_models(source: Path, context: int, factor: float = FACTOR) -> dict:
    """{method: (model, record)} for every `<source>-ft-<method>` folder present (`model.training.extend`),
    checked: its config must be the source's (trained on `context` positions) at factor × context positions
    with the method's scaling, and it must have
    been fine-tuned from these very weights (the SHA-256 its log records) — else ValueError. The record: the
    fine-tune's settings, tokens seen and time, for the JSON."""
    import hashlib
    import json

    from model.net.checkpoints import load_checkpoint
    from model.training.extend import METHODS as TUNED, finetune_dir

    source = Path(source)
    sha = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    out = {}
    for name in TUNED:
        path = finetune_dir(name, source)
        if not (path / "model.safetensors").is_file():
            continue
        model = load_checkpoint(path)
        log = json.loads((path / "train_log.json").read_text())
        want, length = scalings(context, factor)[name], int(round(factor * context))
        if model.cfg.max_seq_len != length or model.cfg.rope_scaling != want:
            raise ValueError(f"{path}: max_seq_len {model.cfg.max_seq_len}, rope_scaling {model.cfg.rope_scaling}; "
                             f"expected {length} and {want}")
        if log.get("init", {}).get("sha256") != sha:
            raise ValueError(f"{path} was not fine-tuned from {source}'s weights (its log's init.sha256 differs)")
        t = log["train"]
        out[name] = (model, {
            "checkpoint": f"{path.parent.name}/{path.name}", "steps": t["steps"], "batch_size": t["batch_size"],
            "seq_len": t["seq_len"], "tokens": t["steps"] * t["batch_size"] * t["seq_len"], "lr": t["lr"],
            "min_lr": t["min_lr"], "warmup": t["warmup"], "weight_decay": t["weight_decay"],
            "dropout": t["dropout"], "seed": t["seed"], "elapsed_s": log.get("elapsed_s"),
            # held-out loss logged during the fine-tune: the first 16·eval_batches windows, all positions, bf16
            "val": log.get("val", []), "val_windows": 16 * t["eval_batches"],
            "command": log.get("command", ""), "from": log["init"]})
    return out


def run(variant: str = VARIANT, factor: float = FACTOR, n_windows: Optional[int] = None, band: int = BAND,
        threads: int = 1, batch: int = 4, command: str = "", step: Optional[Callable[[str], None]] = None,
        with_finetuned: bool = True) -> dict:
    """Load `variant`, cut the held-out split into windows of factor × context tokens (+1 for the last target),
    evaluate every method on the first `n_windows` of them (None = all) → the JSON-ready dict; with the
    fine-tuned folders `checkpoints/<variant>-ft-<method>` that exist (`finetuned_models`) unless told not to."""
    from model.net.checkpoints import load_train_log, load_variant, variant_dir
    from model.text.batches import encoded_split, val_windows

    t0 = time.time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = load_variant(variant)
        cfg = model.cfg
        if cfg.pos_encoding != "rope":
            raise ValueError(f"{variant} has {cfg.pos_encoding} positions: RoPE scalings need a RoPE model")
        length = int(round(factor * cfg.max_seq_len))
        val_ids, _ = encoded_split("val")
        windows = val_windows(val_ids, length)
        available = len(windows)
        windows = windows[:n_windows]
        tuned = finetuned_models(variant_dir(variant), cfg.max_seq_len, factor) if with_finetuned else {}
        load = [round(x, 2) for x in os.getloadavg()]
        res = evaluate_scalings(model, windows, factor, band, batch, step, tuned)
        if "finetuned" in res:  # the fine-tunes' tokens as a share of the source's pre-training
            t = (load_train_log(variant) or {}).get("train")
            res["finetuned"]["pretraining_tokens"] = t["steps"] * t["batch_size"] * t["seq_len"] if t else None
    finally:
        torch.set_num_threads(old_threads)
    head = {"command": command, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name(), "threads": threads,
            "load_average_at_start": load, "variant": variant, "factor": factor, "length": length,
            "windows_available": available, "head_dim": cfg.head_dim, "rope_theta": cfg.rope_theta,
            "settings": {"factor": factor, "band": band, "batch": batch, "n_windows": n_windows, "dtype": "float32",
                         "attention": "fused (scaled_dot_product_attention)", "split": "val",
                         "position": "m = the predicting query's RoPE position, 0-based"}}
    return {**head, **res, "elapsed_s": round(time.time() - t0, 1)}


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default=VARIANT, help=f"a RoPE variant (default {VARIANT})")
    p.add_argument("--factor", type=float, default=FACTOR, help="s: evaluate to s × the training context")
    p.add_argument("--windows", type=int, default=None, help="held-out windows (default: all)")
    p.add_argument("--band", type=int, default=BAND, help="positions per band")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=RESULTS_PATH, help="default: results/rope_scaling.json")
    p.add_argument("--no-finetuned", action="store_true", help="leave out the fine-tuned checkpoints")
    a = p.parse_args(argv)
    args = argv if argv is not None else sys.argv[1:]
    command = "python -m model.evaluation.rope_scaling" + "".join(" " + shlex.quote(x) for x in args)
    res = run(a.variant, a.factor, a.windows, a.band, a.threads, command=command,
              step=lambda name: print(f"  {name} …", file=sys.stderr, flush=True), with_finetuned=not a.no_finetuned)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(to_json(res) + "\n")
    def cell(r: dict) -> str:
        return f"{r['mean']:.4f} ± {r['se']:.4f}" if r["se"] is not None else f"{r['mean']:.4f}"

    lo, hi = res["regions"]["inside"], res["regions"]["last"]
    rows = [(name, m) for name, m in res["methods"].items()]
    rows += [(f"{name}+ft", m) for name, m in res.get("finetuned", {}).get("methods", {}).items()]
    for name, m in rows:
        print(f"{name:10s} {lo[0]}–{lo[1] - 1}: {cell(m['regions']['inside'])}   "
              f"{hi[0]}–{hi[1] - 1}: {cell(m['regions']['last'])} nats/token (± 1 s.e.)")
    print(f"wrote {a.out} ({res['windows']} windows of {res['length']} positions) in {res['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
