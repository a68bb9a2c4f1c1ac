"""The evaluation: hand-made cases for each statistic, the learned table's limit, and the quick CLI run on the
real checkpoints (or tiny random models when none is in the checkout) producing well-formed numbers."""

import json
import math

import numpy as np
import pytest
import torch

from model.net.checkpoints import load_variant
from model.net.config import ModelConfig
from model.analysis.heads import attention_stats, uniform_reference
from model.evaluation.evaluate import (QUICK, bigram_loss, bucket_mean, evaluate_model, loss_by_position, main,
                                       merge_results, paired_difference, token_losses, unigram_loss)
from model.evaluation.stats import in_and_past_context
from model.net.transformer import Transformer
from model.evaluation.evaluate import heldout_loss
from model.text.batches import val_windows
from viz.compare_text import read_attention_variants, read_positions

TINY = dict(vocab_size=2048, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, d_mlp=32, max_seq_len=16)


def tiny(pos: str) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**TINY, pos_encoding=pos)).eval().requires_grad_(False)


def ids(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2047, n).astype(np.uint16)


# ---- statistics on hand-made inputs ---------------------------------------------------------------------


def test_attention_stats_on_hand_made_patterns():
    T = 5
    prev = np.zeros((T, T))
    prev[0, 0] = 1
    prev[np.arange(1, T), np.arange(T - 1)] = 1  # every query reads the token before it
    sink = np.zeros((T, T))
    sink[:, 0] = 1  # every query parks everything on the first token
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    s = attention_stats(np.stack([prev, sink, uniform])[None])  # [batch, head, q, k]
    np.testing.assert_allclose(s["mean_distance"], [1.0, np.mean([1, 2, 3, 4]), uniform_reference(T)["mean_distance"]])
    np.testing.assert_allclose(s["entropy"], [0.0, 0.0, uniform_reference(T)["entropy"]], atol=1e-12)
    np.testing.assert_allclose(s["first_token"], [1 / (T - 1), 1.0, uniform_reference(T)["first_token"]])
    assert uniform_reference(256)["mean_distance"] == 64.0


def test_bucket_mean_and_paired_difference_worked_examples():
    m, c = bucket_mean(np.array([4, 2, 3, 1, 5]), 2)
    np.testing.assert_allclose(m, [3, 2, 5])
    np.testing.assert_allclose(c, [1.5, 3.5, 5.0])
    d, se = paired_difference([1, 2, 3], [0, 2, 2])
    assert d == pytest.approx(2 / 3) and se == pytest.approx(1 / 3)
    assert in_and_past_context({"mean": [4, 2, 3, 1]}, 2) == (3.0, 2.0)
    assert in_and_past_context({"mean": [4, 2, 3, 1]}, 4) == (2.5, None)


def test_baselines_by_hand():
    train, val = np.array([0, 1, 0, 1]), np.array([0, 1, 1])
    # unigram, add-one: p(0) = p(1) = (2 + 1) / (4 + 2) = 1/2 for both scored tokens
    assert unigram_loss(train, val, 2) == pytest.approx(math.log(2))
    # bigram, add-1: pairs (0,1)×2, (1,0)×1. p(1|0) = (2+1)/(2+2) = 3/4, p(1|1) = (0+1)/(1+2) = 1/3
    assert bigram_loss(train, val, 2, 1.0) == pytest.approx(-(math.log(3 / 4) + math.log(1 / 3)) / 2)


def test_token_losses_match_the_training_heldout_loss():
    model, w = tiny("rope"), val_windows(ids(200), 16)[:5]
    losses = token_losses(model, w, batch=2)  # fused attention
    assert losses.shape == (5, 16)
    assert losses.mean() == pytest.approx(heldout_loss(model, w), abs=1e-5)  # explicit attention


def test_learned_positions_stop_at_their_table_and_say_so():
    r = loss_by_position(tiny("learned"), ids(400), length=64, n_windows=3, bucket=8)
    assert r["requested"] == 64 and r["evaluated"] == 16 and len(r["mean"]) == 16
    assert r["note"].startswith("n/a past 16: learned table ends")
    s = loss_by_position(tiny("sinusoidal"), ids(400), length=64, n_windows=3, bucket=8)  # a formula: goes on
    assert s["evaluated"] == 64 and s["note"] is None and len(s["bucket_mean"]) == 8
    assert np.all(np.isfinite(s["mean"]))
    # Each window's mean inside and past the training context (16): they average back to the curve's halves,
    # and the learned table, stopped at the context, has nothing past it.
    assert s["context"] == 16 and len(s["window_inside"]) == len(s["window_past"]) == 3
    inside, past = in_and_past_context(s, 16)
    assert np.mean(s["window_inside"]) == pytest.approx(inside, abs=1e-4)
    assert np.mean(s["window_past"]) == pytest.approx(past, abs=1e-4)
    assert r["context"] == 16 and len(r["window_inside"]) == 3 and r["window_past"] is None


# ---- the quick run, end to end --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory, shipped_variants):
    """The CLI's quick run on three shipped checkpoints (asserted committed; one of them learned, which must
    stop at its table)."""
    pick = ["gqa-rope", "mqa-rope", "gqa-learned"]
    out = tmp_path_factory.mktemp("eval") / "quick.json"
    assert main(["--quick", "--variants", *pick, "--out", str(out)]) == 0
    return json.loads(out.read_text()), {v: load_variant(v) for v in pick}


def test_quick_evaluation_is_well_formed(quick):
    res, models = quick
    assert res["variants"] and res["torch"] == torch.__version__ and res["elapsed_s"] >= 0
    if "command" in res:
        assert res["command"].startswith("python -m model.evaluation --quick") and res["quick"] is True
    for name, r in res["variants"].items():
        model, cfg = models[name], models[name].cfg
        h = r["heldout"]
        assert 0 < h["nats_per_token"] < 10 and h["perplexity"] == pytest.approx(math.exp(h["nats_per_token"]), rel=1e-3)
        assert h["windows"] == QUICK.heldout_windows == len(h["window_losses"])
        assert r["params"] == sum(p.numel() for p in model.parameters())
        assert r["kv_bytes_per_token"] == 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 4
        assert r["decode"]["kv_bytes_per_token_measured"] == r["kv_bytes_per_token"]  # the real cache agrees
        sp = r["decode"]["tokens_per_s"]
        assert 0 < sp["min"] <= sp["median"] <= sp["max"]
        a = r["attention"]
        for key in ("mean_distance", "entropy", "first_token"):
            assert np.array(a[key]).shape == (cfg.n_layers, cfg.n_heads), key
        assert np.all((0 <= np.array(a["first_token"])) & (np.array(a["first_token"]) <= 1))
        assert np.all((0 <= np.array(a["mean_distance"])) & (np.array(a["mean_distance"]) < a["seq_len"]))
        p = r["loss_by_position"]
        if cfg.pos_encoding == "learned" and cfg.max_seq_len < p["requested"]:
            assert p["evaluated"] == cfg.max_seq_len and "learned table ends" in p["note"]
        else:
            assert p["evaluated"] == p["requested"] and p["note"] is None
        assert len(p["mean"]) == p["evaluated"] and np.all(np.isfinite(p["mean"]))


def test_trained_models_beat_the_count_baselines(quick):
    res, models = quick
    b = res["baselines"]
    assert b["bigram"]["nats_per_token"] < b["unigram"]["nats_per_token"]
    for name, r in res["variants"].items():
        assert r["heldout"]["nats_per_token"] < b["bigram"]["nats_per_token"], name
    # the RoPE models are far below it; the learned-position table is still falling when training ends (README)
    for name in {"gqa-rope", "mha-rope", "mqa-rope"} & set(res["variants"]):
        assert res["variants"][name]["heldout"]["nats_per_token"] < b["bigram"]["nats_per_token"] - 0.5, name


def test_the_reading_is_generated_from_the_numbers(quick):
    res, _ = quick
    lines = read_attention_variants(res, names=list(res["variants"])) + read_positions(res, names=list(res["variants"]))
    text = " ".join(lines)
    best = min(res["variants"], key=lambda n: res["variants"][n]["heldout"]["nats_per_token"])
    assert f"{res['variants'][best]['heldout']['nats_per_token']:.4f}" in text  # the loss line's precision
    if len(res["variants"]) >= 2:
        assert "seed" in text  # says what one seed each cannot tell


# ---- architecture rows and merging new variants into an existing file --------------------------------------


def test_a_mixture_of_experts_row_counts_the_parameters_a_token_uses():
    """active_params = all parameters less the (E − k) experts a token skips in every layer, counted from the
    modules themselves; a dense model's are all of them."""
    torch.manual_seed(0)
    moe = Transformer(ModelConfig(**{**TINY, "n_experts": 4, "experts_per_token": 2})).eval()
    r = evaluate_model(moe, ids(2000), 3.0, QUICK)
    total = sum(p.numel() for p in moe.parameters())
    expert = sum(p.numel() for p in moe.blocks[0].mlp.experts[0].parameters())
    assert r["params"] == total and r["active_params"] == total - TINY["n_layers"] * 2 * expert
    assert (r["n_experts"], r["experts_per_token"], r["norm"], r["mlp"]) == (4, 2, "rmsnorm", "gated")
    dense = evaluate_model(tiny("rope"), ids(2000), 3.0, QUICK)
    assert dense["active_params"] == dense["params"] and dense["n_experts"] == dense["experts_per_token"] == 0


def test_merge_results_keeps_every_other_row_and_refuses_other_settings():
    old = {"date": "d0", "command": "full", "settings": {"seq_len": 256}, "data": {"tokens": 9},
           "baselines": {"bigram": 1}, "variants": {"a": {"x": 1}, "b": {"x": 2}}, "missing": ["c", "d"]}
    new = {"date": "d1", "command": "merge c", "settings": {"seq_len": 256}, "data": {"tokens": 9},
           "variants": {"c": {"x": 3}, "b": {"x": 20}}, "missing": ["e"], "cpu": "cpu", "threads": 1}
    m = merge_results(old, new)
    assert list(m["variants"]) == ["a", "b", "c"] and m["variants"]["a"] == {"x": 1}
    assert m["variants"]["c"]["x"] == 3 and m["variants"]["c"]["merged_from"]["command"] == "merge c"
    assert m["variants"]["b"]["x"] == 20  # a re-evaluated row replaces its old self, in place
    assert (m["date"], m["command"], m["baselines"]) == ("d0", "full", {"bigram": 1}) and m["missing"] == ["d", "e"]
    assert old["variants"] == {"a": {"x": 1}, "b": {"x": 2}}  # the input is not changed
    with pytest.raises(ValueError, match="settings"):
        merge_results(old, {**new, "settings": {"seq_len": 128}})
    with pytest.raises(ValueError, match="data"):
        merge_results(old, {**new, "data": {"tokens": 8}})


def test_the_cli_merges_one_variant_into_an_existing_file(quick, tmp_path, monkeypatch, capsys):
    """--merge: mqa-rope evaluated alone and put back into a file that lacked it; the other rows, the baselines and
    the header are byte-for-byte what they were. A run with other settings, or with nothing to evaluate, leaves the
    file alone and says why."""
    res, _ = quick
    before = {k: v for k, v in res.items() if k != "variants"}
    before["variants"] = {k: v for k, v in res["variants"].items() if k != "mqa-rope"}
    out = tmp_path / "eval.json"
    out.write_text(json.dumps(before))
    assert main(["--quick", "--variants", "mqa-rope", "--merge", "--out", str(out)]) == 0
    after = json.loads(out.read_text())
    assert list(after["variants"]) == ["gqa-rope", "gqa-learned", "mqa-rope"]
    for k in ("gqa-rope", "gqa-learned"):
        assert after["variants"][k] == before["variants"][k]
    assert {k: v for k, v in after.items() if k != "variants"} == {k: v for k, v in before.items() if k != "variants"}
    row = after["variants"]["mqa-rope"]
    assert row["heldout"] == res["variants"]["mqa-rope"]["heldout"]  # the same weights, windows and settings
    assert row["merged_from"]["command"].endswith("--variants mqa-rope --merge --out " + str(out))
    text = out.read_text()
    assert main(["--quick", "--max-windows", "2", "--variants", "mqa-rope", "--merge", "--out", str(out)]) == 1
    assert "cannot merge" in capsys.readouterr().err and out.read_text() == text
    monkeypatch.setattr("model.net.checkpoints.CHECKPOINT_DIR", tmp_path / "none")
    assert main(["--quick", "--variants", "gqa-moe", "--merge", "--out", str(out)]) == 1
    assert "no checkpoint for gqa-moe: skipped" in capsys.readouterr().err and out.read_text() == text
