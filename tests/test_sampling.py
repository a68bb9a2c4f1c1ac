"""Sampling: every distribution sums to 1, each filter keeps what it should, draws follow the distribution they
are drawn from (a chi-square test), only the given generator decides them, greedy is argmax."""

import random
from statistics import NormalDist

import numpy as np
import pytest
import torch

from model.net.config import ModelConfig
from model.decoding.generate import generate
from model.net.transformer import Transformer
from model.decoding.sampling import SamplerConfig, sample, softmax

LOGITS = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))


def test_worked_example_from_the_docstring():
    r = sample([2.0, 1.0, 0.0], SamplerConfig(temperature=1.0, top_k=2), np.random.default_rng(0))
    np.testing.assert_allclose(r.raw, [0.6652, 0.2447, 0.0900], atol=1e-4)
    assert r.kept.tolist() == [True, True, False]
    np.testing.assert_allclose(r.final, [0.7311, 0.2689, 0.0], atol=1e-4)


@pytest.mark.parametrize("cfg", [
    SamplerConfig(temperature=1.0), SamplerConfig(temperature=0.5, top_k=3), SamplerConfig(temperature=1.5, top_p=0.7),
    SamplerConfig(temperature=1.0, min_p=0.3), SamplerConfig(temperature=0.9, top_k=4, top_p=0.9, min_p=0.1),
])
def test_distributions_sum_to_one_and_the_choice_is_kept(cfg):
    rng = np.random.default_rng(1)
    for _ in range(50):
        r = sample(LOGITS, cfg, rng)
        for p in (r.raw, r.tempered, r.final):
            assert p.sum() == pytest.approx(1.0)
        assert r.kept[r.token]
        assert np.all(r.final[~r.kept] == 0)
        assert r.kept_min_p.sum() <= r.kept_top_p.sum() <= r.kept_top_k.sum()


def test_each_filter_keeps_what_it_should():
    rng = np.random.default_rng(0)
    assert sample(LOGITS, SamplerConfig(1.0, top_k=2), rng).kept.tolist() == [True, True, False, False, False]
    # top-p 0.7: 0.5 < 0.7, 0.5 + 0.2 = 0.7 reaches it -> two tokens
    assert sample(LOGITS, SamplerConfig(1.0, top_p=0.7), rng).kept.sum() == 2
    assert sample(LOGITS, SamplerConfig(1.0, top_p=0.71), rng).kept.sum() == 3
    # min-p 0.3: keep p >= 0.15
    assert sample(LOGITS, SamplerConfig(1.0, min_p=0.3), rng).kept.tolist() == [True, True, True, False, False]
    # temperature sharpens
    r = sample(LOGITS, SamplerConfig(0.5), rng)
    np.testing.assert_allclose(r.tempered, softmax(LOGITS / 0.5))
    assert r.tempered[0] > r.raw[0]
    assert r.entropy_raw == pytest.approx(-(np.exp(LOGITS) * LOGITS).sum())


def test_greedy_is_the_argmax_and_labelled():
    r = sample(LOGITS, SamplerConfig(temperature=0))
    assert r.greedy and r.token == 0 and r.rank == 0 and r.final[0] == 1.0


def chi2_critical(df: int, alpha: float) -> float:
    """The chi-square distribution's upper-alpha point, by Wilson and Hilferty's (1931) approximation:
    (X/df)^(1/3) is close to normal with mean 1 - 2/(9 df) and variance 2/(9 df). scipy is not a dependency;
    for df >= 2 this is within 3 % of the exact value and errs high (a slightly more lenient test).
    df=4, alpha=0.001 -> 18.72 (exact 18.47)."""
    z = NormalDist().inv_cdf(1 - alpha)
    h = 2 / (9 * df)
    return df * (1 - h + z * h**0.5) ** 3


def test_chi2_critical_matches_the_tables():
    exact = {(2, 0.001): 13.816, (4, 0.001): 18.467, (7, 0.001): 24.322, (10, 0.001): 29.588, (4, 0.01): 13.277}
    for (df, alpha), x in exact.items():
        assert x <= chi2_critical(df, alpha) <= 1.03 * x, (df, alpha)


WIDE = np.log(np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02]))
DRAWS = 6000  # per setting: every expected count in the kept set is >= 5 (asserted), as the test requires


@pytest.mark.parametrize("cfg", [
    SamplerConfig(temperature=1.0), SamplerConfig(temperature=0.6, top_k=5),
    SamplerConfig(temperature=1.4, top_p=0.8, min_p=0.2),
], ids=["T=1", "T=0.6 top-k 5", "T=1.4 top-p 0.8 min-p 0.2"])
def test_draws_follow_the_final_distribution(cfg):
    """Pearson's chi-square over the kept tokens at alpha = 0.001 (a fixed seed, so the verdict is fixed too);
    tokens outside the kept set are never drawn. The same counts reject a distribution the filters did not
    produce, so the test could fail."""
    rng = np.random.default_rng(2024)
    final = sample(WIDE, cfg, rng).final
    counts = np.bincount([sample(WIDE, cfg, rng).token for _ in range(DRAWS)], minlength=len(WIDE))
    kept = final > 0
    assert counts[~kept].sum() == 0

    def chi2(p):
        expected = DRAWS * p[kept] / p[kept].sum()
        assert expected.min() >= 5
        return float(((counts[kept] - expected) ** 2 / expected).sum())

    critical = chi2_critical(int(kept.sum()) - 1, 0.001)
    assert chi2(final) < critical
    # What a sampler that skipped the temperature (or, at T = 1, that drew uniformly) would have drawn from.
    wrong = softmax(WIDE) if cfg.temperature != 1 else np.ones(len(WIDE))
    assert chi2(wrong) > critical


def test_draws_depend_on_the_given_generator_and_nothing_else():
    def run(seed: int, global_seed: int) -> list[int]:
        np.random.seed(global_seed)  # the global generators must not matter …
        random.seed(global_seed)
        torch.manual_seed(global_seed)
        rng = np.random.default_rng(seed)
        return [sample(LOGITS, SamplerConfig(1.0), rng).token for _ in range(40)]

    first = run(42, 0)
    assert run(42, 1) == first
    assert run(43, 0) != first  # … the given one does
    with pytest.raises(ValueError, match="random generator"):
        sample(LOGITS, SamplerConfig(1.0))


@pytest.mark.parametrize("kw", [dict(temperature=-1), dict(top_k=-2), dict(top_p=0), dict(top_p=1.5), dict(min_p=2)])
def test_bad_sampler_settings_are_named(kw):
    with pytest.raises(ValueError, match=list(kw)[0]):
        SamplerConfig(**kw)


def test_generation_is_reproducible_and_uses_the_cache_correctly():
    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=24)).eval()
    # sampled via the cache == sampled by recomputing the full sequence every step, from the same generator
    sampler = SamplerConfig(0.9)
    g = generate(m, [1, 2, 3], 10, sampler, seed=5)
    ids, rng = [1, 2, 3], np.random.default_rng(5)
    for _ in range(10):
        with torch.no_grad():
            ids.append(sample(m(torch.tensor([ids]))[0, -1].numpy(), sampler, rng).token)
    assert g.generated_ids == ids[3:]
    assert generate(m, [1, 2, 3], 10, sampler, seed=6).generated_ids != g.generated_ids  # the seed is used
    greedy = generate(m, [1, 2, 3], 8, SamplerConfig(0))
    # greedy via the cache == greedy by recomputing the full sequence every step
    ids = [1, 2, 3]
    for _ in range(8):
        with torch.no_grad():
            ids.append(int(m(torch.tensor([ids]))[0, -1].argmax()))
    assert greedy.generated_ids == ids[3:]
    # the context limit stops generation with a reason instead of raising
    long = generate(m, list(range(20)), 10, SamplerConfig(0))
    assert len(long.generated_ids) == 5 and "context" in long.stopped
    with pytest.raises(ValueError, match="empty"):
        generate(m, [], 3, SamplerConfig(0))


def test_a_sliding_window_has_no_context_limit():
    """context_room is None — no limit — with a sliding window (not a big number standing in for one)."""
    from model.decoding.generate import context_room

    cfg = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=8,
                      sliding_window=4)
    assert context_room(cfg, 1000) is None
    assert context_room(ModelConfig(**{**cfg.to_dict(), "sliding_window": None}), 5) == 3
    assert context_room(ModelConfig(**{**cfg.to_dict(), "pos_encoding": "learned"}), 10) == 0  # its table ends
    torch.manual_seed(0)
    m = Transformer(cfg).eval()
    g = generate(m, list(range(12)), 10, SamplerConfig(0))  # a prompt past max_seq_len, and on
    assert len(g.generated_ids) == 10 and g.stopped == ""
