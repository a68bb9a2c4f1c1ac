"""The step-through generator: the cache grows one position a step, Back is an exact undo, seeds repeat, and
prefill + cached steps give the logits of one full forward (the reference)."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from model.net.config import ModelConfig
from model.net.transformer import Transformer
from model.decoding.generate import generate
from model.decoding.sampling import SamplerConfig
from model.decoding.stepper import Stepper, kv_bytes_by_attention
from model.net.trace import forward_logits

CFG = ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=24)
PROMPT = [5, 17, 3, 42, 8]
T1 = SamplerConfig(temperature=1.0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Transformer(CFG).eval().requires_grad_(False)


def stepped(model, n, seed=0, sampler=T1, cfg=CFG, prompt=PROMPT):
    s = Stepper(cfg, prompt, seed=seed)
    assert s.prefill(model, sampler) == ""
    s.run_n(model, n, sampler)
    return s


def test_cache_length_is_prompt_plus_steps(model):
    s = stepped(model, 0)
    assert s.cache.length == len(PROMPT) and len(s.records) == 1 and s.records[0].is_prefill
    for n in range(1, 5):
        s.next(model, T1)
        assert s.cache.length == len(PROMPT) + n == s.records[-1].cache_len
        assert s.n_steps == n and len(s.generated_ids) == n + 1
        for k_shape, v_shape in s.cache.shapes():
            assert k_shape == v_shape == (1, CFG.n_kv_heads, len(PROMPT) + n, CFG.head_dim)
        K, V, pos = s.cache_rows(1)
        assert K.shape == (len(PROMPT) + n, CFG.n_kv_heads * CFG.head_dim)
        assert pos.tolist() == list(range(len(PROMPT) + n))
        # The new token's attention: one row per head over every cached position, each a distribution.
        rows = s.records[-1].attn
        assert len(rows) == CFG.n_layers and rows[0].shape == (CFG.n_heads, len(PROMPT) + n)
        np.testing.assert_allclose(rows[0].sum(-1), 1.0, atol=1e-5)


def test_prefill_plus_steps_equal_one_full_forward(model):
    s = stepped(model, 6)
    full = forward_logits(model, s.token_ids()[: s.cache.length])  # (P + 6, V), no cache
    for r in s.records:
        np.testing.assert_allclose(r.logits, full[r.cache_len - 1], atol=1e-5)


def test_back_is_an_exact_undo(model):
    s = stepped(model, 3)
    before = s.cache.clone()
    rng_before, tokens_before = dict(s.rng_state), s.generated_ids
    kept_records = list(s.records)
    s.next(model, T1)
    first_try = s.records[-1]
    assert s.back() == ""
    assert s.records == kept_records and s.records[-1] is kept_records[-1]
    assert s.generated_ids == tokens_before and s.rng_state == rng_before
    assert s.cache.length == before.length
    for a, b in zip(s.cache.k + s.cache.v, before.k + before.v):
        assert torch.equal(a, b)
    s.next(model, T1)  # the same step again: same logits, same draw
    assert s.records[-1].token == first_try.token
    np.testing.assert_array_equal(s.records[-1].logits, first_try.logits)


def test_back_never_undoes_the_prefill(model):
    s = stepped(model, 0)
    assert "Nothing to undo" in s.back()
    assert s.cache.length == len(PROMPT) and len(s.records) == 1


def test_steps_draw_what_generate_draws_and_seeds_differ(model):
    """The stepper (a traced call per click, generator state stored and replayed) chooses the tokens that
    `generate` (one plain cached loop, one generator) chooses from the same seed."""
    a = stepped(model, 8, seed=3)
    assert a.generated_ids == generate(model, PROMPT, 9, T1, seed=3).generated_ids
    others = [stepped(model, 8, seed=k).generated_ids for k in (4, 5, 6)]
    assert any(o != a.generated_ids for o in others)


def test_reset_starts_over(model):
    s = stepped(model, 4, seed=1)
    first = s.generated_ids[:2]
    s.reset(model, T1)
    assert s.cache.length == len(PROMPT) and len(s.records) == 1
    s.next(model, T1)
    assert s.generated_ids == first


def test_sampler_change_redraws_the_current_step_without_the_model(model):
    s = stepped(model, 2)
    r = s.records[-1]
    greedy = SamplerConfig(temperature=0)
    s.resample_last(greedy)
    assert r.token == int(np.argmax(r.logits)) and r.result().greedy and r.rank == 0
    assert s.cache.length == len(PROMPT) + 2  # nothing was fed
    top1 = SamplerConfig(temperature=1.0, top_k=1)
    s.resample_last(top1)
    assert r.token == int(np.argmax(r.logits))
    # Each record's breakdown replays its own draw.
    for rec in s.records:
        res = rec.result()
        assert res.token == rec.token and res.prob == pytest.approx(rec.prob)
        assert res.kept[rec.token] and res.final.sum() == pytest.approx(1.0)


def test_empty_prompt_is_a_message_not_an_exception(model):
    s = Stepper(CFG, [], seed=0)
    assert "empty" in s.prefill(model, T1)
    assert not s.ready and s.cache.length == 0
    assert "empty" in s.next(model, T1)
    assert "Nothing to undo" in s.back()
    assert s.run_n(model, 3, T1)


def test_generation_stops_at_the_context(model):
    prompt = list(range(CFG.max_seq_len - 2))
    s = Stepper(CFG, prompt, seed=0)
    assert s.prefill(model, T1) == ""
    assert "context is full" in s.run_n(model, 10, T1)
    assert s.cache.length == CFG.max_seq_len and s.n_steps == 2
    assert "context is full" in s.next(model, T1) and s.cache.length == CFG.max_seq_len
    full = Stepper(CFG, list(range(CFG.max_seq_len)), seed=0)
    assert "context is full" in full.prefill(model, T1) and full.ready  # the prefill runs; no step follows
    too_long = Stepper(CFG, list(range(CFG.max_seq_len + 3)), seed=0)
    assert "context is" in too_long.prefill(model, T1) and not too_long.ready


def test_a_sliding_window_slides_and_back_rebuilds_the_cache():
    cfg = ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, max_seq_len=24,
                      sliding_window=4)
    torch.manual_seed(1)
    m = Transformer(cfg).eval().requires_grad_(False)
    s = stepped(m, 30, cfg=cfg)  # past max_seq_len: the window slides
    assert s.message == "" and s.cache.length == len(PROMPT) + 30 and s.cache.n_cached == 4
    assert s.room is None  # no limit (None, not a large number)
    assert s.records[-1].attn[0].shape == (cfg.n_heads, 4)
    full = forward_logits(m, s.token_ids()[: s.cache.length])
    np.testing.assert_allclose(s.records[-1].logits, full[-1], atol=1e-5)
    again = s.records[-1]
    s.back(m)
    s.next(m, T1)
    assert s.records[-1].token == again.token
    np.testing.assert_allclose(s.records[-1].logits, again.logits, atol=1e-5)


def test_the_counts_match_the_references(model):
    s = stepped(model, 3)
    r = s.records[-1]
    # Bytes: what the cache holds is what the accounting says the GQA model holds; MHA = 2x, MQA = 1/2 here.
    by_kind = kv_bytes_by_attention(CFG, r.cache_len)
    assert r.cache_bytes == s.cache.nbytes() == by_kind["GQA"]
    assert by_kind["MHA"] == 2 * by_kind["GQA"] == 4 * by_kind["MQA"]
    # FLOPs: the accounting's cached decode step is what FlopCounterMode sees for the same step.
    c = s.cache.clone()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.tensor([[r.token]]), cache=c)
    nxt = stepped(model, 4)
    assert nxt.records[-1].flops_cached == fc.get_total_flops()
    # Without a cache: a full forward as FlopCounterMode sees it, less the unembedding of every position but
    # the last (measured the same way) — a step needs only the last position's logits.
    c = nxt.cache.length
    with torch.no_grad(), FlopCounterMode(display=False) as fc_full:
        model(torch.tensor([nxt.token_ids()[:c]]))
    with torch.no_grad(), FlopCounterMode(display=False) as fc_head:
        torch.nn.functional.linear(torch.zeros(1, c - 1, CFG.d_model), model.W_U)
    r = nxt.records[-1]
    assert r.flops_recompute == fc_full.get_total_flops() - fc_head.get_total_flops() > r.flops_cached


def test_the_page_sentence_states_the_steps_own_counts(model):
    from viz.generation import step_cost_text

    s = stepped(model, 3)
    r = s.records[-1]
    text = step_cost_text(r.is_prefill, r.cache_len, len(r.key_positions), r.flops_cached, r.flops_recompute)
    assert f"{r.flops_cached:,} FLOPs" in text and f"{r.flops_recompute:,}" in text
    assert f"{r.flops_recompute / r.flops_cached:,.1f}× more" in text and f"all {r.cache_len} positions" in text
    assert f"against {len(r.key_positions)} cached keys" in text
    # other numbers, another sentence: nothing in it is typed by hand
    other = step_cost_text(False, 33, 33, 4_033_536, 107_940_864)
    assert "26.8× more" in other and "33×" not in other and "all 33 positions" in other
    assert "all 5 prompt positions" in step_cost_text(True, 5, 5, 10, 10)
