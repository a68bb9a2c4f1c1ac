"""Quantization against hand-computed cases and an independent reference: round trips worked by hand, a plain
Python port of llama.cpp's reference quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref, code for code),
bits-per-weight arithmetic, the quantized model against fp32 (and the shared model untouched), the Q8_0 KV
cache, the accounting calculator's figures against the bytes a quantized copy really holds, the CLI's JSON,
and the committed results file."""

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.net.checkpoints import load_variant
from model.net.kv_cache import KVCache
from model.quantize.apply import (MATRICES, Q8KVCache, kv_round_trip, matrix_names, matrix_shapes, memory_bytes,
                                  quantized_copy, weight_errors)
from model.quantize.cli import RESULTS_PATH
from model.quantize.formats import (FORMATS, INT8, Q8_0, Format, bits_per_weight, format_for, grid, int4,
                                    matrix_bytes, quantize, round_trip)
from model.quantize.inspect import residual_drift, scope_view, with_outlier

ROOT = Path(__file__).resolve().parent.parent
needs_weights = pytest.mark.usefixtures("shipped_variants")  # committed: missing is a failure, not a skip


def fp16(x: float) -> float:
    return float(np.float16(x))


# --------------------------------------------------------------------------------------------------------
# Round trips by hand
# --------------------------------------------------------------------------------------------------------


def test_int8_per_channel_row_by_hand():
    # amax 4 → d = 4/127 (fp32), 1/d = 31.75 exactly; x/d = [31.75, -63.5, 15.875, 127] → roundf (ties away
    # from zero) → [32, -64, 16, 127]; read back with the stored fp16 scale 0.031494140625
    qt = quantize(torch.tensor([[1.0, -2.0, 0.5, 4.0]]), INT8)
    assert qt.codes.tolist() == [[32, -64, 16, 127]]
    assert qt.scales.dtype == torch.float16 and float(qt.scales[0, 0]) == fp16(4 / 127) == 0.031494140625
    assert qt.dequantize().tolist() == [[c * 0.031494140625 for c in (32, -64, 16, 127)]]
    assert qt.dequantize()[0].tolist() == pytest.approx([1.0078125, -2.015625, 0.50390625, 3.999755859375])


def test_int8_rows_get_their_own_scales():
    qt = quantize(torch.tensor([[1.0, -2.0, 0.5, 4.0], [0.0, 0.0, 0.0, 0.0], [0.1, 0.2, -0.3, 0.0]]), INT8)
    assert qt.codes[1].tolist() == [0, 0, 0, 0] and float(qt.scales[1, 0]) == 0.0  # an all-zero row stays zero
    # 0.3/127 per step: 0.1 → 42.33 → 42, 0.2 → 84.67 → 85, -0.3 → -127
    assert qt.codes[2].tolist() == [42, 85, -127, 0]
    assert float(qt.scales[2, 0]) == fp16(np.float32(0.3) / np.float32(127))


def test_q4_0_groups_by_hand():
    w = torch.tensor([[1.0, -2.0, 0.5, 4.0, 0.3, -0.1, 0.7, -1.0, 1.0, -1.0]])
    qt = quantize(w, int4(4))  # groups of 4: [1, -2, 0.5, 4], [0.3, -0.1, 0.7, -1], and a short one [1, -1]
    # group 1: signed extreme m = 4, d = 4/-8 = -0.5: x/d = [-2, 4, -1, -8], exact
    # group 2: m = -1, d = 0.125: x/d = [2.4, -0.8, 5.6, -8] → ⌊x/d + ½⌋ = [2, -1, 6, -8]
    # group 3: m = 1 (the first of equal magnitudes), d = -0.125: x/d = [-8, 8] → 8 clips to 7: -1 comes back -0.875
    assert qt.codes.tolist() == [[-2, 4, -1, -8, 2, -1, 6, -8, -8, 7]]
    assert qt.scales.tolist() == [[-0.5, 0.125, -0.125]]
    assert qt.dequantize().tolist() == [[1.0, -2.0, 0.5, 4.0, 0.25, -0.125, 0.75, -1.0, 1.0, -0.875]]
    assert qt.nbytes() == {"codes": 5, "scales": 6}  # 10 four-bit codes in 5 bytes, 3 fp16 scales


def test_q4_0_uses_all_sixteen_codes_and_absmax_fifteen():
    x = torch.linspace(-1, 1, 64).view(1, 64)
    q4 = quantize(x, Format("q", 4, "tensor", rule="q4_0"))
    sym = quantize(x, Format("s", 4, "tensor", rule="absmax"))
    assert sorted(set(q4.codes.flatten().tolist())) == list(range(-8, 8))
    assert sorted(set(sym.codes.flatten().tolist())) == list(range(-7, 8))
    assert len(grid(q4)) == 16 and len(grid(sym)) == 15 and len(grid(quantize(x, INT8))) == 255


def test_per_tensor_shares_one_scale():
    w = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    qt = quantize(w, Format("t8", 8, "tensor"))
    assert qt.scales.shape == (1, 1) and qt.codes.tolist() == [[32, -64], [16, 127]]
    assert matrix_bytes(qt.fmt, 2, 2) == {"codes": 4, "scales": 2}


def reference_q8_0(x: np.ndarray) -> tuple[list[int], list[float]]:
    """llama.cpp's quantize_row_q8_0_ref in plain Python: blocks of 32, d = amax/127, q = roundf(x · (1/d))."""
    codes, scales = [], []
    for b in range(0, len(x), 32):
        blk = [np.float32(v) for v in x[b : b + 32]]
        amax = max(abs(v) for v in blk)
        d = np.float32(amax / np.float32(127))
        i = np.float32(1) / d if d else np.float32(0)
        scales.append(struct.unpack("<e", struct.pack("<e", float(d)))[0])  # GGML_FP32_TO_FP16
        for v in blk:
            t = float(np.float32(v * i))
            codes.append(int(math.copysign(math.floor(abs(t) + 0.5), t)))  # C roundf
    return codes, scales


def reference_q4_0(x: np.ndarray) -> tuple[list[int], list[float]]:
    """llama.cpp's quantize_row_q4_0_ref in plain Python: d = max / -8 (max = the signed value of largest
    magnitude, first one wins), nibble = MIN(15, (int8_t)(x·(1/d) + 8.5f)), code = nibble − 8."""
    codes, scales = [], []
    for b in range(0, len(x), 32):
        blk = [np.float32(v) for v in x[b : b + 32]]
        amax, mx = np.float32(0), np.float32(0)
        for v in blk:
            if amax < abs(v):
                amax, mx = abs(v), v
        d = np.float32(mx / np.float32(-8))
        i = np.float32(1) / d if d else np.float32(0)
        scales.append(struct.unpack("<e", struct.pack("<e", float(d)))[0])
        for v in blk:
            codes.append(min(15, int(np.float32(np.float32(v * i) + np.float32(8.5)))) - 8)
    return codes, scales


@pytest.mark.parametrize("fmt,ref", [(Q8_0, reference_q8_0), (FORMATS["Q4_0 (G=32)"], reference_q4_0)])
def test_matches_llama_cpp_reference_code_for_code(fmt, ref):
    g = np.random.default_rng(0)
    w = (g.standard_normal((6, 96)) * g.uniform(0.01, 3, (6, 1))).astype(np.float32)
    w[2, 40:72] = 0.0  # an all-zero block
    w[3, 5] = -np.abs(w[3]).max()  # two extremes of equal magnitude and opposite sign in one block
    w[3, 20] = -w[3, 5]
    qt = quantize(torch.from_numpy(w), fmt)
    for r in range(w.shape[0]):
        codes, scales = ref(w[r])
        assert qt.codes[r].tolist() == codes, r
        assert qt.scales[r].tolist() == scales, r


# --------------------------------------------------------------------------------------------------------
# Bits per weight
# --------------------------------------------------------------------------------------------------------


def test_bits_per_weight_arithmetic():
    assert bits_per_weight(Q8_0, 512, 192) == 8.5  # (32·8 + 16) / 32: llama.cpp's 34-byte block
    assert bits_per_weight(FORMATS["Q4_0 (G=32)"], 512, 192) == 4.5  # (32·4 + 16) / 32: its 18-byte block
    assert bits_per_weight(FORMATS["int4 (G=64)"], 512, 192) == 4.25
    assert bits_per_weight(INT8, 192, 192) == pytest.approx(8 + 16 / 192)
    assert bits_per_weight(FORMATS["int4 (G=128)"], 192, 192) == pytest.approx(4 + 2 * 16 / 192)  # 128 + 64
    assert bits_per_weight(FORMATS["int4 (G=128)"], 192, 512) == pytest.approx(4 + 4 * 16 / 512)
    assert matrix_bytes(FORMATS["Q4_0 (G=32)"], 192, 192) == {"codes": 18_432, "scales": 2_304}
    assert format_for(8) is INT8 and format_for(8, 32) is Q8_0 and format_for(4).name == "Q4_0 (G=32)"
    assert format_for(4, 128).name == "int4 (G=128)"
    with pytest.raises(ValueError):
        format_for(3)
    with pytest.raises(ValueError):
        Format("bad", 4, "group", 0)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_variant("gqa-rope")


@needs_weights
def test_quantized_copy_leaves_the_shared_model_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q, rep = quantized_copy(model, FORMATS["Q4_0 (G=32)"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    fresh = load_variant("gqa-rope").state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in model.state_dict().items())
    qs = q.state_dict()
    for k, v in before.items():  # matrices changed, everything else (embedding, norms) identical
        changed = not torch.equal(qs[k], v)
        assert changed == any(k == f"{n}.weight" for n in matrix_names(model)), k
    assert [m.name for m in rep.matrices] == matrix_names(model) == [f"blocks.{i}.{m}" for i in range(4) for m in MATRICES]
    assert len(MATRICES) == 7


@needs_weights
def test_quantized_weights_are_codes_times_scales(model):
    q, _ = quantized_copy(model, FORMATS["int4 (G=64)"])
    w = model.blocks[2].mlp.W_down.weight
    qt = quantize(w, FORMATS["int4 (G=64)"])
    assert torch.equal(q.blocks[2].mlp.W_down.weight, qt.dequantize())
    assert qt.codes.min() == -8 and qt.codes.max() <= 7 and qt.scales.shape == (192, 512 // 64)
    by_hand = qt.codes.float() * qt.scales.float().repeat_interleave(64, dim=1)  # (192, 512)
    assert torch.equal(q.blocks[2].mlp.W_down.weight, by_hand)


def kl(ref_logits: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean KL(p_ref ‖ p) in nats per position."""
    lp, lq = torch.log_softmax(ref_logits.double(), -1), torch.log_softmax(logits.double(), -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


@pytest.fixture(scope="module")
def heldout():
    from model.text.batches import encoded_split, val_windows

    ids, _ = encoded_split("val")
    return torch.from_numpy(val_windows(ids, 256)[:2, :-1])  # (2, 256) real held-out text


@needs_weights
def test_int8_logits_are_close_to_fp32_and_int4_further(model, heldout):
    with torch.no_grad():
        ref = model(heldout)
        o8 = quantized_copy(model, INT8)[0](heldout)
        o4 = quantized_copy(model, FORMATS["Q4_0 (G=32)"])[0](heldout)
    # measured: int8 KL 1.4e-4 nats/position, 99 % the same top token; Q4_0 KL 0.023, 88 %
    assert kl(ref, o8) < 1e-3 < kl(ref, o4) and 20 * kl(ref, o8) < kl(ref, o4)
    assert (o8.argmax(-1) == ref.argmax(-1)).float().mean() > 0.97
    assert (o8 - ref).abs().max() < 0.2 * (o4 - ref).abs().max()


@needs_weights
def test_weight_errors_per_format(model):
    e = weight_errors(model, [INT8, Q8_0, FORMATS["Q4_0 (G=32)"], FORMATS["int4 (G=128)"]])
    mean = {k: np.mean(v) for k, v in e.items()}
    assert all(len(v) == 28 for v in e.values())
    assert mean["Q8_0"] < mean["int8 (per-channel)"] < 0.01 < mean["Q4_0 (G=32)"] < mean["int4 (G=128)"] < 0.15


@needs_weights
def test_bytes_agree_with_the_accounting_calculator(model):
    arch = arch_from_model_config(model.cfg)
    for name, fmt in FORMATS.items():
        _, rep = quantized_copy(model, fmt)
        calc = acc.weight_memory(arch, name)
        assert rep.bytes == {"codes": calc["codes"], "scales": calc["scales"], "kept_fp16": calc["kept"],
                             "total": calc["total"]} == memory_bytes(model.cfg, fmt)
    assert [tuple(m.shape) for m in rep.matrices] == matrix_shapes(model.cfg)
    # our model: 1,572,864 block weights; kept at fp16: the 2048 × 192 embedding and 9 norms of 192
    assert acc.weight_memory(arch, "Q4_0 (G=32)") == {"codes": 786_432, "scales": 98_304,
                                                      "kept": 2 * (2048 * 192 + 9 * 192), "total": 1_674_624}
    assert acc.weight_bytes(arch, "fp16") == 2 * 1_967_808


# --------------------------------------------------------------------------------------------------------
# The KV cache at Q8_0
# --------------------------------------------------------------------------------------------------------


def test_kv_round_trip_blocks_run_along_head_dim():
    t = torch.randn(1, 2, 5, 32, generator=torch.Generator().manual_seed(0))
    back = kv_round_trip(t)
    for h in range(2):
        for p in range(5):
            assert torch.equal(back[0, h, p], round_trip(t[0, h, p][None], Q8_0)[0])


@needs_weights
def test_q8_cache_bytes_and_decoding(model):
    ids = torch.randint(0, 2048, (1, 40), generator=torch.Generator().manual_seed(1))
    cache, ref_cache = Q8KVCache.for_model(model.cfg), KVCache.for_model(model.cfg)
    with torch.no_grad():
        out = model(ids[:, :32], cache=cache)
        ref = model(ids[:, :32], cache=ref_cache)
        for i in range(32, 40):
            step = model(ids[:, i : i + 1], cache=cache)
            ref_step = model(ids[:, i : i + 1], cache=ref_cache)
    arch = arch_from_model_config(model.cfg)
    assert cache.nbytes() == 40 * acc.kv_cache_bytes_per_token(arch, "Q8_0") == 40 * 2 * 4 * 2 * (32 + 2)
    assert ref_cache.nbytes() == 40 * 2048
    assert kl(ref, out) < 1e-3 and kl(ref_step, step) < 1e-3  # measured ≈ 7e-5 nats/position
    assert isinstance(cache.clone(), Q8KVCache) and cache.clone().nbytes() == cache.nbytes()
    # the cache holds exactly what Q8_0 gives back
    k = cache.k[0]
    assert torch.equal(k, kv_round_trip(k))


# --------------------------------------------------------------------------------------------------------
# What the page shows
# --------------------------------------------------------------------------------------------------------


@needs_weights
def test_scope_view_and_outliers(model):
    w = model.blocks[0].mlp.W_down.weight.numpy()
    v = scope_view(w, 4, "per group", 32, 5)
    t = v.total_errors
    assert t["per group"] < t["per channel"] < t["per tensor"]
    assert v.values.size == 32 and len(v.grid) == 16 and v.step == pytest.approx(abs(v.grid[1] - v.grid[0]))
    assert np.abs(v.values).max() == pytest.approx(max(abs(g) for g in v.grid))  # the extreme sits on the grid
    col = int(np.abs(w).max(axis=0).argmax())
    wo = with_outlier(w, col, 8.0)
    assert np.array_equal(w, model.blocks[0].mlp.W_down.weight.numpy()) and wo[0, col] == 8 * w[0, col]
    to = scope_view(wo, 4, "per channel", 32, 0).total_errors
    # the column is in every row: per-row scales cannot avoid it, groups of 32 mostly can
    assert to["per tensor"] / t["per tensor"] > to["per channel"] / t["per channel"] > to["per group"] / t["per group"]


@needs_weights
def test_residual_drift_reads_the_traces(model):
    q8 = quantized_copy(model, INT8)[0]
    q4 = quantized_copy(model, FORMATS["Q4_0 (G=32)"])[0]
    stages, d = residual_drift(model, {"int8": q8, "int4": q4, "same": model}, list(range(10, 40)))
    assert stages[-1] == "logits" and len(stages) == 4 + 2
    assert d["same"] == [0.0] * len(stages)
    assert all(0 < a < b for a, b in zip(d["int8"], d["int4"]))


# --------------------------------------------------------------------------------------------------------
# The CLI and the committed results
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_weights
def test_cli_json_shape():
    out = subprocess.run([sys.executable, "-m", "model.quantize", "--variant", "gqa-rope", "--bits", "4",
                          "--group-size", "64", "--windows", "2", "--kv-int8", "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["variant"] == "gqa-rope" and r["heldout"]["windows"] == 2 and r["heldout"]["tokens"] == 512
    assert r["fp32"]["bytes"] == {"fp32": 4 * 1_967_808, "fp16": 2 * 1_967_808}
    (name, e), = r["formats"].items()
    assert name == "int4 (G=64)" and e["bits_per_weight"] == 4.25
    assert e["bytes"]["total"] == acc.weight_bytes(arch_from_model_config(load_variant("gqa-rope").cfg), name)
    assert set(e["heldout"]) >= {"nats_per_token", "perplexity", "bits_per_char", "delta_nats", "delta_se"}
    assert [x["layer"] for x in e["layers"]] == [0, 1, 2, 3] and len(e["matrices"]) == 28
    assert 0.05 < e["layers"][0]["rel_error"] < 0.15
    assert r["kv_int8"]["bytes_per_token"] == {"fp32": 2048, "Q8_0": 544}
    assert "speed" not in r


@pytest.mark.parametrize("args", [["--bits", "5"], ["--windows", "1", "--bits", "8"], ["--group-size", "32"],
                                  ["--bits", "4", "--group-size", "0"]])
def test_cli_refuses_bad_arguments(args):
    out = subprocess.run([sys.executable, "-m", "model.quantize", *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 2 and "error" in out.stderr


def test_committed_results_are_the_full_split_and_agree_with_the_calculator():  # a missing file fails here
    r = json.loads(RESULTS_PATH.read_text())
    assert r["heldout"]["all_windows"] and r["heldout"]["windows"] == 465
    assert list(r["formats"]) == list(FORMATS)
    arch = arch_from_model_config(load_variant(r["variant"]).cfg)
    for name, e in r["formats"].items():
        assert e["bytes"]["total"] == acc.weight_bytes(arch, name)
        assert e["heldout"]["delta_nats"] == pytest.approx(e["heldout"]["nats_per_token"]
                                                           - r["fp32"]["heldout"]["nats_per_token"], abs=1e-4)
    ev = ROOT / "results" / "evaluation.json"  # committed: the same model on the same windows
    full = json.loads(ev.read_text())["variants"][r["variant"]]["heldout"]["nats_per_token"]
    assert r["fp32"]["heldout"]["nats_per_token"] == pytest.approx(full, abs=2e-4)
    sp = r["speed"]
    assert sp["threads"] == 1 and sp["repeats"] >= 5
    for c in sp["cases"].values():
        assert c["speedup"] == pytest.approx(c["fp32"]["median_ms"] / c["int8"]["median_ms"], rel=1e-2)
