"""A training run's resumable state: weights, AdamW moments, the step, the data and dropout generators, the
log (kept whole as JSON: losses, held-out losses, diagnostics, an MoE's balancing losses, whatever train.py
records) — and the settings it was started with, so a resume under other settings is refused rather than silently
continuing on another schedule. safetensors + JSON, never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def check_settings(saved: dict | None, settings: dict, path: Path) -> None:
    """Refuse to resume under settings other than the run's own. `settings` = {"model": {...}, "train": {...}},
    and for a fine-tune {"init": {...}} too (the weights it started from).

    A resume continues a run: the learning-rate schedule depends on the step count, the batches on the seed and
    batch size, the weights' shapes on the model. Continuing under other values would silently train something
    that neither an unbroken run of the old settings nor of the new ones would give.
    """
    if saved is None:
        raise ValueError(f"{path} holds no record of the settings it was trained with (written by an older "
                         "version): it cannot be checked, so it is not resumed; delete it to start over")
    diffs = [f"{part}.{k}: saved {saved.get(part, {}).get(k)!r}, now {v!r}"
             for part in ("model", "train") for k, v in settings[part].items() if saved.get(part, {}).get(k) != v]
    diffs += [f"{part}.{k}: saved {v!r}, now absent" for part in ("model", "train")
              for k, v in saved.get(part, {}).items() if k not in settings[part]]
    # Any other part (a fine-tune's starting weights, `init`) must be equal as a whole, or absent from both.
    diffs += [f"{part}: saved {saved.get(part)!r}, now {settings.get(part)!r}"
              for part in sorted((set(saved) | set(settings)) - {"model", "train"}) if saved.get(part) != settings.get(part)]
    if diffs:
        raise ValueError(f"cannot resume {path} with other settings than it was started with ("
                         + "; ".join(diffs) + "): rerun with the saved ones, or delete it to start over")


def saved_settings(path: Path) -> dict | None:
    """The settings a state at `path` was saved with (None when it predates them)."""
    return json.loads((path / "state.json").read_text()).get("settings")


def save_state(path: Path, model, opt, step: int, rng: np.random.Generator, log: dict,
               settings: dict | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for p, st in opt.state.items():
        for k in ("exp_avg", "exp_avg_sq"):
            tensors[f"opt.{names[id(p)]}.{k}"] = st[k].detach().cpu().contiguous()
    # Dropout draws from torch's generator: without its state a resumed run would drop other units.
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "state.safetensors"))
    meta = {"step": step, "rng": rng.bit_generator.state, "log": log, "settings": settings}
    (path / "state.json").write_text(json.dumps(meta))


def load_state(path: Path, model, opt, rng: np.random.Generator, settings: dict | None = None) -> tuple[int, dict]:
    """Restore a saved state into `model`, `opt` and `rng`; returns (step, log). With `settings`, first refuse
    (ValueError) a state saved under other ones — before anything is overwritten."""
    meta = json.loads((path / "state.json").read_text())
    if settings is not None:
        check_settings(meta.get("settings"), settings, path)
    tensors = load_file(str(path / "state.safetensors"))
    dev = next(model.parameters()).device
    model.load_state_dict({k[6:]: v.to(dev) for k, v in tensors.items() if k.startswith("model.")})
    step = meta["step"]
    for n, p in model.named_parameters():
        opt.state[p] = {
            "step": torch.tensor(float(step)),
            "exp_avg": tensors[f"opt.{n}.exp_avg"].to(dev),
            "exp_avg_sq": tensors[f"opt.{n}.exp_avg_sq"].to(dev),
        }
    rng.bit_generator.state = meta["rng"]
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return step, meta["log"]
