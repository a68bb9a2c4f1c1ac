"""Training the architecture variants: each kind trains and resumes to exactly the unbroken run; the log's
new entries (an MoE's balancing loss, per-block gradient and activation norms) are there, survive a resume and
measure what they say; and the default model trains to the same numbers as before they existed."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model.net.transformer import Transformer
from model.training.train import TrainConfig, train
from test_train import CFG, data  # the tiny model and the learnable stream of tests/test_train.py

KINDS = {
    "postnorm": replace(CFG, norm_position="post"),
    "layernorm": replace(CFG, norm="layernorm"),
    "gelu": replace(CFG, mlp="plain", mlp_act="gelu_tanh", d_mlp=96),
    "moe": replace(CFG, n_experts=4, d_mlp=32),
}
TC = TrainConfig(steps=3, batch_size=4, seq_len=32, warmup=1, eval_every=2, eval_batches=1)


def state_tensors(out):
    return load_file(str(out / "train_state" / "state.safetensors"))


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_trains_and_resumes_to_the_unbroken_run(tmp_path, kind):
    cfg = KINDS[kind]
    full = train(cfg, TC, tmp_path / "full", data=data(), progress=False)
    part = train(cfg, TC, tmp_path / "resumed", data=data(), progress=False, stop_after=2)
    assert part["stopped_at"] == 2
    resumed = train(cfg, TC, tmp_path / "resumed", data=data(), progress=False, resume=True)
    for key in ("train_loss", "val", "diagnostics") + (("aux_loss",) if cfg.n_experts else ()):
        assert resumed[key] == full[key], key
    assert ("aux_loss" in full) == bool(cfg.n_experts)
    a, b = state_tensors(tmp_path / "full"), state_tensors(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for n in a:
        if not n.startswith("rng."):
            assert torch.equal(a[n], b[n]), n
    saved = json.loads((tmp_path / "resumed" / "train_log.json").read_text())
    assert saved["diagnostics"] == full["diagnostics"] and saved["config"] == cfg.to_dict()


@pytest.mark.parametrize("kind", ["default", *KINDS])
def test_the_diagnostics_are_logged_every_eval_and_at_the_end(tmp_path, kind):
    cfg = CFG if kind == "default" else KINDS[kind]
    log = train(cfg, replace(TC, steps=5), tmp_path, data=data(), progress=False)
    assert [d["step"] for d in log["diagnostics"]] == [2, 4, 5] == [v["step"] for v in log["val"]]
    for d in log["diagnostics"]:
        g = d["grad_norm"]
        assert len(g["blocks"]) == len(d["resid_rms"]) == cfg.n_layers
        assert all(set(b) == {"attn", "mlp", "norms"} and min(b.values()) > 0 for b in g["blocks"])
        assert ("final_norm" in g) == (cfg.norm_position == "pre") and g["embed"] > 0
        assert min(d["resid_rms"]) > 0 and np.isfinite(d["resid_rms"]).all()
    if cfg.n_experts:
        # a router at init (N(0, 0.02)) is near uniform: f_i ≈ k/E, P_i ≈ 1/E, the loss ≈ k = 2
        assert len(log["aux_loss"]) == 5 and abs(log["aux_loss"][0] - 2) < 0.1


def test_the_gradient_norms_are_taken_before_clipping(tmp_path):
    """With a clip far below the gradient's norm, the parts still combine to the unclipped total."""
    log = train(CFG, replace(TC, steps=2, clip=1e-4), tmp_path, data=data(), progress=False)
    g = log["diagnostics"][-1]["grad_norm"]
    parts = [g["embed"], g["final_norm"], *(v for b in g["blocks"] for v in b.values())]
    assert g["total"] > 100 * 1e-4
    assert np.sqrt(np.sum(np.square(parts))) == pytest.approx(g["total"], rel=1e-5)


def test_the_residual_rms_is_that_of_the_training_forward(tmp_path):
    """Without dropout the first step's forward is reproducible: the initial weights, the first batch the
    seeded generator draws, the same bf16 autocast."""
    tc = replace(TC, steps=1, eval_every=1, dropout=0.0)
    log = train(CFG, tc, tmp_path, data=data(), progress=False)
    stream = data()[0]
    starts = np.random.default_rng(tc.seed).integers(0, len(stream) - tc.seq_len - 1, size=tc.batch_size)
    batch = torch.from_numpy(np.stack([stream[s : s + tc.seq_len] for s in starts]).astype(np.int64))
    m = Transformer(CFG, init_seed=tc.init_seed).train()
    x = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        h = m.tok_embed(batch)
        for b in m.blocks:
            h = b(h, torch.arange(tc.seq_len))
            x.append(float(h.float().pow(2).mean().sqrt()))
    np.testing.assert_allclose(log["diagnostics"][0]["resid_rms"], x, rtol=1e-5)


def test_a_state_saved_before_diagnostics_existed_resumes(tmp_path):
    out = tmp_path / "run"
    train(CFG, replace(TC, steps=4), out, data=data(), progress=False, stop_after=2)
    f = out / "train_state" / "state.json"
    meta = json.loads(f.read_text())
    del meta["log"]["diagnostics"]  # as the code before them wrote it
    f.write_text(json.dumps(meta))
    log = train(CFG, replace(TC, steps=4), out, data=data(), progress=False, resume=True)
    assert [d["step"] for d in log["diagnostics"]] == [4]


def test_the_balancing_loss_trains_the_router(tmp_path):
    cfg = KINDS["moe"]
    runs = {c: train(replace(cfg, router_aux_coef=c), replace(TC, steps=2), tmp_path / str(c), data=data(),
                     progress=False) for c in (0.0, 0.01)}
    assert runs[0.0]["train_loss"][0] == runs[0.01]["train_loss"][0]  # the same first forward
    routers = {c: state_tensors(tmp_path / str(c))["model.blocks.0.mlp.router.weight"] for c in runs}
    assert not torch.equal(routers[0.0], routers[0.01])


# The default model's first steps, from the code before the architecture fields and the diagnostics existed
# (commit cf2fbd3, 7 Dec 2026): `train(CFG, TC_DEFAULT, out, data=data(), progress=False, stop_after=3)` with
# tests/test_train.py's CFG and data; the checksum is Σ_i (i + 1)·Σ(w_i) in float64 over the saved state's
# model tensors in state_dict order.
TC_DEFAULT = TrainConfig(steps=4, batch_size=4, seq_len=32, warmup=2, eval_every=2, eval_batches=1)
DEFAULT_LOSSES = [4.1678, 4.136, 4.0623]
DEFAULT_STATE_CHECKSUM = 1747.9125728910258


def test_the_default_trains_to_the_same_numbers_as_before(tmp_path):
    log = train(CFG, TC_DEFAULT, tmp_path, data=data(), progress=False, stop_after=3)
    assert log["train_loss"] == DEFAULT_LOSSES
    model = {k: v for k, v in state_tensors(tmp_path).items() if k.startswith("model.")}
    names = list(Transformer(CFG).state_dict())
    checksum = sum(model[f"model.{n}"].double().sum().item() * (i + 1) for i, n in enumerate(names))
    assert checksum == pytest.approx(DEFAULT_STATE_CHECKSUM, rel=1e-9)
