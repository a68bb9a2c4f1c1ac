"""Training: a tiny model's loss falls, runs are deterministic, a resumed run ends where an unbroken one does,
and a resume under other settings is refused."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from safetensors.torch import load_file

from model.net.checkpoints import load_checkpoint, variant_config
from model.net.config import ModelConfig
from model.training.train import TrainConfig, lr_at, main, run_settings, train

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
    assert m.cfg == CFG and not m.training
    # What ships is what was trained (fp16): the last resumable state holds the same weights at full precision.
    state = load_file(str(tmp_path / "train_state" / "state.safetensors"))
    for n, p in m.state_dict().items():
        torch.testing.assert_close(p, state[f"model.{n}"].half().float(), atol=0, rtol=0, msg=n)


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


TC = TrainConfig(steps=12, batch_size=4, seq_len=32, warmup=3, eval_every=4, eval_batches=1)


@pytest.fixture
def stopped_run(tmp_path):
    """A run of TC interrupted after step 4: its resumable state is on disk."""
    out = tmp_path / "run"
    assert train(CFG, TC, out, data=data(), progress=False, stop_after=4)["stopped_at"] == 4
    return out


def test_the_state_records_the_settings_it_was_started_with(stopped_run):
    meta = json.loads((stopped_run / "train_state" / "state.json").read_text())
    assert meta["settings"] == run_settings(CFG, TC)
    assert meta["settings"]["train"]["steps"] == 12 and meta["settings"]["model"]["d_model"] == 32


@pytest.mark.parametrize("change, words", [
    (dict(tc=replace(TC, steps=24)), "train.steps: saved 12, now 24"),  # the cosine schedule would stretch
    (dict(tc=replace(TC, lr=1e-3)), "train.lr"),
    (dict(tc=replace(TC, batch_size=8)), "train.batch_size"),
    (dict(tc=replace(TC, seed=7)), "train.seed"),
    (dict(cfg=replace(CFG, n_kv_heads=1)), "model.n_kv_heads: saved 2, now 1"),
], ids=["steps", "lr", "batch_size", "seed", "model"])
def test_a_resume_with_other_settings_is_refused(stopped_run, change, words):
    before = (stopped_run / "train_state" / "state.json").read_text()
    with pytest.raises(ValueError, match="cannot resume") as e:
        train(change.get("cfg", CFG), change.get("tc", TC), stopped_run, data=data(), progress=False, resume=True)
    assert words in str(e.value)
    assert (stopped_run / "train_state" / "state.json").read_text() == before  # nothing was overwritten
    assert not (stopped_run / "model.safetensors").exists()


def test_a_state_without_its_settings_is_not_resumed(stopped_run):
    f = stopped_run / "train_state" / "state.json"
    meta = json.loads(f.read_text())
    del meta["settings"]  # as an older version wrote it
    f.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="no record of the settings"):
        train(CFG, TC, stopped_run, data=data(), progress=False, resume=True)


def test_the_cli_refuses_a_changed_resume_with_a_message(tmp_path, capsys):
    """`--resume --steps N` on a state saved under another step count: exit status 2 and the reason."""
    out = tmp_path / "gqa-rope"
    (out / "train_state").mkdir(parents=True)  # the refusal comes before the state's tensors are read
    saved = run_settings(variant_config("gqa-rope"), TrainConfig(steps=4000))
    (out / "train_state" / "state.json").write_text(json.dumps({"step": 250, "settings": saved}))
    assert main(["--variant", "gqa-rope", "--out", str(out), "--steps", "3000", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume") and "train.steps: saved 4000, now 3000" in err
