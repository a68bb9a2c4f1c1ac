"""Train one shipped variant: `python -m model.training.train --variant gqa-rope`.

Every variant sees the same data in the same order (one seeded NumPy generator draws the batches), for the
same number of steps, from the same seed: only what the variant compares differs. Runs on the CPU by default
(bf16 autocast: ≈ 2.3× faster than fp32 on this AVX-512 CPU; the weights and the optimizer stay fp32);
`--device cuda` if one is there. Training goes through the same explicit attention path the app draws.

Resumable: every `--eval-every` steps the full training state (weights, AdamW moments, step, the states of
the data and dropout generators, and the settings of the run) is written to `checkpoints/<name>/train_state/` as
safetensors + JSON; `--resume` picks it up, and refuses it if any setting differs (`--steps` among them: the
cosine schedule is laid out over the step count). The shipped result is `model.safetensors` (fp16) + `config.json` + `train_log.json`.

Why 4,000 steps with dropout 0.1 (README, "How the recipe was chosen"): without dropout the held-out loss
barely moves after step 2,250 (of 4,000) while the training loss keeps falling — a 2 M-parameter model
memorises the 1.6 M training tokens over ~10 epochs — and the default model missed 1.90 bits/char; with
dropout it keeps improving to the end and reaches 1.88.

A mixture of experts adds its load-balancing loss (`router_aux_coef` × `load_balancing_loss`) to the
cross-entropy it trains on; the log keeps the two apart (`train_loss` is the cross-entropy, comparable across
variants; `aux_loss` the balancing term, unweighted). Every `--eval-every` steps and at the end the log also
records `diagnostics`: per block the gradient norms (before clipping) of its attention, MLP and norm
parameters, and the RMS of the residual stream after it on that step's batch. Both are read off tensors the
step computes anyway (the captures go through hook points, as the app's do): no extra random draws, so a
variant trains to the same numbers with or without them.

Fine-tuning goes through the same loop: `init_from` starts from a checkpoint's weights instead of the seeded
draw (a fresh optimizer), and `TrainConfig.seq_len` may differ from the model's trained context. That is how
`model/training/extend.py` stretches gqa-rope to 1,024 positions under a RoPE scaling. Without `init_from`
nothing changes: the same settings, the same draws, the same numbers.

What it does not do: data parallelism, gradient accumulation, mixed-length documents.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from model.net.checkpoints import VARIANTS, load_checkpoint, save_checkpoint, variant_config, variant_dir
from model.net.config import ModelConfig
from model.evaluation.evaluate import heldout_loss, metrics
from model.text.batches import encoded_split, val_windows
from model.training.state import check_settings, load_state, save_state, saved_settings
from model.net.hooks import recording
from model.net.transformer import Transformer, load_balancing_loss


@dataclass
class TrainConfig:
    steps: int = 4000  # by step count, not wall clock: the CPU is shared and noisy
    batch_size: int = 16  # sequences per step
    seq_len: int = 256  # tokens per sequence = the model's max_seq_len (a fine-tune may train longer windows)
    lr: float = 2e-3  # peak learning rate; small models take a high one
    min_lr: float = 2e-4  # cosine decays to this
    warmup: int = 50  # linear warm-up steps
    weight_decay: float = 0.1  # on matrices only, not on norm gains
    betas: tuple = (0.9, 0.95)  # AdamW; 0.95 is the usual choice for transformers
    clip: float = 1.0  # gradient-norm clip
    dropout: float = 0.1  # on the embedding and each block's residual branch; see the docstring for why
    seed: int = 1337  # draws the batches and the dropout masks
    init_seed: int = 0  # the weights' initial draw (Transformer(init_seed=…)); the shipped variants use 0
    eval_every: int = 250  # held-out loss + a resumable state every this many steps
    eval_batches: int = 16  # held-out windows per intermediate eval (the final eval uses all of them)


def run_settings(cfg: ModelConfig, tc: TrainConfig) -> dict:
    """What a resumable state records and a resume must match: the model and every training setting, as JSON
    gives them back (tuples become lists) so a saved copy compares equal to a fresh one."""
    return json.loads(json.dumps({"model": cfg.to_dict(), "train": asdict(tc)}))


def lr_at(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    progress = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def init_record(path: Path) -> dict:
    """What a fine-tune's settings record about its starting weights: the folder's name and the SHA-256 of its
    model.safetensors — a resume from other weights is refused as any other changed setting is."""
    digest = hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()
    return {"checkpoint": Path(path).name, "sha256": digest}


def load_initial_weights(model: Transformer, path: Path) -> None:
    """Copy a checkpoint's weights (fp16 on disk → fp32) into `model`. Its config must equal the model's in every
    field but the context length and the RoPE scaling — the two a context extension changes — else ValueError."""
    src = load_checkpoint(path)
    cfg = model.cfg
    if replace(src.cfg, max_seq_len=cfg.max_seq_len, rope_scaling=cfg.rope_scaling) != cfg:
        raise ValueError(f"{path} holds a model of another shape than the one to train "
                         "(only max_seq_len and rope_scaling may differ)")
    model.load_state_dict(src.state_dict())


# --- what the log records besides the loss ------------------------------------------------------------------


def _sig(x: float) -> float:
    """Six significant digits: the norms span orders of magnitude (0.02 for the stream at init, 100s later)."""
    return float(f"{x:.6g}")


def _norm(tensors) -> float:
    """The L2 norm of several tensors taken together (as clip_grad_norm_ takes all of them), fp32."""
    ts = [t.detach().float() for t in tensors if t is not None]
    return _sig(math.sqrt(sum(float(t.pow(2).sum()) for t in ts))) if ts else 0.0


def grad_norms(model: Transformer) -> dict:
    """Gradient norms by part, to be taken before clipping: per block its attention, MLP and norm parameters;
    the embeddings (a tied one carries the unembedding's gradient too), the final norm, an untied unembedding.
    (The loop adds `total`, the norm over everything, which clip_grad_norm_ returns.)"""
    grads = {n: p.grad for n, p in model.named_parameters()}

    def under(*prefixes: str) -> float:
        return _norm(g for n, g in grads.items() if n.startswith(prefixes))

    out = {"embed": under("tok_embed.", "pos_embed.")}
    out["blocks"] = [{"attn": under(f"blocks.{i}.attn."), "mlp": under(f"blocks.{i}.mlp."),
                      "norms": under(f"blocks.{i}.ln1.", f"blocks.{i}.ln2.")} for i in range(model.cfg.n_layers)]
    if model.ln_final is not None:
        out["final_norm"] = under("ln_final.")
    if not model.cfg.tie_embeddings:
        out["unembed"] = under("unembed.")
    return out


def resid_rms(captured: dict, n_layers: int) -> list[float]:
    """RMS of the residual stream after each block, over the whole batch: sqrt(mean(x²))."""
    return [_sig(float(captured[f"blocks.{i}.hook_resid_post"].detach().float().pow(2).mean().sqrt()))
            for i in range(n_layers)]


# --- the loop -----------------------------------------------------------------------------------------------


def train(
    cfg: ModelConfig,
    tc: TrainConfig,
    out_dir: Path,
    device: str = "cpu",
    resume: bool = False,
    data: tuple | None = None,
    progress: bool = True,
    command: str = "",
    stop_after: int | None = None,
    init_from: Optional[Path] = None,
) -> dict:
    """Train a model and save it to out_dir. `data` = (train_ids, val_ids, val_chars) overrides the corpus.

    `init_from` (a checkpoint folder) starts from its weights rather than the `init_seed` draw: a fine-tune. The
    run's settings then record those weights (`init_record`), so a resume from others is refused.

    `stop_after` ends the run early (after that step's resumable state is saved), as an interruption would.
    `resume` continues from out_dir/train_state when there is one, and raises ValueError if it was saved under
    other settings (model or TrainConfig): continuing it would follow neither run's schedule.
    """
    from tqdm import tqdm

    state_dir = out_dir / "train_state"
    settings = run_settings(cfg, tc)
    if init_from is not None:  # only then: a from-scratch run's settings (and its saved states) stay as they were
        settings["init"] = init_record(init_from)
    resuming = resume and (state_dir / "state.json").is_file()
    if resuming:  # first of all: a resume under other settings is refused before any work is done
        check_settings(saved_settings(state_dir), settings, state_dir)
    torch.manual_seed(tc.seed)
    train_ids, val_ids, val_chars = data if data is not None else (*encoded_split("train")[:1], *encoded_split("val"))
    windows = val_windows(val_ids, tc.seq_len)
    chars_per_token = val_chars / len(val_ids)
    model = Transformer(cfg, dropout=tc.dropout, init_seed=tc.init_seed)
    if init_from is not None:  # the seeded draw above is overwritten; it draws from its own generator, not torch's
        load_initial_weights(model, init_from)
    model = model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr,
        betas=tc.betas,
    )
    rng = np.random.default_rng(tc.seed)
    moe = cfg.n_experts > 0
    log = {"train_loss": [], "val": [], "elapsed_s": 0.0}
    step = 0
    if resuming:
        step, log = load_state(state_dir, model, opt, rng, settings)
        print(f"resumed at step {step}", file=sys.stderr)
    log.setdefault("diagnostics", [])  # a state saved before diagnostics were logged resumes without them
    if moe:
        log.setdefault("aux_loss", [])

    autocast = device == "cpu" or device.startswith("cuda")
    t0 = time.time() - log["elapsed_s"]
    bar = tqdm(range(step, tc.steps), initial=step, total=tc.steps, disable=not progress, desc=out_dir.name)
    for step in bar:
        model.train()
        starts = rng.integers(0, len(train_ids) - tc.seq_len - 1, size=tc.batch_size)
        batch = np.stack([train_ids[s : s + tc.seq_len + 1] for s in starts]).astype(np.int64)  # (B, T + 1)
        batch = torch.from_numpy(batch).to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        done = step + 1
        log_step = done % tc.eval_every == 0 or done == tc.steps  # held-out loss, state and diagnostics
        # Captured through the hook points, as the app's traces are: the router logits (for the balancing
        # loss) every step of an MoE, the residual stream on the logging steps. No recorder otherwise, so a
        # dense model's ordinary step runs exactly as it always did.
        captured: dict[str, torch.Tensor] = {}

        def keep(name: str, t: torch.Tensor) -> None:
            if (moe and name.endswith(".hook_router_logits")) or (log_step and name.endswith("hook_resid_post")):
                captured[name] = t

        capture = recording(keep) if moe or log_step else contextlib.nullcontext()
        with capture, torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
        objective = loss
        if moe:  # layer order: the dict keeps the order the forward reached the hooks in
            aux = load_balancing_loss([t for n, t in captured.items() if n.endswith("router_logits")],
                                      cfg.experts_per_token)
            objective = loss + cfg.router_aux_coef * aux
            log["aux_loss"].append(round(aux.item(), 4))
        opt.zero_grad(set_to_none=True)
        objective.backward()
        norms = grad_norms(model) if log_step else None  # before clip_grad_norm_ scales the gradients in place
        total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)  # the norm before clipping
        if log_step:
            log["diagnostics"].append({"step": done, "grad_norm": {"total": _sig(float(total_norm)), **norms},
                                       "resid_rms": resid_rms(captured, cfg.n_layers)})
        opt.step()
        log["train_loss"].append(round(loss.item(), 4))
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_at(step, tc):.1e}")
        if log_step:
            v = heldout_loss(model, windows[: tc.eval_batches * 16], autocast=autocast)
            log["val"].append({"step": done, "loss": round(v, 4)})
            log["elapsed_s"] = round(time.time() - t0, 1)
            bar.write(f"step {done}: train {loss.item():.3f}  held-out {v:.3f} nats/token")
            save_state(state_dir, model, opt, done, rng, log, settings)
        if stop_after is not None and done >= stop_after:
            save_state(state_dir, model, opt, done, rng, log, settings)
            return {"stopped_at": done, **log}

    # What ships is the fp16 file: evaluate that, reloaded, over the whole held-out split in fp32.
    log["elapsed_s"] = round(time.time() - t0, 1)
    final = {
        "variant": out_dir.name,
        "config": cfg.to_dict(),
        "train": settings["train"],
        **({"init": settings["init"]} if "init" in settings else {}),
        "command": command,
        "device": device,
        "torch": torch.__version__,
        **log,
    }
    save_checkpoint(model.cpu(), out_dir, final)
    shipped = load_checkpoint(out_dir)
    final["heldout"] = metrics(heldout_loss(shipped, windows), chars_per_token)
    final["heldout"]["tokens"] = int(windows[:, 1:].size)
    final["chars_per_token_val"] = round(chars_per_token, 4)
    save_checkpoint(shipped, out_dir, final)
    print(json.dumps({"variant": out_dir.name, **final["heldout"], "elapsed_s": final["elapsed_s"]}))
    return final


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="gqa-rope", choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--init-seed", type=int, default=TrainConfig.init_seed, help="seed of the weights' init")
    p.add_argument("--dropout", type=float, default=TrainConfig.dropout)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--resume", action="store_true", help="continue from checkpoints/<variant>/train_state")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this step (resume later)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default checkpoints/<variant>)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    tc = TrainConfig(steps=a.steps, batch_size=a.batch_size, seed=a.seed, init_seed=a.init_seed, dropout=a.dropout)
    out = a.out or variant_dir(a.variant)
    cmd = "python -m model.training.train " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    try:
        train(variant_config(a.variant), tc, out, device=a.device, resume=a.resume, command=cmd,
              stop_after=a.stop_after)
    except ValueError as e:  # a resume under other settings: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
