"""Model core against its references: full forward vs cached decode, hooks, masks, RoPE, GQA, threads."""

import contextvars
import math
import threading

import numpy as np
import pytest
import torch

from model.net.config import ModelConfig
from model.net.kv_cache import KVCache
from model.net.transformer import Transformer
from model.net.hooks import _RECORDER
from model.net.positions import alibi_slopes, apply_rope, rope_angles, sinusoidal_table
from model.net.trace import forward_logits, run_with_trace

SMALL = dict(vocab_size=97, d_model=48, n_layers=2, n_heads=6, d_mlp=64, max_seq_len=40)
POS = ["rope", "sinusoidal", "learned", "alibi", "none"]
KV = [6, 2, 1]  # MHA, GQA, MQA


def small(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**{**SMALL, "n_kv_heads": 2, **kw})).eval()


def ids_of(n, seed=0, vocab=97):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pos", POS)
@pytest.mark.parametrize("kv", KV)
@pytest.mark.parametrize("window", [None, 6])
def test_prefill_plus_decode_equals_full_forward(pos, kv, window):
    m = small(pos_encoding=pos, n_kv_heads=kv, sliding_window=window)
    ids = ids_of(30)
    with torch.no_grad():
        full = m(ids)  # (1, 30, V)
        cache = KVCache.for_model(m.cfg)
        parts = [m(ids[:, :9], cache=cache)] + [m(ids[:, t : t + 1], cache=cache) for t in range(9, 30)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
    assert cache.length == 30
    expect_t = min(30, window) if window else 30
    for k_shape, v_shape in cache.shapes():
        assert k_shape == v_shape == (1, kv, expect_t, m.cfg.head_dim)
    assert cache.nbytes() == 2 * m.cfg.n_layers * kv * expect_t * m.cfg.head_dim * 4


@pytest.mark.parametrize("pos", POS)
def test_fused_attention_matches_explicit(pos):
    m = small(pos_encoding=pos, sliding_window=7)
    ids = ids_of(25)
    with torch.no_grad():
        torch.testing.assert_close(m(ids, fused=True), m(ids), atol=1e-5, rtol=0)


def test_dropout_is_a_training_knob_only():
    """Dropout adds no parameters, is the identity in eval(), and in train() the fused and explicit paths
    still agree (it sits on the residual branches, outside attention) under the same random draw."""
    plain = small()
    dropped = Transformer(ModelConfig(**{**SMALL, "n_kv_heads": 2}), dropout=0.3)
    dropped.load_state_dict(plain.state_dict())  # strict: same keys, no extra parameters
    ids = ids_of(20)
    with torch.no_grad():
        torch.testing.assert_close(dropped.eval()(ids), plain(ids), atol=0, rtol=0)
        dropped.train()
        torch.manual_seed(5)
        explicit = dropped(ids)
        torch.manual_seed(5)
        fused = dropped(ids, fused=True)
    assert (explicit - plain(ids)).abs().max() > 1e-3  # the draw did drop something
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="dropout"):
        Transformer(ModelConfig(**SMALL), dropout=1.0)


@pytest.mark.parametrize("pos", POS)
def test_causal_mask_later_tokens_never_change_earlier_logits(pos):
    m = small(pos_encoding=pos)
    a = ids_of(20)
    b = a.clone()
    b[0, 12:] = (b[0, 12:] + 5) % 97
    with torch.no_grad():
        la, lb = m(a), m(b)
    torch.testing.assert_close(la[:, :12], lb[:, :12], atol=1e-6, rtol=0)
    assert not torch.allclose(la[:, 12:], lb[:, 12:])


@pytest.mark.parametrize("pos", POS)
@pytest.mark.parametrize("kv", KV)
def test_hook_names_and_shapes(pos, kv):
    m = small(pos_encoding=pos, n_kv_heads=kv)
    c, T = m.cfg, 11
    tr = run_with_trace(m, ids_of(T)[0])
    nh, hd, d = c.n_heads, c.head_dim, c.d_model
    expect = {"hook_embed": (T, d), "ln_final.hook_normalized": (T, d)}
    if pos in ("sinusoidal", "learned"):
        expect["hook_pos_embed"] = (T, d)
    for l in range(c.n_layers):
        b = f"blocks.{l}"
        for h in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
            expect[f"{b}.{h}"] = (T, d)
        expect[f"{b}.ln1.hook_normalized"] = expect[f"{b}.ln2.hook_normalized"] = (T, d)
        expect[f"{b}.attn.hook_q"] = expect[f"{b}.attn.hook_z"] = (T, nh, hd)
        expect[f"{b}.attn.hook_k"] = expect[f"{b}.attn.hook_v"] = (T, kv, hd)
        if pos == "rope":
            expect[f"{b}.attn.hook_rot_q"] = (T, nh, hd)
            expect[f"{b}.attn.hook_rot_k"] = (T, kv, hd)
        expect[f"{b}.attn.hook_attn_scores"] = expect[f"{b}.attn.hook_pattern"] = (nh, T, T)
        for h in ("hook_pre", "hook_pre_linear", "hook_post"):
            expect[f"{b}.mlp.{h}"] = (T, c.d_mlp)
    assert {k: v.shape for k, v in tr.acts.items()} == expect
    assert sorted(m.hook_names()) == sorted(expect)
    assert tr.logits.shape == (T, c.vocab_size)
    pat = tr["blocks.1.attn.hook_pattern"]
    np.testing.assert_allclose(pat.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(pat, 1) == 0)  # causal: nothing above the diagonal
    assert np.all(np.isneginf(tr["blocks.0.attn.hook_attn_scores"][:, 0, 1:]))  # masked scores are -inf


def test_traced_logits_equal_untraced():
    m = small()
    ids = ids_of(33)[0]
    tr = run_with_trace(m, ids)
    np.testing.assert_array_equal(tr.logits, forward_logits(m, ids))
    np.testing.assert_array_equal(tr["blocks.0.hook_resid_pre"], tr["hook_embed"])


def test_traced_decode_step_has_one_query_row_over_every_cached_position():
    m = small()
    ids = ids_of(15)[0]
    cache = KVCache.for_model(m.cfg)
    run_with_trace(m, ids[:14], cache=cache)
    step = run_with_trace(m, ids[14:], cache=cache)
    assert step["blocks.0.attn.hook_q"].shape == (1, 6, 8)
    assert step["blocks.0.attn.hook_pattern"].shape == (6, 1, 15)
    assert step.positions.tolist() == [14]
    np.testing.assert_allclose(step.logits[0], forward_logits(m, ids)[-1], atol=1e-5)


def test_name_filter_records_only_what_is_asked():
    m = small()
    tr = run_with_trace(m, ids_of(5)[0], names={"blocks.0.attn.hook_pattern"})
    assert tr.names() == ["blocks.0.attn.hook_pattern"]
    tr = run_with_trace(m, ids_of(5)[0], names=lambda n: n.endswith("hook_z"))
    assert tr.names() == ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]


def test_a_string_names_filter_is_that_one_hook_name():
    """A plain string once was iterated by character (hook names one letter long: an empty trace, no error)."""
    m = small()
    full = run_with_trace(m, ids_of(5)[0])
    tr = run_with_trace(m, ids_of(5)[0], names="blocks.1.attn.hook_pattern")
    assert tr.names() == ["blocks.1.attn.hook_pattern"]
    np.testing.assert_array_equal(tr["blocks.1.attn.hook_pattern"], full["blocks.1.attn.hook_pattern"])
    assert run_with_trace(m, ids_of(5)[0], names=["hook_embed", "blocks.0.hook_resid_post"]).names() == [
        "hook_embed", "blocks.0.hook_resid_post"]


@pytest.mark.parametrize("names, error, words", [
    ("blocks.0.attn.hook_scores", ValueError, "hook_scores"),  # the name before the TransformerLens rename
    (["hook_embed", "blocks.9.hook_resid_post"], ValueError, "blocks.9.hook_resid_post"),
    ("h", ValueError, "'h'"),
    (b"hook_embed", TypeError, "bytes"),
    (3, TypeError, "int"),
    ([3], TypeError, "3"),
])
def test_a_names_filter_that_selects_nothing_real_is_an_error(names, error, words):
    with pytest.raises(error, match=words):
        run_with_trace(small(), ids_of(5)[0], names=names)


def test_sinusoidal_input_is_the_scaled_embedding_plus_the_table():
    """Block 0 reads tok_embed · √d_model + the sinusoidal table (Vaswani §3.4); hook_embed is the table row as
    stored, hook_pos_embed the sin/cos rows — also for a decode step, whose position is the cache length."""
    m = small(pos_encoding="sinusoidal")
    d = m.cfg.d_model
    assert m.embed_scale == math.sqrt(d) and small().embed_scale == 1.0
    ids = ids_of(9)[0]
    E = m.tok_embed.weight.detach().numpy()
    # The table by its formula, written out here: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(…).
    pos, i = np.arange(9)[:, None], np.arange(0, d, 2)[None, :]
    table = np.zeros((9, d), dtype=np.float32)
    table[:, 0::2], table[:, 1::2] = np.sin(pos / 10000 ** (i / d)), np.cos(pos / 10000 ** (i / d))
    np.testing.assert_allclose(sinusoidal_table(torch.arange(9), d).numpy(), table, atol=1e-5)
    tr = run_with_trace(m, ids)
    np.testing.assert_array_equal(tr["hook_embed"], E[ids.numpy()])
    np.testing.assert_allclose(tr["hook_pos_embed"], table, atol=1e-5)
    np.testing.assert_allclose(tr["blocks.0.hook_resid_pre"], E[ids.numpy()] * math.sqrt(d) + table, atol=1e-5)
    # Without the scale the embedding would be a small fraction of the input (std 0.02 against unit sin/cos).
    assert np.abs(E[ids.numpy()]).mean() < 0.1 * np.abs(table).mean()
    cache = KVCache.for_model(m.cfg)
    run_with_trace(m, ids[:8], cache=cache)
    step = run_with_trace(m, ids[8:], cache=cache)
    np.testing.assert_allclose(step["blocks.0.hook_resid_pre"][0], E[ids[8]] * math.sqrt(d) + table[8], atol=1e-5)


@pytest.mark.parametrize("pos", ["rope", "learned", "alibi", "none"])
def test_other_variants_add_no_scale(pos):
    m = small(pos_encoding=pos)
    ids = ids_of(7)[0]
    tr = run_with_trace(m, ids)
    E = m.tok_embed.weight.detach().numpy()[ids.numpy()]
    np.testing.assert_array_equal(tr["hook_embed"], E)
    extra = m.pos_embed.weight.detach().numpy()[:7] if pos == "learned" else 0.0
    np.testing.assert_allclose(tr["blocks.0.hook_resid_pre"], E + extra, atol=1e-6)


def test_tracing_from_threads_keeps_captures_apart_and_leaves_the_model_alone():
    m = small()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    prompts = {i: ids_of(8 + i, seed=i)[0] for i in range(8)}
    expected = {i: forward_logits(m, p) for i, p in prompts.items()}
    results, errors = {}, []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                tr = run_with_trace(m, prompts[i])
                assert tr["hook_embed"].shape[0] == len(prompts[i])
                assert tr["blocks.1.attn.hook_pattern"].shape == (6, len(prompts[i]), len(prompts[i]))
                np.testing.assert_array_equal(tr.ids, prompts[i].numpy())
                np.testing.assert_allclose(tr.logits, expected[i], atol=1e-5)
            results[i] = True
        except Exception as e:  # noqa: BLE001 — reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 8
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    # and nothing is left behind: no recorder in this context, no torch hook on any module …
    assert _RECORDER.get() is None
    assert not any(h._forward_hooks or h._forward_pre_hooks or h._backward_hooks for h in m.modules())
    # … and a recorder belongs to its context: one set in another context sees that context's calls only.
    calls = []
    other = contextvars.copy_context()
    other.run(_RECORDER.set, lambda name, t: calls.append(name))
    forward_logits(m, prompts[1])
    assert calls == []
    other.run(forward_logits, m, prompts[1])
    assert sorted(calls) == sorted(m.hook_names())


def test_rope_relative_position_property():
    torch.manual_seed(1)
    hd = 16
    q = torch.randn(1, 1, 1, hd)
    k = torch.randn(1, 1, 1, hd)

    def score(m, n):
        qm = apply_rope(q, rope_angles(torch.tensor([m]), hd, 10000.0))
        kn = apply_rope(k, rope_angles(torch.tensor([n]), hd, 10000.0))
        return (qm * kn).sum().item()

    for m_, n_, delta in [(5, 2, 7), (10, 10, 30), (3, 0, 100), (40, 1, 13)]:
        assert score(m_, n_) == pytest.approx(score(m_ + delta, n_ + delta), abs=1e-4)
    # rotation preserves each pair's length, and position 0 is the identity
    qr = apply_rope(q, rope_angles(torch.tensor([9]), hd, 10000.0))
    torch.testing.assert_close(qr.norm(), q.norm())
    torch.testing.assert_close(apply_rope(q, rope_angles(torch.tensor([0]), hd, 10000.0)), q)


def test_rope_pairs_are_interleaved():
    hd = 4
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 1, hd)
    ang = rope_angles(torch.tensor([1]), hd, 10000.0)  # θ_0 = 1, θ_1 = 0.01
    out = apply_rope(x, ang).view(-1)
    torch.testing.assert_close(out, torch.tensor([np.cos(1.0), np.sin(1.0), np.cos(0.01), np.sin(0.01)], dtype=torch.float32))


def test_alibi_slopes_follow_the_paper():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    s6 = alibi_slopes(6)  # 4 from the power of two below, then every other of 8's
    torch.testing.assert_close(s6, torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]))


def test_gqa_with_as_many_kv_heads_as_heads_is_mha():
    cfg_a = ModelConfig(**{**SMALL, "n_kv_heads": 6})
    torch.manual_seed(3)
    a = Transformer(cfg_a).eval()
    # the same weights through a model that repeats each K/V head once (g = 1) — and, independently,
    # a GQA model whose K/V heads are copies: reading shared heads must equal MHA with duplicated heads.
    cfg_g = ModelConfig(**{**SMALL, "n_kv_heads": 2})
    g = Transformer(cfg_g).eval()
    sd = g.state_dict()
    mha_sd = {}
    for k, v in sd.items():
        if k.endswith(("W_k.weight", "W_v.weight")):
            hd = cfg_g.head_dim
            heads = v.view(2, hd, -1).repeat_interleave(3, dim=0)  # kv head j -> query heads 3j..3j+2
            mha_sd[k] = heads.reshape(6 * hd, -1)
        else:
            mha_sd[k] = v
    a.load_state_dict(mha_sd)
    ids = ids_of(17)
    with torch.no_grad():
        torch.testing.assert_close(a(ids), g(ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(d_model=50, n_heads=6), "n_heads"),
        (dict(n_kv_heads=4), "n_kv_heads"),
        (dict(n_kv_heads=12), "n_kv_heads"),
        (dict(d_model=42, n_heads=6, n_kv_heads=1), "head_dim"),  # head_dim 7 is odd: RoPE needs pairs
        (dict(pos_encoding="xpos"), "pos_encoding"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(n_layers=-1), "n_layers"),
        (dict(d_model=1.5), "d_model"),
        (dict(sliding_window=0), "sliding_window"),
        (dict(rope_theta=1), "rope_theta"),
        (dict(norm_eps=0), "norm_eps"),
    ],
)
def test_bad_configs_raise_named_errors(kw, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kw)


def test_learned_positions_refuse_to_go_past_their_table():
    m = small(pos_encoding="learned")
    with pytest.raises(ValueError, match="learned position table"):
        m(ids_of(41))


def test_cache_truncate_restores_the_earlier_state():
    m = small()
    ids = ids_of(12)
    cache = KVCache.for_model(m.cfg)
    with torch.no_grad():
        m(ids[:, :10], cache=cache)
        snap = cache.clone()
        m(ids[:, 10:11], cache=cache)
        cache.truncate(10)
        assert cache.shapes() == snap.shapes()
        for a, b in zip(cache.k + cache.v, snap.k + snap.v):
            assert torch.equal(a, b)
        again = m(ids[:, 10:11], cache=cache)
    torch.testing.assert_close(again[0, -1], m(ids[:, :11])[0, -1], atol=1e-5, rtol=0)
