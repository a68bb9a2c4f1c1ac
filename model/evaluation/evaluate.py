"""Measure the shipped variants side by side on held-out text: `python -m model.evaluation`.

    python -m model.evaluation                       # the full run → results/evaluation.json (≈ 5 min, 1 thread)
    python -m model.evaluation --quick --out /tmp/q.json   # a few windows of everything (seconds; the tests run it)
    python -m model.evaluation --variants gqa-moe gqa-gelu --merge   # only these, their rows merged into the file

`--merge` evaluates the named variants alone and puts their rows into the existing `--out` file: every other row,
the baselines and the file's own header stay as they are (`merge_results`). It refuses a file measured with other
settings or on other data, whose rows would then not compare. One variant at full settings takes ≈ 40 s on one
thread (gqa-rope: 37 s in all with the 2 cores busy training, load average ≈ 4.5; the MoE's measurements 40 s).

For every variant whose checkpoint is present, on the held-out split (`encoded_split("val")`, three whole
plays the models never saw):
- held-out loss (nats/token), perplexity and bits/char over non-overlapping 256-token windows, with each
  window's mean kept so two variants can be compared *paired* (same windows, `paired_difference`);
- loss by token position, 1 … 1024 = 4× the training context: windows of 1024 tokens, the loss at each
  position averaged over windows, then bucketed for display, and each window's mean inside and past the
  training context kept (so the rise past it can be compared paired, window by window). A learned position
  table has no row past 256, so that model refuses longer input (ValueError) and the result says so instead
  of a number;
- KV-cache bytes per token (`model.accounting`'s formula 2·L·n_kv·hd·4 for fp32, checked against the bytes a
  real `KVCache` holds after decoding);
- parameters (Σ numel), and those a token's forward uses (`active_params`: for a mixture of experts the router
  and k of its E experts, by `model.accounting`'s count; for every other variant all of them);
- decode speed, tokens/s, measured on this machine on one thread: a 32-token prompt, then 64 cached decode
  steps, five rounds with the variants taking turns, median and min–max (the CPU and its load average are
  recorded: a shared CPU is noisy);
- attention statistics per layer and head on held-out windows: mean attended distance Σ_k pattern·(q − k),
  entropy, and the share of attention on the window's first token (a "sink"), as
  `model.analysis.heads.attention_stats` computes them.
Plus unigram and bigram baselines (add-k smoothed counts of the training ids, scored on the held-out ids), so
the models can be shown far below them.

Forward passes for losses use the fused attention kernel (`fused=True`; tests check it equals the explicit
path), the attention statistics the explicit path that records patterns. Everything runs in fp32 on the
weights as shipped (fp16 in the file).

What the numbers mean in words is not here: the Compare page's sentences are `viz/compare_text.py`.

What it does not do: several training seeds (this measures each shipped run once, so seed-to-seed variation
is not measured here — only the evaluation's own sampling error, through paired window differences;
`model.evaluation.seeds` measures the extra seed runs), GPUs, or any generation quality metric.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from model.accounting.arch import arch_from_model_config
from model.accounting.counts import active_params, kv_cache_bytes_per_token
from model.analysis.heads import attention_stats, uniform_reference
from model.evaluation.stats import paired_difference  # noqa: F401  (part of this module's API)
from model.net.checkpoints import VARIANTS, available_variants, load_variant
from model.net.hooks import recording
from model.net.kv_cache import KVCache
from model.text.batches import encoded_split, val_windows

RESULTS_PATH = Path(__file__).resolve().parents[2] / "results" / "evaluation.json"
Progress = Callable[[float, str], None]  # (fraction done, what is running)


@dataclass(frozen=True)
class EvalSettings:
    seq_len: int = 256  # held-out windows: the training context
    heldout_windows: Optional[int] = None  # None = every window of the split (465 of 256 tokens)
    position_len: int = 1024  # loss by position up to 4× the training context
    position_windows: Optional[int] = None  # windows of position_len tokens per position; None = all 116
    bucket: int = 16  # positions per bucket in the displayed curve
    attention_windows: int = 32  # held-out windows of seq_len tokens for the attention statistics
    decode_prompt: int = 32  # prompt tokens before the timed decode
    decode_tokens: int = 64  # cached decode steps timed
    decode_repeats: int = 5  # timings per variant: median and min–max are reported
    threads: int = 1  # torch threads while measuring: one, so numbers compare across machines
    batch: int = 8  # sequences per forward for the losses


QUICK = EvalSettings(heldout_windows=4, position_len=320, position_windows=2, bucket=16, attention_windows=1,
                     decode_prompt=8, decode_tokens=8, decode_repeats=2, batch=4)


# --------------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def heldout_loss(model, windows: np.ndarray, batch: int = 16, autocast: bool = False) -> float:
    """Mean next-token cross-entropy (nats/token) over the given windows."""
    model.eval()
    total, count = 0.0, 0
    dev = next(model.parameters()).device
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(windows[i : i + batch]).to(dev)  # (b, T + 1)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(w[:, :-1])  # (b, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), w[:, 1:].flatten(), reduction="sum")
        total, count = total + loss.item(), count + w[:, 1:].numel()
    return total / count


def metrics(nats_per_token: float, chars_per_token: float) -> dict:
    return {
        "nats_per_token": round(nats_per_token, 4),
        "perplexity": round(math.exp(nats_per_token), 2),
        "bits_per_char": round(nats_per_token / math.log(2) / chars_per_token, 4),
    }


@torch.no_grad()
def token_losses(model, windows: np.ndarray, batch: int = 8) -> np.ndarray:
    """Cross-entropy (nats) of every next-token prediction: windows (n, T + 1) → (n, T).

    Column p − 1 is the loss at position p: predicting token p + 1 from the first p tokens.
    Raises ValueError when the model cannot take T positions (a learned table shorter than T).
    """
    out = []
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(np.asarray(windows[i : i + batch], dtype=np.int64))  # (b, T + 1)
        logits = model(w[:, :-1], fused=True)  # (b, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="none")  # (b·T,)
        out.append(loss.view(w.shape[0], -1).double().numpy())  # (b, T) float64: means and rounding stay exact
    return np.concatenate(out) if out else np.zeros((0, windows.shape[1] - 1), dtype=np.float32)


def bucket_mean(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of consecutive runs of `width` positions, and each run's centre position (positions start at 1).

    values=[4, 2, 3, 1, 5], width=2 -> means [3, 2, 5], centres [1.5, 3.5, 5.0].
    """
    v = np.asarray(values, dtype=np.float64)
    starts = np.arange(0, len(v), width)
    means = np.array([v[s : s + width].mean() for s in starts])
    centres = np.array([(s + 1 + min(s + width, len(v))) / 2 for s in starts])
    return means, centres


def loss_by_position(model, val_ids: np.ndarray, length: int, n_windows: Optional[int], bucket: int,
                     batch: int = 2) -> dict:
    """Mean loss at positions 1 … `length`, over `n_windows` (None = all) non-overlapping held-out windows.

    A model that refuses the length (learned positions past their table) is evaluated up to what it accepts,
    and `note` says where and why it stops. `window_inside` / `window_past`: each window's mean loss at
    positions 1 … context (the model's training length) and past it (None where it stops at the context):
    the per-window record that puts an interval on the rise past the context (`stats.window_rise`).
    """
    windows = val_windows(val_ids, length)[:n_windows]  # (n, length + 1)
    note = None
    try:
        losses = token_losses(model, windows, batch)  # (n, length)
    except ValueError as e:
        if model.cfg.pos_encoding != "learned":
            raise
        table = model.cfg.max_seq_len
        note = f"n/a past {table}: learned table ends ({e})"
        losses = token_losses(model, windows[:, : table + 1], batch)  # (n, table)
    mean = losses.mean(axis=0)  # (positions,)
    b_mean, b_centre = bucket_mean(mean, bucket)
    context = model.cfg.max_seq_len
    past = losses[:, context:]  # (n, positions past the training context)
    return {
        "requested": length,
        "evaluated": int(len(mean)),
        "windows": int(len(windows)),
        "note": note,
        "context": context,
        "window_inside": np.round(losses[:, :context].mean(axis=1), 4).tolist(),
        "window_past": np.round(past.mean(axis=1), 4).tolist() if past.shape[1] else None,
        "mean": np.round(mean, 4).tolist(),
        "bucket": bucket,
        "bucket_centre": b_centre.tolist(),
        "bucket_mean": np.round(b_mean, 4).tolist(),
    }


# --------------------------------------------------------------------------------------------------------
# Baselines: smoothed counts of the training ids
# --------------------------------------------------------------------------------------------------------


def unigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab: int, k: float = 1.0) -> float:
    """Nats/token of p(t) = (count(t) + k) / (N + k·V) on val_ids[1:] (the tokens a model is scored on)."""
    counts = np.bincount(train_ids.astype(np.int64), minlength=vocab).astype(np.float64)  # (V,)
    logp = np.log(counts + k) - np.log(counts.sum() + k * vocab)
    return float(-logp[val_ids[1:].astype(np.int64)].mean())


def bigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab: int, k: float) -> float:
    """Nats/token of p(b | a) = (count(a, b) + k) / (count(a) + k·V), scored on consecutive pairs of val_ids."""
    t = train_ids.astype(np.int64)
    pair = np.bincount(t[:-1] * vocab + t[1:], minlength=vocab * vocab).astype(np.float64)  # (V·V,)
    first = pair.reshape(vocab, vocab).sum(axis=1)  # (V,) count(a) as a first element
    v = val_ids.astype(np.int64)
    a, b = v[:-1], v[1:]
    logp = np.log(pair[a * vocab + b] + k) - np.log(first[a] + k * vocab)
    return float(-logp.mean())


def baselines(train_ids: np.ndarray, val_ids: np.ndarray, vocab: int, chars_per_token: float) -> dict:
    """Unigram (add-one) and bigram (add-k, k picked on the last 10 % of the training ids, never on val)."""
    cut = int(len(train_ids) * 0.9)
    ks = (1.0, 0.1, 0.01, 0.001)
    k = min(ks, key=lambda k: bigram_loss(train_ids[:cut], train_ids[cut:], vocab, k))
    uni = metrics(unigram_loss(train_ids, val_ids, vocab, 1.0), chars_per_token)
    bi = metrics(bigram_loss(train_ids, val_ids, vocab, k), chars_per_token)
    return {"unigram": {**uni, "smoothing": "add-one"},
            "bigram": {**bi, "smoothing": f"add-k, k = {k:g} (picked from {list(ks)} on the last 10 % of train)"}}


# --------------------------------------------------------------------------------------------------------
# Attention statistics
# --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def attention_statistics(model, windows: np.ndarray, batch: int = 2) -> dict:
    """attention_stats of every layer's pattern on held-out windows (n, T + 1): [layer][head] lists."""
    L = model.cfg.n_layers
    sums: dict[str, np.ndarray] = {}
    n = 0
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(np.asarray(windows[i : i + batch, :-1], dtype=np.int64))  # (b, T)
        per_layer: dict[int, dict] = {}

        def record(name: str, t: torch.Tensor) -> None:
            if name.endswith("attn.hook_pattern"):
                per_layer[int(name.split(".")[1])] = attention_stats(t.numpy())  # each (H,)

        with recording(record):
            model(w)  # explicit attention: the pattern is computed and recorded
        for key in ("mean_distance", "entropy", "first_token"):
            s = np.stack([per_layer[l][key] for l in range(L)]) * w.shape[0]  # (L, H), weighted by batch size
            sums[key] = sums.get(key, 0) + s
        n += w.shape[0]
    T = windows.shape[1] - 1
    return {"windows": int(n), "seq_len": int(T), "uniform": {k: round(v, 4) for k, v in uniform_reference(T).items()},
            **{k: np.round(v / max(n, 1), 4).tolist() for k, v in sums.items()}}


# --------------------------------------------------------------------------------------------------------
# Speed and memory
# --------------------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@torch.no_grad()
def decode_once(model, prompt_ids: np.ndarray, new_tokens: int) -> tuple[float, float]:
    """Greedy cached decoding of `new_tokens` after a prefill of `prompt_ids`; only the decode steps are timed.
    Returns (tokens/s, the real KV cache's bytes per cached position at the end)."""
    cache = KVCache.for_model(model.cfg)
    logits = model(torch.as_tensor(np.asarray(prompt_ids, dtype=np.int64))[None], cache=cache)[0, -1]  # (V,)
    t0 = time.perf_counter()
    for _ in range(new_tokens):
        logits = model(torch.tensor([[int(logits.argmax())]]), cache=cache)[0, -1]  # (V,) one decode step
    return new_tokens / (time.perf_counter() - t0), cache.nbytes() / cache.length


def decode_speeds(models: dict, prompt_ids: np.ndarray, new_tokens: int, repeats: int,
                  step: Optional[Callable[[str], None]] = None) -> dict[str, dict]:
    """decode_once for every model, `repeats` rounds, the models taking turns within each round: a shared CPU's
    load drifts, and taking turns spreads that drift over all of them instead of penalising whoever ran first.
    Per model: tokens/s median, min, max, every run, and the measured KV bytes per token."""
    runs: dict[str, list[float]] = {n: [] for n in models}
    per_token: dict[str, float] = {}
    for r in range(repeats):
        if step:
            step(f"decode speed, round {r + 1} of {repeats}")
        for name, model in models.items():
            speed, per_token[name] = decode_once(model, prompt_ids, new_tokens)
            runs[name].append(speed)
    return {n: {"tokens_per_s": {"median": round(float(np.median(v)), 1), "min": round(min(v), 1),
                                 "max": round(max(v), 1)},
                "runs": [round(x, 1) for x in v], "prompt_tokens": int(len(prompt_ids)), "new_tokens": new_tokens,
                "kv_bytes_per_token_measured": per_token[n]} for n, v in runs.items()}


# --------------------------------------------------------------------------------------------------------
# One variant, then all of them
# --------------------------------------------------------------------------------------------------------


def evaluate_model(model, val_ids: np.ndarray, chars_per_token: float, s: EvalSettings,
                   step: Optional[Callable[[str], None]] = None) -> dict:
    """Every measurement of one model but its speed (`decode_speeds` times them all, taking turns). `step(name)` is
    called as each part starts."""
    step = step or (lambda name: None)
    cfg = model.cfg
    seq = min(s.seq_len, cfg.max_seq_len)  # the shipped models: 256 = their training context
    step("held-out loss")
    windows = val_windows(val_ids, seq)
    if s.heldout_windows is not None:
        windows = windows[: s.heldout_windows]
    losses = token_losses(model, windows, s.batch)  # (n, seq_len)
    heldout = metrics(float(losses.mean()), chars_per_token)
    heldout.update(tokens=int(losses.size), windows=int(len(windows)),
                   window_losses=np.round(losses.mean(axis=1), 4).tolist())
    step("loss by position")
    by_pos = loss_by_position(model, val_ids, s.position_len, s.position_windows, s.bucket)
    step("attention statistics")
    attn = attention_statistics(model, val_windows(val_ids, seq)[: s.attention_windows])
    arch = arch_from_model_config(cfg)
    return {
        "attention_kind": cfg.attention_kind,
        "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.n_kv_heads,
        "pos_encoding": cfg.pos_encoding,
        # the architecture comparison's choices (rows written before it existed lack them: the defaults)
        "norm": cfg.norm, "norm_position": cfg.norm_position, "mlp": cfg.mlp, "mlp_act": cfg.mlp_act,
        "d_mlp": cfg.d_mlp, "n_experts": cfg.n_experts,
        "experts_per_token": cfg.experts_per_token if cfg.n_experts else 0,
        "params": int(sum(p.numel() for p in model.parameters())),
        "active_params": int(active_params(arch).total),  # = params unless a mixture of experts
        "kv_bytes_per_token": kv_cache_bytes_per_token(arch, "fp32"),
        "heldout": heldout,
        "loss_by_position": by_pos,
        "attention": attn,
    }


def evaluate(models: dict, val_ids: np.ndarray, val_chars: int, train_ids: Optional[np.ndarray] = None,
             settings: EvalSettings = EvalSettings(), progress: Optional[Progress] = None) -> dict:
    """Evaluate {name: model} on val_ids; baselines too when train_ids are given. Returns the JSON-ready dict."""
    t0 = time.time()
    progress = progress or (lambda frac, text: None)
    chars_per_token = val_chars / len(val_ids)
    total = max(1, len(models) * 3 + settings.decode_repeats + (train_ids is not None))
    done = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        out = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name(),
               "threads": settings.threads, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
               "settings": asdict(settings),
               "data": {"split": "val", "tokens": int(len(val_ids)), "chars": int(val_chars),
                        "chars_per_token": round(chars_per_token, 4)}}
        if train_ids is not None:
            progress(done / total, "baselines")
            out["baselines"] = baselines(train_ids, val_ids, models[next(iter(models))].cfg.vocab_size
                                         if models else 2048, chars_per_token)
            done += 1
        out["variants"] = {}
        for name, model in models.items():
            def step(part: str, name=name) -> None:
                nonlocal done
                progress(done / total, f"{name}: {part}")
                done += 1

            out["variants"][name] = evaluate_model(model, val_ids, chars_per_token, settings, step)

        def step(part: str) -> None:
            nonlocal done
            progress(done / total, part)
            done += 1

        speeds = decode_speeds(models, val_ids[: settings.decode_prompt], settings.decode_tokens,
                               settings.decode_repeats, step)
        for name in models:
            out["variants"][name]["decode"] = speeds[name]
        progress(1.0, "done")
    finally:
        torch.set_num_threads(threads)
    out["elapsed_s"] = round(time.time() - t0, 1)
    return out


def evaluate_shipped(variants: Optional[list[str]] = None, settings: EvalSettings = EvalSettings(),
                     progress: Optional[Progress] = None, command: str = "", quick: bool = False,
                     with_baselines: bool = True) -> dict:
    """Evaluate the variants whose checkpoints are present (all shipped ones by default) on the real corpus."""
    t0 = time.time()
    wanted = list(variants or VARIANTS)
    present = set(available_variants())
    if progress:
        progress(0.0, "loading models, tokenizing the corpus")
    models = {v: load_variant(v) for v in wanted if v in present}
    val_ids, val_chars = encoded_split("val")
    train_ids = encoded_split("train")[0] if with_baselines else None
    res = {"command": command, **evaluate(models, val_ids, val_chars, train_ids, settings, progress)}
    res["quick"] = quick
    res["missing"] = [v for v in wanted if v not in present]
    res["elapsed_s"] = round(time.time() - t0, 1)  # everything, loading and tokenizing included
    return res


def merge_results(previous: dict, new: dict) -> dict:
    """`previous` with `new`'s variant rows put in (replacing a row of the same name, else appended); every other
    row, the baselines and the header (date, command, machine: the run the file was made by) kept as they are.
    Each merged row records the run it came from under "merged_from" (command, date, machine, load), since its
    numbers — its decode speed above all, timed apart from the others — were measured in another session.

    Refuses (ValueError) rows measured with other settings or on other held-out data: they would not compare.
    previous {"variants": {"a": …}}, new {"variants": {"b": …}} -> {"variants": {"a": …, "b": {…, "merged_from"}}}.
    """
    for key in ("settings", "data"):
        if key in previous and previous[key] != new.get(key):
            raise ValueError(f"cannot merge: the file's {key} {previous[key]} differ from this run's {new.get(key)}")
    out = {**previous, "variants": dict(previous.get("variants", {}))}
    origin = {k: new.get(k) for k in ("command", "date", "torch", "cpu", "threads", "load_average_at_start",
                                      "elapsed_s")}
    for name, row in new.get("variants", {}).items():
        out["variants"][name] = {**row, "merged_from": origin}
    if "baselines" not in out and "baselines" in new:
        out["baselines"] = new["baselines"]
    still = [v for v in previous.get("missing", []) + new.get("missing", []) if v not in out["variants"]]
    out["missing"] = list(dict.fromkeys(still))
    return out


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def to_json(res: dict) -> str:
    """Indented JSON with every list of plain numbers on one line (a diff of the committed file stays readable)."""
    text = json.dumps(res, indent=1)
    return re.sub(r"\[\s*([-+0-9.eEnul,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def main(argv: Optional[list[str]] = None) -> int:
    from tqdm import tqdm

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None, help="default: every shipped one")
    p.add_argument("--max-windows", type=int, default=None, help="cap on held-out windows (default: all)")
    p.add_argument("--position-windows", type=int, default=None, help="windows for loss by position")
    p.add_argument("--out", type=Path, default=RESULTS_PATH, help="default: results/evaluation.json")
    p.add_argument("--quick", action="store_true", help="a few windows of everything (seconds)")
    p.add_argument("--threads", type=int, default=None, help="torch threads while measuring (default: 1)")
    p.add_argument("--merge", action="store_true",
                   help="put the evaluated variants' rows into the existing --out file, keeping its other rows")
    a = p.parse_args(argv)
    s = QUICK if a.quick else EvalSettings()
    if a.threads is not None:
        s = replace(s, threads=a.threads)
    if a.max_windows is not None:
        s = replace(s, heldout_windows=a.max_windows)
    if a.position_windows is not None:
        s = replace(s, position_windows=a.position_windows)
    args = argv if argv is not None else sys.argv[1:]
    command = "python -m model.evaluation" + "".join(" " + shlex.quote(x) for x in args)
    missing = [v for v in (a.variants or VARIANTS) if v not in available_variants()]
    if missing:
        print(f"no checkpoint for {', '.join(missing)}: skipped", file=sys.stderr)
    previous = json.loads(a.out.read_text()) if a.merge and a.out.is_file() else None
    if previous is not None:
        if not [v for v in (a.variants or VARIANTS) if v not in missing]:
            print(f"nothing to evaluate: {a.out} left as it was", file=sys.stderr)
            return 1
        if previous.get("settings") not in (None, asdict(s)):  # before spending minutes on rows it would refuse
            print(f"cannot merge into {a.out}: it was measured with settings {previous['settings']}, this run would "
                  f"use {asdict(s)}", file=sys.stderr)
            return 1
    bar = tqdm(total=1000, desc="evaluate", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def progress(frac: float, text: str) -> None:
        bar.n = int(frac * 1000)
        bar.set_postfix_str(text)
        bar.refresh()

    res = evaluate_shipped(a.variants, s, progress, command, quick=a.quick, with_baselines=previous is None)
    bar.close()
    try:
        out = res if previous is None else merge_results(previous, res)
    except ValueError as e:
        print(f"{a.out}: {e}", file=sys.stderr)
        return 1
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(to_json(out) + "\n")
    for name, r in res["variants"].items():
        h, sp = r["heldout"], r["decode"]["tokens_per_s"]
        print(f"{name:15s} {h['nats_per_token']:.4f} nats/token  {h['bits_per_char']:.4f} bits/char  "
              f"ppl {h['perplexity']:7.2f}  KV {r['kv_bytes_per_token']:5d} B/token  {r['params']:,} params  "
              f"{sp['median']:.0f} tok/s ({sp['min']:.0f}–{sp['max']:.0f})")
    for name, b in res.get("baselines", {}).items():
        print(f"{name:15s} {b['nats_per_token']:.4f} nats/token  {b['bits_per_char']:.4f} bits/char ({b['smoothing']})")
    how = f"merged {', '.join(res['variants'])} into" if previous is not None else "wrote"
    print(f"{how} {a.out} in {res['elapsed_s']:.0f} s ({res['threads']} thread, {res['cpu']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
