"""model/analysis/: role scores on hand-made patterns, the logit lens against the model's own logits,
PCA and nearest neighbours against what they must be."""

import numpy as np
import pytest
import torch

from model.analysis import geometry, heads, lens
from model.decoding.sampling import softmax
from model.net.config import ModelConfig
from model.net.transformer import Transformer
from model.net.trace import run_with_trace


def one_hot_pattern(T: int, key_of_query) -> np.ndarray:
    """[1, T, T]: query q puts all its attention on key key_of_query(q)."""
    p = np.zeros((1, T, T))
    for q in range(T):
        p[0, q, key_of_query(q)] = 1.0
    return p


def test_perfect_previous_token_head_scores_one_and_others_zero():
    p = one_hot_pattern(8, lambda q: max(q - 1, 0))
    assert heads.previous_token_score(p)[0] == pytest.approx(1.0)
    assert heads.self_score(p)[0] == pytest.approx(0.0)
    assert heads.first_token_score(p)[0] == pytest.approx(1 / 7)  # only q=1 reads key 0, which is also its previous


def test_first_token_and_self_heads():
    sink = one_hot_pattern(6, lambda q: 0)
    assert heads.first_token_score(sink)[0] == pytest.approx(1.0)
    diag = one_hot_pattern(6, lambda q: q)
    assert heads.self_score(diag)[0] == pytest.approx(1.0)
    assert heads.previous_token_score(diag)[0] == pytest.approx(0.0)


def test_uniform_causal_pattern_scores():
    T = 5
    p = np.tril(np.ones((T, T)))
    p = (p / p.sum(-1, keepdims=True))[None]
    expected = np.mean([1 / (q + 1) for q in range(1, T)])
    for f in (heads.previous_token_score, heads.first_token_score, heads.self_score):
        assert f(p)[0] == pytest.approx(expected)


def test_induction_score_on_a_perfect_induction_head():
    n = 4  # sequence a b c d a b c d; the second `a` (q=4) looks at the first `b` (k=1)
    p = one_hot_pattern(2 * n, lambda q: q - n + 1 if q >= n else 0)
    assert heads.induction_score(p, n)[0] == pytest.approx(1.0)
    assert heads.induction_score(one_hot_pattern(2 * n, lambda q: max(q - 1, 0)), n)[0] == pytest.approx(0.0)


def test_single_token_gives_nan_not_an_error():
    p = np.ones((3, 1, 1))
    assert np.isnan(heads.previous_token_score(p)).all()
    assert np.isnan(heads.first_token_score(p)).all()
    assert np.isnan(heads.self_score(p)).all()


def test_repeated_random_ids():
    ids = heads.repeated_random_ids(24, 2048, seed=1)
    assert ids.shape == (48,)
    assert (ids[:24] == ids[24:]).all()
    assert ids.min() >= 256 and ids.max() < 2047  # no raw bytes, never the special token


def test_role_scores_shapes():
    pats = [np.tril(np.ones((3, 5, 5))) / np.arange(1, 6)[None, :, None] for _ in range(2)]
    s = heads.role_scores(pats, None, 2)
    assert set(s) == set(heads.ROLES)
    assert all(v.shape == (2, 3) for v in s.values())
    assert np.isnan(s["induction"]).all()


def test_kv_groups_follow_repeat_interleave():
    assert heads.kv_groups(6, 2) == [[0, 1, 2], [3, 4, 5]]
    assert heads.kv_groups(6, 1) == [list(range(6))]
    assert heads.kv_groups(6, 6) == [[h] for h in range(6)]


@pytest.mark.parametrize("kv", [1, 2, 3])
def test_kv_groups_are_the_models_own_sharing(kv):
    """Give every query head the same W_q: then two heads draw the same pattern exactly when they read the same
    K/V head. Grouping the model's patterns that way must give kv_groups."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, n_layers=1, d_model=48, n_heads=6, n_kv_heads=kv, d_mlp=64, max_seq_len=16)
    m = Transformer(cfg).eval().requires_grad_(False)
    Wq = m.blocks[0].attn.W_q.weight  # (nh·hd, d)
    Wq.copy_(Wq[: cfg.head_dim].repeat(cfg.n_heads, 1))
    pat = run_with_trace(m, [5, 17, 3, 40, 9, 22, 8], names="blocks.0.attn.hook_pattern")["blocks.0.attn.hook_pattern"]
    groups: list[list[int]] = []
    for h in range(cfg.n_heads):
        same = next((g for g in groups if np.array_equal(pat[g[0]], pat[h])), None)
        same.append(h) if same is not None else groups.append([h])
    assert groups == heads.kv_groups(cfg.n_heads, kv)


@pytest.fixture(scope="module")
def small_trace():
    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_mlp=128, max_seq_len=32)
    model = Transformer(cfg).eval().requires_grad_(False)
    with torch.no_grad():  # a non-trivial final-norm weight, so the lens must really apply it
        model.ln_final.weight.copy_(torch.linspace(0.5, 1.5, cfg.d_model))
    ids = [5, 17, 3, 99, 17, 3, 250]
    return model, run_with_trace(model, ids)


def test_logit_lens_last_stage_equals_the_models_logits(small_trace):
    model, tr = small_trace
    stages = lens.lens_stages(model.cfg.n_layers)
    resids = np.stack([tr[name] for name, _ in stages])  # (S, T, d)
    lensed = lens.logit_lens(resids, model.ln_final.weight.numpy(), model.cfg.norm_eps, model.W_U.detach().numpy())
    assert lensed.shape == (len(stages), 7, model.cfg.vocab_size)
    np.testing.assert_allclose(lensed[-1], tr.logits, rtol=1e-4, atol=1e-4)


def test_rms_norm_matches_the_models_final_norm(small_trace):
    model, tr = small_trace
    x = tr[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    mine = lens.rms_norm(x, model.ln_final.weight.numpy(), model.cfg.norm_eps)
    np.testing.assert_allclose(mine, tr["ln_final.hook_normalized"], rtol=1e-5, atol=1e-5)


def test_top_k_and_next_token_probs():
    probs = softmax(np.array([[[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]]))  # (S=1, T=2, V=3)
    idx, val = lens.top_k(probs, 2)
    assert idx[0, 0].tolist() == [1, 2] and idx[0, 1].tolist() == [0, 1]
    assert (np.diff(val, axis=-1) <= 0).all()
    nxt = lens.next_token_probs(probs, np.array([1, 2]))
    assert nxt[0, 0] == pytest.approx(probs[0, 0, 2])
    assert np.isnan(nxt[0, 1])


def test_pca_shape_and_variance_order():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)) * np.array([5, 3, 1, 1, 1, 1, 1, 1, 1, 1])
    coords, ratio = geometry.pca(X, 2)
    assert coords.shape == (300, 2)
    assert ratio[0] > ratio[1] > 0 and ratio.sum() < 1
    assert coords[:, 0].var() > coords[:, 1].var()
    np.testing.assert_allclose(coords.mean(axis=0), 0, atol=1e-9)


def test_nearest_neighbours_start_with_the_token_itself():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(50, 8))
    E[7] = E[3] * 2.0  # same direction as row 3: its nearest other neighbour, cosine 1
    idx, sims = geometry.nearest_neighbours(E, 3, k=5)
    assert idx[0] == 3 and sims[0] == pytest.approx(1.0)
    assert idx[1] == 7 and sims[1] == pytest.approx(1.0)
    assert (np.diff(sims) <= 1e-12).all()


def test_cosine_matrix():
    S = geometry.cosine_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(S[:3, :3], [[1, 0, -1], [0, 1, 0], [-1, 0, 1]])
    assert (S[3] == 0).all()
