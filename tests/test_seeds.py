"""Seed statistics (model/evaluation/seeds.py) against hand-computed values, and the committed seed results."""

import json
import math

import numpy as np
import pytest

from model.evaluation.seeds import (SEEDS_PATH, by_variant, difference, in_and_past, paired_seed_difference,
                                    rise_past_context, run_identity, summarise, t95)
from model.evaluation.stats import window_rise


def test_summarise_matches_the_docstring_example():
    s = summarise([3.81, 3.83, 3.80])
    assert s["n"] == 3 and s["mean"] == pytest.approx(3.813333, abs=1e-6)
    assert s["sd"] == pytest.approx(0.0152753, abs=1e-6) and s["se"] == pytest.approx(0.0152753 / math.sqrt(3), abs=1e-7)
    one = summarise([3.9])
    assert one["sd"] is None and one["se"] is None and one["mean"] == 3.9


def test_paired_difference_uses_only_shared_seeds_and_student_t():
    a = {0: 3.85, 1: 3.86, 2: 3.87, 3: 9.0}
    b = {0: 3.80, 1: 3.83, 2: 3.83}
    d = paired_seed_difference(a, b)
    assert d["seeds"] == [0, 1, 2] and d["mean"] == pytest.approx(0.04)
    assert d["se"] == pytest.approx(0.01 / math.sqrt(3))
    assert d["ci95"][0] == pytest.approx(0.04 - 4.303 * 0.01 / math.sqrt(3))
    assert d["excludes_zero"] is True
    # The same mean with a wide spread no longer excludes zero.
    wide = paired_seed_difference({0: 1.0, 1: 1.2, 2: 0.92}, {0: 1.0, 1: 1.0, 2: 1.0})
    assert wide["mean"] == pytest.approx(0.04) and wide["excludes_zero"] is False
    assert paired_seed_difference({0: 1.0}, {0: 2.0}) is None


def test_t_table():
    assert t95(2) == 4.303 and t95(1) == 12.706 and t95(100) == 1.96
    with pytest.raises(ValueError):
        t95(0)


def test_run_identity_checks_the_logged_seeds(tmp_path):
    d = tmp_path / "mha-rope-s2"
    assert run_identity(d, {"train": {"seed": 1339, "init_seed": 2}}) == ("mha-rope", 2)
    with pytest.raises(ValueError, match="--seed 1339 --init-seed 2"):
        run_identity(d, {"train": {"seed": 1337, "init_seed": 0}})
    with pytest.raises(ValueError, match="<variant>-s<k>"):
        run_identity(tmp_path / "mha-rope", {})


def test_in_and_past_context_split():
    run = {"loss_by_position": {"mean": [3.0, 4.0, 5.0, 7.0]}}
    assert in_and_past(run, 2) == (3.5, 6.0)
    assert in_and_past(run, 4) == (4.75, None)


def test_difference_takes_seeds_then_windows_then_nothing():
    """The rule for stating an order, on the docstring's worked example and its neighbours."""
    w = ([3.1, 3.2, 3.3], [3.0, 3.0, 3.0])
    d = difference(3.2, 3.0, windows=w)
    assert d.source == "windows" and d.n == 3 and d.mean == pytest.approx(0.2)
    assert d.lo == pytest.approx(0.2 - 4.303 * 0.1 / math.sqrt(3)) and not d.resolved  # [−0.048, 0.448]
    tight = difference(3.2, 3.0, windows=([3.19, 3.2, 3.21], [3.0, 3.0, 3.0]))
    assert tight.resolved and tight.lo > 0
    # Two shared seeds outrank any number of windows; one shared seed does not count.
    seeds = ({0: 3.80, 1: 3.90, 2: 3.85}, {0: 3.81, 1: 3.88, 2: 3.86})
    s = difference(3.80, 3.81, windows=([3.19, 3.2, 3.21], [3.0, 3.0, 3.0]), seeds=seeds)
    assert s.source == "seeds" and s.n == 3 and not s.resolved
    assert difference(3.2, 3.0, windows=w, seeds=({0: 1.0}, {0: 2.0})).source == "windows"
    none = difference(3.2, 3.0)
    assert none.source == "none" and none.mean == pytest.approx(0.2) and not none.resolved and math.isnan(none.lo)
    assert difference(3.2, 3.0, windows=([3.1], [3.0])).source == "none"  # one window: no spread


def test_window_rise_and_the_rise_of_a_run():
    by_pos = {"context": 2, "window_inside": [3.0, 4.0], "window_past": [3.5, 6.0], "mean": [3.0, 4.0, 4.0, 5.75]}
    assert window_rise(by_pos, 2) == [0.5, 2.0]
    assert window_rise(by_pos, 4) is None  # split at another length: not this rise
    assert window_rise({"mean": [1.0, 2.0]}, 2) is None  # an evaluation from before the per-window record
    assert window_rise({**by_pos, "window_past": None}, 2) is None  # stopped at the context (a learned table)
    assert rise_past_context({"loss_by_position": by_pos}, 2) == pytest.approx(4.875 - 3.5)
    assert rise_past_context({"loss_by_position": {"mean": [3.0, 4.0]}}, 2) is None


def test_committed_seed_results_are_consistent():
    """results/seeds.json: every variant in it has its shipped run as seed 0 (read back from evaluation.json) and
    at least one extra seed, whose training log is kept beside it; seeds and losses are what the logs say."""
    from model.evaluation.evaluate import RESULTS_PATH

    res = json.loads(SEEDS_PATH.read_text())
    runs = res["runs"]
    per = by_variant(runs)
    shipped = json.loads(RESULTS_PATH.read_text())["variants"]
    assert per, "no runs"
    for v, seeds in per.items():
        assert seeds[0] == shipped[v]["heldout"]["nats_per_token"], f"{v}: seed 0 is the shipped run"
        assert len(seeds) >= 2, f"{v}: at least one extra seed"
    for r in runs:
        assert r["train_seed"] == 1337 + r["seed"] and r["init_seed"] == r["seed"]
        assert 3.0 < r["heldout"]["nats_per_token"] < 5.0
        if r["seed"]:
            log = json.loads((SEEDS_PATH.parent / "seed_runs" / f"{r['variant']}-s{r['seed']}.train_log.json").read_text())
            assert log["train"]["seed"] == r["train_seed"] and log["train"]["init_seed"] == r["init_seed"]
            assert log["heldout"]["nats_per_token"] == pytest.approx(r["heldout"]["nats_per_token"], abs=1e-3)
        assert np.isfinite(r["loss_by_position"]["bucket_mean"]).all()
