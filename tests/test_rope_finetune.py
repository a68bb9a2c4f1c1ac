"""The short fine-tunes at 4× the context (`model.training.extend`, train.py's loop with `init_from`): they start
from the source's weights, resume to exactly the unbroken run and refuse a resume from other weights; their
config carries the method's scaling; the evaluation adds them beside the untrained rows without changing those;
the committed checkpoints and JSON; the figure, the sentences and the page section.

Tiny models on the learnable stream of tests/test_train.py: each fine-tune is a few steps of milliseconds.
"""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest
import torch

from app_support import arr, chart, charts, open_page
from model.evaluation import rope_scaling as ev
from model.net.checkpoints import VARIANTS, load_checkpoint, save_checkpoint, variant_config, variant_dir
from model.net.transformer import Transformer
from model.training import extend as ext
from model.training.train import TrainConfig, train
from test_train import CFG, data  # max_seq_len 32 → 128 after the extension
from viz.rope_scaling import (ORDER_FLOOR, far_end_sentence, finetune_change_sentence, finetune_control_sentence,
                              finetune_progress_sentence, finetune_sentences, loss_by_position_figure)

TC = ext.finetune_settings(128, steps=3, batch_size=2, warmup=1, eval_every=1, eval_batches=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def source(tmp_path):
    """A 'pre-trained' tiny RoPE model saved as a checkpoint folder (random weights, seed 5)."""
    src = tmp_path / "tiny"
    save_checkpoint(Transformer(CFG, init_seed=5), src)
    return src


def weights(path):
    return load_checkpoint(path).state_dict()


# --------------------------------------------------------------------------------------------------------
# The fine-tune
# --------------------------------------------------------------------------------------------------------


def test_the_extended_config_has_the_methods_scaling_and_4x_the_context():
    base = variant_config("gqa-rope")
    for m in ext.METHODS:
        cfg = ext.extended_config(base, m)
        assert cfg.max_seq_len == 1024 and cfg.rope_scaling == ev.scalings(256)[m]
        assert cfg.d_model == base.d_model and cfg.n_kv_heads == base.n_kv_heads
    assert ext.extended_config(base, "yarn").rope_scaling["original_max_position_embeddings"] == 256
    with pytest.raises(ValueError, match="RoPE"):
        ext.extended_config(variant_config("gqa-alibi"), "linear")
    with pytest.raises(ValueError, match="already scaled"):
        ext.extended_config(ext.extended_config(base, "linear"), "yarn")
    tc = ext.finetune_settings(1024)
    assert (tc.seq_len, tc.batch_size, tc.steps, tc.lr, tc.min_lr, tc.weight_decay) == (1024, 4, 150, 2e-4, 2e-4, 0.0)
    assert (tc.dropout, tc.seed, tc.clip, tc.betas) == (TrainConfig.dropout, TrainConfig.seed, TrainConfig.clip,
                                                        TrainConfig.betas)  # as pre-training
    assert ext.finetune_dir("yarn") == variant_dir("gqa-rope").parent / "gqa-rope-ft-yarn"


def test_the_finetune_starts_from_the_source_and_saves_the_scaled_config(source):
    log = ext.extend("yarn", source, tc=TC, data=data(), progress=False)
    out = ext.finetune_dir("yarn", source)
    m = load_checkpoint(out)
    assert m.cfg.max_seq_len == 128 and m.cfg.rope_scaling == ev.scalings(32)["yarn"]
    assert log["init"] == {"checkpoint": "tiny",
                           "sha256": hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()}
    saved = json.loads((out / "train_log.json").read_text())
    assert saved["train"]["seq_len"] == 128 and saved["init"] == log["init"] and len(saved["train_loss"]) == 3
    # three steps at lr 2e-4 move the weights a little: they started from the source, not from a fresh draw
    src, fresh = weights(source), Transformer(CFG, init_seed=0).state_dict()
    assert max(float((p - src[n]).abs().max()) for n, p in m.state_dict().items()) < 0.01
    assert float((m.tok_embed.weight - fresh["tok_embed.weight"]).abs().max()) > 0.03


def test_the_finetune_resumes_to_exactly_the_unbroken_run(source, tmp_path):
    full = ext.extend("linear", source, tc=TC, out=tmp_path / "full", data=data(), progress=False)
    part = ext.extend("linear", source, tc=TC, out=tmp_path / "resumed", data=data(), progress=False, stop_after=1)
    assert part["stopped_at"] == 1 and not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = ext.extend("linear", source, tc=TC, out=tmp_path / "resumed", data=data(), progress=False, resume=True)
    assert resumed["train_loss"] == full["train_loss"] and resumed["val"] == full["val"]
    a, b = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_a_resume_from_other_weights_is_refused(source, tmp_path):
    out = tmp_path / "run"
    ext.extend("none", source, tc=TC, out=out, data=data(), progress=False, stop_after=1)
    save_checkpoint(Transformer(CFG, init_seed=6), source)  # the source changed under the run
    with pytest.raises(ValueError, match="cannot resume .*init: saved"):
        ext.extend("none", source, tc=TC, out=out, data=data(), progress=False, resume=True)


def test_a_source_of_another_shape_is_refused(tmp_path):
    src = tmp_path / "other"
    save_checkpoint(Transformer(CFG.__class__(**{**CFG.to_dict(), "d_mlp": 96})), src)
    with pytest.raises(ValueError, match="another shape"):
        train(ext.extended_config(CFG, "linear"), TC, tmp_path / "out", data=data(), progress=False, init_from=src)


def test_a_from_scratch_run_records_no_init(tmp_path):
    """The default path: no `init` in the saved settings or the log (so its states resume as before)."""
    tc = TrainConfig(steps=1, batch_size=2, seq_len=32, warmup=1, eval_every=1, eval_batches=1)
    log = train(CFG, tc, tmp_path, data=data(), progress=False)
    assert "init" not in log
    assert set(json.loads((tmp_path / "train_state" / "state.json").read_text())["settings"]) == {"model", "train"}


def test_the_cli_refuses_a_source_without_rope(tmp_path, capsys):
    assert ext.main(["--method", "yarn", "--source", str(variant_dir("gqa-alibi")), "--out", str(tmp_path)]) == 2
    assert "RoPE" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------
# The evaluation with fine-tuned rows
# --------------------------------------------------------------------------------------------------------


def test_the_evaluation_adds_the_finetuned_rows_beside_unchanged_untrained_ones(source):
    for m in ("none", "yarn"):
        ext.extend(m, source, tc=TC, data=data(), progress=False)
    tuned = ev.finetuned_models(source, 32)
    assert list(tuned) == ["none", "yarn"]
    rec = tuned["yarn"][1]
    assert (rec["steps"], rec["batch_size"], rec["seq_len"], rec["tokens"], rec["lr"]) == (3, 2, 128, 768, 2e-4)
    model = load_checkpoint(source)
    windows = np.random.default_rng(0).integers(0, 64, (3, 129))
    plain = ev.evaluate_scalings(model, windows, band=32)
    res = ev.evaluate_scalings(model, windows, band=32, finetuned=tuned)
    assert {k: v for k, v in res.items() if k != "finetuned"} == plain  # the untrained rows do not move
    ft = res["finetuned"]
    assert list(ft["methods"]) == ["none", "yarn"] and set(ft["paired"]) == {"yarn-none"}
    assert ft["methods"]["yarn"]["finetune"] == rec and ft["methods"]["yarn"]["rope_scaling"] == ev.scalings(32)["yarn"]
    L = {n: ev.position_losses(tuned[n][0], windows) for n in tuned}
    np.testing.assert_allclose(ft["methods"]["yarn"]["mean"], L["yarn"].mean(0), atol=1e-4)
    U = ev.position_losses(ev.scaled_model(model, ev.scalings(32)["yarn"]), windows)
    np.testing.assert_allclose(ft["vs_untrained"]["yarn"]["band_mean"],
                               (L["yarn"] - U).reshape(3, 4, 32).mean(2).mean(0), atol=1e-4)
    assert ft["vs_untrained"]["yarn"]["last"]["mean"] == pytest.approx((L["yarn"] - U)[:, 96:].mean(), abs=1e-4)
    assert ft["paired"]["yarn-none"]["inside"]["mean"] == pytest.approx((L["yarn"] - L["none"])[:, :32].mean(), abs=1e-4)
    O = ev.position_losses(model, windows)  # the source as it is: no scaling
    assert ft["vs_original"]["yarn"]["inside"]["mean"] == pytest.approx((L["yarn"] - O)[:, :32].mean(), abs=1e-4)
    assert ft["methods"]["none"]["label"] == "none (no scaling)" and res["methods"]["none"]["label"] == "none (extrapolation)"


def test_a_finetune_from_other_weights_or_with_another_scaling_is_refused(source, tmp_path):
    ext.extend("linear", source, tc=TC, data=data(), progress=False)
    other = tmp_path / "other"
    other.mkdir()
    for f in ("config.json", "model.safetensors"):
        (other / f).write_bytes((source / f).read_bytes())
    (tmp_path / "other-ft-linear").mkdir()
    out = ext.finetune_dir("linear", source)
    for f in ("config.json", "model.safetensors", "train_log.json"):
        (tmp_path / "other-ft-linear" / f).write_bytes((out / f).read_bytes())
    assert list(ev.finetuned_models(other, 32)) == ["linear"]  # the same weights under another name: accepted
    save_checkpoint(Transformer(CFG, init_seed=7), other)
    with pytest.raises(ValueError, match="not fine-tuned from"):
        ev.finetuned_models(other, 32)
    c = json.loads((out / "config.json").read_text())
    c["rope_scaling"]["factor"] = 2.0
    (out / "config.json").write_text(json.dumps(c))
    with pytest.raises(ValueError, match="expected 128"):
        ev.finetuned_models(source, 32)


# --------------------------------------------------------------------------------------------------------
# What is committed
# --------------------------------------------------------------------------------------------------------


def test_the_shipped_finetunes_are_checkpoints_but_not_variants():
    sha = hashlib.sha256((variant_dir("gqa-rope") / "model.safetensors").read_bytes()).hexdigest()
    for m in ext.METHODS:
        d = ext.finetune_dir(m)
        assert d.name not in VARIANTS
        assert (d / "model.safetensors").stat().st_size < 5_000_000
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["max_seq_len"] == 1024 and cfg.get("rope_scaling") == ev.scalings(256)[m]
        log = json.loads((d / "train_log.json").read_text())
        assert log["init"]["sha256"] == sha and log["train"]["seq_len"] == 1024
        assert log["command"].startswith(f"python -m model.training.extend --method {m}")


def test_the_committed_result_holds_every_finetune_beside_the_untrained_rows():
    res = json.loads(ev.RESULTS_PATH.read_text())
    ft = res["finetuned"]
    T, B, n = res["positions"], len(res["bands"]["start"]), res["windows"]
    assert list(ft["methods"]) == list(ev.METHODS) == list(res["methods"])
    assert set(ft["paired"]) == set(res["paired"]) and set(ft["vs_untrained"]) == set(ft["vs_original"]) == set(ev.METHODS)
    assert ft["pretraining_tokens"] == 4000 * 16 * 256
    for name, m in ft["methods"].items():
        r = m["finetune"]
        assert m["rope_scaling"] == res["methods"][name]["rope_scaling"] and r["seq_len"] == T == 1024
        assert r["tokens"] == r["steps"] * r["batch_size"] * r["seq_len"] and r["checkpoint"] == f"checkpoints/gqa-rope-ft-{name}"
        assert len(m["mean"]) == T and len(m["band_mean"]) == len(m["band_se"]) == B
        assert all(len(v) == n for v in m["window"].values())
        d = ft["vs_untrained"][name]["last"]["mean"]
        assert d == pytest.approx(m["regions"]["last"]["mean"] - res["methods"][name]["regions"]["last"]["mean"],
                                  abs=2e-4)
        d = ft["vs_original"][name]["inside"]["mean"]
        assert d == pytest.approx(m["regions"]["inside"]["mean"] - res["methods"]["none"]["regions"]["inside"]["mean"],
                                  abs=2e-4)
        assert [v["step"] for v in r["val"]] == [50, 100, 150] and r["val_windows"] == 32


# --------------------------------------------------------------------------------------------------------
# Figure, sentences, page
# --------------------------------------------------------------------------------------------------------


def test_the_figure_draws_finetuned_solid_and_as_trained_dotted():
    starts, ends = np.array([0, 4, 8]), np.array([4, 8, 12])
    mean = {"none": np.array([3.0, 2.8, 4.0]), "yarn": np.array([3.1, 2.9, 3.0])}
    se = {"none": np.array([0.1, 0.1, 0.2]), "yarn": np.array([0.1, 0.05, 0.1])}
    tm = {"none": np.array([2.9, 2.7, 3.2]), "yarn": np.array([2.8, 2.7, 2.7])}
    ts = {"none": np.array([0.1, 0.1, 0.1]), "yarn": np.array([0.05, 0.05, 0.05])}
    fig = loss_by_position_figure(starts, ends, mean, se, 8, {"yarn": "YaRN"}, tuned_mean=tm, tuned_se=ts)
    assert [t.name for t in fig.data] == ["none, fine-tuned ± 2 s.e.", "none, fine-tuned", "none, as trained",
                                          "YaRN, fine-tuned ± 2 s.e.", "YaRN, fine-tuned", "YaRN, as trained"]
    assert [t.line.dash for t in fig.data if t.mode] == ["solid", "dot", "solid", "dot"]
    assert fig.data[4].line.color == fig.data[5].line.color and fig.data[4].legendgroup == fig.data[5].legendgroup
    np.testing.assert_allclose(fig.data[4].y, tm["yarn"])
    np.testing.assert_allclose(fig.data[5].y, mean["yarn"])
    np.testing.assert_allclose(fig.data[3].y, [2.9, 2.8, 2.8, 2.6, 2.6, 2.7])  # fine-tuned ± 2 s.e.


def synthetic(before: dict, after: dict, noise: float, n: int = 40) -> dict:
    """Made-up losses: `before[name]` / `after[name]` added past position 16 of 64, each window shifted by a draw
    shared by every model (sd 0.5) and one of its own (sd `noise`)."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.5, (n, 1))

    def losses(rises):
        out = {}
        for name, rise in rises.items():
            L = 3.0 + shared + rng.normal(0, noise, (n, 1)) + np.zeros((n, 64))
            L[:, 16:] += rise
            out[name] = L
        return out

    un, ft = losses(before), losses(after)
    res = ev.summarize(un, context=16, band=8)
    res["finetuned"] = ev.summarize_finetuned(un, ft, context=16, band=8)
    rec = dict(steps=150, batch_size=4, seq_len=64, tokens=38400, lr=2e-4, warmup=10, weight_decay=0.0)
    for name in before:
        res["methods"][name]["label"] = name.upper()
        res["finetuned"]["methods"][name].update(label=name.upper(), finetune=rec)
    res["finetuned"]["pretraining_tokens"] = 384000
    return res


def test_finetune_sentences_claim_an_order_only_past_two_se_and_the_floor():
    res = synthetic({"none": 1.0, "linear": 0.6, "yarn": 0.3}, {"none": 0.3, "linear": 0.3 + ORDER_FLOOR / 2,
                                                               "yarn": 0.0}, noise=0.0)
    text = finetune_sentences(res)
    assert "150 steps of 4 windows of 64 training tokens (38,400 tokens, 10.0 % of pre-training's 384,000)" in text[0]
    assert "Chen et al. 2023" in text[0] and "Peng et al. 2023" in text[0] and "One fine-tune per method" in text[0]
    assert finetune_change_sentence("none", res).startswith("**NONE**, as trained → fine-tuned: at positions 48–63")
    assert "lower by 0.700 ± 0.000" in finetune_change_sentence("none", res)
    assert "lower by 0.300" in finetune_control_sentence("yarn", res)  # 0.3 > the floor, exact (no noise)
    small = finetune_control_sentence("linear", res)  # 0.025 with s.e. 0: past 2 s.e., under the floor
    assert "no difference claimed: +0.025 ± 0.000, the interval reaches within 0.05 nats of 0" in small
    far = text[-1]
    assert far == far_end_sentence({**res, "methods": res["finetuned"]["methods"], "paired": res["finetuned"]["paired"]},
                                   {n: f"{n.upper()}, fine-tuned" for n in res["methods"]}, floor=ORDER_FLOOR)
    assert "YARN, fine-tuned is lower than NONE, fine-tuned by 0.300" in far
    assert ("NONE, fine-tuned and LINEAR, fine-tuned differ by 0.025 ± 0.000, an interval reaching within 0.05 "
            "nats of 0: no order claimed") in far
    # past 2 s.e. and past the floor, but the interval reaches inside it: no claim either
    near = {"mean": -(ORDER_FLOOR + 0.01), "se": 0.01}
    res["finetuned"]["paired"]["yarn-none"]["last"] = near
    assert "no difference claimed: -0.060 ± 0.020" in finetune_control_sentence("yarn", res)
    noisy = synthetic({"none": 1.0, "yarn": 0.3}, {"none": 0.3, "yarn": 0.2}, noise=3.0)
    assert "no difference claimed" in finetune_control_sentence("yarn", noisy)
    assert finetune_sentences({k: v for k, v in res.items() if k != "finetuned"}) == []
    assert finetune_progress_sentence(res) is None  # no logged held-out losses in these records


def test_the_progress_sentence_lists_the_logged_losses():
    res = synthetic({"none": 1.0, "yarn": 0.3}, {"none": 0.3, "yarn": 0.0}, noise=0.0)
    for name, losses in (("none", [4.3, 4.1]), ("yarn", [4.0, 4.0])):
        rec = dict(res["finetuned"]["methods"][name]["finetune"], val_windows=32,
                   val=[{"step": s, "loss": v} for s, v in zip((50, 100), losses)])
        res["finetuned"]["methods"][name]["finetune"] = rec
    text = finetune_progress_sentence(res)
    assert "(the first 32 windows, all 64 positions, at steps 50/100): NONE 4.300 → 4.100; YARN 4.000 → 4.000" in text
    assert finetune_sentences(res)[-1] == text


def test_the_page_draws_the_finetuned_curves_and_their_reading():
    res = json.loads(ev.RESULTS_PATH.read_text())
    at = open_page("pages/rope.py")
    fig = chart(at, "rope_scaling_finetuned")
    lines = {t["name"]: t for t in fig["data"] if t.get("mode") == "lines+markers"}
    for name, m in res["finetuned"]["methods"].items():
        np.testing.assert_allclose(arr(lines[f"{m['label']}, fine-tuned"]["y"]), m["band_mean"])
        np.testing.assert_allclose(arr(lines[f"{m['label']}, as trained"]["y"]), res["methods"][name]["band_mean"])
        assert lines[f"{m['label']}, as trained"]["line"]["dash"] == "dot"
    shown = " ".join(str(e.value) for kind in ("markdown", "caption") for e in at.get(kind))
    assert all(s in shown for s in finetune_sentences(res))


def test_the_page_without_finetuned_rows_draws_the_untrained_section_only(monkeypatch, tmp_path):
    res = json.loads(ev.RESULTS_PATH.read_text())
    plain = copy.deepcopy(res)
    del plain["finetuned"]
    f = tmp_path / "rope_scaling.json"
    f.write_text(json.dumps(plain))
    monkeypatch.setattr(ev, "RESULTS_PATH", f)
    at = open_page("pages/rope.py")
    assert "rope_scaling_loss" in charts(at) and "rope_scaling_finetuned" not in charts(at)
