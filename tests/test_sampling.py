"""Sampling: every distribution sums to 1, each filter keeps what it should, seeds repeat, greedy is argmax."""

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


def test_seeded_sampling_repeats():
    a = [sample(LOGITS, SamplerConfig(1.0), np.random.default_rng(7)).token for _ in range(3)]
    rng1, rng2 = np.random.default_rng(42), np.random.default_rng(42)
    s1 = [sample(LOGITS, SamplerConfig(1.0), rng1).token for _ in range(30)]
    s2 = [sample(LOGITS, SamplerConfig(1.0), rng2).token for _ in range(30)]
    assert s1 == s2 and len(set(a)) == 1


@pytest.mark.parametrize("kw", [dict(temperature=-1), dict(top_k=-2), dict(top_p=0), dict(top_p=1.5), dict(min_p=2)])
def test_bad_sampler_settings_are_named(kw):
    with pytest.raises(ValueError, match=list(kw)[0]):
        SamplerConfig(**kw)


def test_generation_is_reproducible_and_uses_the_cache_correctly():
    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=24)).eval()
    g1 = generate(m, [1, 2, 3], 10, SamplerConfig(0.9), seed=5)
    g2 = generate(m, [1, 2, 3], 10, SamplerConfig(0.9), seed=5)
    assert g1.generated_ids == g2.generated_ids and len(g1.generated_ids) == 10
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
