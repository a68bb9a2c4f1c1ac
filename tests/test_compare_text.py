"""The Compare page's sentences and figures change with the numbers they describe: each test builds a small
evaluation result (and, where it matters, seeds.json runs) by hand, changes one number, and sees the sentence
change — above all, an order between two variants appears only when its 95 % interval excludes 0."""

import math
from typing import Optional

import numpy as np
import pytest

from model.analysis.rope import angle_table
from dataclasses import asdict

from model.net.checkpoints import ARCHITECTURE_VARIANTS, variant_config
from viz.compare import last_token_attention, loss_bars, params_bars
from viz.compare_text import (architecture_change, architecture_intro, attention_intro, by_position_caption,
                              curves_caption, intro, kv_caption, largest_seed_spread, last_token_caption,
                              position_signals_caption, positions_intro, read_architecture, read_attention_variants,
                              read_positions, seed_cell)

N = 100  # held-out windows
BASE = np.random.default_rng(0).normal(3.8, 0.3, N)  # each window's difficulty, shared by every variant
SIGN = np.resize([1.0, -1.0], N)
CONTEXT, LENGTH = 256, 1024


def windows(shift: float, wiggle: float = 0.01, phase: int = 1) -> list[float]:
    """Per-window losses whose mean is exactly BASE's + shift. Two variants of opposite phase differ window by
    window by (their shifts) ± 2·wiggle: sd 2·wiggle, a 95 % interval of about ±0.4·wiggle over 100 windows."""
    return (BASE + shift + phase * wiggle * SIGN).tolist()


def by_position(inside: float, rise: Optional[float], per_window: Optional[tuple[float, int]] = None) -> dict:
    """Loss by position: flat at `inside` up to the context, `inside + rise` past it (None: stops there, as a
    learned table does). per_window = (wiggle, phase): also the per-window record, around the same means."""
    mean = [inside] * CONTEXT + ([inside + rise] * (LENGTH - CONTEXT) if rise is not None else [])
    out = {"requested": LENGTH, "evaluated": len(mean), "windows": 20, "mean": mean, "bucket": 16,
           "bucket_centre": [], "bucket_mean": [],
           "note": None if rise is not None else f"n/a past {CONTEXT}: learned table ends (…)"}
    if per_window is not None:
        wiggle, phase = per_window
        s = np.resize([1.0, -1.0], 20) * wiggle * phase
        out.update(context=CONTEXT, window_inside=(inside + s).tolist(),
                   window_past=(inside + rise - s).tolist() if rise is not None else None)
    return out


def variant(shift: float, *, phase: int = 1, wiggle: float = 0.01, params: int = 1_967_808, n_kv: int = 2,
            pos: str = "rope", rise: Optional[float] = 1.0, per_window: Optional[tuple[float, int]] = None,
            measured: Optional[float] = None, speed=(400.0, 300.0, 500.0)) -> dict:
    kv = 2 * 4 * n_kv * 32 * 4
    w = windows(shift, wiggle, phase)
    return {
        "attention_kind": "MHA" if n_kv == 6 else "MQA" if n_kv == 1 else "GQA", "n_heads": 6, "n_kv_heads": n_kv,
        "pos_encoding": pos, "params": params, "kv_bytes_per_token": kv,
        "heldout": {"nats_per_token": float(np.mean(w)), "bits_per_char": float(np.mean(w)) / 2.0, "windows": N,
                    "window_losses": w},
        "loss_by_position": by_position(float(np.mean(w)), rise, per_window),
        "attention": {"mean_distance": [[20.0 + shift] * 6] * 4, "windows": 32, "seq_len": 256,
                      "uniform": {"mean_distance": 64.0}},
        "decode": {"tokens_per_s": {"median": speed[0], "min": speed[1], "max": speed[2]}, "runs": [1.0] * 5,
                   "prompt_tokens": 32, "new_tokens": 64,
                   "kv_bytes_per_token_measured": kv if measured is None else measured},
    }


def result(**variants) -> dict:
    return {"variants": {k.replace("_", "-"): v for k, v in variants.items()}, "settings": {"threads": 1},
            "load_average_at_start": [0.5]}


def attention(mqa_shift: float = 0.00005, **kw) -> dict:
    return result(mha_rope=variant(-0.043, phase=-1, n_kv=6, params=2_164_416, **kw.get("mha", {})),
                  gqa_rope=variant(0.0, **kw.get("gqa", {})),
                  mqa_rope=variant(mqa_shift, phase=-1, n_kv=1, params=1_918_656, **kw.get("mqa", {})))


def seed_run(name: str, seed: int, loss: float, rise: Optional[float] = None) -> dict:
    return {"variant": name, "seed": seed, "heldout": {"nats_per_token": loss, "bits_per_char": loss / 2.0},
            "loss_by_position": by_position(loss, rise)}


def seeds(table: dict[str, list[float]], rises: Optional[dict[str, list[float]]] = None) -> list[dict]:
    return [seed_run(n, k, x, (rises or {}).get(n, [None] * len(xs))[k]) for n, xs in table.items()
            for k, x in enumerate(xs)]


def text(lines: list[str]) -> str:
    return " ".join(lines)


# ---- MHA / GQA / MQA ---------------------------------------------------------------------------------------


def test_a_tie_is_not_ordered_and_a_gap_over_the_windows_is_with_the_seed_note():
    tie = text(read_attention_variants(attention()))
    assert "**mha-rope < gqa-rope ~ mqa-rope**" in tie  # GQA vs MQA: 0.00005 ± 0.004, as in the shipped results
    assert "gqa-rope − mqa-rope = −0.000" in tie and "(95 % interval −0.004" in tie and "over 100 held-out windows" in tie
    assert "Each variant was trained once" in tie and "seed-to-seed spread" in tie and "is not measured" in tie
    assert "these particular weights" in tie  # a window-level order is about the weights, not the architecture
    gap = text(read_attention_variants(attention(mqa_shift=0.05)))
    assert "**mha-rope < gqa-rope < mqa-rope**" in gap
    near = text(read_attention_variants(attention(mqa_shift=0.003)))  # inside ±0.004: no order
    assert "gqa-rope ~ mqa-rope" in near


def test_the_literature_order_needs_seeds_and_their_interval():
    one_run = text(read_attention_variants(attention(mqa_shift=0.05)))
    assert "literature expects" not in one_run and "One training run each cannot test that" in one_run
    steady = seeds({"mha-rope": [3.770, 3.780, 3.775], "gqa-rope": [3.812, 3.820, 3.818],
                    "mqa-rope": [3.830, 3.841, 3.834]})
    told = text(read_attention_variants(attention(mqa_shift=0.05), seeds=steady))
    assert "This is the order the literature expects" in told
    assert "Over training seeds (mean ± sd): mha-rope 3.7750 ± 0.0050 (n = 3)" in told
    assert "across training seeds" in told and "over 3 training seeds" in told
    noisy = seeds({"mha-rope": [3.770, 3.780, 3.775], "gqa-rope": [3.812, 3.820, 3.818],
                   "mqa-rope": [3.800, 3.860, 3.820]})  # GQA − MQA: +0.012, −0.040, −0.002
    unsure = text(read_attention_variants(attention(mqa_shift=0.05), seeds=noisy))
    assert "literature expects" not in unsure and "the interval includes 0" in unsure
    assert "gqa-rope ~ mqa-rope" in unsure
    against = seeds({"mha-rope": [3.850, 3.860, 3.855], "gqa-rope": [3.812, 3.820, 3.818],
                     "mqa-rope": [3.790, 3.801, 3.794]})
    assert "Where fewer K/V heads come out lower" in text(read_attention_variants(attention(), seeds=against))


def test_some_variants_with_seeds_some_without():
    part = seeds({"mha-rope": [3.770, 3.780, 3.775], "gqa-rope": [3.812, 3.820, 3.818]})
    t = text(read_attention_variants(attention(), seeds=part))
    assert "Trained once, their seed spread not measured: mqa-rope" in t
    assert "Not tested across seeds: mqa-rope vs gqa-rope" in t


def test_the_size_confound_is_computed_from_the_parameters():
    t = text(read_attention_variants(attention()))
    assert "mqa-rope has 1,918,656 parameters, mha-rope 2,164,416 (+12.8 %)" in t
    assert "0.043 nats below gqa-rope, comes with 10.0 % more parameters" in t and "cannot separate" in t
    same = attention()
    same["variants"]["mha-rope"]["params"] = same["variants"]["mqa-rope"]["params"] = 1_967_808
    t = text(read_attention_variants(same))
    assert "All have the same number of parameters (1,967,808)" in t and "cannot separate" not in t


def test_the_kv_cache_sentence_reports_formula_and_measurement():
    t = text(read_attention_variants(attention()))
    assert "mha-rope 6,144 B, gqa-rope 2,048 B (3× smaller than mha-rope's), mqa-rope 1,024 B (6× smaller" in t
    assert "formula 2 (K and V) × layers × K/V heads × head size × 4 bytes" in t
    assert "the real cache held exactly that per position" in t and "measured on the real cache" not in t
    off = text(read_attention_variants(attention(gqa={"measured": 1365.3})))
    assert "the real cache after the speed runs held" in off and "gqa-rope 1,365 B" in off


def test_speed_sentence_follows_the_ranges():
    t = text(read_attention_variants(attention()))
    assert "ranges overlap: no speed difference is measured" in t
    apart = attention(mha={"speed": (300.0, 290.0, 310.0)}, gqa={"speed": (400.0, 390.0, 410.0)},
                      mqa={"speed": (500.0, 490.0, 510.0)})
    t = text(read_attention_variants(apart))
    assert "do not overlap and the order follows the cache size" in t and "cannot separate the two" in t


# ---- positional encodings ----------------------------------------------------------------------------------


def positions(per_window: bool = False) -> dict:
    def pw(phase):
        return (0.05, phase) if per_window else None
    return result(gqa_rope=variant(0.0, rise=1.042, per_window=pw(1)),
                  gqa_alibi=variant(0.04, phase=-1, pos="alibi", rise=-0.035, per_window=pw(-1)),
                  gqa_sinusoidal=variant(0.216, pos="sinusoidal", rise=1.054, per_window=pw(-1)),
                  gqa_none=variant(0.368, phase=-1, pos="none", rise=0.333, per_window=pw(1)),
                  gqa_learned=variant(0.418, pos="learned", rise=None, params=2_016_960, per_window=pw(1)))


def test_rises_are_not_ranked_without_an_interval():
    t = text(read_positions(positions()))
    assert "so the rises are not ranked" in t
    assert "gqa-alibi − gqa-rope in rise past 256 = −1.077; no interval could be computed" in t
    assert "gqa-rope − gqa-sinusoidal in rise past 256 = −0.012; no interval" in t
    assert "paper's order" not in t and "In line with" not in t and "Compare Kazemnejad et al. 2023" in t
    assert "gqa-rope 3.82 → 4.87 (+1.04)" in t and "gqa-learned 4.24 → n/a past 256: learned table ends" in t


def test_rises_with_a_per_window_record_are_ranked_where_they_separate():
    t = text(read_positions(positions(per_window=True)))
    assert "**gqa-alibi < gqa-none < gqa-rope ~ gqa-sinusoidal**" in t  # RoPE +1.042 vs sinusoidal +1.054: a tie
    assert "gqa-alibi's rise past 256 is lower than gqa-rope's for these weights on these windows" in t
    assert "gqa-rope − gqa-sinusoidal in rise past 256 = −0.012 (95 % interval" in t and "the interval includes 0" in t
    assert "Both in the paper's order" not in t
    assert "gqa-none's rise past 256 is lower than gqa-rope's" in t and "In line with Kazemnejad et al. 2023, who find" in t


def test_rises_across_seeds():
    runs = seeds({"gqa-rope": [3.80, 3.81, 3.79], "gqa-alibi": [3.84, 3.85, 3.83]},
                 {"gqa-rope": [1.04, 1.10, 0.98], "gqa-alibi": [-0.03, 0.00, -0.05]})
    t = text(read_positions(positions(), seeds=runs))
    assert "gqa-alibi's rise past 256 is lower than gqa-rope's across training seeds" in t
    assert "over 3 seeds +1.04 ± 0.06 sd" in t  # RoPE's rise, seed spread shown next to the shipped run's
    assert "Trained once, their seed spread not measured: gqa-sinusoidal, gqa-none, gqa-learned" in t


def test_in_context_claims_follow_their_intervals():
    t = text(read_positions(positions()))
    assert "**gqa-rope < gqa-alibi < gqa-sinusoidal < gqa-none < gqa-learned**" in t
    assert "No positional encoding is 0.368 nats behind RoPE" in t
    assert "Learned positions end up behind none at all here" in t
    close = positions()
    close["variants"]["gqa-learned"] = variant(0.3685, pos="learned", rise=None)  # 0.0005 from none
    t = text(read_positions(close))
    assert "behind none at all" not in t and "gqa-learned − gqa-none in held-out loss = " in t and "interval includes 0" in t


def test_attended_distance_is_listed_not_ranked():
    t = text(read_positions(positions()))
    assert "Mean attended distance" in t and "are not ranked" in t and "look the nearest" not in t


# ---- intro and captions ----------------------------------------------------------------------------------


def test_intro_counts_sizes_and_recipes_from_the_data():
    recipe = {"steps": 4000, "seed": 1337, "dropout": 0.1}
    t = intro(["a", "b", "c"], ["MHA", "GQA"], ["rope", "alibi"], {"draft": "a small one"},
              {"a": 1_918_656, "b": 2_164_416, "c": 2_000_000, "draft": 400_000},
              {"a": recipe, "b": recipe, "c": recipe}, 3, 119_230)
    assert t.startswith("3 models") and "(RoPE, ALiBi)" in t
    assert "from 1,918,656 parameters (a) to 2,164,416 (b, +12.8 %)" in t  # the draft is in no comparison
    assert "data seed 1337), 4,000 steps" in t and "3 whole plays (119,230 tokens)" in t
    assert "chosen by the default model's loss on those same plays" in t and "training curves are training loss" in t
    assert "in no comparison: draft — a small one" in t and "Architecture" not in t
    assert "same size" not in t.replace("not the same size", "") and "Every number" not in t
    odd = intro(["a", "b"], ["GQA"], ["rope"], {}, {}, {"a": recipe, "b": {**recipe, "dropout": 0.0}}, 3, None)
    assert odd.startswith("2 models") and "Their training logs differ in: dropout" in odd and "parameters" not in odd
    # a log that records init_seed 0 trains as one written before the trainer recorded it
    same = intro(["a", "b"], ["GQA"], ["rope"], {}, {}, {"a": recipe, "b": {**recipe, "init_seed": 0}}, 3, None)
    assert "Trained alike" in same and "logs differ" not in same
    assert "differ in: init_seed" in intro(["a", "b"], ["GQA"], ["rope"], {}, {},
                                           {"a": recipe, "b": {**recipe, "init_seed": 1}}, 3, None)
    arch = intro(["a", "b"], ["GQA"], ["rope"], {"draft": "a small one"}, {}, {}, 3, None,
                 {"gqa-postnorm": "post-norm", "gqa-moe": "a mixture of 4 experts, 2 per token"})
    assert ("A third comparison, **Architecture**, sets the default beside 2 more that each change one architectural "
            "choice at its size: gqa-postnorm (post-norm); gqa-moe (a mixture of 4 experts, 2 per token)") in arch
    assert "in no comparison: draft" in arch and "gqa-moe —" not in arch


def test_attention_and_position_intros_and_the_kv_caption():
    heads = {"m": (6, 6), "g": (6, 2), "q": (6, 1)}
    t = attention_intro(heads, ["rope"] * 3)
    assert t.startswith("**Multi-head**") and "groups of 3 query heads" in t and "All 3 use RoPE." in t
    assert "groups of 4 query heads" in attention_intro({"g": (8, 2)}, ["alibi"])
    assert kv_caption(heads) == ("Query head h reads K/V head h // (n_heads / n_kv_heads) — Llama's `repeat_kv` "
                                 "order. The cache stores only the K/V heads, so m's is 3× g's and 6× q's.")
    assert "so m's is 4× g's" in kv_caption({"m": (8, 8), "g": (8, 2)})
    assert positions_intro({"a": "rope", "b": "none"}, {"a": (6, 2), "b": (6, 2)}).endswith("All 2 use GQA.")
    assert positions_intro({"a": "rope", "b": "none"}, {"a": (6, 6), "b": (6, 2)}).endswith("Attention: GQA, MHA.")


def test_curves_caption():
    t = curves_caption({"a": {"seed": 1337}, "b": {"seed": 1337}}, 50, 465)
    assert "50-step moving average" in t and "uses all 465 windows" in t and "Data seed 1337 for all of them" in t
    assert "Data seeds differ: a 1337, b 1338" in curves_caption({"a": {"seed": 1337}, "b": {"seed": 1338}}, 50, 465)


def test_by_position_caption_checks_its_early_position_claim():
    s = {"a": {"y": [5.0, 4.0], "inside": 4.2}, "b": {"y": [4.5, 4.0], "inside": 4.1}}
    assert "above each model's own mean over 1–256" in by_position_caption(s, 256, 16, 116, 1024)
    s["b"]["y"][0] = 4.0
    t = by_position_caption(s, 256, 16, 116, 1024)
    assert "each model's own" not in t and "for a." in t


def test_position_signals_caption_measures_the_turns():
    t = position_signals_caption(angle_table(256, 32, 10000.0), 256, True)
    assert "fastest pair (left column) turns 40.6 full turns and its slowest 2.6°" in t
    assert "7 of its 16 pairs complete at least one turn" in t and "has no row 256" in t
    t = position_signals_caption(angle_table(64, 32, 10000.0), 64, False)
    assert "turns 10.0 full turns" in t and "not shown" in t


def test_last_token_caption_says_where_the_row_is_cut():
    rows = {"a": np.full((4, 48), 1 / 60), "b": np.full((4, 48), 1 / 48)}  # b: nothing left of the panel
    t = last_token_caption(rows, 60, 48)
    assert "last 48 of 60 tokens: positions 12–59" in t and "12 earlier keys (positions 0–11)" in t
    assert "between 0 % and 20 %" in t and "mean 10 %" in t
    whole = last_token_caption({"a": np.full((4, 10), 0.1)}, 10, 48)
    assert "over all 10 tokens" in whole and "sums to 1" in whole


def test_seed_cell():
    assert seed_cell({0: 3.81}) == "1 run: spread not measured"
    assert seed_cell({0: 3.81, 1: 3.83, 2: 3.80}) == "3 seeds: 3.8133 ± 0.0153 (sd)"


# ---- figures -------------------------------------------------------------------------------------------


def test_last_token_attention_names_keys_by_their_real_position():
    labels = [f"t{i}" for i in range(60)]
    fig = last_token_attention({"a": np.full((4, 48), 1 / 60)}, labels, 2)
    assert fig.data[0].x[0] == "12 t12" and fig.data[0].x[-1] == "59 t59"
    assert fig.layout.xaxis.title.text == "keys 12–59"
    short = last_token_attention({"a": np.full((4, 5), 0.2)}, labels[:5], 2)
    assert short.data[0].x[0] == "0 t0"


def test_last_token_attention_puts_at_most_four_panels_a_row():
    names = ["mha-rope", "gqa-rope", "mqa-rope", "gqa-sinusoidal", "gqa-learned", "gqa-alibi", "gqa-none"]
    fig = last_token_attention({n: np.full((4, 8), 1 / 8) for n in names}, [f"t{i}" for i in range(8)], 2)
    assert [a.text for a in fig.layout.annotations] == [n.replace("-", "-<br>", 1) for n in names]
    # Trace i sits in row i // 4 + 1, column i % 4 + 1: x axes 1-4 on the first row, 5-7 on the second.
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x3", "x4", "x5", "x6", "x7"]
    assert fig.layout.xaxis5.title.text == "keys 0–7" and not fig.layout.xaxis.title.text
    assert fig.layout.yaxis.title.text == fig.layout.yaxis5.title.text == "layer, head"
    assert fig.layout.xaxis.domain[0] == fig.layout.xaxis5.domain[0] and fig.layout.yaxis.domain[0] > fig.layout.yaxis5.domain[1]


def test_loss_bars_draw_the_seed_spread_only_where_it_exists():
    plain = loss_bars(["a", "b"], [1.86, 1.88], {"bigram": 2.35})
    assert [t.name for t in plain.data] == ["shipped run"] and not plain.layout.showlegend
    fig = loss_bars(["a", "b"], [1.86, 1.88], {"bigram": 2.35}, {"a": [1.86, 1.87, 1.85], "b": [1.88]})
    dots = next(t for t in fig.data if t.name == "each training seed")
    assert list(dots.x) == ["a", "a", "a"] and list(dots.y) == [1.86, 1.87, 1.85]
    mean = next(t for t in fig.data if t.name == "seed mean ± sd")
    assert list(mean.x) == ["a"] and mean.y[0] == pytest.approx(1.86)
    assert mean.error_y.array[0] == pytest.approx(0.01)


# ---- architecture: each variant against the default ------------------------------------------------------

MOE_TOTAL, MOE_ACTIVE = 3_150_528, 1_970_880


def architecture(shifts: dict[str, float], wiggle: float = 0.01) -> dict:
    """The default at BASE and each architecture variant `shift` above it, window by window ± 2·wiggle: over 100
    windows a 95 % interval of about ±0.4·wiggle around the shift (see `windows`)."""
    rows = {"gqa-rope": variant(0.0, wiggle=wiggle)}
    for name, shift in shifts.items():
        rows[name] = variant(shift, phase=-1, wiggle=wiggle, params=MOE_TOTAL if name == "gqa-moe" else 1_967_808)
        if name == "gqa-moe":
            rows[name].update(active_params=MOE_ACTIVE, n_experts=4, experts_per_token=2)
    return {"variants": rows, "settings": {"threads": 1}}


MHA_SPREAD = {"mha-rope": [3.770, 3.787, 3.804]}  # sd 0.0170 over 3 seeds, as results/seeds.json's MHA


def test_architecture_orders_only_what_the_windows_separate_beyond_the_seed_spread():
    res = architecture({"gqa-postnorm": 0.06, "gqa-layernorm": 0.03, "gqa-gelu": 0.002, "gqa-moe": -0.06})
    t = text(read_architecture(res, seeds=seeds(MHA_SPREAD)))
    margin = 1.96 * math.sqrt(2) * 0.017  # 0.0471: two single runs, each with MHA's seed sd
    assert "Each variant was trained once (one seed)" in t
    assert ("Over the variants trained several times the seed-to-seed sd reached 0.0170 (mha-rope, n = 3): with a "
            f"spread that large in each, the difference between two runs trained once could move by ±{margin:.4f} "
            "(1.96 × √2 × 0.0170)") in t
    # 0.06 apart, interval ±0.004: an order, for these weights, beyond what the seeds could move
    assert "gqa-rope's held-out loss is lower than gqa-postnorm's for these weights on these windows" in t
    assert "gqa-moe's held-out loss is lower than gqa-rope's for these weights on these windows" in t
    assert (f"That is beyond ±{margin:.4f}, what second training runs could move the difference by (1.96 × √2 × "
            "the largest seed-to-seed sd measured here, 0.0170: mha-rope, n = 3); gqa-postnorm and gqa-rope were "
            "trained once, so their own spread is not measured") in t
    # 0.03 apart: the windows separate it (±0.004), and it is more than one seed sd, but within the margin
    assert ("gqa-layernorm − gqa-rope in held-out loss = +0.0300 (95 % interval +0.0261 to +0.0339, over 100 "
            f"held-out windows): the windows separate these weights, but by less than ±{margin:.4f}") in t
    assert "gqa-layernorm's held-out loss is lower" not in t
    assert "gqa-rope's held-out loss is lower than gqa-layernorm" not in t
    # 0.002 apart: the windows do not separate it either
    assert "gqa-gelu − gqa-rope in held-out loss = +0.0020" in t and "the interval includes 0, so no order" in t
    assert "gqa-gelu's" not in t and "than gqa-gelu's" not in t


def test_architecture_without_any_seed_spread_says_so():
    t = text(read_architecture(architecture({"gqa-layernorm": 0.005})))
    assert "gqa-rope's held-out loss is lower than gqa-layernorm's for these weights on these windows" in t
    assert "No variant has a second training seed here, so how much of that a different seed would undo" in t
    assert "Each variant was trained once (one seed)" in t and "trained several times" not in t


def test_architecture_with_seeds_of_both_orders_across_seeds():
    res = architecture({"gqa-gelu": 0.02})
    both = seeds({"gqa-rope": [3.80, 3.81, 3.79], "gqa-gelu": [3.83, 3.835, 3.815], **MHA_SPREAD})
    t = text(read_architecture(res, seeds=both))
    assert "gqa-rope's held-out loss is lower than gqa-gelu's across training seeds" in t
    assert "over 3 training seeds" in t
    assert "trained several times" not in t  # none of the compared ones was trained once


def test_architecture_sizes_moe_balance_and_what_is_missing():
    res = architecture({"gqa-moe": -0.03})
    lines = read_architecture(res, aux_loss={"gqa-moe": [3.0] * 50 + [2.2] * 100})
    t = text(lines)
    assert "gqa-moe 3,150,528 (1,970,880 used per token)" in t and "gqa-rope 1,967,808," in t
    assert "gqa-moe holds +60.1 % parameters and uses +0.2 % per token" in t
    assert "averaged 2.200 over its last 100 training steps" in t and "10 % of the way from even to collapsed" in t
    assert "past the 256-token context they were trained on (all RoPE)" in t
    assert "gqa-moe − gqa-rope in rise past 256 = +0.000; no interval could be computed" in t  # no per-window record
    assert "load-balancing" not in text(read_architecture(res))  # no log, no sentence
    assert read_architecture({"variants": {"gqa-rope": res["variants"]["gqa-rope"]}}) == [
        f"Fewer than two of {', '.join(ARCHITECTURE_VARIANTS)} are evaluated here (the default, gqa-rope, among "
        "them), so there is nothing to compare yet."]


def test_largest_seed_spread_and_architecture_words():
    name, s = largest_seed_spread({"a": {0: 3.80, 1: 3.84}, "b": {0: 3.81, 1: 3.815}, "c": {0: 3.9}})
    assert name == "a" and s["sd"] == pytest.approx(0.0283, abs=1e-4) and s["n"] == 2
    assert largest_seed_spread({"c": {0: 3.9}}) is None
    words = {n: architecture_change(asdict(variant_config(n))) for n in ARCHITECTURE_VARIANTS}
    assert words["gqa-rope"] == "the default: pre-norm RMSNorm, SwiGLU MLP 512 wide"
    assert words["gqa-postnorm"].startswith("post-norm") and "RMSNorm" in words["gqa-layernorm"]
    assert words["gqa-gelu"] == "a two-matrix GELU MLP 768 wide (GPT-2's) instead of SwiGLU"
    assert words["gqa-moe"].startswith("4 SwiGLU experts 256 wide, 2 per token")
    assert architecture_change(asdict(variant_config("gqa-moe")), short=True) == "a mixture of 4 experts, 2 per token"
    t = architecture_intro(words, "gqa-rope", {"gqa-rope": {"seed": 1337, "steps": 4000}})
    assert t.startswith("4 variants each change one architectural choice of the default (gqa-rope: pre-norm RMSNorm")
    assert "**gqa-moe** — 4 SwiGLU experts" in t and "Trained alike" not in t  # one log: nothing to compare
    two = architecture_intro(words, "gqa-rope", {"gqa-rope": {"seed": 1337}, "gqa-moe": {"seed": 1337}},
                             {"gqa-rope": "cpu", "gqa-moe": "cuda"})
    assert "Trained alike" in two and "gqa-postnorm, gqa-layernorm, gqa-gelu: no training log" in two
    assert "Trained on different hardware (gqa-rope cpu, gqa-moe cuda)" in two


def test_params_bars_draw_total_beside_used_per_token():
    fig = params_bars(["gqa-rope", "gqa-moe"], [1_967_808, MOE_TOTAL], [1_967_808, MOE_ACTIVE])
    total, used = fig.data
    assert (total.name, used.name) == ("all parameters", "used per token")
    assert list(total.y) == [1_967_808, MOE_TOTAL] and list(used.y) == [1_967_808, MOE_ACTIVE]
    assert used.text[1] == "1,970,880" and fig.layout.barmode == "group"
