"""Training: a tiny model's loss falls, runs are deterministic, and a resumed run ends where an unbroken one does."""

import json

import numpy as np
import torch

from model.net.checkpoints import load_checkpoint
from model.net.config import ModelConfig
from model.training.train import TrainConfig, lr_at, train

CFG = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=32)


def data():
    rng = np.random.default_rng(0)
    # a learnable stream: a fixed random "sentence" of 40 tokens repeated, with noise tokens between
    sent = rng.integers(0, 64, 40)
    stream = np.concatenate([np.concatenate([sent, rng.integers(0, 64, 3)]) for _ in range(120)]).astype(np.uint16)
    return stream, stream[:800], 2400


def test_loss_falls_and_the_checkpoint_reloads(tmp_path):
    tc = TrainConfig(steps=60, batch_size=8, seq_len=32, warmup=5, eval_every=30, eval_batches=2)
    log = train(CFG, tc, tmp_path, data=data(), progress=False)
    first, last = np.mean(log["train_loss"][:5]), np.mean(log["train_loss"][-5:])
    assert last < first - 1.0, (first, last)
    assert log["val"][-1]["loss"] < log["val"][0]["loss"] + 1e-6
    saved = json.loads((tmp_path / "train_log.json").read_text())
    assert saved["heldout"]["bits_per_char"] > 0 and saved["config"] == CFG.to_dict()
    m = load_checkpoint(tmp_path)
    assert sum(p.numel() for p in m.parameters()) > 0 and not m.training


def test_an_interrupted_run_resumes_to_exactly_the_same_model(tmp_path):
    tc = TrainConfig(steps=20, batch_size=4, seq_len=32, warmup=3, eval_every=5, eval_batches=1)
    full = train(CFG, tc, tmp_path / "full", data=data(), progress=False)
    part = train(CFG, tc, tmp_path / "resumed", data=data(), progress=False, stop_after=10)
    assert part["stopped_at"] == 10 and not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = train(CFG, tc, tmp_path / "resumed", data=data(), progress=False, resume=True)
    assert resumed["train_loss"] == full["train_loss"]
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "resumed")
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n


def test_schedule_warms_up_then_decays_to_min():
    tc = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, tc) == 1e-4 and lr_at(9, tc) == 1e-3
    assert lr_at(99, tc) < 1.1e-4 and lr_at(50, tc) < 1e-3
