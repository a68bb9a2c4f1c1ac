"""Inside fast inference: tiled attention equals the model's explicit attention on every variant (ALiBi and the
sliding window included); batched decoding with per-sequence slot caches equals the model's own cached forward;
the rolling buffer, the paging simulator and the roofline numbers against hand-computed cases; the page under
AppTest, its figures read back from their specs."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app_shared import DEFAULT_PROMPT
from conftest import SHIPPED_VARIANTS
from model.accounting.arch import Arch, arch_from_model_config
from model.accounting.counts import (HARDWARE, Hardware, count_params, decode_intensity, decode_step_flops,
                                     forward_flops, kv_cache_bytes, weight_bytes)
from model.accounting.hf_configs import ALL_PRESETS, preset_arch
from model.inference import flash, paging, roofline
from model.inference.batched import (SlotCache, decode_step, prefill, receptive_field, rolling_generation,
                                     slot_positions)
from model.net.checkpoints import VARIANTS, available_variants, load_variant, variant_config
from model.net.config import ModelConfig
from model.net.kv_cache import KVCache
from model.net.trace import run_with_trace
from model.net.transformer import Transformer
from model.text.tokenizer import encode
from app_support import arr, chart, open_page as open_app_page

APP = str(Path(__file__).resolve().parent.parent / "app.py")
P = len(encode(DEFAULT_PROMPT))


def variant_model(name: str):
    """The shipped weights when this checkout has them, else the variant's shapes with seeded random weights
    (the algorithms are checked on the architecture; gqa-window is tested before it is trained)."""
    if name in available_variants() or name in SHIPPED_VARIANTS:  # a shipped one missing: load_variant raises
        return load_variant(name)
    torch.manual_seed(0)
    return Transformer(variant_config(name)).eval().requires_grad_(False)


def random_ids(n: int, seed: int = 0) -> list[int]:
    return torch.randint(0, 2048, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


# --------------------------------------------------------------------------------------------------------
# Tiled attention
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_tiled_equals_the_models_explicit_attention_on_every_head(name):
    """The model run in float64 (a private copy: the shipped one is never touched), so the comparison is of the
    algorithms, not of float32 rounding: every layer and head, tiles that do not divide the length."""
    model = copy.deepcopy(variant_model(name)).double()
    T = 150 if model.cfg.sliding_window else 96  # past the window of 64, so whole tiles fall outside it
    tr = run_with_trace(model, random_ids(T))
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            inp = flash.head_inputs(tr.acts, model.cfg, layer, head)
            res = flash.tiled_attention(**inp, block_q=16, block_k=13)
            ref, pattern = flash.explicit_attention(**inp)
            z = tr[f"blocks.{layer}.attn.hook_z"][:, head]  # (T, hd) the model's own output
            assert np.abs(res.out - z).max() < 1e-6, (name, layer, head)
            assert np.abs(ref - z).max() < 1e-6
            assert np.abs(pattern - tr[f"blocks.{layer}.attn.hook_pattern"][head]).max() < 1e-6
    if model.cfg.sliding_window:
        assert any(t.status == flash.SKIP_WINDOW for t in res.tiles)


def test_tiled_with_alibi_and_a_window_together():
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=64, pos_encoding="alibi", sliding_window=8)
    torch.manual_seed(1)
    model = Transformer(cfg).eval().double()
    tr = run_with_trace(model, random_ids(40))
    for layer in range(2):
        for head in range(4):
            inp = flash.head_inputs(tr.acts, cfg, layer, head)
            assert inp["alibi_slope"] is not None and inp["window"] == 8
            for bq, bk in ((1, 1), (4, 4), (7, 3), (64, 64)):
                res = flash.tiled_attention(**inp, block_q=bq, block_k=bk)
                assert np.abs(res.out - tr[f"blocks.{layer}.attn.hook_z"][:, head]).max() < 1e-6


def test_the_docstrings_worked_example():
    res = flash.tiled_attention(q=[[1.0]], k=[[1.0], [3.0]], v=[[0.0], [2.0]], q_pos=[1], k_pos=[0, 1],
                                block_q=1, block_k=1)
    t0, t1 = res.tiles
    assert t0.m_after[0] == 1 and t0.l_after[0] == 1 and t0.O_after[0, 0] == 0
    assert t1.m_after[0] == 3
    assert t1.l_after[0] == pytest.approx(math.exp(-2) + 1)  # 1.1353
    assert t1.O_after[0, 0] == pytest.approx(2 / (1 + math.exp(-2)))  # 1.7616 = softmax([1, 3])·[0, 2]
    assert res.out[0, 0] == pytest.approx(1.7616, abs=1e-4)


def test_which_tiles_are_skipped():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 12, 4))
    pos = np.arange(12)
    res = flash.tiled_attention(q, k, v, pos, pos, 4, 4, window=4)
    status = {(t.i, t.j): t.status for t in res.tiles}
    assert [ij for ij, s in status.items() if s == flash.COMPUTED] == [(0, 0), (1, 0), (1, 1), (2, 1), (2, 2)]
    assert [ij for ij, s in status.items() if s == flash.SKIP_CAUSAL] == [(0, 1), (0, 2), (1, 2)]
    assert [ij for ij, s in status.items() if s == flash.SKIP_WINDOW] == [(2, 0)]  # keys 0–3, queries 8–11, w = 4
    assert all(t.scores is None and t.O_after is None for t in res.tiles if not t.computed)


def test_traffic_formulas_by_hand():
    assert flash.naive_traffic(4, 2) == 4 * 4 * 2 + 4 * 16 == 96
    assert flash.kv_rows_read(10, 4, 4) == 4 + 8 + 10  # Q blocks end at 3, 7, 9: K blocks 0; 0–1; 0–2
    assert flash.kv_rows_read(10, 4, 4, causal=False) == 30
    assert flash.kv_rows_read(12, 4, 4, window=4) == 4 + 8 + 8
    assert flash.tiled_traffic(10, 2, 4, 4) == 2 * 10 * 2 + 2 * 2 * 22 == 128
    # Our default model, N = 256, tiles of 128, bf16: per head 4·256·32 + 4·256² = 294,912 elements naive;
    # tiled 2·256·32 + 2·32·(128 + 256) = 40,960; × 6 heads × 4 layers × 2 bytes.
    ours = arch_from_model_config(variant_config("gqa-rope"))
    t = flash.attention_traffic_bytes(ours, [256], 128, 2)
    assert t == {"naive": [294_912 * 48], "tiled": [40_960 * 48]}


@pytest.mark.parametrize("n, bq, bk, window", [(37, 8, 8, None), (50, 16, 5, None), (70, 8, 16, 20), (9, 4, 4, 1)])
def test_kv_rows_read_counts_the_computed_tiles(n, bq, bk, window):
    """The closed-form traffic and the tile walk agree on which K/V rows a causal prefill loads."""
    rng = np.random.default_rng(n)
    q, k, v = rng.normal(size=(3, n, 2))
    res = flash.tiled_attention(q, k, v, np.arange(n), np.arange(n), bq, bk, window=window)
    walked = sum(t.k_cols[1] - t.k_cols[0] for t in res.tiles if t.computed)
    assert flash.kv_rows_read(n, bq, bk, window) == walked


# --------------------------------------------------------------------------------------------------------
# Batched decoding with per-sequence caches; the rolling buffer
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_batched_decode_equals_the_models_own_cached_forward(name):
    model = variant_model(name)
    prompts = [random_ids(n, seed=n) for n in (70, 3, 40)]  # different lengths; 70 wraps a window of 64
    cache = SlotCache.for_model(model.cfg, 3)
    got = prefill(model, prompts, cache)
    refs = [KVCache.for_model(model.cfg) for _ in prompts]
    with torch.no_grad():
        want = [model(torch.tensor([p]), cache=c)[0, -1] for p, c in zip(prompts, refs)]
    assert max((got[i] - want[i]).abs().max().item() for i in range(3)) < 1e-4
    g = torch.Generator().manual_seed(1)
    for _ in range(8):
        tokens = torch.randint(0, 2048, (3,), generator=g)
        got = decode_step(model, tokens, cache)
        with torch.no_grad():
            want = [model(tokens[i].view(1, 1), cache=refs[i])[0, -1] for i in range(3)]
        assert max((got[i] - want[i]).abs().max().item() for i in range(3)) < 1e-4
    assert cache.lengths.tolist() == [78, 11, 48]


def test_slot_positions_by_hand():
    assert slot_positions(6, 4).tolist() == [4, 5, 2, 3]
    assert slot_positions(2, 4).tolist() == [0, 1, -1, -1]
    assert slot_positions(0, 3).tolist() == [-1, -1, -1]
    assert receptive_field(200, 64, 4) == [137, 74, 11, 0]
    assert receptive_field(10, None, 2) == [0, 0]


def test_receptive_field_is_the_reachability_of_the_masks():
    T, W, L = 40, 5, 4
    allowed = flash.allowed_mask(np.arange(T), np.arange(T), W).astype(int)  # (T, T) one layer's reads
    reach = np.eye(T, dtype=int)
    for l, earliest in enumerate(receptive_field(T - 1, W, L), start=1):
        reach = (allowed @ reach > 0).astype(int)  # through l layers
        assert int(np.flatnonzero(reach[T - 1])[0]) == earliest == max(0, T - 1 - l * (W - 1))


def test_the_rolling_buffer_holds_what_the_models_kvcache_holds():
    """A small windowed model: the slot cache (Mistral's ring, slot = p mod W) and the model's own KVCache (the
    last W rows, in order) hold the same keys after every step; each step evicts p − W."""
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, d_mlp=64, sliding_window=6)
    torch.manual_seed(0)
    model = Transformer(cfg).eval().requires_grad_(False)
    ids, steps = rolling_generation(model, [1, 2, 3, 4], 12, temperature=0)
    assert len(ids) == 16 and len(steps) == 13
    assert (steps[0].position, steps[0].slot, steps[0].evicted) == (3, 3, -1)  # the prefill's last write
    _, wrapped = rolling_generation(model, list(range(1, 10)), 0)  # a 9-token prompt wraps the 6 slots
    assert (wrapped[0].position, wrapped[0].slot, wrapped[0].evicted) == (8, 2, 2)
    assert wrapped[0].slots.tolist() == [6, 7, 8, 3, 4, 5]
    for k, s in enumerate(steps[1:], start=1):
        assert s.position == 3 + k and s.slot == s.position % 6
        assert s.evicted == (s.position - 6 if s.position >= 6 else -1)
        assert sorted(p for p in s.slots if p >= 0) == list(range(max(0, s.position - 5), s.position + 1))
    ref = KVCache.for_model(cfg)
    ring = SlotCache.for_model(cfg, 1)
    with torch.no_grad():
        model(torch.tensor([ids[:4]]), cache=ref)
    prefill(model, [ids[:4]], ring)
    for t in ids[4:]:
        with torch.no_grad():
            model(torch.tensor([[t]]), cache=ref)
        decode_step(model, torch.tensor([t]), ring)
        held = np.arange(ref.start, ref.length)
        for layer in range(2):
            in_slots = ring.k[layer][0][:, held % 6]  # (nkv, n_held, hd) re-laid in position order
            assert torch.allclose(in_slots, ref.k[layer][0], atol=1e-6)


# --------------------------------------------------------------------------------------------------------
# Paging
# --------------------------------------------------------------------------------------------------------


def test_blocks_by_hand():
    assert [paging.blocks_needed(n, 16) for n in (10, 17, 33)] == [1, 2, 3]
    reqs = [paging.Request(10, 0), paging.Request(17, 0), paging.Request(33, 0)]
    s0 = paging.simulate_paged(reqs, 16)[0]
    assert s0.tables == ((0,), (1, 2), (3, 4, 5)) and s0.n_blocks == 6
    assert s0.used == 60 and s0.reserved(16) == 96
    assert paging.fragmentation(60, 96) == pytest.approx(0.375)
    assert s0.owner_map().tolist() == [0, 1, 1, 2, 2, 2]


def test_blocks_grow_when_full_and_freed_ones_are_reused():
    a, b = paging.Request(10, 1), paging.Request(10, 20)  # b reaches 17 positions at step 7
    states = paging.simulate_paged([a, b], 16)
    assert states[0].tables == ((0,), (1,))
    assert states[1].lengths == (11, 11)
    assert states[2].tables == ((), (1,))  # a finished: block 0 back on the free list
    assert states[6].tables[1] == (1,) and states[7].tables[1] == (1, 0)  # b's second block is the freed 0
    assert states[7].n_blocks == 2  # the pool never grew past two
    assert states[-1].tables == ((), ()) and len(states) == 22


def test_memory_over_time_and_what_fits():
    reqs = [paging.Request(10, 0), paging.Request(17, 0), paging.Request(33, 0)]
    m = paging.memory_over_time(reqs, 16, 64)
    assert m.used.tolist() == [60, 0] and m.paged.tolist() == [96, 0] and m.contiguous.tolist() == [192, 0]
    fit = paging.requests_that_fit(reqs, 96 * 4, 4, 16, 64)  # 96 positions of 4 bytes
    assert fit == {"contiguous": 1, "paged": 3, "exact": 5}  # exact: 10 + 17 + 33 + 10 + 17 = 87 ≤ 96
    assert paging.requests_that_fit(reqs, 10 * 96 * 4, 4, 16, 64)["paged"] == 30  # ten whole cycles


def test_exchanges_from_a_play():
    text = "ROMEO.\nHello there.\n\nJULIET.\nHi.\n\n[Exit Romeo.]\n\nNURSE.\nMadam!\n\nNo heading here"
    reqs = paging.exchanges_from_text(text, list)  # one "token" per character
    assert reqs == [paging.Request(len("ROMEO.\nHello there."), len("JULIET.\nHi.")),
                    paging.Request(len("JULIET.\nHi."), len("NURSE.\nMadam!"))]
    capped = paging.exchanges_from_text(text, list, max_len=12)
    assert all(r.total <= 12 for r in capped)


# --------------------------------------------------------------------------------------------------------
# Roofline
# --------------------------------------------------------------------------------------------------------

TINY = Arch(name="tiny", vocab_size=10, d_model=4, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=2, d_mlp=8)


def test_matmul_intensity_by_hand():
    """A decode step of a 1-layer model at batch 1, context 3, fp32 (4 bytes)."""
    costs = {c.name: c for c in roofline.decode_matmuls(TINY, 1, 3, "fp32")}
    assert costs["attn.W_q"].flops == 2 * 4 * 4 == 32
    assert costs["attn.W_q"].bytes == (16 + 4 + 4) * 4  # weight 4×4, input row 4, output row 4
    assert costs["attn.W_q"].intensity == pytest.approx(1 / 3)
    s = costs["attn.scores q·kᵀ"]
    assert s.flops == 2 * 2 * 2 * 3  # nh · hd · 3 keys, 2 FLOPs each
    assert s.kv_bytes == 3 * 1 * 2 * 4  # 3 keys of one K/V head, hd 2
    assert s.act_bytes == (2 * 2 + 2 * 3) * 4  # q (nh·hd) in, scores (nh × 3) out
    assert s.intensity == pytest.approx(24 / 64)
    assert costs["unembedding"].weight_bytes == 10 * 4 * 4  # the tied embedding is read
    assert sum(c.flops for c in costs.values()) == 416 == decode_step_flops(TINY, 1, 3).total


@pytest.mark.parametrize("arch", [arch_from_model_config(variant_config(n), n) for n in
                                  ("gqa-rope", "gqa-window", "gqa-postnorm", "gqa-layernorm", "gqa-gelu", "gqa-moe")]
                         + [preset_arch(n) for n in ALL_PRESETS], ids=lambda a: a.name)
def test_matmul_costs_add_up_to_the_calculators(arch):
    for b, s, past in ((1, 300, 0), (8, 1, 4999), (3, 5, 100)):
        costs = roofline.matmul_costs(arch, b, s, past, "bf16")
        assert sum(c.flops for c in costs) == forward_flops(arch, b, s, past).total
    dec = roofline.decode_matmuls(arch, 8, 5000, "bf16")
    assert sum(c.kv_bytes for c in dec) == kv_cache_bytes(arch, 5000, 8, "bf16")
    if not (arch.qkv_bias or arch.o_bias or arch.mlp_bias or arch.positions == "learned"):
        norms = count_params(arch).by_group()["norms"] * 2  # block, final and Qwen3's q/k norms: no matmul reads them
        embed = 0 if arch.tie_embeddings else arch.vocab_size * arch.d_model * 2  # the lookup table, read by no matmul
        assert sum(c.weight_bytes for c in dec) == weight_bytes(arch, "bf16") - norms - embed


def test_ridge_points_and_roofline_prediction_by_hand():
    assert HARDWARE["A100 40GB"].ridge == pytest.approx(312 / 1.555)  # ≈ 200.6
    assert roofline.LAPTOP_CPU.ridge == pytest.approx(384e9 / 68.3e9)  # ≈ 5.62
    hw = Hardware("unit", 1000.0, 100.0)  # ridge 10
    assert roofline.attainable([1, 10, 100], hw).tolist() == [100, 1000, 1000]
    assert roofline.step_seconds(2000, 100, hw) == 2 and roofline.step_seconds(100, 500, hw) == 5
    F = decode_step_flops(TINY, 4, 3).total
    n_bytes = decode_intensity(TINY, 4, 3, "fp32", "fp32").bytes
    assert roofline.predicted_decode_tokens_per_s(TINY, [4], 3, hw) == [4 / max(F / 1000, n_bytes / 100)]
    assert set(roofline.machines(hw)) == {*HARDWARE, roofline.LAPTOP_CPU.name, "unit"}


def test_measurements_run_and_are_positive():
    assert roofline.measure_peak_flops(n=64, inner=1, repeats=1) > 0
    assert roofline.measure_bandwidth(n_bytes=2**20, repeats=1) > 0
    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_mlp=64)
    rows = roofline.measure_decode(Transformer(cfg).eval(), [1, 3], context=8, steps=2, repeats=1)
    assert [r["batch"] for r in rows] == [1, 3] and all(r["tokens_per_s"] > 0 for r in rows)


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------


def open_page(query: dict | None = None, variant: str = "gqa-rope", prompt: str = DEFAULT_PROMPT) -> AppTest:
    return open_app_page("pages/inference.py", prompt, variant, query)


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "info", "error") for e in at.get(kind))


@pytest.mark.usefixtures("shipped_variants")  # the trained default: committed, so missing is a failure
def test_page_tiles_follow_the_url_and_the_slider():
    at = open_page({"inf_layer": "2", "inf_head": "3", "inf_bq": "4", "inf_bk": "8", "inf_tile": "5"})
    assert [t.label for t in at.tabs] == ["Tiled attention", "KV-cache memory", "Prefill vs decode"]
    assert (at.session_state["inf_layer"], at.session_state["inf_head"], at.session_state["inf_tile"]) == (2, 3, 5)
    n_q, n_k = -(-P // 4), -(-P // 8)
    spec = chart(at, "inf_tiles")
    assert arr(spec["data"][1]["z"]).shape == (P, P)
    shapes = spec["layout"]["shapes"]
    assert len(shapes) == (n_q - 1) + (n_k - 1) + 1  # a line per inner block edge, and this tile
    i, j = divmod(5, n_k)
    assert (shapes[-1]["x0"], shapes[-1]["y0"]) == (j * 8 - 0.5, i * 4 - 0.5)  # this tile, outlined
    zeros = np.zeros((P, 1))  # which tiles are skipped depends on the positions alone
    walk = flash.tiled_attention(zeros, zeros, zeros, np.arange(P), np.arange(P), 4, 8).tiles
    filled = sum((t.q_rows[1] - t.q_rows[0]) * (t.k_cols[1] - t.k_cols[0]) for t in walk[:5] if not t.computed)
    assert np.nansum(arr(spec["data"][2]["z"])) == filled  # tiles 0–4 that were skipped, filled amber
    assert f"Tile 6 of {n_q * n_k}" in texts(at) and "Layer 2, head 3" in texts(at)
    causal = j * 8 > min((i + 1) * 4, P) - 1  # its first key comes after its last query
    assert ("skipped: causal" if causal else "computed") in texts(at)
    at.slider(key="inf_tile").set_value(n_k).run()  # Q block 1 against K/V block 0: computed
    state = chart(at, "inf_tile_state")
    assert arr(state["data"][0]["z"]).shape == (4, 8)  # this tile's scores S
    assert at.query_params["inf_tile"] == [str(n_k)] or at.query_params["inf_tile"] == str(n_k)
    diff = next(m for m in at.metric if m.label == "vs explicit").value
    assert float(diff) < 1e-9
    traffic = chart(at, "inf_traffic")
    assert len(traffic["data"]) == 4  # naive and tiled, ours and the preset


def test_page_kv_memory_paging_numbers():
    at = open_page({"inf_tab": "KV-cache memory", "inf_nreq": "3", "inf_first": "0", "inf_block": "16",
                    "inf_mem": "1.0"})
    assert not at.exception
    from model.text.corpus import load_corpus

    reqs = paging.exchanges_from_text(load_corpus("val"), encode, variant_config("gqa-rope").max_seq_len)[:3]
    s0 = paging.simulate_paged(reqs, 16)[0]
    assert f"{s0.used:,} positions hold a key" in texts(at)
    assert f"paged {s0.reserved(16):,} in {s0.reserved(16) // 16} blocks of 16" in texts(at)
    fit = chart(at, "inf_fit")
    ours = arch_from_model_config(variant_config("gqa-rope"))
    want = paging.requests_that_fit(reqs, 2**30, 1024, 16, 256)  # bf16: 2·4·2·32·2 = 1,024 B a position
    assert [t["y"][0] for t in fit["data"]] == [want["contiguous"], want["paged"], want["exact"]]
    assert want["contiguous"] == 2**30 // (256 * 1024) and ours.n_layers == 4
    layout = chart(at, "inf_pages")
    slabs = [t for t in layout["data"] if t.get("yaxis", "y") == "y" and "empty" not in t["hovertemplate"]]
    assert [int(arr(t["x"])[0]) for t in slabs] == [r.prompt for r in reqs]  # step 0: each slab holds its prompt
    blocks = [t for t in layout["data"] if t.get("yaxis") == "y2" and t.get("text")]
    assert [t["text"][0] for t in blocks] == [f"{r}·{b}" for r, t in enumerate(s0.tables) for b in range(len(t))]
    if "gqa-window" in available_variants():
        ring = chart(at, "inf_ring")
        assert "written to slot" in ring["layout"]["title"]["text"]
        at.slider(key="inf_step").set_value(80).run()  # decode step 80 writes position P + 79
        p = P + 79
        assert f"position {p} written to slot {p % 64}, evicting position {p - 64}" in \
            chart(at, "inf_ring")["layout"]["title"]["text"]
        assert f"{p} mod 64 = {p % 64}" in texts(at)
        field = chart(at, "inf_field")
        assert list(arr(field["data"][0]["base"])) == receptive_field(p, 64, 4)
        lines = {t["name"] for t in chart(at, "inf_loss_pos")["data"]}
        assert {"gqa-rope", "gqa-window"} <= lines
        # the window's cost inside the context is the paired difference of the committed evaluation, with its SE
        from model.evaluation.evaluate import RESULTS_PATH
        from model.evaluation.stats import paired_difference

        ev = json.loads(RESULTS_PATH.read_text())["variants"]
        if "gqa-window" in ev:
            gap, se = paired_difference(ev["gqa-window"]["heldout"]["window_losses"],
                                        ev["gqa-rope"]["heldout"]["window_losses"])
            assert f"{gap:+.4f} ± {se:.4f} nats/token" in texts(at)
    else:
        assert "gqa-window" in texts(at)


@pytest.mark.skipif("gqa-window" not in available_variants(), reason="needs the trained sliding-window model")
def test_page_tiles_skip_outside_the_window():
    long_prompt = DEFAULT_PROMPT * 6  # past the window of 64 tokens
    at = open_page({"inf_bq": "16", "inf_bk": "16"}, variant="gqa-window", prompt=long_prompt)
    skips = next(m for m in at.metric if m.label == "window skips").value
    assert int(skips) > 0
    assert float(next(m for m in at.metric if m.label == "vs explicit").value) < 1e-9


@pytest.mark.slow  # times prefill and decode on the page
def test_page_prefill_vs_decode():
    at = open_page({"inf_tab": "Prefill vs decode", "inf_model": "preset", "inf_T": "1024", "inf_B": "64"})
    big = preset_arch("Llama-3-8B")
    spec = chart(at, "inf_intensity")
    pre, dec = spec["data"][0], spec["data"][1]
    want = roofline.prefill_matmuls(big, 1024)
    assert list(pre["y"]) == [c.name for c in want]
    assert np.allclose(arr(pre["x"]), [c.intensity for c in want])
    assert np.allclose(arr(dec["x"]), [c.intensity for c in roofline.decode_matmuls(big, 64, 1024)])
    speed = chart(at, "inf_speed")
    assert [len(arr(t["y"])) for t in speed["data"]] == [7, 7]
    assert "This CPU" in texts(at) and "tokens/s at B = 1" in texts(at)


def test_window_cost_sentence_states_a_cost_only_beyond_two_standard_errors():
    from viz.inference import window_cost_text

    rise = {"gqa-rope": 1.042, "gqa-window": -0.019}
    tie = window_cost_text("gqa-window", "gqa-rope", 0.0044, 0.0038, rise, 64, 256, 1024)
    assert "+0.0044 ± 0.0038" in tie and "within two standard errors of none" in tie and "costs" not in tie
    assert "+1.042 (gqa-rope), -0.019 (gqa-window)" in tie and "at position 1,024 as at position 64" in tie
    cost = window_cost_text("gqa-window", "gqa-rope", 0.02, 0.0038, rise, 64, 256, 1024)
    assert cost.startswith("Inside the context the window costs +0.0200 ± 0.0038")
    gain = window_cost_text("gqa-window", "gqa-rope", -0.02, 0.0038, rise, 64, 256, 1024)
    assert "the window gains -0.0200" in gain
    rises_too = window_cost_text("gqa-window", "gqa-rope", 0.02, 0.0038, {"gqa-rope": 0.1, "gqa-window": 0.5}, 64,
                                 256, 1024)
    assert "+0.500 (gqa-window)" in rises_too and "nothing is new" not in rises_too
    assert "past the training" not in window_cost_text("gqa-window", "gqa-rope", 0.02, 0.0038, {}, 64, 256, 256)
