"""The quantization page under AppTest: every tab draws, and each chart and caption is checked against numbers
computed here independently (the calculator, the quantizer, the committed results, a fresh generation)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from model.accounting import counts as acc
from model.accounting.arch import arch_from_model_config
from model.net.checkpoints import load_variant, variant_config
from model.quantize.cli import RESULTS_PATH
from model.quantize.formats import FORMATS, Format, quantize

from conftest import SHIPPED_VARIANTS
from app_support import arr, charts, open_page as open_app_page

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGE = "pages/quantization.py"

pytestmark = pytest.mark.usefixtures("shipped_variants")  # the checkpoints are committed: missing fails, never skips


def open_page(variant: str | None = None, prompt: str | None = None) -> AppTest:
    return open_app_page(PAGE, prompt, variant, timeout=180, home_first=True)


def captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


@pytest.fixture(scope="module")
def page():
    return open_page()


def test_every_tab_draws(page):
    assert [t.label for t in page.tabs] == ["Memory", "One matrix", "Error by layer", "Loss and text", "Speed"]
    got = charts(page)
    for key in ("q_memory", "q_hist", "q_scopes", "q_layers", "q_drift", "q_next"):
        assert key in got, key
    assert RESULTS_PATH.is_file(), "results/quantization.json is committed"
    assert "q_loss_size" in got and "q_speed" in got


def test_memory_chart_is_the_calculators(page):
    fig = charts(page)["q_memory"]
    arch = arch_from_model_config(variant_config("gqa-rope"))
    bars = {t["name"]: t for t in fig["data"] if t["type"] == "bar"}
    names = bars["codes (weights)"]["y"]
    assert names == ["fp32", "fp16", *FORMATS]
    for part, key in (("codes (weights)", "codes"), ("scales (fp16)", "scales"),
                      ("kept at fp16: embedding, block norms, final norm", "kept")):
        assert [round(x * 1e3) for x in bars[part]["x"]] == [acc.weight_memory(arch, n)[key] for n in names]
    q4 = acc.weight_memory(arch, "Q4_0 (G=32)")
    text = captions(page)
    assert f"Q4_0's scales add {q4['scales'] / q4['codes']:.1%}" in text and "4.50 bits per weight" in text
    assert f"to {q4['total'] / 1e6:.2f} MB" in text and f"{q4['kept'] / q4['total']:.0%} of what is left" in text
    assert "embedding (tied to the unembedding), block norms and final norm at fp16" in text
    assert "zero point" in text
    assert "2,048 B at fp32, 544 B at Q8_0" in text


def test_histogram_grid_and_caption_by_hand(page):
    # the page opens on layer 0's W_down at 4 bits, one scale per channel, on the row holding the largest |w|
    w = load_variant("gqa-rope").blocks[0].mlp.W_down.weight.detach()
    row = int(w.abs().amax(1).argmax())
    qt = quantize(w[row : row + 1], Format("q4 row", 4, "row", rule="q4_0"))
    back = qt.dequantize()[0].numpy()
    fig = charts(page)["q_hist"]
    grid_trace = next(t for t in fig["data"] if t["name"].startswith("grid"))
    gx = arr(grid_trace["x"])
    xs = sorted({round(float(x), 6) for x in gx[np.isfinite(gx)]})
    assert len(xs) == 16 and xs == pytest.approx(sorted(c * float(qt.scales[0, 0]) for c in range(-8, 8)), abs=1e-6)
    bars = next(t for t in fig["data"] if t["type"] == "bar")
    assert arr(bars["y"]).sum() == w.shape[1]
    text = captions(page)
    assert f"{np.mean(back == 0):.1%} of them come back as exactly 0" in text
    assert f"they use {len(np.unique(qt.codes))} of the grid's 16 values" in text
    err = float(np.linalg.norm(back - w[row].numpy()) / np.linalg.norm(w[row].numpy()))
    assert f"= {err:.2%}." in text


def test_switching_bits_scope_and_adding_an_outlier():
    at = open_page()
    at.radio(key="q_bits").set_value(8).run()
    at.radio(key="q_scope").set_value("per tensor").run()
    assert not at.exception
    grid_trace = next(t for t in charts(at)["q_hist"]["data"] if t["name"].startswith("grid"))
    gx = arr(grid_trace["x"])
    assert len(set(gx[np.isfinite(gx)].tolist())) == 255
    at.select_slider(key="q_outlier").set_value(8).run()
    assert not at.exception
    text = captions(at)
    m = re.search(r"per tensor ([\d.]+)% → ([\d.]+)%", text)
    assert m and float(m.group(2)) > 2 * float(m.group(1))  # an 8× column makes the per-tensor grid far coarser
    assert at.query_params["q_bits"] == "8" and at.query_params["q_outlier"] == "8"


def test_layer_errors_are_the_round_trips(page):
    fig = charts(page)["q_layers"]
    model = load_variant("gqa-rope")
    w = model.blocks[3].attn.W_k.weight.detach()
    by_name = {t["name"]: t for t in fig["data"]}
    assert list(by_name) == list(FORMATS)
    i = by_name["Q8_0"]["x"].index("L3 W_k")
    expect = float((quantize(w, FORMATS["Q8_0"]).dequantize() - w).norm() / w.norm())
    assert by_name["Q8_0"]["y"][i] == pytest.approx(expect, rel=1e-5)


def test_loss_figure_and_table_are_the_committed_results(page):  # reading a missing file fails, as it should
    r = json.loads(RESULTS_PATH.read_text())
    fig = charts(page)["q_loss_size"]
    pts = {t["name"]: (t["x"][0], t["y"][0]) for t in fig["data"]}
    assert pts["fp32"] == (r["fp32"]["bytes"]["fp16"] / 1e6, 0.0)
    for n, e in r["formats"].items():
        assert pts[n] == (e["bytes"]["total"] / 1e6, e["heldout"]["delta_nats"])
    table = next(d.value for d in page.dataframe if "MB" in d.value.columns)
    q4 = table[table["model"] == "Q4_0 (G=32)"].iloc[0]
    assert q4["nats/token"] == f"{r['formats']['Q4_0 (G=32)']['heldout']['nats_per_token']:.4f}"
    assert q4["bits/weight"] == "4.500"
    worst = max(r["formats"].items(), key=lambda kv: kv[1]["heldout"]["delta_nats"])
    assert f"The largest cost is {worst[0]}'s {worst[1]['heldout']['delta_nats']:+.4f} nats/token" in captions(page)


def test_live_check_and_generations_are_reproducible(page):
    from model.decoding.generate import generate
    from model.decoding.sampling import SamplerConfig
    from model.quantize.measure import window_losses
    from model.text.batches import encoded_split, val_windows
    from model.text.tokenizer import decode, encode

    torch.set_num_threads(1)
    model = load_variant("gqa-rope")
    ids, _ = encoded_split("val")
    fp32 = float(window_losses(model, val_windows(ids, 256)[:4]).mean())
    tables = [d.value for d in page.dataframe]
    live = next(t for t in tables if "model" in t.columns and "MB" not in t.columns)  # the live check
    assert live.loc[live["model"] == "fp32", "nats/token"].iloc[0] == f"{fp32:.4f}"
    from app_shared import DEFAULT_PROMPT

    want = decode(generate(model, encode(DEFAULT_PROMPT), 48, SamplerConfig(temperature=0.8), seed=0).generated_ids)
    codes = [c.value for c in page.code]
    assert len(codes) == 3 and codes[0] == want


@pytest.mark.slow
def test_measure_button_times_int8_against_fp32():
    at = open_page()
    at.button(key="q_measure").click().run()
    assert not at.exception, [e.value for e in at.exception]
    fig = charts(at)["q_speed_now"]
    names = {t["y"][0] for t in fig["data"]}
    assert names == {"fp32", "torch int8"}
    assert all(t["x"][0] > 0 for t in fig["data"])
    assert "Measured just now (gqa-rope)" in captions(at)


@pytest.mark.slow
@pytest.mark.parametrize("variant", [v for v in SHIPPED_VARIANTS if v != "gqa-rope"])
def test_every_trained_variant(variant):
    at = open_page(variant=variant)
    assert "q_memory" in charts(at) and "q_layers" in charts(at)


@pytest.mark.parametrize("prompt", ["", "<img src=x onerror=alert(1)>"])
def test_odd_prompts(prompt):
    at = open_page(prompt=prompt)
    assert "q_hist" in charts(at)
    if not prompt:
        assert "q_next" not in charts(at) and any("Type a prompt" in str(i.value) for i in at.info)


# --------------------------------------------------------------------------------------------------------
# The figure builders on their own
# --------------------------------------------------------------------------------------------------------


def test_log_ticks_bracket_the_data():
    from viz.quantization import log_ticks

    assert log_ticks([0.004, 0.09]) == pytest.approx([0.002, 0.005, 0.01, 0.02, 0.05, 0.1])
    assert log_ticks([[0.0053, None], [0.1]]) == pytest.approx([0.005, 0.01, 0.02, 0.05, 0.1])
    assert log_ticks([0.0, float("nan")]) == []


def test_histogram_draws_every_grid_value_once():
    from viz.quantization import histogram_with_grid

    fig = histogram_with_grid(np.array([0.1, -0.2, 0.4]), [-0.5, 0.0, 0.5], "t <b>", marked=0.4)
    grid_trace = next(t for t in fig.data if t.name.startswith("grid"))
    xs = np.asarray(grid_trace.x, dtype=float)
    assert sorted(set(xs[np.isfinite(xs)].tolist())) == [-0.5, 0.0, 0.5] and fig.data[0].y.sum() == 3
    assert "&lt;b&gt;" in fig.layout.title.text  # titles are escaped


def test_memory_and_next_token_figures():
    from viz.quantization import memory_figure, next_token_figure

    fig = memory_figure(["a", "b"], [100, 50], [0, 10], [0, 40], [None, 4.5])
    assert [list(t.x) for t in fig.data[:3]] == [[0.1, 0.05], [0.0, 0.01], [0.0, 0.04]]
    assert list(fig.data[3].text) == ["0.00 MB", "0.00 MB · 4.50 bits/weight"]
    fig = next_token_figure({"fp32": (["<img>", "b"], [0.6, 0.3]), "Q8_0": (["a", "b"], [0.5, 0.4])})
    assert list(fig.data[0].y) == ["&lt;img&gt;", "b"] and fig.data[1].marker.color == "#17BECF"


# --------------------------------------------------------------------------------------------------------
# Sentences: change the numbers, the sentence changes with them
# --------------------------------------------------------------------------------------------------------


def _case(f32, i8):
    return {"fp32": dict(zip(("min_ms", "median_ms", "max_ms"), f32)),
            "int8": dict(zip(("min_ms", "median_ms", "max_ms"), i8)), "speedup": f32[1] / i8[1]}


def test_speed_reading_calls_a_win_only_when_the_runs_do_not_overlap():
    from viz.quantization import speed_reading

    committed = json.loads(RESULTS_PATH.read_text())["speed"]
    text = speed_reading(committed, (512, 192))
    for case, v in committed["cases"].items():
        f, q = v["fp32"], v["int8"]
        if q["max_ms"] < f["min_ms"]:
            assert f"faster for {case} ({v['speedup']:.2f}×)" in text or f", {case} ({v['speedup']:.2f}×)" in text
        elif q["min_ms"] > f["max_ms"]:
            assert f"slower for {case}" in text
        else:  # e.g. a median ratio of 1.28× whose runs overlap is no win
            assert f"{case} ({v['speedup']:.2f}×; fp32 {f['min_ms']:.1f}–" in text
    # made-up timings: the words follow them
    speed = {"repeats": 5, "cases": {"prefill, 8 × 256 tokens": _case((300, 320, 340), (200, 210, 220)),
                                     "decode step": _case((7, 8, 9), (10, 11, 12))}}
    text = speed_reading(speed, (512, 192))
    assert "int8 is faster for prefill, 8 × 256 tokens (1.52×)" in text and "slower for decode step (0.73×)" in text
    assert "512 × 192 at most" in text and "no difference shown" not in text
    speed["cases"]["decode step"] = _case((7, 8, 9), (5, 5.5, 6))  # decode wins too: no "one row" excuse
    assert "a decode step multiplies one row" not in speed_reading(speed, (512, 192))


def test_layer_error_and_outlier_sentences_follow_the_numbers():
    from viz.quantization import kept_text, layer_error_caption, outlier_note

    less = layer_error_caption({"int8 (per-channel)": 0.0069, "Q4_0 (G=32)": 0.0856}, "int8 (per-channel)",
                               "Q4_0 (G=32)")
    assert "measures 12.4×, less: Q4_0's blocks of 32" in less and "0.69%" in less
    more = layer_error_caption({"int8 (per-channel)": 0.005, "Q4_0 (G=32)": 0.1}, "int8 (per-channel)", "Q4_0 (G=32)")
    assert "measures 20.0×, more than" in more and "finer scales" not in more
    before = {"per tensor": 0.2, "per channel": 0.1, "per group": 0.08}
    helps = outlier_note(7, 8, 0.9, before, {"per tensor": 0.9, "per channel": 0.3, "per group": 0.1}, 32)
    assert "per channel 10.00% → 30.00% (3.0×)" in helps and "why int4 formats use groups" in helps
    no_help = outlier_note(7, 8, 0.9, before, {"per tensor": 0.9, "per channel": 0.2, "per group": 0.4}, 32)
    assert "why int4 formats use groups" not in no_help
    assert kept_text(["embedding", "block norms", "final norm"], True) == \
        "embedding (tied to the unembedding), block norms and final norm"
    assert kept_text(["embedding", "position table", "unembedding"], False) == "embedding, position table and unembedding"
