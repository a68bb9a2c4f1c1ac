"""The compare page under AppTest (both tabs, asserted on the figures' data), and its figure builders."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from model.net.checkpoints import COMPARED_VARIANTS, available_variants, variant_dir
from model.evaluation import seeds as seed_runs
from model.evaluation.evaluate import RESULTS_PATH
from model.text.tokenizer import encode
from viz.compare import (attention_side_by_side, kv_sharing_compare, last_token_attention, loss_by_position_figure,
                         next_token_bars, smooth)
from viz.compare_text import read_attention_variants, read_positions

APP = str(Path(__file__).resolve().parent.parent / "app.py")
HOSTILE = "<img src=x onerror=alert(1)>&"


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at) -> dict[str, dict]:
    """Every plotly chart by its widget key (the element id ends with it)."""
    out = {}
    for c in at.get("plotly_chart"):
        key = next((k for k in KEYS if c.proto.id.endswith(k)), c.proto.id)
        out[key] = json.loads(c.proto.spec)
    return out


KEYS = ["cmp_curves_attn", "cmp_bars_attn", "cmp_kv", "cmp_layer_attn_fig", "cmp_curves_pos", "cmp_by_pos",
        "cmp_dist", "cmp_signals", "cmp_layer_pos_fig", "cmp_next", "cmp_last_attn"]


def test_both_tabs_draw_their_charts(page):
    assert [t.label for t in page.tabs] == ["Attention variants", "Positional encodings"]
    got = charts(page)
    for key in ("cmp_kv", "cmp_layer_attn_fig", "cmp_signals", "cmp_layer_pos_fig", "cmp_next", "cmp_last_attn"):
        assert key in got, key
    assert RESULTS_PATH.is_file(), "results/evaluation.json is committed"
    for key in ("cmp_bars_attn", "cmp_by_pos", "cmp_dist"):
        assert key in got, key


def test_loss_by_position_spans_four_contexts_with_the_training_length_marked(page):
    assert RESULTS_PATH.is_file(), "results/evaluation.json is committed"
    res = json.loads(RESULTS_PATH.read_text())
    fig = charts(page)["cmp_by_pos"]
    lines = {t["name"]: t for t in fig["data"] if t.get("mode") == "lines+markers"}
    assert set(lines) == {n for n in ("gqa-rope", "gqa-sinusoidal", "gqa-learned", "gqa-alibi", "gqa-none")
                          if n in res["variants"]}
    requested = res["settings"]["position_len"]
    for name, t in lines.items():
        p = res["variants"][name]["loss_by_position"]
        assert t["y"] == pytest.approx(p["bucket_mean"])
        assert max(t["x"]) > (256 if name == "gqa-learned" else requested) - 16
    if not res.get("quick"):
        assert requested == 1024 and max(max(t["x"]) for t in lines.values()) > 1000
    assert any(s.get("type") == "line" and s["x0"] == s["x1"] == 256 for s in fig["layout"]["shapes"])
    if "gqa-learned" in lines:  # stops at its table, marked with an ✕ and the note
        assert max(lines["gqa-learned"]["x"]) <= 256
        ends = [t for t in fig["data"] if t["name"] == "gqa-learned: ends"]
        assert ends and ends[0]["x"] == [256] and "learned table ends" in ends[0]["text"][0]


def test_kv_sharing_is_drawn_as_h_over_group_size(page):
    fig = charts(page)["cmp_kv"]
    links = {t["name"] for t in fig["data"] if t.get("mode") == "lines"}
    assert "mha-rope q5-kv5" in links and "gqa-rope q4-kv1" in links and "mqa-rope q5-kv0" in links
    assert len(links) == 3 * 6


def test_live_section_has_every_trained_variant(page, shipped_variants):
    expected = [v for v in COMPARED_VARIANTS if v in available_variants()]
    assert expected, "no compared variant's checkpoint in this checkout"
    bars = [t for t in charts(page)["cmp_next"]["data"] if t["type"] == "bar"]
    assert [t["name"] for t in bars] == expected
    for t in bars:
        assert 0 < sum(t["x"]) <= 1 + 1e-6 and list(t["x"]) == sorted(t["x"], reverse=True)


def test_reading_and_downloads_present(page):
    md = " ".join(m.value for m in page.markdown)
    assert RESULTS_PATH.is_file(), "results/evaluation.json is committed"
    assert "nats/token" in md and "seed" in md
    labels = [b.proto.label for b in page.get("download_button")]
    assert "Download the evaluation (JSON)" in labels and "Download loss by position (CSV)" in labels


@pytest.mark.slow  # re-runs a quick evaluation
def test_quick_rerun_replaces_the_shown_numbers_until_asked_back(page, shipped_variants):
    compared = {v for v in COMPARED_VARIANTS if v in available_variants()}
    assert compared, "the re-run needs a trained checkpoint"
    page.button(key="cmp_rerun").click().run()
    assert not page.exception, [e.value for e in page.exception]
    quick = page.session_state["cmp_quick"]
    assert quick["quick"] and set(quick["variants"]) == compared
    assert any("a **quick** run" in c.value for c in page.caption)
    page.button(key="cmp_back").click().run()
    assert "cmp_quick" not in page.session_state


LONG_PROMPT = "ROMEO.\n" + "But soft, what light through yonder window breaks? " * 8  # past the 48 keys drawn


def open_compare(monkeypatch, seeds_path: Path, prompt: str = LONG_PROMPT) -> AppTest:
    monkeypatch.setattr(seed_runs, "SEEDS_PATH", seeds_path)  # the page reads it at run time
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["prompt"] = prompt
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_without_seeds_it_says_each_was_trained_once_and_orders_no_tie(monkeypatch, tmp_path, shipped_variants):
    """results/seeds.json absent: the intro counts and sizes the models from the data, the reading says the seed
    spread is unmeasured and does not order the GQA/MQA tie, the table and bars say there is one run; the last
    token's row is labelled with the keys' real positions and said to be cut."""
    at = open_compare(monkeypatch, tmp_path / "no_seeds.json")
    md = [m.value for m in at.markdown]
    res = json.loads(RESULTS_PATH.read_text())
    params = [res["variants"][n]["params"] for n in COMPARED_VARIANTS]
    assert md[0].startswith(f"{len(COMPARED_VARIANTS)} models") and f"{max(params):,}" in md[0]
    assert f"+{100 * (max(params) / min(params) - 1):.1f} %" in md[0]
    assert "same size budget" not in md[0] and "Every number" not in md[0] and "gqa-window" in md[0]
    text = " ".join(md)
    assert "Each variant was trained once (one seed)" in text and "gqa-rope ~ mqa-rope" in text
    assert "literature expects" not in text and "One training run each cannot test that" in text
    assert "agrees with the ALiBi paper" not in text
    # RoPE and sinusoidal rise alike past the context (+1.04 vs +1.05): their order is not claimed either way
    assert "gqa-sinusoidal ~ gqa-rope" in text or "gqa-rope ~ gqa-sinusoidal" in text or "so the rises are not ranked" in text
    table = at.dataframe[0].value
    assert set(table["over training seeds (nats/token)"]) == {"1 run: spread not measured"}
    bars = charts(at)["cmp_bars_attn"]
    assert [t["name"] for t in bars["data"]] == ["shipped run"]
    n = len(encode(LONG_PROMPT))
    assert n > 48
    keys = charts(at)["cmp_last_attn"]["data"][0]["x"]
    assert len(keys) == 48 and keys[0].startswith(f"{n - 48} ") and keys[-1].startswith(f"{n - 1} ")
    cut = [c.value for c in at.caption if "What the last token attends to" in c.value][0]
    assert f"last 48 of {n} tokens: positions {n - 48}–{n - 1}" in cut and "The rows are cut" in cut


def test_with_seeds_the_table_bars_and_reading_carry_the_spread(monkeypatch, tmp_path, shipped_variants):
    """A synthetic results/seeds.json (the shipped run as seed 0, two more per closely compared variant): the
    table shows mean ± sd (n), the bars draw every seed and the mean ± sd, and the reading's intervals are over
    seeds."""
    res = json.loads(RESULTS_PATH.read_text())
    extra = {"mha-rope": (3.772, 3.768), "gqa-rope": (3.800, 3.810), "mqa-rope": (3.830, 3.840),
             "gqa-alibi": (3.850, 3.860)}
    runs = seed_runs.shipped_as_seed0(res, list(extra))
    for r in list(runs):
        for k, loss in enumerate(extra[r["variant"]], start=1):
            runs.append({**r, "seed": k, "train_seed": 1337 + k, "init_seed": k,
                         "heldout": {**r["heldout"], "nats_per_token": loss, "bits_per_char": loss / 2.0}})
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"command": "synthetic", "runs": runs}))
    at = open_compare(monkeypatch, path)
    table = at.dataframe[0].value.set_index("variant")["over training seeds (nats/token)"]
    m = seed_runs.summarise([res["variants"]["mha-rope"]["heldout"]["nats_per_token"], *extra["mha-rope"]])
    assert table["mha-rope"] == f"3 seeds: {m['mean']:.4f} ± {m['sd']:.4f} (sd)"
    bars = {t["name"]: t for t in charts(at)["cmp_bars_attn"]["data"]}
    assert bars["each training seed"]["x"].count("mha-rope") == 3 and "seed mean ± sd" in bars
    text = " ".join(m.value for m in at.markdown)
    assert "Over training seeds (mean ± sd): mha-rope" in text and "over 3 training seeds" in text
    assert "Trained once, their seed spread not measured: gqa-sinusoidal" in text
    assert "Each variant was trained once" not in text


# ---- figure builders --------------------------------------------------------------------------------------


def test_token_labels_are_escaped_in_every_text():
    labels = ["a", HOSTILE, "b"]
    figs = [
        next_token_bars({"gqa-rope": (labels, [0.5, 0.3, 0.2])}),
        attention_side_by_side({"gqa-rope": np.tril(np.ones((2, 3, 3))) / 3}, labels, 0),
        last_token_attention({"gqa-rope": np.ones((4, 3)) / 3}, labels, 2),
    ]
    for fig in figs:
        text = fig.to_json()
        assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;&amp;" in text


def test_loss_by_position_figure_marks_the_context_and_an_early_end():
    fig = loss_by_position_figure({"gqa-rope": {"x": [8.5, 24.5], "y": [5.0, 4.0], "end": 32, "note": None},
                                   "gqa-learned": {"x": [8.5], "y": [5.0], "end": 16,
                                                   "note": "n/a past 16: learned table ends (…)"}}, 16, 32)
    assert [s.x0 for s in fig.layout.shapes] == [16]
    end = [t for t in fig.data if t.name == "gqa-learned: ends"][0]
    assert end.x == (16,) and end.text == ("n/a past 16: learned table ends",)


def test_kv_sharing_compare_and_smooth():
    fig = kv_sharing_compare({"gqa": (6, 2)})
    links = [t.name for t in fig.data if t.mode == "lines"]
    assert links == [f"gqa q{h}-kv{h // 3}" for h in range(6)]
    np.testing.assert_allclose(smooth([1, 3, 5], 2), [1, 2, 4])


def test_page_works_without_checkpoints(monkeypatch, tmp_path):
    """A checkout without checkpoints: the page names what is missing and still draws from the committed JSON."""
    monkeypatch.setattr("model.net.checkpoints.CHECKPOINT_DIR", tmp_path)
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["prompt"] = "ROMEO."
    at.run()
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warning = " ".join(w.value for w in at.warning)
    assert "No checkpoint in this checkout for" in warning and all(v in warning for v in COMPARED_VARIANTS)
    got = charts(at)
    assert "cmp_curves_attn" not in got and "cmp_kv" in got
    assert "cmp_next" not in got and "cmp_last_attn" not in got  # no model to run: no stand-in weights either
    assert any("no model to run your prompt" in i.value for i in at.info)
    assert RESULTS_PATH.is_file(), "results/evaluation.json is committed"
    assert "cmp_by_pos" in got


def test_a_corrupted_checkpoint_is_named_and_left_out(monkeypatch, tmp_path, shipped_variants):
    """One compared checkpoint truncated: the page says which and why, and its live views leave it out rather
    than show other weights under its name."""
    good = ["mha-rope"]  # shipped, as gqa-rope is (the fixture asserts both are committed)
    for v in ["gqa-rope", good[0]]:
        shutil.copytree(variant_dir(v), tmp_path / v, ignore=shutil.ignore_patterns("train_state*"))
    f = tmp_path / "gqa-rope" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    monkeypatch.setattr("model.net.checkpoints.CHECKPOINT_DIR", tmp_path)
    import app_shared

    app_shared._trained_model.clear()  # nothing cached from the real checkpoints/ may answer for these
    try:
        at = AppTest.from_file(APP, default_timeout=90)
        at.session_state["variant"] = good[0]
        at.session_state["prompt"] = "ROMEO."
        at.switch_page("pages/compare.py").run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        assert any("gqa" in e and "cannot be loaded" in e and "truncated or corrupted" in e for e in errors), errors
        bars = [t["name"] for t in charts(at)["cmp_next"]["data"] if t["type"] == "bar"]
        assert bars == [good[0]]
    finally:
        app_shared._trained_model.clear()


def test_compare_text_is_pure():
    """The page's sentences: a result dict in, sentences out; importing them loads neither streamlit nor torch."""
    code = "import sys, viz.compare_text; print('torch' in sys.modules, 'streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(APP).parent)
    assert out.stdout.split() == ["False", "False"], out.stderr
    assert read_attention_variants({"variants": {}}) == [
        "Fewer than two of MHA / GQA / MQA are evaluated here, so there is nothing to compare yet."]
    assert read_positions({"variants": {}}) == ["None of the positional-encoding variants is evaluated here yet."]
    assert RESULTS_PATH.is_file(), "results/evaluation.json is committed"
    res = json.loads(RESULTS_PATH.read_text())
    lines = read_attention_variants(res) + read_positions(res)
    assert lines and all(isinstance(l, str) and l for l in lines)
