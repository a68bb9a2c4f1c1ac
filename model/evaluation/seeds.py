"""Training seeds: how much of a difference between two variants is the variant, and how much is luck.

Each shipped variant was trained once (init seed 0, data seed 1337). Extra runs of the variants that are
compared closely (MHA / GQA / MQA, RoPE / ALiBi) change both seeds together — `--seed 1337+k --init-seed k` —
so a run k of every variant sees the same batches as run k of the others. Their weights do not ship; their
training logs and this module's measurements do (`results/seeds.json`).

    python -m model.evaluation.seeds RUN_DIR [RUN_DIR …]      # each holds model.safetensors, config.json,
                                                               # train_log.json → results/seeds.json

Worked example of the statistics (`summarise`, `paired_seed_difference`): held-out losses 3.81, 3.83, 3.80
over three seeds have mean 3.8133, sample standard deviation 0.0153 and standard error 0.0088. Two variants
trained on the same three seed pairs with differences (A − B) 0.05, 0.03, 0.04 differ by 0.04 ± 0.0058
(standard error of the paired differences); the 95 % interval uses Student's t with n − 1 = 2 degrees of
freedom (4.303), ±0.0248, which excludes 0: the order holds across seeds. With only the shipped seed (n = 1)
no spread exists and nothing is claimed.

Whether an order between two variants may be stated (`difference`, used by the Compare page's sentences):
over the training seeds both have when there are at least two (the 95 % t interval above); otherwise over the
held-out windows of the single shipped run (the same t interval on paired window differences: 465 windows give
±1.96 SE) — which says only that *these weights* differ on this text, since the seed's share is then
unmeasured; otherwise (no per-window record) not at all. An order is stated only when the interval excludes 0.
Worked example: window differences 0.1, 0.2, 0.3 → +0.2 ± 4.303 · 0.0577 = [−0.048, +0.448]: no order.

Non-goals: more than a handful of seeds (each costs half an hour of CPU), significance tests beyond the paired
t interval, or measuring the evaluation's own window-sampling error (`stats.paired_difference` does;
`difference` falls back on it).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from model.evaluation.stats import in_and_past_context, paired_difference

LOSS_BY_POSITION_KEYS = ("mean", "bucket", "bucket_centre", "bucket_mean", "note")
SEEDS_PATH = Path(__file__).resolve().parents[2] / "results" / "seeds.json"

# Student's t, two-sided 95 %, by degrees of freedom (n − 1); past 30 the normal's 1.96 is close enough.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t95(dof: int) -> float:
    if dof < 1:
        raise ValueError("a spread needs at least two seeds")
    return T95.get(dof, 2.0 if dof < 30 else 1.96)


def summarise(values: list[float]) -> dict:
    """Mean, sample standard deviation, standard error and n of one variant's per-seed values."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    if n == 0:
        raise ValueError("no values")
    sd = float(v.std(ddof=1)) if n > 1 else None
    return {"n": n, "mean": float(v.mean()), "sd": sd, "se": sd / math.sqrt(n) if sd is not None else None,
            "min": float(v.min()), "max": float(v.max()), "values": [float(x) for x in v]}


def paired_seed_difference(a: dict[int, float], b: dict[int, float]) -> Optional[dict]:
    """A − B over the seeds both have (same seed = same batches): mean, standard error, the 95 % t interval,
    and whether that interval excludes 0. None when fewer than two seeds are shared."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    d = np.array([a[s] - b[s] for s in common], dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    half = t95(len(d) - 1) * se
    mean = float(d.mean())
    return {"seeds": common, "mean": mean, "se": se, "ci95": [mean - half, mean + half],
            "excludes_zero": bool(mean - half > 0 or mean + half < 0)}


@dataclass(frozen=True)
class Difference:
    """A − B of one measurement, and the 95 % interval [lo, hi] that decides whether their order may be stated.

    source "seeds": paired over `n` training seeds — the order holds across seeds, on this text.
           "windows": paired over `n` held-out windows of the one shipped run each — these weights differ on
                      this text; how much of that a different seed would undo is not measured.
           "none": no uncertainty was recorded (lo, hi are NaN) — no order may be stated.
    """

    mean: float
    lo: float
    hi: float
    source: str
    n: int

    @property
    def resolved(self) -> bool:
        """The interval excludes 0: A < B (mean < 0) or A > B may be stated."""
        return self.source != "none" and (self.lo > 0 or self.hi < 0)


def difference(point_a: float, point_b: float, windows: Optional[tuple[list[float], list[float]]] = None,
               seeds: Optional[tuple[dict[int, float], dict[int, float]]] = None) -> Difference:
    """A − B with the best evidence there is (module docstring): seeds (≥ 2 shared), else paired windows (≥ 2,
    the same windows for both), else the point values alone.

    point 3.2 vs 3.0, windows ([3.1, 3.2, 3.3], [3.0, 3.0, 3.0]) -> mean 0.2, [−0.048, 0.448], "windows", 3;
    the same without windows -> mean 0.2, [nan, nan], "none": no order.
    """
    if seeds is not None:
        d = paired_seed_difference(*seeds)
        if d is not None:
            return Difference(d["mean"], d["ci95"][0], d["ci95"][1], "seeds", len(d["seeds"]))
    if windows is not None and len(windows[0]) == len(windows[1]) >= 2:
        mean, se = paired_difference(*windows)
        half = t95(len(windows[0]) - 1) * se
        return Difference(mean, mean - half, mean + half, "windows", len(windows[0]))
    return Difference(float(point_a - point_b), math.nan, math.nan, "none", 1)


_RUN_NAME = re.compile(r"^(?P<variant>.+)-s(?P<k>\d+)$")


def run_identity(run_dir: Path, log: dict) -> tuple[str, int]:
    """(variant, seed index) of a run folder named `<variant>-s<k>`; the log's seeds must agree with k."""
    m = _RUN_NAME.match(Path(run_dir).name)
    if not m:
        raise ValueError(f"{run_dir}: expected a folder named <variant>-s<k>")
    k = int(m["k"])
    train = log.get("train", {})
    if train.get("seed") != 1337 + k or train.get("init_seed") != k:
        raise ValueError(f"{run_dir}: log says seed {train.get('seed')}, init seed {train.get('init_seed')}; "
                         f"a run s{k} uses --seed {1337 + k} --init-seed {k}")
    return m["variant"], k


def measure_run(run_dir: Path, settings=None) -> dict:
    """Held-out loss and loss by position of one run's fp16 weights, measured as the shipped ones are."""
    from model.evaluation.evaluate import EvalSettings, loss_by_position, metrics, token_losses
    from model.net.checkpoints import load_checkpoint
    from model.text.batches import encoded_split, val_windows

    settings = settings or EvalSettings()
    log = json.loads((Path(run_dir) / "train_log.json").read_text())
    variant, k = run_identity(run_dir, log)
    model = load_checkpoint(run_dir)
    val_ids, val_chars = encoded_split("val")
    windows = val_windows(val_ids, settings.seq_len)[: settings.heldout_windows]
    losses = token_losses(model, windows, settings.batch)
    heldout = metrics(float(losses.mean()), val_chars / len(val_ids))
    by_pos = loss_by_position(model, val_ids, settings.position_len, settings.position_windows, settings.bucket)
    return {"variant": variant, "seed": k, "train_seed": log["train"]["seed"], "init_seed": log["train"]["init_seed"],
            "heldout": heldout, "loss_by_position": {k2: by_pos[k2] for k2 in LOSS_BY_POSITION_KEYS},
            "train_elapsed_s": log.get("elapsed_s"), "val_curve": log.get("val"), "command": log.get("command")}


def shipped_as_seed0(evaluation: dict, variants: list[str]) -> list[dict]:
    """The shipped runs (seed index 0) in the same shape, from results/evaluation.json."""
    out = []
    for v in variants:
        r = evaluation["variants"].get(v)
        if r is None:
            continue
        lp = r["loss_by_position"]
        out.append({"variant": v, "seed": 0, "train_seed": 1337, "init_seed": 0, "heldout": r["heldout"],
                    "loss_by_position": {k: lp[k] for k in LOSS_BY_POSITION_KEYS}})
    return out


def in_and_past(run: dict, context: int = 256) -> tuple[float, Optional[float]]:
    """Mean loss inside the training context and past it (None where the model stops at it), per position."""
    return in_and_past_context(run["loss_by_position"], context)


def rise_past_context(run: dict, context: int = 256) -> Optional[float]:
    """How much one run's mean loss rises past the training context (None where it stops at it)."""
    inside, past = in_and_past(run, context)
    return None if past is None else past - inside


def by_variant(runs: list[dict], key=lambda r: r["heldout"]["nats_per_token"]) -> dict[str, dict[int, float]]:
    """{variant: {seed: value}} for a per-run measurement (default: held-out nats/token)."""
    out: dict[str, dict[int, float]] = {}
    for r in runs:
        val = key(r)
        if val is not None:
            out.setdefault(r["variant"], {})[r["seed"]] = float(val)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Measure extra training seeds → results/seeds.json")
    p.add_argument("runs", nargs="+", type=Path, help="run folders named <variant>-s<k>")
    p.add_argument("--out", type=Path, default=SEEDS_PATH)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from model.evaluation.evaluate import RESULTS_PATH

    previous = json.loads(a.out.read_text()) if a.out.is_file() else {"runs": []}
    runs = {(r["variant"], r["seed"]): r for r in previous["runs"]}
    for d in a.runs:
        r = measure_run(d)
        runs[(r["variant"], r["seed"])] = r
        print(f"{r['variant']} s{r['seed']}: {r['heldout']['nats_per_token']:.4f} nats/token", file=sys.stderr)
    variants = sorted({v for v, _ in runs})
    shipped = shipped_as_seed0(json.loads(RESULTS_PATH.read_text()), variants)
    for r in shipped:
        runs[(r["variant"], 0)] = r
    ordered = sorted(runs.values(), key=lambda r: (r["variant"], r["seed"]))
    cmd = "python -m model.evaluation.seeds " + " ".join(shlex.quote(str(x)) for x in (argv or sys.argv[1:]))
    a.out.write_text(json.dumps({"command": cmd, "runs": ordered}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
