"""Stretch a RoPE model's context 4× with a short fine-tune under one RoPE scaling: the training loop is
train.py's own (`train(..., init_from=…)`), started from the shipped weights.

    python -m model.training.extend --method yarn --threads 1       # → checkpoints/gqa-rope-ft-yarn/
    python -m model.training.extend --method linear --threads 1 --resume

What changes from pre-training, and why:
  the model   max_seq_len 256 → 1,024 and rope_scaling = the method's (`model.evaluation.rope_scaling.scalings`:
              none, linear = position interpolation, ntk = static NTK-aware, yarn), the weights gqa-rope's;
  the data    windows of 1,024 (+1) tokens of the same training split, drawn by the same seeded generator
              (seed 1337), 4 per step: 4,096 tokens a step, as pre-training's 16 × 256;
  the schedule 150 steps (614,400 tokens, 3.75 % of pre-training's 16.4 M), AdamW from fresh moments, lr
              warmed up linearly over 10 steps to 2e-4 and held there (lr = min_lr: the cosine is flat), which
              is where pre-training's cosine ended (a tenth of its 2e-3 peak); no weight decay. Chen et al.
              2023 (PI: 1,000 steps) and Peng et al. 2023 (YaRN: 400 steps) fine-tune at a constant lr after
              20 warm-up steps, without weight decay, at a lr a few percent of the pre-training peak; our step
              count is what fits ≈ 6 minutes on one shared core (1.7–2.6 s a step measured at a load
              average of ≈ 4.5 on the 2 cores: 338–418 s of training per method), not theirs scaled down;
  the rest    dropout 0.1, clip 1.0, bf16 autocast: as pre-training.

Which methods: the papers fine-tune PI and YaRN; NTK-aware scaling was proposed for use without fine-tuning,
but raising the base and then fine-tuning is what Code Llama did (Rozière et al. 2023), so it gets the same
budget; and "none" — no scaling, the same 1,024-token fine-tune — is the control: what training on long
windows buys by itself, against which each scaling's own contribution is measured. Every method sees the same
batches and the same dropout masks (one seed), so the comparisons are paired.

The results are folders beside the variants, `checkpoints/gqa-rope-ft-<method>/` (fp16 weights, config.json,
train_log.json; 3.9 MB each). They are not entries of VARIANTS (`model/net/checkpoints.py`): the app's
model list and comparisons do not show them; `model.evaluation.rope_scaling` loads them by path.

What it does not do: other factors than the one given (4 by default), other variants, dynamic scalings,
several seeds per method (a fine-tune's own run-to-run spread is not measured).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from model.net.checkpoints import variant_dir
from model.net.config import ModelConfig
from model.training.train import TrainConfig, train

METHODS = ("none", "linear", "ntk", "yarn")  # as model.evaluation.rope_scaling.METHODS
FACTOR = 4.0  # 256 → 1,024 positions
STEPS = 150  # ≈ 6–7 minutes of steps + ≈ 1 of evaluation on one shared core (README)
BATCH = 4  # × 1,024 tokens = 4,096 a step, pre-training's tokens per step
LR = 2e-4  # constant after the warm-up: pre-training's final lr, a tenth of its peak
WARMUP = 10  # linear warm-up steps (the papers: 20 of 400–1,000)
EVAL_EVERY = 50  # held-out loss on 32 windows of 1,024 + a resumable state


def finetune_dir(method: str, source: Optional[Path] = None) -> Path:
    """checkpoints/gqa-rope-ft-<method> (or <source>-ft-<method> beside another source folder)."""
    source = Path(source) if source is not None else variant_dir("gqa-rope")
    return source.parent / f"{source.name}-ft-{method}"


def extended_config(base: ModelConfig, method: str, factor: float = FACTOR) -> ModelConfig:
    """The source model's config with its context × factor and the method's rope_scaling (YaRN's ramp is laid
    out over the source's trained context)."""
    from model.evaluation.rope_scaling import scalings

    if base.pos_encoding != "rope":
        raise ValueError(f"a RoPE scaling needs a RoPE model, not {base.pos_encoding} positions")
    if base.rope_scaling is not None:
        raise ValueError("the source model is already scaled; extend an unscaled one")
    return replace(base, max_seq_len=int(round(factor * base.max_seq_len)),
                   rope_scaling=scalings(base.max_seq_len, factor)[method])


def finetune_settings(length: int, steps: int = STEPS, batch_size: int = BATCH, lr: float = LR,
                      warmup: int = WARMUP, eval_every: int = EVAL_EVERY, eval_batches: int = 2) -> TrainConfig:
    """The TrainConfig of a fine-tune: constant lr after a linear warm-up (lr = min_lr), no weight decay, the
    pre-training's seed, dropout, betas and clip."""
    return TrainConfig(steps=steps, batch_size=batch_size, seq_len=length, lr=lr, min_lr=lr, warmup=warmup,
                       weight_decay=0.0, eval_every=eval_every, eval_batches=eval_batches)


def extend(method: str, source: Optional[Path] = None, factor: float = FACTOR, tc: Optional[TrainConfig] = None,
           out: Optional[Path] = None, **kw) -> dict:
    """Fine-tune `source` (default checkpoints/gqa-rope) at factor × its context under `method`'s scaling into
    `out` (default `finetune_dir`). `tc` defaults to `finetune_settings`; `kw` goes to `train` (device, resume,
    stop_after, data, progress, command)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    source = Path(source) if source is not None else variant_dir("gqa-rope")
    base = ModelConfig.from_dict(json.loads((source / "config.json").read_text()))
    cfg = extended_config(base, method, factor)
    tc = tc if tc is not None else finetune_settings(cfg.max_seq_len)
    if tc.seq_len != cfg.max_seq_len:
        raise ValueError(f"the fine-tune's windows ({tc.seq_len}) must be the extended context ({cfg.max_seq_len})")
    return train(cfg, tc, Path(out) if out is not None else finetune_dir(method, source), init_from=source, **kw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--source", type=Path, default=None, help="the checkpoint folder to start from (default gqa-rope's)")
    p.add_argument("--factor", type=float, default=FACTOR)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--batch-size", type=int, default=BATCH)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/train_state")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this step (resume later)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default checkpoints/gqa-rope-ft-<method>)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    source = a.source if a.source is not None else variant_dir("gqa-rope")
    length = int(round(a.factor * ModelConfig.from_dict(json.loads((source / "config.json").read_text())).max_seq_len))
    tc = finetune_settings(length, a.steps, a.batch_size, a.lr, a.warmup, eval_every=min(EVAL_EVERY, a.steps))
    cmd = "python -m model.training.extend " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    try:
        extend(a.method, source, a.factor, tc, a.out, device=a.device, resume=a.resume, command=cmd,
               stop_after=a.stop_after)
    except ValueError as e:  # a resume under other settings, a wrong source: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
