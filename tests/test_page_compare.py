"""The compare page under AppTest (the three tabs, asserted on the figures' data), and its figure builders."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import app_support
from model.net.checkpoints import (ARCHITECTURE_VARIANTS, COMPARED_VARIANTS, available_variants, load_train_log,
                                   save_checkpoint, variant_config, variant_dir)
from model.evaluation import seeds as seed_runs
from model.evaluation.evaluate import RESULTS_PATH
from model.net.transformer import Transformer
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
    assert [t.label for t in page.tabs] == ["Attention variants", "Positional encodings", "Architecture"]
    if not set(ARCHITECTURE_VARIANTS[1:]) & set(available_variants()):  # today: none of them trained yet
        assert any("None of the architecture variants has weights" in i.value for i in page.info)
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
    compared = {v for v in COMPARED_VARIANTS + ARCHITECTURE_VARIANTS if v in available_variants()}
    assert compared, "the re-run needs a trained checkpoint"  # the architecture variants' too, once trained
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


# ---- the architecture tab ---------------------------------------------------------------------------------

ARCH_TRAIN = ["gqa-postnorm", "gqa-moe"]  # given weights below; gqa-layernorm and gqa-gelu are left untrained
MERGE = "python -m model.evaluation --variants gqa-postnorm gqa-moe --merge"


def results_without_architectures(tmp_path: Path, monkeypatch) -> dict:
    """The committed evaluation less any architecture variant's row (as before they were evaluated), as the file
    the page reads."""
    res = json.loads(RESULTS_PATH.read_text())
    for n in ARCHITECTURE_VARIANTS[1:]:
        res["variants"].pop(n, None)
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(res))
    monkeypatch.setattr("model.evaluation.evaluate.RESULTS_PATH", path)
    return res


def test_architecture_tab_without_weights_says_what_to_train(monkeypatch, tmp_path):
    """No architecture variant has weights (a checkout before they are trained): the tab names them and the
    command that trains them, draws none of its charts, and the other two tabs are unaffected."""
    results_without_architectures(tmp_path, monkeypatch)
    monkeypatch.setattr("model.net.checkpoints.CHECKPOINT_DIR", tmp_path / "checkpoints")
    at = app_support.open_page("pages/compare.py", prompt="ROMEO.", query={"cmp_tab": "Architecture"})
    assert at.session_state["cmp_tab"] == "Architecture"  # a link opens the tab
    info = " ".join(i.value for i in at.info)
    assert "None of the architecture variants has weights in this checkout yet: **gqa-postnorm, gqa-layernorm, " \
           "gqa-gelu, gqa-moe**" in info
    assert "`python -m model.training.train --variant gqa-moe`" in info and "Nothing to compare yet" in info
    got = app_support.charts(at)
    assert not any(k.endswith("_arch") for k in got) and "cmp_bars_attn" in got and "cmp_by_pos" in got
    intro = at.markdown[0].value
    assert "A third comparison, **Architecture**" in intro and "gqa-moe (a mixture of 4 experts, 2 per token)" in intro
    assert "in no comparison" not in intro  # no weights at all here: no other checkpoint to list


def arch_row(base: dict, shift: float, model, rng) -> dict:
    """gqa-rope's evaluation row moved by `shift` nats (± a little noise per window), with `model`'s sizes."""
    r = copy.deepcopy(base)
    w = np.array(r["heldout"]["window_losses"])
    w = np.round(w + shift + rng.normal(0, 0.01, len(w)), 4)
    nats = float(w.mean())
    r["heldout"].update(window_losses=w.tolist(), nats_per_token=round(nats, 4),
                        bits_per_char=round(base["heldout"]["bits_per_char"] * nats / base["heldout"]["nats_per_token"],
                                            4))
    r["loss_by_position"]["bucket_mean"] = [round(x + shift, 4) for x in r["loss_by_position"]["bucket_mean"]]
    cfg = model.cfg
    params = sum(p.numel() for p in model.parameters())
    expert = sum(p.numel() for p in model.blocks[0].mlp.experts[0].parameters()) if cfg.n_experts else 0
    r.update(params=params, active_params=params - cfg.n_layers * (cfg.n_experts - cfg.experts_per_token) * expert,
             n_experts=cfg.n_experts, experts_per_token=cfg.experts_per_token if cfg.n_experts else 0)
    return r


def test_architecture_tab_draws_the_rows_it_is_given(monkeypatch, tmp_path, shipped_variants):
    """Two of the four trained (fresh-init checkpoints with a synthetic log) and in a synthetic evaluation, the
    default beside them: the tab names the two still untrained, and its table, bars, parameters, loss by position
    and training curves carry exactly those rows and logs; the reading orders what the windows separate beyond the
    seed spread and gives the MoE's sizes and balance."""
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "gqa-rope").symlink_to(variant_dir("gqa-rope"))
    res = results_without_architectures(tmp_path, monkeypatch)
    rng = np.random.default_rng(0)
    recipe = load_train_log("gqa-rope")["train"]
    logs = {}
    for i, (name, shift) in enumerate(zip(ARCH_TRAIN, (0.08, -0.08))):
        torch.manual_seed(i)
        model = Transformer(variant_config(name)).eval()
        logs[name] = {"train": {**recipe, "init_seed": 0},
                      "train_loss": np.linspace(7.0, 3.9 + shift, 400).round(4).tolist(),
                      "val": [{"step": 200, "loss": 4.5}, {"step": 400, "loss": 3.9 + shift}], "device": "cpu"}
        if model.cfg.n_experts:
            logs[name]["aux_loss"] = [2.1] * 400
        save_checkpoint(model, ckpt / name, logs[name])
        res["variants"][name] = arch_row(res["variants"]["gqa-rope"], shift, model, rng)
        res["variants"][name]["merged_from"] = {"date": "2026-12-07T18:00:00+00:00", "command": MERGE}
    results = tmp_path / "evaluation.json"
    results.write_text(json.dumps(res))
    runs = seed_runs.shipped_as_seed0(res, ["mha-rope"])
    runs += [{**runs[0], "seed": k, "heldout": {"nats_per_token": x, "bits_per_char": x / 2}}
             for k, x in ((1, 3.787), (2, 3.804))]
    seeds_path = tmp_path / "seeds.json"
    seeds_path.write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr("model.net.checkpoints.CHECKPOINT_DIR", ckpt)
    monkeypatch.setattr("model.evaluation.evaluate.RESULTS_PATH", results)
    monkeypatch.setattr(seed_runs, "SEEDS_PATH", seeds_path)
    at = app_support.open_page("pages/compare.py", prompt="ROMEO.")

    info = " ".join(i.value for i in at.info)
    assert "No weights in this checkout yet for: **gqa-layernorm, gqa-gelu**" in info
    assert "Nothing to compare" not in info
    shown = ["gqa-rope", *ARCH_TRAIN]
    R = res["variants"]
    bars = app_support.chart(at, "cmp_bars_arch")["data"]
    assert list(bars[0]["x"]) == shown
    np.testing.assert_allclose(app_support.arr(bars[0]["y"]), [R[n]["heldout"]["bits_per_char"] for n in shown])
    assert [t["name"] for t in bars] == ["shipped run"]  # no seed of these three in seeds.json: no dots
    total, used = app_support.chart(at, "cmp_params_arch")["data"]
    np.testing.assert_array_equal(app_support.arr(total["y"]), [1_967_808, 1_967_616, 3_150_528])
    np.testing.assert_array_equal(app_support.arr(used["y"]), [1_967_808, 1_967_616, 1_970_880])
    lines = {t["name"]: t for t in app_support.chart(at, "cmp_by_pos_arch")["data"] if t.get("mode") == "lines+markers"}
    assert list(lines) == shown
    for n in shown:
        np.testing.assert_allclose(app_support.arr(lines[n]["y"]), R[n]["loss_by_position"]["bucket_mean"])
    curves = {t["name"]: t for t in app_support.chart(at, "cmp_curves_arch")["data"]}
    assert set(curves) == {f"{n} {k}" for n in shown for k in ("train", "held-out")}
    np.testing.assert_allclose(app_support.arr(curves["gqa-moe train"]["y"]), smooth(logs["gqa-moe"]["train_loss"], 50))
    np.testing.assert_allclose(app_support.arr(curves["gqa-postnorm held-out"]["y"]),
                               [v["loss"] for v in logs["gqa-postnorm"]["val"]])

    table = next(d.value for d in at.dataframe if "used per token" in d.value.columns).set_index("variant")
    assert list(table.index) == shown and table.loc["gqa-moe", "used per token"] == 1_970_880
    assert table.loc["gqa-postnorm", "over training seeds (nats/token)"] == "1 run: spread not measured"
    captions = " ".join(c.value for c in at.caption)
    assert "gqa-postnorm: 1 run, spread not measured; gqa-moe: 1 run, spread not measured." in captions
    assert f"· gqa-postnorm, gqa-moe added 2026-12-07 18:00 UTC by `{MERGE}`." in captions
    text = " ".join(m.value for m in at.markdown)
    assert "**gqa-moe** — 4 SwiGLU experts 256 wide, 2 per token" in text and "Trained alike" in text
    sd = seed_runs.summarise([r["heldout"]["nats_per_token"] for r in runs])["sd"]
    assert f"the seed-to-seed sd reached {sd:.4f} (mha-rope, n = 3)" in text
    assert "gqa-rope's held-out loss is lower than gqa-postnorm's for these weights on these windows" in text
    assert "gqa-moe's held-out loss is lower than gqa-rope's for these weights on these windows" in text
    assert "gqa-moe 3,150,528 (1,970,880 used per token)" in text and "averaged 2.100 over its last 100" in text
    # the first two tabs are as before: the architecture variants are in neither, nor listed as outside every one
    assert "cmp_bars_attn" in app_support.charts(at) and "in no comparison" not in at.markdown[0].value
