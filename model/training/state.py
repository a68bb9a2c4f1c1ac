"""A training run's resumable state: weights, AdamW moments, the step, the data and dropout generators, the
log — and the settings it was started with, so a resume under other settings is refused rather than silently
continuing on another schedule. safetensors + JSON, never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file




def save_state(path: Path, model, opt, step: int, rng: np.random.Generator, log: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for p, st in opt.state.items():
        for k in ("exp_avg", "exp_avg_sq"):
            tensors[f"opt.{names[id(p)]}.{k}"] = st[k].detach().cpu().contiguous()
    # Dropout draws from torch's generator: without its state a resumed run would drop other units.
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "state.safetensors"))
    meta = {"step": step, "rng": rng.bit_generator.state, "log": log}
    (path / "state.json").write_text(json.dumps(meta))


def load_state(path: Path, model, opt, rng: np.random.Generator) -> tuple[int, dict]:
    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "state.json").read_text())
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
